"""`zhcls build` against the peers users would pick, in the same run, task by task.

    .venv/bin/python benchmarks/build_bench.py --tasks tnews/few_all,eprstmt/few_all
    .venv/bin/python benchmarks/build_bench.py              # every task (hours on 2 cores)

Per task: fastText autotuned on dev (fasttext-wheel), TF-IDF char 1-3 + LogisticRegression with C on dev
and a linear SVM with C on dev (scikit-learn), then `zhcls build` with its defaults (candidates tfidf,
fasttext, textcnn, bigru; the dev-weighted ensemble; a TextCNN distilled from it over train + the task's
unlabeled texts; int8 variants), selected on dev. Test accuracy of every cell, one headline table.
Results go to benchmarks/results/build.{json,md} after every cell; a rerun skips finished cells and a
build killed mid-way continues from its cache.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import _harness as h
import foundation as fd  # the tuned baselines, the same code as the foundation benchmark's
from _harness import RESULTS, Task

log = logging.getLogger("build_bench")
SHOPPING_2K = "online_shopping/cat_2k"  # 2,000 labeled reviews of train (seeded), the rest of train as unlabeled text


def shopping_2k(data_dir: Path, work: Path) -> Task:
    """The distillation target's setting: the same subset and unlabeled file as benchmarks/distill.py."""
    from distill import online_shopping

    t = online_shopping(data_dir, work, 2000)
    return Task(SHOPPING_2K, t.train, t.dev, t.test, t.text_field, t.label_field, large=True, unlabeled=t.unlabeled)


def unlabeled_of(task: Task, data_dir: Path) -> Path | None:
    if task.name == SHOPPING_2K:
        return Path(task.unlabeled)
    return data_dir / task.unlabeled if task.unlabeled else None  # FewCLUE tnews and eprstmt (_harness.FEWCLUE_UNLABELED)
SVM_C_GRID = (0.1, 0.3, 1.0, 3.0)


def run_svm(task: Task, data_dir: Path) -> dict[str, Any]:
    """TfidfVectorizer(char 1-3, sublinear_tf) + LinearSVC, C chosen on dev accuracy."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    from zhcls.eval.metrics import classification_metrics

    train_ex, dev_ex, test_ex = task.read(data_dir)
    labels = sorted({e.label for e in train_ex})
    started = time.perf_counter()
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, max_features=fd.LR_MAX_FEATURES, dtype=np.float32)
    x = vec.fit_transform([e.text for e in train_ex])
    x_dev, x_test = vec.transform([e.text for e in dev_ex]), vec.transform([e.text for e in test_ex])
    best = None
    for c in SVM_C_GRID:
        clf = LinearSVC(C=c).fit(x, [e.label for e in train_ex])
        dev_m = classification_metrics([e.label for e in dev_ex], list(clf.predict(x_dev)), labels)
        if best is None or dev_m["accuracy"] > best[0]:
            best = (dev_m["accuracy"], c, list(clf.predict(x_test)), dev_m)
    _, c, pred, dev_m = best
    return {
        "test": fd._headline(classification_metrics([e.label for e in test_ex], pred, labels)),
        "dev": fd._headline(dev_m),
        "train_seconds": round(time.perf_counter() - started, 3),
        "config": {"C_grid": list(SVM_C_GRID), "C": c},
    }


def run_build(task: Task, data_dir: Path, out: Path, budget_ms: float | None, options: dict[str, Any] | None = None, threads: int = 2) -> dict[str, Any]:
    """`options`: [build] settings that narrow the default build (--candidates, --students), recorded with the
    cell and shown beside its figure, so a reduced cell is never read as the default build's."""
    from zhcls.build import build, select
    from zhcls.config import config_from_dict

    data = {"train": str(data_dir / task.train), "dev": str(data_dir / task.dev), "test": str(data_dir / task.test),
            "text_field": task.text_field, "label_field": task.label_field}
    unlabeled = unlabeled_of(task, data_dir)
    build_options = {k: v for k, v in (options or {}).items() if k != "augment"}
    cfg = config_from_dict({
        "data": data,
        "training": {"metric": "accuracy", "batch_size": 32, "threads": threads},
        "build": {"unlabeled": [str(unlabeled)] if unlabeled else [], "max_unlabeled": 20000, **build_options},
        "augment": [{"name": name, "rate": rate} for name, rate in (options or {}).get("augment", {}).items()],
    })
    started = time.perf_counter()
    # force: online_shopping holds a few texts under two labels and two test texts also in train (the data as
    # published); the check's findings are kept in out/check.json and summarized in the results.
    # A killed build continues from its cache.
    result = build(cfg, out, budget_ms=budget_ms, force=True)
    # The same candidates ranked as build ranked them before cross-fitted selection (each run's own dev score of
    # the setting it kept; the ensemble's cross-fitted): the choice it would have made, measured in this run.
    before = [{**r, "dev": r["dev"] if r["model"] == "ensemble.v1" else r.get("dev_selected", r["dev"])} for r in result.candidates]
    old, _ = select(before, budget_ms, None)
    return {
        "n_dev": result.chosen["n_dev"],  # every candidate row carries its run's dev size
        "seconds": round(time.perf_counter() - started, 1),
        "chosen": result.chosen["name"],
        "reason": result.reason,
        "dev_margins": result.margins,  # how sure the choice is
        "candidates": result.candidates,
        "test": {"accuracy": result.chosen["test_accuracy"]},
        "check_errors": [p["message"] for p in json.loads((out / "check.json").read_text(encoding="utf-8")).get("problems", []) if p.get("severity") == "error"],
        "kept_dev_rule": {"chosen": old["name"], "test": {"accuracy": old["test_accuracy"]}},
        **({"options": options} if options else {}),
    }


def narrowed(options: dict[str, Any] | None) -> str:
    """How a reduced (or augmented) build differs from the default one, for the tables ("" when it does not:
    options that name today's [build] defaults, e.g. --students textcnn.v1,fasttext.v1)."""
    from zhcls.config import BuildConfig

    default = BuildConfig()
    options = {k: v for k, v in (options or {}).items() if k not in ("candidates", "students") or v != getattr(default, k)}
    if not options:
        return ""
    parts = []
    if "candidates" in options:
        parts.append("candidates " + ", ".join(options["candidates"]))
    if "students" in options:
        parts.append("students " + (", ".join(options["students"]) or "none"))
    if "augment" in options:
        parts.append("[[augment]] " + ", ".join(f"{name} {rate:g}" for name, rate in options["augment"].items()))
    if options.get("student_augment"):
        parts.append("student_augment: augment's default recipe in the students' transfer set only")
    return "; ".join(parts)


def rule_choices(cell: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """What `select` chooses from a build cell's recorded candidates under each rule: the best dev score
    (`ensemble_se` 0, build's default) and the ensemble when the leader's edge is within one standard error
    (`ensemble_se` 1). Deterministic in the recorded dev scores: no retraining."""
    from zhcls.build import select

    b = cell.get("build") or {}
    if "candidates" not in b or not b.get("n_dev"):
        return None
    rows = [{**r, "n_dev": r.get("n_dev") or b["n_dev"]} for r in b["candidates"]]
    return {rule: select(rows, None, None, se)[0] for rule, se in (("best dev", 0.0), ("ensemble within 1 SE", 1.0))}


def rule_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for name, cell in results["tasks"].items():
        choices = rule_choices(cell)
        peers = [cell.get(k, {}).get("test", {}).get("accuracy") for k in ("baseline.fasttext", "baseline.tfidf_lr", "baseline.svm")]
        peers = [p for p in peers if p is not None]
        if not choices or not peers:
            continue
        row = [name, cell["build"]["n_dev"], h.pct(max(peers))]
        for r in choices.values():
            row += [f"{r['name']} ({100 * r['dev']:.2f})", h.pct(r["test_accuracy"]), f"{100 * (r['test_accuracy'] - max(peers)):+.2f}"]
        rows.append(row)
    if not rows:
        return []
    return ["", "## Selection rule: best dev score, or the ensemble within one standard error", "",
            "Each rule applied to the same recorded candidates (their cross-fitted dev scores; `zhcls.build.select`), so the rows differ only in the rule. "
            "`[build] ensemble_se = 1` keeps the ensemble unless a single candidate leads it on dev by more than one standard error, "
            "sqrt(p (1 - p) / n), of the leader's dev accuracy; build's default is 0, the best dev score (docs/build.md says why). The rule was "
            "proposed after the split-0 and few_all rows of build.md were seen; build_split1.md holds FewCLUE split-1 rows run after it was fixed, "
            "while it was build's default (2026-12-04, 13:18 to 14:20 UTC): where their headline choice differs from the best-dev column here, "
            "the best-dev column is what build chooses now.", "",
            *h.md_table(["task", "dev texts", "best peer", "best dev: chosen (dev)", "test", "Δ", "ensemble within 1 SE: chosen (dev)", "test", "Δ"], rows)]


def render(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = [
        "# `zhcls build` against tuned peers",
        "",
        f"- command: `{env['command']}`",
        f"- machine of the first invocation: {env['cpu']}, 2 cores (shared with other jobs while this ran); each resume names its own "
        "where it was recorded (from 2026-12-03 on: every cell records its `cpu` in the JSON)",
        f"- dates: {env['started']} to {results.get('updated', '')}",
        f"- git: {env['git']['commit'][:12]}{' (uncommitted changes)' if env['git']['dirty_tracked_files'] else ''}",
        *(f"- resumed: {i['started']}, git {i['git']['commit'][:12]}{', on ' + i['cpu'] if i.get('cpu') else ''}: `{i['command']}`" for i in results.get("invocations", [])),
        "",
        "Test accuracy (%). Every choice is made on dev: fastText autotuned on dev, C of TF-IDF+LR and of the linear SVM on dev, "
        "and `zhcls build` picks its bundle by dev score (cross-fitted for every candidate since 39377f0; before, each run's dev score of the setting it kept, the ensemble's cross-fitted). Peers ran in the same invocation.",
        "",
        "`best peer` is the best of the three on test (the target's bar); `peer by dev` is the one of them a user would have "
        "picked on dev, as `zhcls build` picks (ties to the first listed).",
        "",
        "| task | zhcls build (chosen) | p50 ms | size MB | best peer | Δ | peer by dev | Δ | fastText autotune | TF-IDF+LR | linear SVM |",
        "|---|---|---:|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for name, cell in results["tasks"].items():
        peers = {k: cell.get(k, {}).get("test", {}).get("accuracy") for k in ("baseline.fasttext", "baseline.tfidf_lr", "baseline.svm")}
        got = [v for v in peers.values() if v is not None]
        best_peer = max(got) if got else None
        b = cell.get("build")
        if b and "test" in b:
            row = next(r for r in b["candidates"] if r["name"] == b["chosen"])
            acc = b["test"]["accuracy"]
            delta = f"{100 * (acc - best_peer):+.2f}" if best_peer is not None else "—"
            differs = narrowed(b.get("options"))
            build_cell = f"{100 * acc:.2f} ({b['chosen']}{'; not the default build: ' + differs if differs else ''})"
            lat, size = row["p50_ms"], row["size_mb"]
        else:
            build_cell, lat, size, delta = "not run", "—", "—", "—"
        peer_name = max((k for k in peers if peers[k] is not None), key=lambda k: peers[k], default="—")
        devs = {k: cell[k]["dev"]["accuracy"] for k in peers if peers[k] is not None and "accuracy" in cell[k].get("dev", {})}
        by_dev = max(devs, key=lambda k: devs[k], default=None)
        dev_pick = f"{by_dev} {100 * peers[by_dev]:.2f}" if by_dev else "—"
        dev_delta = f"{100 * (b['test']['accuracy'] - peers[by_dev]):+.2f}" if by_dev and b and "test" in b else "—"
        fmt = lambda v: f"{100 * v:.2f}" if v is not None else "not run"  # noqa: E731
        lines.append(f"| {name} | {build_cell} | {lat} | {size} | {peer_name} {fmt(best_peer)} | {delta} | {dev_pick} | {dev_delta} | {fmt(peers['baseline.fasttext'])} | {fmt(peers['baseline.tfidf_lr'])} | {fmt(peers['baseline.svm'])} |")
    for name, cell in results["tasks"].items():
        b = cell.get("build")
        if not b or "candidates" not in b:
            continue
        rows = [(r["name"], f"{100 * r['dev']:.2f}", h.pct(r["dev_selected"]) if "dev_selected" in r else "—", h.pct(r.get("test_accuracy")), r["p50_ms"], r["p99_ms"], r["size_mb"])
                for r in sorted(b["candidates"], key=lambda r: -r["dev"])]
        for key in sorted(k for k in cell if k.startswith("build@") and "chosen" in cell[k]):
            c = cell[key]
            row = next(r for r in c["candidates"] if r["name"] == c["chosen"])
            lines += ["", f"With `--budget-ms {key[6:-2]}`: **{c['chosen']}**, test accuracy {h.pct(c['test']['accuracy'])}, p50 {row['p50_ms']} ms — {c['reason']}."]
        checked = f" `zhcls data check` found, and the build went on (`force`): {'; '.join(b['check_errors'])}." if b.get("check_errors") else ""
        differs = narrowed(b.get("options"))
        reduced = f" Not the default build ({differs})." if differs else ""
        old = b.get("kept_dev_rule")
        before = (f" Ranked by each run's dev score of the setting it kept (the ranking before cross-fitted selection), the build would have chosen "
                  f"`{old['chosen']}`, test {h.pct(old['test']['accuracy'])}.") if old else ""
        lines += ["", f"## {name}: every build candidate", "", f"Chosen: `{b['chosen']}` — {b['reason']}. Build took {b['seconds']} s.{before}{reduced}{checked}", "",
                  *h.md_table(("candidate", "dev acc (cross-fitted)", "dev acc (kept setting)", "test acc", "p50 ms", "p99 ms", "size MB"), rows)]
        if b.get("dev_margins"):  # recorded from 3232f7c on
            leads = "; ".join(f"{m['name']} by {100 * m['lead']:+.2f} (paired standard error {100 * m['se']:.2f}, {m['disagree']} texts disagree)"
                              for m in b["dev_margins"])
            lines += ["", f"How sure the choice is (build.md's section; bundles' own dev predictions, {b['dev_margins'][0]['n']} texts): "
                          f"the chosen bundle leads {leads}."]
    lines += rule_section(results)
    errors = [(n, k, c[k]["error"]) for n, c in results["tasks"].items() for k in c if isinstance(c[k], dict) and "error" in c[k]]
    if errors:
        lines += ["", "## Errors", ""] + [f"- {n} {k}: {e.splitlines()[-1] if e else e}" for n, k, e in errors]
    return "\n".join(lines) + "\n"


def save(results: dict[str, Any], name: str = "build") -> None:
    results["updated"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    h.atomic_write(RESULTS / f"{name}.json", json.dumps(results, ensure_ascii=False, indent=1))
    h.atomic_write(RESULTS / f"{name}.md", render(results))


def merge(name: str) -> None:
    """Fold RESULTS/NAME.json (a run kept apart with --results NAME, e.g. beside a long run that holds
    build.json) into build.json: its tasks replace those of the same name, its invocations are added."""
    part, whole = h.load_results(RESULTS / f"{name}.json"), h.load_results(RESULTS / "build.json")
    whole.setdefault("environment", part["environment"])
    whole.setdefault("tasks", {}).update(part["tasks"])
    seen = {(i["started"], i["command"]) for i in whole.setdefault("invocations", [])}
    whole["invocations"] += [i for i in part.get("invocations", []) if (i["started"], i["command"]) not in seen]
    save(whole)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default=None, help="comma-separated task names (default: all)")
    p.add_argument("--data-dir", type=Path, default=h.default_data_dir())
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/zhcls-build-bench"))
    p.add_argument("--budget-ms", type=float, default=None)
    p.add_argument("--fasttext-duration-few", type=int, default=120)
    p.add_argument("--fasttext-duration-large", type=int, default=600)
    p.add_argument("--threads", type=int, default=2, help="training threads of the build and the peers (two invocations side by side: 1 each)")
    p.add_argument("--lr-max-iter", type=int, default=2000)
    p.add_argument("--metric", default="accuracy")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--also-budget-ms", type=float, default=0.1, help="online_shopping tasks: build again within this p50 budget (cached stages; the choice and why)")
    p.add_argument("--candidates", default=None, help="comma-separated [build] candidates instead of the default set (a reduced build, marked as such in the results)")
    p.add_argument("--students", default=None, help="comma-separated [build] students ('' for none; a reduced build, marked as such)")
    p.add_argument("--augment", action="store_true", help="train with augment's default recipe as [[augment]] (one copy per entry and train text): the "
                   "candidates see the copies, and the students' transfer set gets them with the teacher's soft targets (marked in the results)")
    p.add_argument("--student-augment", action="store_true", help="[build] student_augment = true: augment's default recipe in the students' "
                   "transfer set only, labeled by the teacher (marked in the results)")
    p.add_argument("--results", default="build", help="results file stem under benchmarks/results (another one runs beside a long run; --merge folds it in)")
    p.add_argument("--merge", default=None, metavar="NAME", help="fold results/NAME.json into build.json and exit")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.merge:
        merge(args.merge)
        return 0
    # FewCLUE's other train/dev splits (1 to 4) run when named: a fresh replicate of the split-0 cells
    replicates = [h.fewclue(*n.split("/")) for n in (args.tasks or "").split(",") if re.fullmatch(r"(tnews|eprstmt|iflytek|csldcp)/[1-4]", n)]
    every = [*h.TASKS, *replicates]
    names = [t.name for t in every] + [SHOPPING_2K]
    wanted = names if args.tasks is None else [n for n in names if n in args.tasks.split(",")]
    sources = [p for t in every if t.name in wanted for p in t.files()]
    if SHOPPING_2K in wanted:  # its files are written from train.csv, after the check
        sources += [f"{h.ONLINE_SHOPPING}/{f}" for f in ("train.csv", "dev.csv", "test.csv")]
    h.verify_data(args.data_dir, sources)
    options: dict[str, Any] = {k: [v for v in val.split(",") if v] for k, val in (("candidates", args.candidates), ("students", args.students)) if val is not None}
    if args.augment:
        from zhcls.augment.pipeline import DEFAULT_RECIPE

        options["augment"] = dict(DEFAULT_RECIPE)
    if args.student_augment:
        options["student_augment"] = True
    tasks = [t for t in every if t.name in wanted] + ([shopping_2k(args.data_dir, args.work_dir)] if SHOPPING_2K in wanted else [])
    results = h.load_results(RESULTS / f"{args.results}.json")  # resume: finished cells are skipped below
    command = h.command_line("benchmarks/build_bench.py", sys.argv[1:] if argv is None else argv)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    results.setdefault("environment", {"command": command, "cpu": h.cpu_model(), "started": started, "git": h.git_state()})
    results.setdefault("tasks", {})
    results.setdefault("invocations", []).append({"command": command, "started": started, "git": h.git_state(), "cpu": h.cpu_model()})
    for task in tasks:
        cell = results["tasks"].setdefault(task.name, {})
        if "candidates" in cell.get("build", {}) and "n_dev" not in cell["build"]:  # recorded before it was: the dev file's size
            cell["build"]["n_dev"] = len(task.read(args.data_dir)[1])
        runners = {
            "baseline.tfidf_lr": lambda task=task: fd.run_tfidf_baseline(task, args.data_dir, args.work_dir / task.name / "tfidf_lr", args),
            "baseline.svm": lambda task=task: run_svm(task, args.data_dir),
            "build": lambda task=task: run_build(task, args.data_dir, args.work_dir / task.name / "build", args.budget_ms, options, args.threads),
            # last: its autotune can stall on a loaded machine (foundation.py's deadline), and the build need not wait
            "baseline.fasttext": lambda task=task: fd.run_fasttext_baseline(task, args.data_dir, args.work_dir / task.name / "fasttext", args),
        }
        if task.large and args.also_budget_ms:  # the same build's cache, chosen again within the budget
            runners[f"build@{args.also_budget_ms:g}ms"] = lambda task=task: run_build(task, args.data_dir, args.work_dir / task.name / "build", args.also_budget_ms, options, args.threads)
        for key, run in runners.items():
            if key in cell and "error" not in cell[key]:
                continue
            log.info("%s %s", task.name, key)
            try:
                cell[key] = {**run(), "cpu": h.cpu_model()}  # latencies are this machine's; resumes may run elsewhere
            except Exception:  # noqa: BLE001 - a failed cell is recorded, the others still run
                cell[key] = {"error": traceback.format_exc()}
                log.error("%s %s failed:\n%s", task.name, key, cell[key]["error"])
            save(results, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
