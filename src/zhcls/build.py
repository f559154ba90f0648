"""`build(cfg, out)`: the whole recipe from one data config to the most accurate bundle within a budget.

    check -> train candidates -> ensemble teacher -> distill students -> export -> select
    [-> compress the best neural run within the budget, select again] -> report

out/
  check.json          what `zhcls data check` found (build stops on its errors unless forced)
  vectors/char-D-K.txt with [build] unlabeled: char vectors for the char.v1 neural models of embed_dim D
                      (K: a key of the texts they learn from)
  runs/NAME/          one ordinary run per candidate (tfidf, fasttext, textcnn, bigru[, transformer]),
                      the ensemble of them, and each student distilled from the ensemble
  bundles/NAME/       each run exported (also as int8: neural, tfidf and ensemble runs), latency and size in its manifest
  compressed/NAME/    only when no bundle meets the budget: `zhcls compress`'s budget search on the best neural run
  bundle/             a copy of the chosen bundle: what to serve
  build.json          every candidate with dev/test scores, latency, size, within budget or not, and the choice
                      with its dev lead over the next runs and that lead's paired standard error
  build.md            the same as a report, with the accuracy-vs-latency figure (build.png)

Every stage is cached by its output: a run with metrics.json, a bundle with its manifest. A rerun after a
kill continues where it stopped, and a candidate killed mid-training resumes from its checkpoint (train()).
stages.json records the digest of every run a stage read (the ensemble its members, a student its teacher,
a bundle its run): a stage whose inputs were trained again since (a run deleted to retrain it) is redone,
never reused with the old ones.
Selection uses dev scores only (the ensemble's is cross-fitted, see models/ensemble.py); test scores are
reported beside them, never used.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager

import numpy as np

from .artifact import atomic_dir, dir_digest, read_json, write_json, write_text
from .config import BuildConfig, RunConfig, config_from_dict, resolved_dict
from .errors import DataError, RunError
from .eval.budget import budget_text, within
from .training.run import load_splits, train

log = logging.getLogger(__name__)

# A stage's progress: build calls stage("train textcnn.v1") and feeds the hook it yields to train().
StageProgress = Callable[[str], ContextManager[Any]]
NEURAL = ("fasttext.v1", "textcnn.v1", "bigru.v1")
VECTOR_MODELS = ("textcnn.v1", "bigru.v1")  # given char vectors from [build] unlabeled (student_defaults measured textcnn.v1)


@dataclass
class BuildResult:
    out: Path
    chosen: dict[str, Any]
    candidates: list[dict[str, Any]]
    reason: str
    margins: list[dict[str, Any]] = field(default_factory=list)  # dev_margins(): how sure the choice is


def build(
    cfg: RunConfig,
    out: str | Path,
    *,
    budget_ms: float | None = None,
    budget_mb: float | None = None,
    force: bool = False,
    stage: StageProgress | None = None,
) -> BuildResult:
    out = Path(out)
    opts = cfg.build
    budget_ms = opts.budget_ms if budget_ms is None else budget_ms
    budget_mb = opts.budget_mb if budget_mb is None else budget_mb
    stage = stage or (lambda name: contextlib.nullcontext(None))
    out.mkdir(parents=True, exist_ok=True)

    _check(cfg, out, force)
    vectors = _vectors_stage(cfg, out, stage)
    stages = StageRecord(out)
    runs: dict[str, Path] = {}
    for name in candidate_names(opts):
        runs[name] = _train_stage(vectors(candidate_config(cfg, name)), out / "runs" / name, stage, f"train {name}", stages)
    members = [str(runs[n]) for n in runs]
    if len(members) > 1:
        ens = config_from_dict({**resolved_dict(cfg), "model": {"name": "ensemble.v1", "members": members, "method": opts.ensemble}, "distill": None, "augment": []})
        runs["ensemble"] = _train_stage(ens, out / "runs" / "ensemble", stage, "ensemble", stages, list(runs.values()))
        teacher = runs["ensemble"]
    else:
        teacher = next(iter(runs.values()), None)
    if teacher is not None:
        for student in opts.students:
            runs[f"distill-{student}"] = _train_stage(vectors(student_config(cfg, student, teacher)), out / "runs" / f"distill-{student}", stage,
                                                      f"distill {student}", stages, [teacher])

    rows = []
    splits = functools.cache(functools.partial(load_splits, cfg))  # read once, only if a row or the margins need it
    for name, run in runs.items():
        variants = ["fp32", "int8"] if _quantizable(run) and opts.int8 else ["fp32"]
        for precision in variants:
            label = name if precision == "fp32" else f"{name}+int8"
            bundle = _export_stage(run, out / "bundles" / label, precision, stage, f"export {label}", stages)
            row = candidate_row(label, run, bundle, cfg.training.metric)
            if precision == "int8" and row["test"] is not None:  # the run's test score is the fp32 model's: score the bundle itself
                row.update(_bundle_test(bundle, splits()["test"], cfg.training.metric))
            rows.append(row)
    chosen, reason = select(rows, budget_ms, budget_mb, opts.ensemble_se)
    if opts.compress and not within(chosen, budget_ms, budget_mb):
        row, why = _compress_stage(rows, out, cfg, budget_ms, budget_mb, stage, stages)
        if row is not None:
            rows.append(row)
            chosen, reason = select(rows, budget_ms, budget_mb, opts.ensemble_se)
        else:
            reason += f"; compress found no variant within budget either: {why}"
    for row in rows:
        row["within_budget"] = within(row, budget_ms, budget_mb)
        row["chosen"] = row is chosen
    margins = dev_margins(rows, chosen, splits().get("dev") or [], cfg.training.metric) if chosen["within_budget"] else []
    if margins and margins[0]["lead"] <= 2 * margins[0]["se"]:
        reason += "; " + margin_text(margins[0])
    with atomic_dir(out / "bundle") as tmp:
        shutil.copytree(chosen["bundle"], tmp, dirs_exist_ok=True)
    summary = {"budget_ms": budget_ms, "budget_mb": budget_mb, "metric": cfg.training.metric, "chosen": chosen["name"], "chosen_run": chosen["run"], "reason": reason,
               "dev_margins": margins, "candidates": rows}
    write_json(out / "build.json", summary)
    write_text(out / "build.md", build_report(summary, out))
    return BuildResult(out, chosen, rows, reason, margins)


def _compress_stage(rows: list[dict[str, Any]], out: Path, cfg: RunConfig, budget_ms: float | None, budget_mb: float | None,
                    stage: StageProgress, stages: StageRecord) -> tuple[dict[str, Any] | None, str]:
    """Nothing as trained meets the budget: `zhcls compress --budget-ms/--budget-mb` on the most accurate
    neural run (docs/compression.md), recovered by distillation over the build's unlabeled texts. Returns the
    compressed variant's row, or None and why. The search's interleaved re-timing gives the row its p50 (the
    figure the search checked the budget with)."""
    from .compress.run import WORK, CompressError
    from .compress.search import search

    neural = [r for r in rows if r["model"] in NEURAL and r["precision"] == "fp32"]
    if not neural:
        return None, "no neural candidate to prune"
    parent = max(neural, key=lambda r: (r["dev"], -r["size_mb"]))
    work = out / "compressed" / parent["name"]
    if work.exists() and stages.changed(work, [Path(parent["run"])]):  # its pruned variants came from another version of the parent
        log.warning("%s: pruned from another version of %s; searching again", work, parent["run"])
        shutil.rmtree(work)
    try:
        found = search(parent["run"], work, budget_ms=budget_ms, budget_mb=budget_mb, unlabeled=cfg.build.unlabeled,
                       max_unlabeled=cfg.build.max_unlabeled, metric=cfg.training.metric, stage=stage)
    except CompressError as e:
        return None, e.message
    stages.done(work, [Path(parent["run"])])
    row = candidate_row(f"{parent['name']}+compressed", found.out, found.out / "bundle", cfg.training.metric)
    c = found.chosen  # scored from the bundle's own predictions, so an int8 variant is scored as int8
    row.update(dev=c["dev"], test=c.get(f"test_{cfg.training.metric}"), test_accuracy=c.get("test_accuracy"), p50_ms=c["p50_ms"], p99_ms=c["p99_ms"], compressed={
        "parent": parent["name"], "width": c.get("width"), "max_vocab": c.get("max_vocab"),
        "search": str(work / WORK / "search.md"), "reason": found.reason})
    return row, found.reason


def candidate_names(opts: BuildConfig) -> list[str]:
    names = list(opts.candidates)
    if opts.transformer and "transformer.v1" not in names:
        names.append("transformer.v1")
    return names


def candidate_config(cfg: RunConfig, name: str) -> RunConfig:
    """The data and training settings of `cfg` for model `name`: [model] options apply to the model they
    name; every candidate gets the build's epoch budget and patience ([build] epochs, patience), large
    enough by default that early stopping, not the budget, ends training."""
    raw = resolved_dict(cfg)
    model = dict(raw["model"]) if raw["model"]["name"] == name else {"name": name}
    if name == "transformer.v1":
        model.setdefault("path", cfg.build.transformer)
    training = {**raw["training"], "epochs": cfg.build.epochs, "patience": cfg.build.patience}
    if raw["model"]["name"] != name:
        training.pop("lr", None)  # another model's learning rate is no default for this one
    return config_from_dict({**raw, "model": model, "training": training, "distill": None})


def student_config(cfg: RunConfig, student: str, teacher: Path) -> RunConfig:
    """`student` trained on the teacher's soft targets over train + the unlabeled texts + [[augment]] copies
    (augment's default recipe with `[build] student_augment`, when the config has no [[augment]] of its own)."""
    base = resolved_dict(candidate_config(cfg, student))
    o = cfg.build
    if o.student_augment and not base.get("augment"):
        from .augment.pipeline import DEFAULT_RECIPE

        base["augment"] = [{"name": name, "rate": rate} for name, rate in DEFAULT_RECIPE.items()]
    distill = {"teacher": [str(teacher)], "unlabeled": list(o.unlabeled), "alpha": o.alpha, "temperature": o.temperature}
    if o.max_unlabeled is not None:
        distill["max_unlabeled"] = o.max_unlabeled
    return config_from_dict({**base, "distill": distill})


def _vectors_stage(cfg: RunConfig, out: Path, stage: StageProgress) -> Callable[[RunConfig], RunConfig]:
    """What sets `[model] vectors` on a candidate's or student's config: char vectors that `train_vectors`
    learns from `[build] unlabeled` (the students' transfer set: the same reader, cap and seed) plus the train
    texts, for the neural models that read char.v1 tokens and whose config names no vectors of its own. On
    textcnn.v1, FewCLUE tnews and eprstmt few_all, they raised mean dev accuracy by 3.81 points over seeds
    42-46 (benchmarks/results/student_defaults.md). One file per embedding size and input, OUT/vectors/char-DIM-KEY.txt,
    trained when first needed and reused on rerun; train_vectors writes it atomically (a temporary file
    renamed into place), so a build killed mid-write leaves no partial file to reuse. Without unlabeled
    texts, or with `[build] vectors = false`, configs pass through unchanged."""
    opts = cfg.build
    if not (opts.vectors and opts.unlabeled):
        return lambda run_cfg: run_cfg
    @functools.cache
    def key() -> str:
        """Of the texts the vectors learn from (the files' bytes, the cap, the seed): a rerun after the data
        changed trains new vectors under a new name, and the runs given the old ones no longer match."""
        from .config import expand_path
        from .data.readers import fingerprint

        files = [Path(expand_path(p)) for p in opts.unlabeled] + [p for p in (cfg.data.path(n) for n in ("train", "dev", "test")) if p]
        parts = [fingerprint(f) if f.is_file() else str(f) for f in files] + [str(opts.max_unlabeled), str(cfg.training.seed)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]

    texts = functools.cache(lambda: _vector_texts(cfg))  # read once, for the first size that needs training

    def with_vectors(run_cfg: RunConfig) -> RunConfig:
        raw = resolved_dict(run_cfg)
        model = raw["model"]
        if model["name"] not in VECTOR_MODELS or model.get("vectors") or model.get("tokenizer") != "char.v1":
            return run_cfg
        path = out / "vectors" / f"char-{model['embed_dim']}-{key()}.txt"
        if not path.is_file():
            from .text.vectors import train_vectors

            with stage(f"train vectors {path.name}") as hook:
                status = f"word2vec, {len(texts()):,} texts"
                if hook is not None:  # one step: the bar shows that the stage is under way
                    hook("step", {"step": 0, "total": 1, "status": status})
                train_vectors(texts(), path, dim=model["embed_dim"], seed=cfg.training.seed)  # workers=1: the same file every time
                if hook is not None:
                    hook("step", {"step": 1, "total": 1, "status": status})
        return config_from_dict({**raw, "model": {**model, "vectors": str(path)}})

    return with_vectors


def _vector_texts(cfg: RunConfig) -> list[str]:
    from .data.unlabeled import read_unlabeled

    splits = load_splits(cfg)
    unlabeled, _ = read_unlabeled(cfg.build.unlabeled, cfg.data, splits, cap=cfg.build.max_unlabeled, seed=cfg.training.seed)
    return [*unlabeled, *(e.text for e in splits["train"])]


def _check(cfg: RunConfig, out: Path, force: bool) -> None:
    from .data.checks import check_data

    if (out / "check.json").is_file():
        return
    report = check_data(load_splits(cfg))
    write_json(out / "check.json", report.to_dict())
    errors = report.errors
    if errors and not force:
        (out / "check.json").unlink()  # the next run checks again, after the data is fixed
        lines = "; ".join(p.message for p in errors[:5])
        raise DataError(f"the data has {len(errors)} error(s): {lines}", hint="run `zhcls data check CONFIG` for where, fix them, or pass --force")


class StageRecord:
    """out/stages.json: for each finished stage (a run or a bundle, by its path under out), the digest of
    every run it read when it was made. A stage whose inputs differ now is stale. Digests are of the runs'
    model-best directories, computed once per build (a run does not change after its own stage)."""

    FILE = "stages.json"

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out / self.FILE
        self.data: dict[str, dict[str, str]] = read_json(self.path) if self.path.is_file() else {}
        self._digests: dict[Path, str] = {}

    def digest(self, run: Path) -> str:
        if run not in self._digests:
            self._digests[run] = dir_digest(run / "model-best")
        return self._digests[run]

    def _key(self, path: Path) -> str:
        return path.relative_to(self.out).as_posix()

    def inputs(self, inputs: list[Path]) -> dict[str, str]:
        return {self._key(p): self.digest(p) for p in inputs}

    def changed(self, target: Path, inputs: list[Path]) -> list[str]:
        """The inputs of `target` that are not what it was made from (none for a stage made before stages.json
        existed: it is taken as it is, and recorded)."""
        recorded = self.data.get(self._key(target))
        now = self.inputs(inputs)
        if recorded is None:
            self.done(target, inputs)
            return []
        return sorted(k for k in set(recorded) | set(now) if recorded.get(k) != now.get(k))

    def done(self, target: Path, inputs: list[Path]) -> None:
        self.data[self._key(target)] = self.inputs(inputs)
        write_json(self.path, self.data)


def _train_stage(cfg: RunConfig, run: Path, stage: StageProgress, title: str, stages: StageRecord, inputs: list[Path] | None = None) -> Path:
    inputs = inputs or []
    if (run / "metrics.json").is_file():
        _reusable(cfg, run)
        stale = stages.changed(run, inputs)
        if not stale:
            return run
        log.warning("%s: made from another version of %s; training it again", run, ", ".join(stale))
        shutil.rmtree(run)
    with stage(title) as hook:
        train(cfg, run, progress=hook, check=False)  # checked once, before the first candidate
    stages.done(run, inputs)
    return run


def _reusable(cfg: RunConfig, run: Path) -> None:
    """A finished stage is reused only for the config and data it was trained on: a build rerun into the same
    directory after the data or a setting changed must not serve models of the old inputs without a word."""
    from .config import dump_config
    from .data.readers import fingerprint
    from .training.run import same_run_config

    hint = f"build into a new directory (-o), or delete {run} to train it again"
    previous = run / "config.toml"
    if previous.is_file() and not same_run_config(previous.read_text(encoding="utf-8"), dump_config(cfg)):
        raise RunError(f"{run}: was trained with another config than this build gives it ([model], [training] or [data] changed)", hint=hint)
    meta = run / "model-best" / "zhcls.json"
    inputs = [(split, info) for split, info in (read_json(meta).get("data", {}) if meta.is_file() else {}).items()]
    metrics = read_json(run / "metrics.json") if (run / "metrics.json").is_file() else {}
    inputs += [("unlabeled", info) for info in (metrics.get("distill") or {}).get("unlabeled_files", [])]
    for split, info in inputs:
        path = Path(info.get("path", ""))
        if info.get("sha256") and path.is_file() and fingerprint(path) != info["sha256"]:
            raise RunError(f"{run}: was trained on another version of {path} ({split} changed since)", hint=hint)


def _export_stage(run: Path, bundle: Path, precision: str, stage: StageProgress, title: str, stages: StageRecord) -> Path:
    from .export.onnx import export_bundle

    if (bundle / "manifest.json").is_file():
        stale = stages.changed(bundle, [run])
        if not stale:
            return bundle
        log.warning("%s: exported from another version of %s; exporting it again", bundle, ", ".join(stale))
    with stage(title):
        export_bundle(run, bundle, quantize="int8" if precision == "int8" else "none")
    stages.done(bundle, [run])
    return bundle


def _quantizable(run: Path) -> bool:
    """Neural runs (dynamic int8 graphs), tfidf.v1 (int8 weights, 3-4x smaller) and ensembles of them."""
    return read_json(run / "metrics.json").get("model") in (*NEURAL, "tfidf.v1", "ensemble.v1")


def candidate_row(name: str, run: Path, bundle: Path, metric: str) -> dict[str, Any]:
    metrics = read_json(run / "metrics.json")
    manifest = read_json(bundle / "manifest.json")
    # Candidates are ranked by their cross-fitted dev score where they have one: every model that chose
    # something on dev (a C, an epoch, ensemble weights) reports its maximum as its dev score, an edge that
    # grows with the number of choices and that test does not confirm (zhcls.eval.selection).
    selected = dict(metrics.get("dev", {}))
    cross = metrics.get("fit", {}).get("dev_cross_fitted")
    dev = {"accuracy": cross["accuracy"], "macro_f1": cross["macro_f1"]} if cross else selected
    if manifest.get("precision") == "int8":  # the run's scores are the fp32 model's; export measured what int8 changes on the same dev texts
        change = manifest.get("parity", {}).get("int8", {}).get(f"{metric}_change", 0.0)
        dev, selected = ({k: v + change if k == metric else v for k, v in d.items()} for d in (dev, selected))
    test = metrics.get("test", {})
    return {
        "name": name,
        "model": metrics.get("model"),
        "run": str(run),
        "bundle": str(bundle),
        "dev": round(float(dev.get(metric, 0.0)), 6),
        "dev_selected": round(float(selected.get(metric, 0.0)), 6),  # the score of the setting kept, as the run reports it
        "n_dev": int(metrics.get("dev", {}).get("n", 0)),
        "test": round(float(test.get(metric, 0.0)), 6) if test else None,
        "test_accuracy": test.get("accuracy"),
        "p50_ms": manifest["latency"]["p50_ms"],
        "p99_ms": manifest["latency"]["p99_ms"],
        "size_mb": round(manifest["total_bytes"] / 2**20, 3),
        "precision": manifest.get("precision", "fp32"),
    }


def _bundle_test(bundle: Path, test: list, metric: str) -> dict[str, Any]:
    """test and test_accuracy of a candidate row, from the bundle's own predictions."""
    from .compress.search import bundle_scores
    from .serve.predictor import Predictor

    scores = bundle_scores(Predictor(bundle), test, "test", metric)
    return {"test": scores[f"test_{metric}"], "test_accuracy": scores["test_accuracy"]}


def select(rows: list[dict[str, Any]], budget_ms: float | None, budget_mb: float | None, ensemble_se: float = 0.0) -> tuple[dict[str, Any], str]:
    """The best dev score among the candidates within budget; ties go to the smaller bundle (size, unlike
    latency, is the same in every rerun, so the same data and seed give the same choice). If none fits, the
    fastest, and the reason says so: a build always gives something to serve, and says when it is over budget.

    `ensemble_se` > 0: the ensemble within budget is chosen when the best single candidate leads it on dev by
    at most that many standard errors of the leader's dev score (sqrt(p (1 - p) / n) over the n dev texts;
    for macro-F1 the same formula, an approximation). On a few hundred dev texts a lead of a point or two is
    noise, and picking the top of several noisy scores favours whichever got lucky. The ensemble averages the
    candidates, but its weights are fitted on the same small dev set, so it is not reliably the steadier pick:
    measured, the rule won and lost about as much (docs/build.md), and build leaves it off by default."""
    ok = [r for r in rows if within(r, budget_ms, budget_mb)]
    if not ok:
        fastest = min(rows, key=lambda r: (r["p50_ms"], -r["dev"]))
        return fastest, f"no candidate meets the budget ({budget_text(budget_ms, budget_mb)}); {fastest['name']} is the fastest ({fastest['p50_ms']} ms p50, {fastest['size_mb']} MB)"
    best = max(ok, key=lambda r: (r["dev"], -r["size_mb"]))
    others = sorted((r for r in rows if r is not best and r["dev"] > best["dev"]), key=lambda r: -r["dev"])
    why = f"{best['name']} has the best dev score ({best['dev']:.4f}) of the {len(ok)} of {len(rows)} candidates within budget ({budget_text(budget_ms, budget_mb)})"
    ensembles = [r for r in ok if r.get("model") == "ensemble.v1"]
    n = int(best.get("n_dev") or 0)
    if ensemble_se > 0 and ensembles and best.get("model") != "ensemble.v1" and n:
        ensemble = max(ensembles, key=lambda r: (r["dev"], -r["size_mb"]))
        se = (best["dev"] * (1 - best["dev"]) / n) ** 0.5
        if best["dev"] - ensemble["dev"] <= ensemble_se * se:
            why = (f"{ensemble['name']} (dev {ensemble['dev']:.4f}) is within {ensemble_se:g} standard error ({se:.4f} on {n} dev texts) of the best "
                   f"dev score, {best['name']}'s {best['dev']:.4f}, among the {len(ok)} of {len(rows)} candidates within budget "
                   f"({budget_text(budget_ms, budget_mb)}): a lead that dev cannot tell from noise, so the ensemble")
            best = ensemble
    if others:
        why += "; better on dev but over budget: " + ", ".join(f"{r['name']} ({r['dev']:.4f}, {r['p50_ms']} ms, {r['size_mb']} MB)" for r in others[:3])
    return best, why


RUNNERS_UP = 3  # runs the chosen bundle is compared with, text by text, on dev


def dev_margins(rows: list[dict[str, Any]], chosen: dict[str, Any], dev: list, metric: str) -> list[dict[str, Any]]:
    """How sure the choice is: the chosen bundle's dev lead over the best bundle within budget of each of
    the next RUNNERS_UP runs, and the paired standard error of that lead (eval.selection.paired_lead), from
    the bundles' own predictions on the dev texts. On a few hundred dev texts the top two are often within
    noise of each other: the user should know that the choice is a toss-up, and that more dev texts (or
    labels) would settle it, rather than read the winner's dev score as a promise. Nothing here changes
    the choice. Empty with fewer than two dev texts or for a metric other than accuracy and macro-F1."""
    from .eval.selection import paired_lead
    from .serve.predictor import Predictor

    if len(dev) < 2 or metric not in ("accuracy", "macro_f1"):
        return []
    best_of_run: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["run"] != chosen["run"] and r["within_budget"]:
            kept = best_of_run.get(r["run"])
            if kept is None or (r["dev"], -r["size_mb"]) > (kept["dev"], -kept["size_mb"]):
                best_of_run[r["run"]] = r
    runners = sorted(best_of_run.values(), key=lambda r: (-r["dev"], r["size_mb"]))[:RUNNERS_UP]
    if not runners:
        return []
    texts = [e.text for e in dev]
    mine = Predictor(chosen["bundle"]).predict(texts)
    index = {label: i for i, label in enumerate(sorted({e.label for e in dev} | set(mine)))}
    y = np.array([index[e.label] for e in dev])

    def ids(labels: list[str]) -> np.ndarray:
        return np.array([index.get(label, -1) for label in labels])  # -1: a label of the model's that dev never shows

    return [{"name": r["name"], **paired_lead(ids(mine), ids(Predictor(r["bundle"]).predict(texts)), y, metric)} for r in runners]


def margin_text(m: dict[str, Any]) -> str:
    return (f"dev cannot tell it from {m['name']}: on the {m['n']} dev texts its bundle leads by {100 * m['lead']:.2f} points, "
            f"{m['lead'] / m['se']:.1f} paired standard errors of {100 * m['se']:.2f} (they disagree on {m['disagree']} texts)"
            if m["se"] > 0 else f"dev cannot tell it from {m['name']}: the two are right on the same {m['n']} dev texts")


def build_report(summary: dict[str, Any], out: Path) -> str:
    metric = summary["metric"]
    lines = [
        "# zhcls build",
        "",
        f"**Chosen: `{summary['chosen']}`** — {summary['reason']}.",
        "",
        f"Budget: {budget_text(summary['budget_ms'], summary['budget_mb'])}. Latency is one text at a time on one thread, tokenization included, "
        "measured at export on this machine. Selection uses dev only: each candidate's cross-fitted dev score, where the choices it made "
        "on dev (C, epoch, ensemble weights) are scored on folds that did not make them; the run's own dev score, of the setting it "
        "kept, is beside it. Test is shown, never used.",
        "",
        f"| candidate | dev {metric} (cross-fitted) | dev {metric} (kept setting) | test {metric} | test accuracy | p50 ms | p99 ms | size MB | within budget |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(summary["candidates"], key=lambda r: -r["dev"]):
        mark = "**" if r["chosen"] else ""
        test = f"{100 * r['test']:.2f}" if r["test"] is not None else "—"
        acc = f"{100 * r['test_accuracy']:.2f}" if r.get("test_accuracy") is not None else "—"
        kept = f"{100 * r['dev_selected']:.2f}" if r.get("dev_selected") is not None else "—"
        lines.append(f"| {mark}{r['name']}{mark} | {100 * r['dev']:.2f} | {kept} | {test} | {acc} | {r['p50_ms']} | {r['p99_ms']} | {r['size_mb']} | {'yes' if r['within_budget'] else 'no'} |")
    margins = summary.get("dev_margins") or []
    if margins:
        lines += [
            "",
            "## How sure the choice is",
            "",
            f"The chosen bundle against the best bundle within budget of each next run, on the same {margins[0]['n']} dev texts. The leads are "
            "of each bundle's own predictions, whose settings (and an ensemble's weights) were chosen on these texts, so they flatter a "
            "little; the error is the point. The paired standard error counts only the texts the two disagree on: it is how much the lead "
            "would move on another dev set of this size. A lead under two standard errors is one that dev cannot confirm; more dev texts "
            "would settle it.",
            "",
            f"| other run | chosen leads by (dev {metric}, points) | paired standard error | lead / error | texts they disagree on |",
            "|---|---:|---:|---:|---:|",
        ]
        for m in margins:
            ratio = f"{m['lead'] / m['se']:.1f}" if m["se"] > 0 else "—"
            lines.append(f"| {m['name']} | {100 * m['lead']:+.2f} | {100 * m['se']:.2f} | {ratio} | {m['disagree']} |")
    from .report.figures import write_pareto_figure

    if write_pareto_figure(out / "build.png", summary["candidates"], metric, summary["budget_ms"]):
        lines += ["", "![dev score against latency](build.png)"]
    return "\n".join(lines) + "\n"


def summary_json(result: BuildResult) -> str:
    return json.dumps({"chosen": result.chosen["name"], "reason": result.reason}, ensure_ascii=False)
