"""Optional MLflow logging of a finished run: params, metrics per evaluation step, and the run's report.

Turned on by `[track] mlflow = true`. The run directory stays the source of truth: tracking happens after
every file of the run is written, so an unreachable tracking server costs the MLflow copy, never the run.
The default backend is a local SQLite file beside the runs (`<runs>/mlflow.db`, artifacts in
`<runs>/mlartifacts`), which `mlflow ui --backend-store-uri sqlite:///runs/mlflow.db` browses.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

from ..config import RunConfig, TrackConfig, resolved_dict
from ..errors import ConfigError

log = logging.getLogger(__name__)

# MLflow caps a param value at 6000 characters; longer values (paths lists, long vocab options) are cut.
MAX_PARAM_CHARS = 6000


def require_mlflow(track: TrackConfig) -> None:
    """Fail before training, not after an hour of it, when tracking is asked for but MLflow is missing."""
    if not track.mlflow:
        return
    try:
        import mlflow  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError(
            "[track] mlflow = true, but MLflow is not installed",
            hint="install it with `pip install 'zhcls[track]'`, or set mlflow = false",
        ) from None


def tracking_uri(track: TrackConfig, run_dir: Path) -> str:
    if track.tracking_uri:
        return track.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(run_dir.resolve().parent / 'mlflow.db').as_posix()}"


def flat_params(cfg: RunConfig) -> dict[str, str]:
    """`model.filters=128`-style keys, the way MLflow's UI lists and compares them."""
    out: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            out[prefix] = str(node)[:MAX_PARAM_CHARS]

    raw = resolved_dict(cfg)
    raw.pop("track", None)  # where the run is logged is not a parameter of the run
    walk(raw, "")
    return out


def step_metrics(history: Sequence[dict[str, Any]]) -> list[tuple[str, float, int]]:
    """(key, value, step) for every numeric field of every evaluation record; records without a step
    (the C grid of tfidf.v1) are numbered in order."""
    rows = []
    for index, record in enumerate(history):
        step = int(record.get("step", index))
        for key, value in record.items():
            if key not in ("step", "best") and isinstance(value, (int, float)) and not isinstance(value, bool):
                rows.append((key, float(value), step))
    return rows


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for split in ("dev", "test"):
        m = metrics.get(split) or {}
        for key in ("accuracy", "macro_f1", "micro_f1", "weighted_f1"):
            if isinstance(m.get(key), (int, float)):
                out[f"{split}_{key}"] = float(m[key])
    if isinstance(metrics.get("train_seconds"), (int, float)):
        out["train_seconds"] = float(metrics["train_seconds"])
    return out


def log_run(cfg: RunConfig, run_dir: Path, metrics: dict[str, Any], history: Sequence[dict[str, Any]]) -> str | None:
    """Log a finished run to MLflow; returns the MLflow run id, or None when tracking failed (with a warning)."""
    track = cfg.track
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(track, run_dir)
    try:
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(track.experiment)
        if experiment is None:
            location = None
            if uri.startswith("sqlite:///") and not track.tracking_uri:
                location = (run_dir.resolve().parent / "mlartifacts").as_uri()
            experiment_id = client.create_experiment(track.experiment, artifact_location=location)
        else:
            experiment_id = experiment.experiment_id
        tags = {"zhcls.run_dir": str(run_dir.resolve()), "zhcls.model": cfg.model.name}
        if metrics.get("git_commit"):
            tags["mlflow.source.git.commit"] = metrics["git_commit"]
        run = client.create_run(experiment_id, run_name=track.run_name or run_dir.name, tags=tags)
        run_id = run.info.run_id
        params = [mlflow.entities.Param(k, v) for k, v in flat_params(cfg).items()]
        values = [mlflow.entities.Metric(k, v, 0, s) for k, v, s in step_metrics(history)]
        last_step = max((s for _, _, s in step_metrics(history)), default=0)
        values += [mlflow.entities.Metric(k, v, 0, last_step) for k, v in final_metrics(metrics).items()]
        # log_batch takes at most 100 params / 1000 metrics per call
        for i in range(0, len(params), 100):
            client.log_batch(run_id, params=params[i : i + 100])
        for i in range(0, len(values), 1000):
            client.log_batch(run_id, metrics=values[i : i + 1000])
        for name in ("config.toml", "metrics.json", "log.jsonl"):
            if (run_dir / name).is_file():
                client.log_artifact(run_id, str(run_dir / name))
        if track.report:
            _log_report(client, run_id, run_dir)
        client.set_terminated(run_id, "FINISHED")
    except Exception as exc:  # noqa: BLE001 - tracking must never cost the run that is already written
        log.warning("MLflow logging to %s failed (%s: %s); the run in %s is complete", uri, type(exc).__name__, exc, run_dir)
        return None
    log.info("logged to MLflow %s, experiment %r, run %s", uri, track.experiment, run_id)
    return run_id


def _log_report(client: Any, run_id: str, run_dir: Path) -> None:
    try:
        from . import build_report, write_report

        report = build_report(run_dir)
        with tempfile.TemporaryDirectory(prefix="zhcls-report-") as tmp:
            write_report(report, Path(tmp) / "report.md")
            client.log_artifacts(run_id, tmp, artifact_path="report")
    except ModuleNotFoundError as exc:
        log.warning("the report was not logged to MLflow: %s (install zhcls[report])", exc)
