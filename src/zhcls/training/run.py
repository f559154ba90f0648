"""`train(cfg, out_dir)`: read the data, fit the configured model, evaluate, and write the run directory.

runs/NAME/
  config.toml        resolved config (defaults filled in, overrides applied)
  metrics.json       full metrics for dev and test, train seconds, best step
  log.jsonl          one JSON line per dev evaluation
  model-best/        the model at its best dev score (zhcls.json, config.toml, tokenizer.json, weights.safetensors)
  model-last/        the model when training stopped
  checkpoint/        resume state while training runs; removed when the run completes
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..artifact import write_json, write_text
from ..augment.pipeline import augment_for_run
from ..config import RunConfig, dump_config, model_params
from ..data.example import Example
from ..data.readers import fingerprint, paddle_label_file, read_split, require_labeled
from ..errors import ConfigError, DataError, RunError
from ..eval.metrics import classification_metrics, headline
from ..models.base import RUN_KEYS, ProgressHook, build_model
from ..models.dirs import Predicts
from ..report.tracking import log_run, require_mlflow

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_dir: Path
    best_dir: Path
    metrics: dict[str, Any]
    resumed_from: int | None = None


def train(
    cfg: RunConfig, out_dir: str | Path, *, force: bool = False, progress: ProgressHook | None = None, check: bool = True
) -> RunResult:
    """Train `cfg` into `out_dir` (resuming an interrupted run there). `check` logs what `zhcls data check`
    finds in the data as warnings first; a caller that checked the data already (`zhcls build`) turns it off.

    Under torchrun (WORLD_SIZE > 1) every process calls it and they train one model together; rank 0 alone
    reads and writes the run directory, the others return a RunResult with empty metrics (docs/scale.md)."""
    from ..scale import distributed
    from ..scale.device import resolve_device
    from ..scale.world import from_env

    world = from_env()
    resolve_device(cfg.training.device, world.local_rank if world.distributed else None)  # no CUDA: exit 2 before anything is written
    with distributed.session(cfg.training.device) as world:
        return _train(cfg, Path(out_dir), world, force=force, progress=progress, check=check)


def _train(cfg: RunConfig, out: Path, world, *, force: bool, progress: ProgressHook | None, check: bool) -> RunResult:
    from ..scale import distributed
    from ..scale.world import check_distributable

    main = world.main
    if main:
        if out.exists() and not out.is_dir():
            raise RunError(f"{out}: is a file; a run is a directory", hint="choose a new output directory")
        if force and out.exists():
            shutil.rmtree(out)
        if (out / "metrics.json").is_file():
            raise RunError(f"{out}: this run is already complete", hint="evaluate it with `zhcls evaluate`, or pass --force to train it again")
        if out.exists() and any(out.iterdir()) and not (out / "config.toml").is_file():
            raise RunError(f"{out}: exists and is not a zhcls run", hint="choose a new output directory")
        require_mlflow(cfg.track)
    from .spans import extra_datasets, fit_span_model, is_span_model, load_span_splits

    spans = is_span_model(cfg.model.name)  # tagger.v1, joint.v1: entities beside (or instead of) labels
    splits = load_span_splits(cfg) if spans else load_splits(cfg)
    extra = extra_datasets(cfg)
    if check and main and not spans:
        warn_data_problems(cfg, splits)
    train_ex, dev_ex, test_ex = splits["train"], splits.get("dev"), splits.get("test")
    train_ex, augment_info = augment_for_run(cfg, splits)  # [[augment]]: copies of train only, none equal to a dev/test text
    config_text = dump_config(cfg)
    previous = out / "config.toml"
    if main and previous.is_file() and not same_run_config(previous.read_text(encoding="utf-8"), config_text):
        raise RunError(
            f"{out}: holds an unfinished run of a different config",
            hint="run the same command as before to resume it, use a new output directory, or pass --force",
        )
    model = build_model(cfg.model.name, model_params(cfg), cfg.training)
    check_distributable(model, world.size)
    fresh = not previous.is_file()
    if main:
        write_text(out / "config.toml", config_text)

    started = time.perf_counter()
    eval_set = ([e.text for e in dev_ex], [e.label for e in dev_ex]) if dev_ex else None
    distill_info = None
    try:
        if cfg.distill is not None and spans:  # a tagging teacher's tag probabilities (docs/tagging.md)
            from .spans import fit_span_distilled

            distill_info = fit_span_distilled(model, cfg, splits, train_ex, dev_ex, extra, progress=progress, work_dir=out)
        elif cfg.distill is not None:  # the same run, trained on a teacher's soft targets (docs/distillation.md)
            from ..distill.transfer import distill_set

            if not model.learns_from_soft_targets:
                raise ConfigError(
                    f"[distill] needs a neural student; {cfg.model.name} is not trained by gradient descent",
                    hint="use textcnn.v1, bigru.v1, fasttext.v1 or transformer.v1 as [model]",
                )
            copies = train_ex[len(splits["train"]) :] if cfg.distill.use_augment else []  # [[augment]] output joins the transfer set
            # rank 0 runs the teacher (through the cache) and hands the soft targets to the others
            ds = distributed.broadcast(distill_set(cfg, splits, augmented=copies) if main else None, world)
            distill_info = ds.info
            model.fit(ds.texts, ds.labels, eval_set=eval_set, work_dir=out, progress=progress, targets=ds.targets)
        elif spans:
            fit_span_model(model, cfg, train_ex, dev_ex, extra, progress=progress, work_dir=out)
        else:
            model.fit([e.text for e in train_ex], [e.label for e in train_ex], eval_set=eval_set, work_dir=out, progress=progress)
    except BaseException as exc:
        if main and fresh and not (out / "checkpoint").exists():
            # nothing to resume: a config.toml left here would make the corrected rerun "a different config"
            (out / "config.toml").unlink(missing_ok=True)
        if _out_of_memory(exc):
            raise RunError(
                f"out of memory while training {cfg.model.name} ({str(exc).splitlines()[0][:200]})",
                hint="make the model smaller (model.buckets, model.max_vocab, model.embed_dim) or lower training.batch_size",
            ) from None
        raise
    seconds = time.perf_counter() - started
    if not main:  # the model is rank 0's to evaluate and save
        return RunResult(out, out / "model-best", {})

    metrics: dict[str, Any] = {
        "model": cfg.model.name, "train_seconds": round(seconds, 3), "n_train": len(train_ex), "git_commit": git_commit(),
    }
    if distill_info is not None:
        metrics["distill"] = distill_info
    if augment_info is not None:
        metrics["augment"] = augment_info
    report = model.fit_report()
    if report:
        metrics["fit"] = report
        metrics.update({k: report[k] for k in RUN_KEYS if k in report})
    history = model.fit_history()
    if history:
        write_text(out / "log.jsonl", "".join(_jsonl(r) for r in history))
    before = _seconds_before_resume(out / "log.jsonl", metrics.get("resumed_from"))
    if before is not None:  # this process trained only since the checkpoint; the run's time includes the part before the kill
        metrics["train_seconds"] = round(seconds + before, 3)
        metrics["train_seconds_before_resume"] = before
    for name, examples in (("dev", dev_ex), ("test", test_ex)):
        if examples:
            metrics[name] = evaluate_examples(model, examples)
    if extra:  # [[datasets]]: each one's dev and test scores, beside [data]'s
        metrics["datasets"] = [{"train": str(d.train), **{k: evaluate_examples(model, s[k]) for k in ("dev", "test") if k in s}} for d, s in zip(cfg.datasets, extra)]
    model.meta = {
        "metrics": {name: headline(metrics[name]) for name in ("dev", "test") if name in metrics},
        "data": {name: describe_split(cfg, name, ex) for name, ex in splits.items()},
    }
    best_dir = model.save(out / "model-best", config_toml=config_text)
    last = model.last_model()
    last.meta = model.meta
    last.save(out / "model-last", config_toml=config_text)
    write_json(out / "metrics.json", metrics)
    shutil.rmtree(out / "checkpoint", ignore_errors=True)
    if cfg.track.mlflow:
        log_run(cfg, out, metrics, history)
    return RunResult(out, best_dir, metrics, metrics.get("resumed_from"))


def same_run_config(previous: str, current: str) -> bool:
    """Whether an unfinished run's config.toml and this one train the same model: equal but for where it
    runs ([training] device), so a run resumes on another machine; precision "fp32" counts as unset, as in
    configs from before there was a setting. [build] and [track] do not change the model a run trains ([build]
    acts through the [model], [training] and [distill] it writes into each run's config), so a new setting
    there does not orphan the runs before it."""
    if previous == current:
        return True
    try:
        a, b = tomllib.loads(previous), tomllib.loads(current)
    except tomllib.TOMLDecodeError:
        return False
    for raw in (a, b):
        raw.pop("build", None)
        raw.pop("track", None)
        training = raw.get("training", {})
        training.pop("device", None)
        if training.get("precision") == "fp32":
            training.pop("precision")
    return a == b


def warn_data_problems(cfg: RunConfig, splits: dict[str, list[Example]]) -> None:
    """Log what `zhcls data check` finds (conflicting labels, leakage, ...). Training goes on: these
    rows are the user's call, and a split that cannot be trained on fails in the reader or the model."""
    from ..data.checks import training_problems

    problems = training_problems(splits, model_params(cfg))
    for p in problems:
        where = f" (first: {p.locations[0]})" if p.locations else ""
        log.warning("data %s [%s]: %s%s", p.severity, p.code, p.message, where)
    if problems:
        log.warning("training goes on; `zhcls data check CONFIG` lists every row")


def load_splits(cfg: RunConfig) -> dict[str, list[Example]]:
    if cfg.data.train is None:
        raise DataError("[data] train is not set", hint='add train = "path/to/train.json" to the [data] section')
    cfg.data.check_data_dir()
    splits: dict[str, list[Example]] = {}
    for name in ("train", "dev", "test"):
        examples = read_split(cfg.data, name)
        if examples is not None:
            require_labeled(examples, f"{name} data ({cfg.data.path(name) or cfg.data.path('train')})")
            splits[name] = examples
    classes = {e.label for e in splits["train"]}
    if len(classes) < 2:
        raise DataError(
            f"{describe_source(splits['train'])}: every training example has the label {next(iter(classes))!r}; a classifier needs at least two labels",
            hint="check [data] label_field (is it the right column?), or add examples of the other labels",
        )
    known = paddle_label_file(cfg.data)
    if known is not None:
        for examples in splits.values():
            for ex in examples:
                if ex.label not in known:
                    raise DataError(f"{ex.source}: label {ex.label!r} is not in label.txt", hint=f"labels in label.txt: {', '.join(known[:20])}")
    unseen = sorted({e.label for name in ("dev", "test") for e in splits.get(name, [])} - {e.label for e in splits["train"]})
    if unseen:
        log.warning("labels in dev/test that train never shows (always counted wrong): %s", ", ".join(unseen[:20]))
    return splits


def describe_source(examples: list[Example]) -> str:
    return examples[0].file if examples else "train data"


def _seconds_before_resume(log: Path, step: int | None) -> float | None:
    """The training seconds a resumed run's checkpoint carried: the trainers log cumulative `seconds` with every
    evaluation, and the run resumed from the evaluation at `step`."""
    if step is None or not log.is_file():
        return None
    for line in log.read_text(encoding="utf-8").splitlines():
        record = json.loads(line) if line.strip() else {}
        if record.get("step") == step and "seconds" in record:
            return float(record["seconds"])
    return None


def _out_of_memory(exc: BaseException) -> bool:
    """torch reports a failed allocation as a RuntimeError ("DefaultCPUAllocator: can't allocate memory")."""
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))


def warn_unseen_labels(model: Predicts, examples: list[Example], what: str) -> list[str]:
    """Log (and return) the labels of `examples` the model never saw in training: it cannot predict them,
    so every such row counts as wrong."""
    known = set(model.labels_.labels)
    unseen = sorted({e.label for e in examples if e.label is not None} - known)
    if unseen:
        n = sum(e.label in unseen for e in examples)
        log.warning("%s: %d row(s) have labels the model never saw in training (always counted wrong): %s", what, n, ", ".join(unseen[:20]))
    return unseen


def evaluate_examples(model: Predicts, examples: list[Example]) -> dict[str, Any]:
    if getattr(model, "tags_spans", False):  # tagger.v1, joint.v1 (a run or a bundle): entity scores too
        from .spans import span_metrics

        return span_metrics(model, examples)
    pred = model.predict([e.text for e in examples])
    return classification_metrics([e.label for e in examples], pred, model.labels_.labels)


def describe_split(cfg: RunConfig, name: str, examples: list[Example]) -> dict[str, Any]:
    path = Path(examples[0].file) if examples else cfg.data.path(name)
    return {"path": str(path), "sha256": fingerprint(path), "n": len(examples)}


def git_commit(cwd: str | Path | None = None) -> str | None:
    """HEAD of the git repository the command runs in; None outside one or without git."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _jsonl(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"
