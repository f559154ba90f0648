"""build_report: a finished run (and optionally a baseline) -> the report as plain, JSON-ready dicts.

Everything a reader sees is computed here; figures.py draws it and markdown.py / html.py lay it out.
The metrics come from the run's metrics.json (what training measured). Predictions are only made again
for what metrics.json does not hold: example texts of confused pairs, and calibration.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..artifact import read_json
from ..errors import ZhclsError
from .calibration import reliability

log = logging.getLogger(__name__)

DEFAULT_GATE = ("macro_f1", "accuracy")
HEADLINE = ("accuracy", "macro_f1", "macro_precision", "macro_recall", "micro_f1", "weighted_f1")
TOP_PAIRS = 5
EXAMPLES_PER_PAIR = 3
EPS = 1e-12  # a drop equal to --max-drop passes, whatever the float rounding


class ReportError(ZhclsError):
    """A run, baseline or bundle given to the report cannot be used."""


@dataclass
class Source:
    """A run directory, or a metrics JSON file standing alone (a baseline from elsewhere)."""

    path: Path
    name: str
    metrics: dict[str, Any]
    run_dir: Path | None = None
    config: dict[str, Any] | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] | None = None  # model-best/zhcls.json

    @property
    def is_run(self) -> bool:
        return self.run_dir is not None


def load_source(path: str | Path) -> Source:
    """A run directory; its metrics.json; or any metrics JSON (a run's, or `zhcls evaluate --json` output)."""
    path = Path(path)
    if path.is_file() and path.name == "metrics.json" and (path.parent / "config.toml").is_file():
        path = path.parent
    if path.is_dir():
        if not (path / "metrics.json").is_file():
            raise ReportError(f"{path}: no metrics.json; this is not a finished run", hint="train it to the end with `zhcls train`, or pass the run directory")
        src = Source(path, path.name, _read_json(path / "metrics.json"), run_dir=path)
        if (path / "config.toml").is_file():
            try:
                src.config = tomllib.loads((path / "config.toml").read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ReportError(f"{path / 'config.toml'}: unreadable ({exc})", hint=_DAMAGED) from None
        if (path / "log.jsonl").is_file():
            src.log = _read_log(path / "log.jsonl")
        if (path / "model-best" / "zhcls.json").is_file():
            src.meta = _read_json(path / "model-best" / "zhcls.json")
        return src
    if path.is_file():
        return Source(path, path.stem, _read_json(path))
    raise ReportError(f"{path}: not found", hint="pass a run directory (with metrics.json) or a metrics JSON file")


def split_metrics(src: Source, split: str) -> dict[str, Any] | None:
    if isinstance(src.metrics.get(split), dict):
        return src.metrics[split]
    if "accuracy" in src.metrics and not any(isinstance(src.metrics.get(s), dict) for s in ("dev", "test")):
        return src.metrics  # one split's metrics, as `zhcls evaluate --json` prints them
    return None


def choose_split(run: Source, split: str | None) -> str:
    available = [s for s in ("test", "dev") if isinstance(run.metrics.get(s), dict)]
    if split is None:
        if not available:
            raise ReportError(f"{run.path}: metrics.json has neither test nor dev metrics", hint="give the run a dev or test split in [data]")
        return available[0]
    if split not in available:
        raise ReportError(f"{run.path}: no {split!r} metrics in metrics.json", hint=f"splits in this run: {', '.join(available) or 'none'}")
    return split


def build_report(
    run: str | Path,
    *,
    baseline: str | Path | None = None,
    split: str | None = None,
    bundle: str | Path | None = None,
    gate: Sequence[str] = DEFAULT_GATE,
    max_drop: float = 0.01,
    predict: bool = True,
) -> dict[str, Any]:
    """The report of `run` on `split` (default: test, else dev), compared with `baseline` when given.
    `predict=False` skips loading the model (no example texts, no calibration)."""
    cur = load_source(run)
    if not cur.is_run:
        raise ReportError(f"{run}: the report needs a run directory", hint="pass the directory `zhcls train -o` wrote")
    base = load_source(baseline) if baseline is not None else None
    split = choose_split(cur, split)
    notes: list[str] = []
    if split != "test":
        notes.append(f"this run has no test split; the report and the gate use the {split} split")
    m = cur.metrics[split]
    bm = split_metrics(base, split) if base is not None else None
    if base is not None and bm is None:
        notes.append(f"the baseline {base.path} has no {split} metrics; nothing is compared")

    predictions = _predict_split(cur, split, notes) if predict else None
    report: dict[str, Any] = {
        "title": cur.name,
        "run": str(cur.path),
        "model": cur.metrics.get("model") or (cur.meta or {}).get("model"),
        "git_commit": cur.metrics.get("git_commit"),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "split": split,
        "n": m.get("n"),
        "baseline": None if base is None else {"path": str(base.path), "name": base.name, "is_run": base.is_run,
                                               "git_commit": base.metrics.get("git_commit")},
        "notes": notes,
        "headline": headline_rows(m, bm),
        "per_class": per_class_rows(m, bm),
        "entities": m.get("entities"),  # tagger.v1, joint.v1: entity-level scores and the most frequent span errors
        "confusion": {"labels": list(m.get("labels", [])), "matrix": m.get("confusion_matrix", [])},
        "curves": {"metric": _training_metric(cur), "records": cur.log, "baseline": base.log if base is not None else []},
        "confused_pairs": confused_pairs(m, predictions),
        "calibration": _calibration(predictions),
        "bundle": _bundle_section(cur, bundle, base, notes),
        "data": data_section(cur, base, notes),
        "config_diff": config_diff(base.config, cur.config) if base is not None and base.config is not None and cur.config is not None else None,
        "training": {k: cur.metrics.get(k) for k in ("train_seconds", "n_train", "best_step", "steps") if k in cur.metrics},
        "gate": gate_check(m, bm, gate, max_drop),
    }
    return report


# -- comparisons ---------------------------------------------------------------------------------
def _delta(value: Any, base: Any) -> float | None:
    if isinstance(value, (int, float)) and isinstance(base, (int, float)):
        return float(value) - float(base)
    return None


def headline_rows(m: dict[str, Any], bm: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for key in HEADLINE:
        if key in m:
            b = (bm or {}).get(key)
            rows.append({"metric": key, "value": m[key], "baseline": b, "delta": _delta(m[key], b)})
    return rows


def per_class_rows(m: dict[str, Any], bm: dict[str, Any] | None) -> list[dict[str, Any]]:
    base = (bm or {}).get("per_class", {})
    rows = []
    for label, r in m.get("per_class", {}).items():
        b = base.get(label, {})
        row = {"label": label, **{k: r.get(k) for k in ("precision", "recall", "f1", "support")}}
        for k in ("precision", "recall", "f1"):
            row[f"delta_{k}"] = _delta(r.get(k), b.get(k))
        row["new"] = bm is not None and label not in base
        rows.append(row)
    return rows


def gate_check(m: dict[str, Any], bm: dict[str, Any] | None, metrics: Sequence[str], max_drop: float) -> dict[str, Any]:
    """A gated metric fails when it fell by more than max_drop from the baseline's value."""
    results = []
    for key in metrics:
        if key not in m:
            raise ReportError(f"gated metric {key!r} is not in the run's metrics", hint=f"choose from: {', '.join(HEADLINE)}")
        if bm is None or not isinstance(bm.get(key), (int, float)):
            results.append({"metric": key, "value": m[key], "baseline": None, "drop": None, "passed": True})
            continue
        drop = float(bm[key]) - float(m[key])
        results.append({"metric": key, "value": m[key], "baseline": bm[key], "drop": drop, "passed": drop <= max_drop + EPS})
    failed = [r["metric"] for r in results if not r["passed"]]
    return {"max_drop": max_drop, "compared": bm is not None, "results": results, "passed": not failed, "failed": failed}


def config_diff(base: dict[str, Any], cur: dict[str, Any]) -> list[dict[str, Any]]:
    a, b = _flatten(base), _flatten(cur)
    return [{"key": k, "baseline": a.get(k), "run": b.get(k)} for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


# -- predictions on the split --------------------------------------------------------------------
@dataclass
class _Predictions:
    texts: list[str]
    truth: list[str]
    labels: list[str]  # the model's classes, the columns of proba
    proba: np.ndarray


def _predict_split(src: Source, split: str, notes: list[str]) -> _Predictions | None:
    what = "example texts of confused pairs and calibration are left out"
    examples = _read_split(src, split, notes, what)
    if examples is None:
        return None
    try:
        from ..models.dirs import RunDir

        model = RunDir(src.run_dir).load()
        proba = model.predict_proba([e.text for e in examples])
    except (ZhclsError, OSError, ModuleNotFoundError) as exc:
        notes.append(f"the run's model could not be loaded ({_short(exc)}); {what}")
        return None
    return _Predictions([e.text for e in examples], [e.label for e in examples], list(model.labels_.labels), proba)


def _read_split(src: Source, split: str, notes: list[str] | None, what: str) -> list[Any] | None:
    """The split's labeled examples, read with the run's [data] settings; None (and a note) if unreadable."""
    from ..data.readers import fingerprint
    from ..models.dirs import RunDir

    try:
        examples = RunDir(src.run_dir).split(split) if src.run_dir is not None else None
    except (ZhclsError, OSError, ValueError) as exc:
        if notes is not None:
            notes.append(f"the {split} data could not be read ({_short(exc)}); {what}")
        return None
    if not examples:
        if notes is not None:
            notes.append(f"the run's config names no {split} data; {what}")
        return None
    recorded = ((src.meta or {}).get("data", {}).get(split) or {}).get("sha256")
    path = Path(examples[0].file)
    if notes is not None and recorded and path.is_file() and fingerprint(path) != recorded:
        notes.append(f"{path} changed since training (sha256 differs); texts and calibration come from the current file")
    return [e for e in examples if e.label is not None]


def confused_pairs(m: dict[str, Any], pred: _Predictions | None, top: int = TOP_PAIRS) -> list[dict[str, Any]]:
    """The largest off-diagonal cells of the confusion matrix, with the most confident mistakes as examples."""
    labels, matrix = m.get("labels", []), m.get("confusion_matrix", [])
    cells = [(matrix[i][j], i, j) for i in range(len(labels)) for j in range(len(labels)) if i != j and matrix[i][j] > 0]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    pairs = []
    for count, i, j in cells[:top]:
        support = sum(matrix[i])
        pair: dict[str, Any] = {"true": labels[i], "pred": labels[j], "count": int(count),
                                "share": count / support if support else None, "examples": None}
        if pred is not None and labels[j] in pred.labels:
            col = pred.labels.index(labels[j])
            hits = [k for k, t in enumerate(pred.truth) if t == labels[i] and int(pred.proba[k].argmax()) == col]
            hits.sort(key=lambda k: -pred.proba[k, col])
            pair["examples"] = [{"text": pred.texts[k], "score": float(pred.proba[k, col])} for k in hits[:EXAMPLES_PER_PAIR]]
        pairs.append(pair)
    return pairs


def _calibration(pred: _Predictions | None) -> dict[str, Any] | None:
    if pred is None or not pred.texts:
        return None
    index = {label: i for i, label in enumerate(pred.labels)}
    y = np.array([index.get(t, -1) for t in pred.truth])
    return reliability(pred.proba, y)


# -- bundle, data, config --------------------------------------------------------------------------
def _bundle_section(cur: Source, bundle: str | Path | None, base: Source | None, notes: list[str]) -> dict[str, Any] | None:
    path = Path(bundle) if bundle is not None else cur.run_dir / "bundle"
    if bundle is None and not (path / "manifest.json").is_file():
        return None
    info = bundle_info(path, notes)
    if info is not None and base is not None and base.is_run and (base.run_dir / "bundle" / "manifest.json").is_file():
        b = bundle_info(base.run_dir / "bundle", notes)
        if b is not None:
            info["baseline"] = {k: b[k] for k in ("latency", "size_bytes_total", "precision")}
    return info


def bundle_info(path: Path, notes: list[str]) -> dict[str, Any] | None:
    from ..serve.bundle import BundleError, load_manifest

    try:
        manifest = load_manifest(path, verify=True)
    except BundleError as exc:
        notes.append(f"bundle {path}: {exc.message}; latency and size are left out")
        return None
    sizes = manifest.get("size_bytes") or {name: (path / name).stat().st_size for name in manifest.get("files", {})}
    return {
        "path": str(path),
        "backend": manifest.get("backend"),
        "precision": manifest.get("precision"),
        "latency": manifest.get("latency"),
        "size_bytes": sizes,
        "size_bytes_total": sum(sizes.values()),
        "parity": manifest.get("parity"),
        "created": manifest.get("created"),
    }


def data_section(cur: Source, base: Source | None, notes: list[str]) -> dict[str, Any]:
    recorded = (cur.meta or {}).get("data", {})
    base_recorded = (base.meta or {}).get("data", {}) if base is not None else {}
    splits = []
    for split in ("train", "dev", "test"):
        rec = recorded.get(split)
        if rec is None and split not in cur.metrics:
            continue
        rec = rec or {}
        row: dict[str, Any] = {"split": split, "path": rec.get("path"), "sha256": rec.get("sha256"), "n": rec.get("n")}
        examples = _read_split(cur, split, None, "") if cur.config is not None else None
        if examples is not None:
            row["labels"] = dict(sorted(Counter(e.label for e in examples).items(), key=lambda kv: (-kv[1], kv[0])))
            row["labels_from"] = "data"
        elif isinstance(cur.metrics.get(split), dict):
            per = cur.metrics[split].get("per_class", {})
            row["labels"] = {label: r["support"] for label, r in sorted(per.items(), key=lambda kv: (-kv[1]["support"], kv[0]))}
            row["labels_from"] = "metrics"
        else:
            row["labels"], row["labels_from"] = None, None
        b = (base_recorded.get(split) or {}).get("sha256")
        row["baseline_sha256"] = b
        row["same_as_baseline"] = None if b is None or row["sha256"] is None else b == row["sha256"]
        if split != "train" and row["same_as_baseline"] is False:
            notes.append(f"the baseline was evaluated on different {split} data (sha256 differs); deltas compare different data")
        splits.append(row)
    return {"splits": splits}


def _training_metric(src: Source) -> str:
    return ((src.config or {}).get("training") or {}).get("metric") or "macro_f1"


_DAMAGED = "the run's files were damaged or edited; train it again, or restore them from a copy"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = read_json(path)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ReportError(f"{path}: not valid JSON ({exc})", hint=_DAMAGED) from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object of metrics", hint=_DAMAGED)
    return data


read_json_object = _read_json


def _read_log(path: Path) -> list[dict[str, Any]]:
    """log.jsonl: one JSON object per dev evaluation."""
    from ..data.readers import lines

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ReportError(f"{path}: not UTF-8 ({exc})", hint=_DAMAGED) from None
    out = []
    for lineno, line in enumerate(lines(text), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise ReportError(f"{path}:{lineno}: not valid JSON ({exc})", hint=_DAMAGED) from None
        if not isinstance(record, dict):
            raise ReportError(f"{path}:{lineno}: expected a JSON object", hint=_DAMAGED)
        out.append(record)
    return out


def _short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
