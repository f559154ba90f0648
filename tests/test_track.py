"""`[track] mlflow = true`: a finished run lands in MLflow with params, per-step metrics and its report."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest

from conftest import make_corpus, run_cli, write_config, write_jsonl
from zhcls.errors import ConfigError

TRACK = '\n[track]\nmlflow = true\nexperiment = "tiny"\n'


def _config(tmp_path: Path, extra: str) -> Path:
    train = write_jsonl(tmp_path / "train.json", make_corpus(12, seed=1))
    dev = write_jsonl(tmp_path / "dev.json", make_corpus(4, seed=2))
    test = write_jsonl(tmp_path / "test.json", make_corpus(4, seed=3))
    cfg = write_config(tmp_path / "c.toml", train, dev, model="textcnn.v1", extra=extra)
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("[data]\n", f'[data]\ntest = "{test}"\n'), encoding="utf-8")
    return cfg


def test_mlflow_logs_params_step_metrics_and_report(tmp_path, capsys):
    pytest.importorskip("mlflow")
    pytest.importorskip("matplotlib")
    from mlflow.tracking import MlflowClient

    cfg = _config(tmp_path, TRACK)
    code, out, err = run_cli(["train", cfg, "-o", tmp_path / "runs" / "r1", "--quiet"], capsys)
    assert code == 0, err

    db = tmp_path / "runs" / "mlflow.db"
    assert db.is_file(), "the default backend is a SQLite file beside the runs"
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("tiny")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "r1"
    assert run.data.params["model.name"] == "textcnn.v1"
    assert run.data.params["training.epochs"] == "3"
    assert "track.mlflow" not in run.data.params

    metrics = json.loads((tmp_path / "runs" / "r1" / "metrics.json").read_text(encoding="utf-8"))
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    history = [json.loads(line) for line in (tmp_path / "runs" / "r1" / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    steps = client.get_metric_history(run.info.run_id, "dev_accuracy")
    assert [m.step for m in steps] == [r["step"] for r in history]
    assert [m.value for m in steps] == pytest.approx([r["dev_accuracy"] for r in history])

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.toml", "metrics.json", "log.jsonl", "report"} <= artifacts
    report = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert "report/report.md" in report and "report/report_figures" in report
    local = Path(client.download_artifacts(run.info.run_id, "report/report.md", str(tmp_path / "dl")))
    assert "accuracy" in local.read_text(encoding="utf-8")


def test_unreachable_tracking_server_keeps_the_run(tmp_path, capsys):
    pytest.importorskip("mlflow")
    cfg = _config(tmp_path, TRACK + 'tracking_uri = "http://127.0.0.1:9"\nreport = false\n')
    import os

    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        code, out, err = run_cli(["train", cfg, "-o", tmp_path / "r", "--quiet"], capsys)
    finally:
        del os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    assert code == 0, err
    assert (tmp_path / "r" / "metrics.json").is_file()
    assert "MLflow logging to http://127.0.0.1:9 failed" in err


def test_missing_mlflow_fails_before_training(tmp_path, monkeypatch):
    from zhcls import load_config, train

    real_import = builtins.__import__

    def no_mlflow(name, *args, **kwargs):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ModuleNotFoundError("No module named 'mlflow'", name="mlflow")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    cfg = load_config(_config(tmp_path, TRACK))
    with pytest.raises(ConfigError, match=r"zhcls\[track\]"):
        train(cfg, tmp_path / "r")
    assert not (tmp_path / "r").exists(), "nothing is written when tracking cannot work"


def test_track_section_is_validated(tmp_path):
    from zhcls import load_config

    with pytest.raises(ConfigError, match="track.mlfow: unknown key") as exc:
        load_config(_config(tmp_path, "\n[track]\nmlfow = true\n"))
    assert "did you mean 'mlflow'" in exc.value.hint
