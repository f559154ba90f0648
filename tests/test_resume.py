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


def _kill_resume_and_compare(tmp_path, cfg, at_step: int) -> dict:
    """Train `cfg`, SIGKILL it once its checkpoint is past `at_step`, rerun the command; the result must equal
    an uninterrupted run's: both weights files and every dev score. Returns the resumed run's metrics."""
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(cfg, killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = killed / "checkpoint" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text())["step"] >= at_step:
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
    assert not (killed / "checkpoint").exists()
    # the run's training time counts the part before the kill (the log's cumulative seconds at the resume step)
    at_kill = next(r["seconds"] for r in map(json.loads, (killed / "log.jsonl").read_text().splitlines()) if r["step"] == killed_at)
    assert metrics["train_seconds_before_resume"] == at_kill > 0 and metrics["train_seconds"] > at_kill

    fresh = tmp_path / "fresh"
    assert subprocess.run(_train_cmd(cfg, fresh), capture_output=True).returncode == 0
    for model_dir in ("model-best", "model-last"):
        a = load_file(str(killed / model_dir / "weights.safetensors"))
        b = load_file(str(fresh / model_dir / "weights.safetensors"))
        assert a.keys() == b.keys()
        for key in b:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{model_dir}/{key}")
    log_a = [json.loads(l) for l in (killed / "log.jsonl").read_text().splitlines()]
    log_b = [json.loads(l) for l in (fresh / "log.jsonl").read_text().splitlines()]
    assert len(log_a) == len(log_b) > 1
    assert [{k: v for k, v in r.items() if k.startswith("dev_")} for r in log_a] == [{k: v for k, v in r.items() if k.startswith("dev_")} for r in log_b]
    return metrics


def test_resume_after_sigkill_matches_uninterrupted(tmp_path):
    train = write_jsonl(tmp_path / "train.json", make_corpus(150, seed=4))
    dev = write_jsonl(tmp_path / "dev.json", make_corpus(10, seed=5))
    cfg = write_config(tmp_path / "c.toml", train, dev, extra="eval_every = 10\npatience = 0\n")
    cfg.write_text(cfg.read_text().replace('name = "textcnn.v1"', 'name = "textcnn.v1"\nembed_dim = 32\nnum_filters = 32'), encoding="utf-8")
    _kill_resume_and_compare(tmp_path, cfg, at_step=20)


def test_joint_resume_after_sigkill_matches_uninterrupted(tmp_path):
    """joint.v1 (tagger.v1's loop too) on two datasets, dropout on: the same batches, dropout masks and result."""
    from test_tagging import make_joint, write_records

    records = make_joint(80, seed=1)
    first = write_records(tmp_path / "a.json", records[:50])
    second = write_records(tmp_path / "b.json", [{k: v for k, v in r.items() if k != "label"} for r in records[50:70]])
    dev = write_records(tmp_path / "dev.json", records[70:])
    cfg = tmp_path / "joint.toml"
    cfg.write_text(
        f'[data]\ntrain = "{first}"\ndev = "{dev}"\n[[datasets]]\ntrain = "{second}"\n'
        '[model]\nname = "joint.v1"\nembed_dim = 16\nhidden_size = 16\nbuckets = 500\ngram_dim = 8\ndropout = 0.3\n'
        "[training]\nepochs = 8\nbatch_size = 4\neval_every = 5\npatience = 0\nthreads = 1\n",
        encoding="utf-8",
    )
    metrics = _kill_resume_and_compare(tmp_path, cfg, at_step=15)
    assert [d["train"] for d in metrics["datasets"]] == [str(second)] and metrics["dev"]["entities"]["n_gold"] > 0


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
