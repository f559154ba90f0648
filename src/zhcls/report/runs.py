"""Runs side by side: one summary row per finished run (what `zhcls runs list/compare` shows)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Sequence

from .build import ReportError, read_json_object

KEY_METRICS = ("accuracy", "macro_f1")
FINGERPRINT_CHARS = 12


def find_runs(root: str | Path) -> list[Path]:
    """Finished runs (directories with metrics.json) at `root` itself, or one or two levels below it."""
    root = Path(root)
    if not root.is_dir():
        raise ReportError(f"{root}: no such directory", hint="pass the directory your runs are in, e.g. `zhcls runs list runs`")
    if (root / "metrics.json").is_file():
        return [root]
    found = {p.parent for pattern in ("*/metrics.json", "*/*/metrics.json") for p in root.glob(pattern)}
    return sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(root).parts))


def summarize(run: str | Path, name: str | None = None) -> dict[str, Any]:
    """name, model, data fingerprint, git commit, dev/test key metrics and date of one run."""
    run = Path(run)
    if not (run / "metrics.json").is_file():
        raise ReportError(f"{run}: no metrics.json; not a finished run", hint="list the runs with `zhcls runs list DIR`")
    metrics = read_json_object(run / "metrics.json")
    meta_path = run / "model-best" / "zhcls.json"
    meta = read_json_object(meta_path) if meta_path.is_file() else {}
    data = meta.get("data", {})
    created = meta.get("created") or _dt.datetime.fromtimestamp((run / "metrics.json").stat().st_mtime, _dt.timezone.utc).isoformat(timespec="seconds")
    row: dict[str, Any] = {
        "name": name or run.name,
        "path": str(run),
        "model": metrics.get("model") or meta.get("model"),
        "data": (data.get("train") or {}).get("sha256", "")[:FINGERPRINT_CHARS] or None,
        "test_data": (data.get("test") or {}).get("sha256", "")[:FINGERPRINT_CHARS] or None,
        "git_commit": metrics.get("git_commit"),
        "date": created,
        "train_seconds": metrics.get("train_seconds"),
    }
    for split in ("dev", "test"):
        m = metrics.get(split) if isinstance(metrics.get(split), dict) else {}
        for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "micro_f1", "weighted_f1"):
            row[f"{split}_{key}"] = m.get(key)
    return row


def list_runs(root: str | Path) -> list[dict[str, Any]]:
    root = Path(root)
    rows = [summarize(p, str(p.relative_to(root)) if p != root else p.name) for p in find_runs(root)]
    return sorted(rows, key=lambda r: (r["date"], r["name"]))


def compare_runs(paths: Sequence[str | Path], metric: str = "macro_f1", split: str = "test") -> dict[str, Any]:
    """Rows for the given runs (in the order given) with the metric's change against the first run,
    and `trend`: the same metric in date order (for a plot across commits)."""
    if not paths:
        raise ReportError("no runs to compare", hint="zhcls runs compare RUN_A RUN_B ...")
    key = f"{split}_{metric}"
    rows = [summarize(p) for p in paths]
    names = [r["name"] for r in rows]
    for r, p in zip(rows, paths):  # same directory name under different parents: show the path
        if names.count(r["name"]) > 1:
            r["name"] = str(p)
    if key not in rows[0]:
        raise ReportError(f"unknown metric {metric!r}", hint="choose accuracy, macro_precision, macro_recall, macro_f1, micro_f1 or weighted_f1")
    missing = [r["name"] for r in rows if r[key] is None]
    first = rows[0][key]
    for r in rows:
        r["delta"] = None if r[key] is None or first is None else r[key] - first
    trend = [{"name": r["name"], "date": r["date"], "commit": r["git_commit"], "value": r[key]}
             for r in sorted(rows, key=lambda r: r["date"]) if r[key] is not None]
    return {"metric": metric, "split": split, "key": key, "rows": rows, "trend": trend, "missing": missing}
