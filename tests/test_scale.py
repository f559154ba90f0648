"""Scale-out: sharded teacher labelling, [training] device/precision, and DistributedDataParallel under torchrun."""

from __future__ import annotations

import numpy as np
import pytest

from zhcls.distill import label_texts
from zhcls.distill.shards import label_shard, parse_shard, shard_bounds
from zhcls.errors import ConfigError


class FakeTeacher:
    """Probabilities that depend on each text and on the batch it came in (its size), so a shard that cut a
    batch differently from one process would show; raises after `fail_after` calls (a kill)."""

    identity, paths, labels = "fake-teacher", ["fake"], ("a", "b", "c")

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls, self.seen, self.fail_after = 0, [], fail_after

    def predict(self, texts):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        self.seen += list(texts)
        x = np.array([[len(t) % 5, 0.1 * len(texts), -1.0 / (1 + i)] for i, t in enumerate(texts)], dtype=np.float32)
        p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
        return p, x


TEXTS = [f"第{i}条文本" + "长" * (i % 7) for i in range(23)]


# -- sharded teacher labelling ----------------------------------------------------------------------
def test_shards_are_whole_batches_covering_every_text():
    for n_texts, batch, shards in [(23, 4, 3), (8, 4, 2), (3, 4, 2), (100, 7, 5)]:
        bounds = [shard_bounds(n_texts, batch, k, shards) for k in range(shards)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n_texts
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        assert all(start % batch == 0 for start, _ in bounds)
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


def test_sharded_labelling_merges_into_the_single_process_file(tmp_path):
    single = label_texts(FakeTeacher(), TEXTS, out=tmp_path / "one.jsonl", use_cache=False, batch_size=4)
    out = tmp_path / "soft.jsonl"
    cache = tmp_path / "cache"
    first = label_shard(FakeTeacher(), TEXTS, (2, 3), out=out, cache_dir=cache, batch_size=4)
    assert first.merged is None and first.pending == [0, 1] and not out.exists()
    label_shard(FakeTeacher(), TEXTS, (0, 3), out=out, cache_dir=cache, batch_size=4)
    last = label_shard(FakeTeacher(), TEXTS, (1, 3), out=out, cache_dir=cache, batch_size=4)
    assert last.merged is not None and last.pending == []
    assert out.read_bytes() == (tmp_path / "one.jsonl").read_bytes()  # same order, same values, same header
    np.testing.assert_array_equal(last.merged.probs, single.probs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "one.jsonl", "soft.jsonl"]  # shard files removed
    # the merge filled the cache a single process fills: every later run, sharded or not, is served from it
    teacher = FakeTeacher()
    again = label_shard(teacher, TEXTS, (0, 3), out=tmp_path / "again.jsonl", cache_dir=cache, batch_size=4)
    hit = label_texts(teacher, TEXTS, cache_dir=cache, batch_size=4)
    assert again.merged.cached and hit.cached and teacher.calls == 0
    assert (tmp_path / "again.jsonl").read_bytes() == out.read_bytes()


def test_a_killed_shard_resumes_on_its_own(tmp_path):
    out = tmp_path / "soft.jsonl"
    with pytest.raises(KeyboardInterrupt):
        label_shard(FakeTeacher(fail_after=1), TEXTS, (1, 2), out=out, use_cache=False, batch_size=4)
    assert (tmp_path / "soft.jsonl.shard-1-of-2.partial").is_file()
    label_shard(FakeTeacher(), TEXTS, (0, 2), out=out, use_cache=False, batch_size=4)
    teacher = FakeTeacher()
    done = label_shard(teacher, TEXTS, (1, 2), out=out, use_cache=False, batch_size=4)
    start, _ = shard_bounds(len(TEXTS), 4, 1, 2)
    assert done.resumed_rows == 4 and teacher.seen == TEXTS[start + 4 :]
    one = label_texts(FakeTeacher(), TEXTS, out=tmp_path / "one.jsonl", use_cache=False, batch_size=4)
    assert out.read_bytes() == one.path.read_bytes()
    # a rerun of a shard after the merge finds the merged file and labels nothing
    teacher = FakeTeacher()
    assert label_shard(teacher, TEXTS, (0, 2), out=out, use_cache=False, batch_size=4).merged is not None and teacher.calls == 0


def test_teacher_label_cli_shards_equal_one_process(tmp_path, capsys, monkeypatch):
    from conftest import make_corpus, run_cli, write_jsonl
    from zhcls.config import config_from_dict
    from zhcls.training.run import train

    train_file = write_jsonl(tmp_path / "train.json", make_corpus(8, seed=1))
    data = write_jsonl(tmp_path / "unlabeled.json", make_corpus(9, seed=7))
    cfg = {"data": {"train": str(train_file)}, "model": {"name": "textcnn.v1", "embed_dim": 16, "num_filters": 16},
           "training": {"epochs": 1, "batch_size": 8}}
    teacher = train(config_from_dict(cfg), tmp_path / "teacher").run_dir
    base = ["teacher", "label", teacher, data, "--batch-size", "4", "--no-cache", "--quiet"]
    code, out, err = run_cli([*base, "-o", tmp_path / "one.jsonl"], capsys)
    assert code == 0, err
    code, out, err = run_cli([*base, "-o", tmp_path / "soft.jsonl", "--shard", "1/2"], capsys)
    assert code == 0 and "shards 0 still running" in err and not (tmp_path / "soft.jsonl").exists()
    monkeypatch.setenv("RANK", "0")  # under torchrun the rank picks the shard
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, out, err = run_cli([*base, "-o", tmp_path / "soft.jsonl"], capsys)
    assert code == 0 and "2 shards merged" in out, err
    assert (tmp_path / "soft.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()


# -- device and precision -----------------------------------------------------------------------------
def test_cuda_without_cuda_is_a_clear_exit_2(tiny_files, tmp_path, capsys):
    from conftest import run_cli, write_config

    cfg = write_config(tmp_path / "c.toml", tiny_files["train"], tiny_files["dev"])
    for extra in (["--set", "training.device=cuda"], ["--set", "training.device=cuda:1", "--nproc", "2"], ["--set", "training.precision=fp16"]):
        code, out, err = run_cli(["train", cfg, "-o", tmp_path / "run", *extra], capsys)
        assert code == 2 and "Traceback" not in err, err
        assert ("no CUDA device" in err) if "training.precision=fp16" not in extra else ("needs a CUDA device" in err and "bf16" in err)
        assert not (tmp_path / "run" / "config.toml").exists()  # nothing left that would block the corrected rerun
    code, _, err = run_cli(["config", "validate", cfg, "--set", "training.device=gpu"], capsys)
    assert code == 2 and "auto, cpu, cuda or cuda:N" in err


def test_device_names_resolve_one_gpu_per_local_rank(monkeypatch):
    import torch

    from zhcls.scale.device import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 0) and resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    for spec, rank in (("cuda:2", None), ("cuda", 2), ("cuda:0", 1)):
        with pytest.raises(ConfigError):
            resolve_device(spec, local_rank=rank)


def test_a_model_trained_with_device_auto_loads_anywhere(tiny_corpus, tmp_path):
    from safetensors import safe_open

    from zhcls.config import TrainingConfig
    from zhcls.models.base import build_model, load_model

    training = TrainingConfig(epochs=2, batch_size=8, device="auto", precision="bf16")  # bf16 autocast runs on CPUs too
    clf = build_model("textcnn.v1", {"embed_dim": 16, "num_filters": 16}, training).fit(tiny_corpus.texts, tiny_corpus.labels)
    report = clf.fit_report()
    assert report["precision"] == "bf16" and report["world_size"] == 1 and report["device"].split(":")[0] in ("cpu", "cuda")
    clf.save(tmp_path / "model")
    with safe_open(str(tmp_path / "model" / "weights.safetensors"), "pt") as f:  # CPU tensors, whatever it trained on
        assert all(f.get_tensor(k).device.type == "cpu" for k in f.keys())
    loaded = load_model(tmp_path / "model")
    assert next(loaded.net_.parameters()).device.type == "cpu"
    atol = 1e-6 if report["device"] == "cpu" else 2e-2  # on a GPU the trained model predicts in bf16
    np.testing.assert_allclose(loaded.predict_proba(tiny_corpus.texts), clf.predict_proba(tiny_corpus.texts), atol=atol)


# -- DistributedDataParallel under torchrun -------------------------------------------------------------
def _descendants(root: int) -> list[int]:
    from pathlib import Path

    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _rank_pid(root: int, rank: int) -> int | None:
    from pathlib import Path

    for pid in _descendants(root):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"TORCHELASTIC_RUN_ID" in b"".join(env):
            return pid
    return None


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="finds the rank's process in /proc")
def test_two_processes_train_the_weights_of_one_and_resume_after_a_rank_is_killed(tmp_path):
    """2-process gloo DDP at global batch 8 = 1 process at batch 8 (float tolerance), sparse n-gram bag
    included; SIGKILL of rank 1, the same command again resumes from rank 0's checkpoint; only rank 0 writes."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from safetensors.numpy import load_file

    from conftest import make_corpus, write_config, write_jsonl
    from zhcls.config import load_config
    from zhcls.training.run import train

    train_file = write_jsonl(tmp_path / "train.json", make_corpus(20, seed=4))
    dev = write_jsonl(tmp_path / "dev.json", make_corpus(4, seed=5))
    cfg = write_config(tmp_path / "c.toml", train_file, dev, extra="eval_every = 4\npatience = 0\n")
    text = cfg.read_text().replace('name = "textcnn.v1"', 'name = "textcnn.v1"\nembed_dim = 16\nnum_filters = 16\ndropout = 0.0\nbuckets = 5000\nbag_dim = 8')
    cfg.write_text(text, encoding="utf-8")  # dropout 0: each rank draws its own masks, so only then are the runs equal
    one = train(load_config(cfg), tmp_path / "one")

    two = tmp_path / "two"
    command = [sys.executable, "-m", "zhcls", "train", str(cfg), "-o", str(two), "--nproc", "2", "--quiet"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = two / "checkpoint" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text())["step"] >= 8:
            break
        time.sleep(0.02)
    victim = _rank_pid(proc.pid, 1)
    assert proc.poll() is None and victim is not None, "training ended before a rank could be killed: " + proc.stderr.read().decode()
    os.kill(victim, signal.SIGKILL)
    assert proc.wait(timeout=120) != 0
    killed_at = json.loads(state.read_text())["step"]
    assert not (two / "metrics.json").exists()

    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("run: ") == 1  # one summary: rank 0's
    metrics = json.loads((two / "metrics.json").read_text())
    assert metrics["resumed_from"] == killed_at and metrics["world_size"] == 2 and metrics["steps"] == one.metrics["steps"]
    files = sorted(str(p.relative_to(two)) for p in two.rglob("*"))
    assert files == sorted(str(p.relative_to(one.run_dir)) for p in one.run_dir.rglob("*"))  # nothing from rank 1
    for model_dir in ("model-best", "model-last"):
        a = load_file(str(two / model_dir / "weights.safetensors"))
        b = load_file(str(one.run_dir / model_dir / "weights.safetensors"))
        for key in b:
            np.testing.assert_allclose(a[key], b[key], atol=2e-5, err_msg=f"{model_dir}/{key}")


def test_models_that_cannot_train_distributed_say_so(tiny_files, tmp_path, capsys):
    from conftest import run_cli, write_config

    cfg = write_config(tmp_path / "c.toml", tiny_files["train"], tiny_files["dev"], model="tfidf.v1")
    code, _, err = run_cli(["train", cfg, "-o", tmp_path / "run", "--nproc", "2"], capsys)
    assert code == 2 and "tfidf.v1 cannot train on several processes" in err and not (tmp_path / "run").exists()


def test_a_run_resumes_on_another_device_but_not_with_other_settings():
    import tomllib

    import tomli_w

    from zhcls.config import config_from_dict, dump_config
    from zhcls.training.run import same_run_config

    auto = dump_config(config_from_dict({"training": {"device": "auto"}}))
    assert same_run_config(auto, dump_config(config_from_dict({"training": {"device": "cuda:1"}})))
    assert not same_run_config(auto, dump_config(config_from_dict({"training": {"precision": "bf16"}})))
    assert not same_run_config(auto, dump_config(config_from_dict({"training": {"lr": 0.5}})))
    before = tomllib.loads(auto)  # a run started before device and precision were settings
    del before["training"]["device"], before["training"]["precision"]
    assert same_run_config(tomli_w.dumps(before), auto)
    newer = tomllib.loads(auto)  # a [build] setting added since (e.g. vectors) leaves runs before it reusable
    del newer["build"]["vectors"]
    assert same_run_config(tomli_w.dumps(newer), auto)
    assert same_run_config(auto, dump_config(config_from_dict({"track": {"experiment": "other"}})))
