"""A run killed with SIGKILL mid-training continues from its last checkpoint, to the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from safetensors.numpy import load_file

from conftest import make_corpus, write_config, write_jsonl


def _train_cmd(cfg, out):
    return [sys.executable, "-m", "zhcls", "train", str(cfg), "-o", str(out), "--quiet"]


def test_resume_after_sigkill_matches_uninterrupted(tmp_path):
    train = write_jsonl(tmp_path / "train.json", make_corpus(150, seed=4))
    dev = write_jsonl(tmp_path / "dev.json", make_corpus(10, seed=5))
    cfg = write_config(tmp_path / "c.toml", train, dev, extra="eval_every = 10\npatience = 0\n")
    cfg.write_text(cfg.read_text().replace('name = "textcnn.v1"', 'name = "textcnn.v1"\nembed_dim = 32\nnum_filters = 32'), encoding="utf-8")

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(cfg, killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = killed / "checkpoint" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text())["step"] >= 20:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "training ended before it could be killed: " + proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(state.read_text())["step"]
    assert not (killed / "metrics.json").exists()

    done = subprocess.run(_train_cmd(cfg, killed), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["resumed_from"] == killed_at and metrics["steps"] > killed_at

    fresh = tmp_path / "fresh"
    assert subprocess.run(_train_cmd(cfg, fresh), capture_output=True).returncode == 0
    for model_dir in ("model-best", "model-last"):
        a = load_file(str(killed / model_dir / "weights.safetensors"))
        b = load_file(str(fresh / model_dir / "weights.safetensors"))
        for key in b:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{model_dir}/{key}")
    log_a = [json.loads(l) for l in (killed / "log.jsonl").read_text().splitlines()]
    log_b = [json.loads(l) for l in (fresh / "log.jsonl").read_text().splitlines()]
    assert [r["dev_accuracy"] for r in log_a] == [r["dev_accuracy"] for r in log_b]


def test_resume_refuses_a_changed_config(tmp_path):
    train = write_jsonl(tmp_path / "train.json", make_corpus(12))
    cfg = write_config(tmp_path / "c.toml", train, None)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text("# an unfinished run of another config\n", encoding="utf-8")
    done = subprocess.run(_train_cmd(cfg, run), capture_output=True, text=True)
    assert done.returncode == 2 and "different config" in done.stderr and "--force" in done.stderr
    done = subprocess.run(_train_cmd(cfg, run) + ["--force"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
