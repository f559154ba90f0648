"""Trust: tamper-evident bundles, checked model directories, numerically safe training, and every bad
input an exit-2 error with a location (issue 13)."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import make_corpus, run_cli, write_config, write_jsonl
from zhcls.config import TrainingConfig
from zhcls.data.example import Example
from zhcls.models.base import build_model, load_model
from zhcls.serve.bundle import BundleError, manifest_digest
from zhcls.serve.predictor import Predictor

SMALL = {"embed_dim": 8, "num_filters": 8}


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_corpus):
    """A tiny TextCNN model directory and its bundle; tests copy them before damaging anything."""
    from zhcls.export.onnx import export_bundle

    root = tmp_path_factory.mktemp("trust")
    build_model("textcnn.v1", SMALL, TrainingConfig(epochs=3, batch_size=8, lr=1e-2)).fit(tiny_corpus.texts, tiny_corpus.labels).save(root / "model")
    texts = root / "texts.txt"
    texts.write_text("\n".join(tiny_corpus.texts) + "\n", encoding="utf-8")
    export_bundle(root / "model", root / "bundle", data=[Example(t) for t in tiny_corpus.texts], latency_texts=5)
    return root


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_manifest(bundle: Path, change, reseal: bool = False) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    change(manifest)
    if reseal:  # what someone who knows the format would do: recompute the digest after the edit
        manifest["digest"] = manifest_digest(manifest)
    path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")


def _refused(bundle: Path, capsys, match: str) -> None:
    with pytest.raises(BundleError, match=match):
        Predictor(bundle)
    code, out, err = run_cli(["predict", bundle, bundle / "tokenizer.json"], capsys)
    assert code == 2 and out == "" and "Traceback" not in err and "error:" in err


# -- 1. bundles -------------------------------------------------------------------------------------
def test_export_prints_the_digest_it_records(built, tmp_path, capsys):
    code, out, err = run_cli(["export", built / "model", "-o", tmp_path / "b", "--data", built / "texts.txt"], capsys)
    assert code == 0, err
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["digest"] == manifest_digest(manifest) and f"digest: {manifest['digest']}" in out


def test_edited_labels_are_refused(built, tmp_path, capsys):
    bundle = _copy(built / "bundle", tmp_path / "b")
    _edit_manifest(bundle, lambda m: m["labels"].reverse())
    _refused(bundle, capsys, "manifest was changed after export")


@pytest.mark.parametrize("change", [lambda m: m.update(files={}), lambda m: m.pop("files"), lambda m: m.update(files=[])])
def test_emptied_or_missing_file_list_is_refused(built, tmp_path, capsys, change):
    bundle = _copy(built / "bundle", tmp_path / "b")
    _edit_manifest(bundle, change, reseal=True)
    (bundle / "model.onnx").write_bytes(b"not a graph")  # the check `files` would have caught
    _refused(bundle, capsys, "`files` is missing, empty or malformed")


def test_file_list_must_match_the_directory_and_cover_the_backend(built, tmp_path, capsys):
    bundle = _copy(built / "bundle", tmp_path / "b")
    (bundle / "notes.txt").write_text("extra", encoding="utf-8")
    _refused(bundle, capsys, "notes.txt is not in the manifest")
    (bundle / "notes.txt").unlink()
    _edit_manifest(bundle, lambda m: m["files"].pop("model.onnx"), reseal=True)
    _refused(bundle, capsys, "`files` does not cover model.onnx")


def test_changed_graph_digestless_and_unchecked_bundles_are_refused(built, tmp_path, capsys):
    bundle = _copy(built / "bundle", tmp_path / "b")
    with open(bundle / "model.onnx", "r+b") as f:
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 1]))
    _refused(bundle, capsys, r"model\.onnx: sha256 does not match")
    bundle = _copy(built / "bundle", tmp_path / "c")
    _edit_manifest(bundle, lambda m: m.pop("digest"))
    _refused(bundle, capsys, "no digest")
    bundle = _copy(built / "bundle", tmp_path / "d")
    _edit_manifest(bundle, lambda m: m.pop("parity"), reseal=True)
    _refused(bundle, capsys, "never passed export's parity check")
    bundle = _copy(built / "bundle", tmp_path / "e")
    _edit_manifest(bundle, lambda m: m["files"].update({"../model/zhcls.json": "0" * 64}), reseal=True)
    _refused(bundle, capsys, "not in the manifest|malformed entry")


def test_registry_checks_the_manifest_it_registered(built, tmp_path, capsys, monkeypatch):
    from zhcls.serve.model_registry import ModelRegistry, RegistryError

    root = tmp_path / "reg"
    monkeypatch.setenv("ZHCLS_REGISTRY", str(root))
    assert run_cli(["registry", "add", built / "bundle", "--name", "m", "--version", "v1", "--root", root], capsys)[0] == 0
    manifest = root / "m" / "v1" / "manifest.json"
    manifest.chmod(0o644)
    _edit_manifest(root / "m" / "v1", lambda m: m["labels"].reverse(), reseal=True)
    with pytest.raises(RegistryError, match="not the manifest that was registered"):
        ModelRegistry(root).path("m", "v1")
    code, _, err = run_cli(["predict", "registry://m@v1", built / "texts.txt"], capsys)
    assert code == 2 and "not the manifest that was registered" in err


def test_parity_gate_fails_on_nan(built, tmp_path, monkeypatch):
    from zhcls.export import onnx as export_mod

    real = export_mod.Predictor.predict_proba
    monkeypatch.setattr(export_mod.Predictor, "predict_proba", lambda self, texts: real(self, texts) * np.nan)
    with pytest.raises(export_mod.ExportError, match="not finite"):
        export_mod.export_bundle(built / "model", tmp_path / "b", data=[Example("足球")] * 3, latency_texts=3)
    assert not (tmp_path / "b").exists() and list(tmp_path.iterdir()) == []


# -- 2. model directories ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["weights.safetensors", "tokenizer.json", "zhcls.json"])
@pytest.mark.parametrize("damage", ["flip", "truncate", "garble"])
def test_damaged_model_files_are_named(built, tmp_path, capsys, name, damage):
    model = _copy(built / "model", tmp_path / "m")
    data = bytearray((model / name).read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        data = data[: len(data) // 3]
    else:
        data = bytearray(b"\xff\xfe garbage " * 10)
    (model / name).write_bytes(bytes(data))
    code, out, err = run_cli(["predict", model, built / "texts.txt"], capsys)
    assert code == 2 and out == "" and name in err and "Traceback" not in err, err


def test_model_dirs_without_checksums_still_load(built, tmp_path, capsys):
    model = _copy(built / "model", tmp_path / "m")
    (model / "SHA256SUMS").unlink()  # a directory saved by an older zhcls
    assert load_model(model).predict(["足球比赛"]) == load_model(built / "model").predict(["足球比赛"])
    (model / "weights.safetensors").write_bytes(b"\x00" * 16)
    code, _, err = run_cli(["predict", model, built / "texts.txt"], capsys)
    assert code == 2 and "cannot load the model" in err and "Traceback" not in err


# -- 4. numerically safe training -----------------------------------------------------------------
@pytest.mark.parametrize("value", ["1e999", "inf", "nan", "-inf", "5.0"])
def test_absurd_lr_is_refused_at_load(tiny_files, tmp_path, capsys, value):
    cfg = write_config(tmp_path / "c.toml", tiny_files["train"], None)
    code, _, err = run_cli(["train", cfg, "-o", tmp_path / "run", "--set", f"training.lr={value}"], capsys)
    assert code == 2 and "training.lr" in err and not (tmp_path / "run").exists(), err
    cfg = write_config(tmp_path / "d.toml", tiny_files["train"], None, extra=f"lr = {value}\n")
    code, _, err = run_cli(["config", "validate", cfg], capsys)
    assert code == 2 and "training.lr" in err


def test_absurd_table_size_is_refused_and_the_rerun_works(tiny_files, tmp_path, capsys):
    cfg = write_config(tmp_path / "c.toml", tiny_files["train"], None, model="fasttext.v1")
    cfg.write_text(cfg.read_text(encoding="utf-8").replace('name = "fasttext.v1"', 'name = "fasttext.v1"\nbuckets = 1e11'), encoding="utf-8")
    code, _, err = run_cli(["train", cfg, "-o", tmp_path / "run"], capsys)
    assert code == 2 and "model.buckets" in err and "too large" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "config.toml").exists()


def test_a_failed_run_without_checkpoint_does_not_block_the_corrected_rerun(tiny_files, tmp_path, capsys, monkeypatch):
    from zhcls.models.neural import TorchClassifier

    cfg = write_config(tmp_path / "c.toml", tiny_files["train"], None)

    def fail(self, *args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory: you tried to allocate 400000000000 bytes")

    with monkeypatch.context() as m:
        m.setattr(TorchClassifier, "fit", fail)
        code, _, err = run_cli(["train", cfg, "-o", tmp_path / "run", "--quiet"], capsys)
    assert code == 2 and "out of memory" in err and "model.buckets" in err
    assert not (tmp_path / "run" / "config.toml").exists()
    code, _, err = run_cli(["train", cfg, "-o", tmp_path / "run", "--quiet", "--set", "training.epochs=1"], capsys)
    assert code == 0, err


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny_files, tmp_path, capsys, monkeypatch):
    import torch

    cfg = write_config(tmp_path / "c.toml", tiny_files["train"], tiny_files["dev"], extra="eval_every = 2\n")
    real = torch.nn.CrossEntropyLoss.forward
    calls = {"n": 0}

    def planted(self, logits, target):
        calls["n"] += 1
        loss = real(self, logits, target)
        return loss * float("nan") if calls["n"] >= 5 else loss

    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", planted)
    code, out, err = run_cli(["train", cfg, "-o", tmp_path / "run", "--quiet"], capsys)
    assert code == 2 and "training diverged: the loss is nan at step 5" in err and "training.lr" in err and "Traceback" not in err
    run = tmp_path / "run"
    assert not (run / "model-best").exists() and not (run / "metrics.json").exists()
    state = json.loads((run / "checkpoint" / "state.json").read_text(encoding="utf-8"))
    assert state["step"] == 4  # the evaluation before the NaN
    from safetensors.numpy import load_file

    assert all(np.isfinite(v).all() for v in load_file(str(run / "checkpoint" / "model.safetensors")).values())


def test_predict_never_prints_nan(built, tmp_path, capsys):
    import torch

    model = load_model(built / "model")
    with torch.no_grad():
        for p in model.net_.parameters():
            p.fill_(float("nan"))
    model.save(tmp_path / "m")
    code, out, err = run_cli(["predict", tmp_path / "m", built / "texts.txt"], capsys)
    assert code == 2 and "NaN" not in out and "not finite" in err


# -- 5. labels --------------------------------------------------------------------------------------
def test_single_class_training_data_is_refused(tmp_path, capsys):
    corpus = make_corpus(4)
    corpus.labels[:] = ["体育"] * len(corpus.labels)
    cfg = write_config(tmp_path / "c.toml", write_jsonl(tmp_path / "train.json", corpus), None)
    code, _, err = run_cli(["train", cfg, "-o", tmp_path / "run"], capsys)
    assert code == 2 and "train.json" in err and "'体育'" in err and "at least two labels" in err
    assert not (tmp_path / "run" / "config.toml").exists()


def test_evaluate_warns_about_labels_the_model_never_saw(built, tmp_path, capsys):
    data = tmp_path / "test.json"
    data.write_text('{"sentence": "足球比赛", "label": "体育"}\n{"sentence": "明星电影", "label": "娱乐"}\n', encoding="utf-8")
    code, _, err = run_cli(["evaluate", built / "model", data], capsys)
    assert code == 0 and "never saw" in err and "娱乐" in err


# -- 6. exit codes ----------------------------------------------------------------------------------
def test_non_utf8_stdin_names_the_line(built, capsys, monkeypatch):
    stdin = io.TextIOWrapper(io.BytesIO("足球\n".encode() + "股票".encode("gbk") + b"\n"), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", stdin)
    code, out, err = run_cli(["predict", built / "bundle", "-"], capsys)
    assert code == 2 and "<stdin>:2: not valid UTF-8" in err


def test_augment_into_a_directory(tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.json", make_corpus(3))
    (tmp_path / "out").mkdir()
    code, _, err = run_cli(["augment", data, tmp_path / "out", "-n", "1"], capsys)
    assert code == 2 and "is a directory" in err and "Traceback" not in err


def test_augment_and_labels_clean_refuse_unlabeled_input_and_writing_over_it(tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.json", make_corpus(3))
    texts = tmp_path / "texts.txt"
    texts.write_text("足球比赛\n股票大涨\n", encoding="utf-8")
    issues = tmp_path / "issues.jsonl"
    issues.write_text("", encoding="utf-8")
    for args, message in [
        (["augment", texts, tmp_path / "out.txt"], f"{texts}: format 'lines' has no labeled records for augment"),
        (["augment", data, data], "would overwrite the input"),
        (["labels", "clean", texts, "--issues", issues, "-o", tmp_path / "out.txt"], f"{texts}: format 'lines' has no labeled records for labels clean"),
    ]:
        code, _, err = run_cli(args, capsys)
        assert code == 2 and message in err and "Traceback" not in err, (args, err)


def test_registry_root_that_is_a_file_or_a_corrupt_index(built, tmp_path, capsys):
    (tmp_path / "reg").write_text("not a directory", encoding="utf-8")
    for args in (["list"], ["add", built / "bundle", "--name", "m"]):
        code, _, err = run_cli(["registry", *args, "--root", tmp_path / "reg"], capsys)
        assert code == 2 and "is a file" in err, err
    (tmp_path / "reg2").mkdir()
    (tmp_path / "reg2" / "registry.db").write_bytes(b"garbage, not sqlite" * 100)
    for args in (["list"], ["add", built / "bundle", "--name", "m"]):
        code, _, err = run_cli(["registry", *args, "--root", tmp_path / "reg2"], capsys)
        assert code == 2 and "registry.db" in err and "cannot be read" in err, err


@pytest.mark.parametrize("quality", ['"high"', "true", "[1]"])
def test_labels_clean_with_a_non_numeric_quality(tmp_path, capsys, quality):
    data = write_jsonl(tmp_path / "train.json", make_corpus(3))
    first = json.loads(data.read_text(encoding="utf-8").splitlines()[0])
    issues = tmp_path / "issues.jsonl"
    issues.write_text(
        '{"line": 1, "given_label": "%s", "suggested_label": "财经", "text": "%s", "quality": %s}\n' % (first["label_desc"], first["sentence"], quality),
        encoding="utf-8",
    )
    code, _, err = run_cli(["labels", "clean", data, "--issues", issues, "--threshold", "0.5", "-o", tmp_path / "clean.json"], capsys)
    assert code == 2 and "issues.jsonl:1: field 'quality' is not a number" in err, err


def test_issues_with_a_line_separator_in_the_text(tmp_path, capsys):
    from zhcls.quality.review import read_issues

    issues = tmp_path / "issues.jsonl"
    issues.write_text(json.dumps({"line": 1, "given_label": "a", "suggested_label": "b", "text": "一\u2028二", "quality": 0.1}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert [r["text"] for r in read_issues(issues)] == ["一\u2028二"]


# -- 7. killed exports ------------------------------------------------------------------------------
def test_stale_temp_dirs_are_removed_and_never_loaded(built, tmp_path, capsys):
    from zhcls.export.onnx import export_bundle

    dead = _copy(built / "bundle", tmp_path / ".b.999999999-deadbeef.tmp")  # no such pid
    legacy = _copy(built / "bundle", tmp_path / ".b.abc123_x.tmp")  # written before the pid was in the name
    old = time.time() - 7200
    os.utime(legacy, (old, old))
    live = tmp_path / f".b.{os.getpid()}-live.tmp"
    live.mkdir()
    with pytest.raises(BundleError, match="temporary directory of an unfinished export"):
        Predictor(dead)
    code, _, err = run_cli(["predict", dead, built / "texts.txt"], capsys)
    assert code == 2 and "temporary directory" in err
    export_bundle(built / "model", tmp_path / "b", data=[Example("足球")] * 3, latency_texts=3)
    assert not dead.exists() and not legacy.exists() and live.exists()


def test_stale_temp_files_of_killed_file_writes_are_removed_on_the_next_write(tmp_path):
    from zhcls.artifact import write_text

    dead = tmp_path / ".v.txt.999999999-k1ll3d.tmp"  # a writer that was killed mid-write (no such pid)
    live = tmp_path / f".v.txt.{os.getpid()}-busy.tmp"
    other = tmp_path / ".w.txt.999999999-k1ll3d.tmp"  # another file's: not this write's business
    for p in (dead, live, other):
        p.write_text("half", encoding="utf-8")
    write_text(tmp_path / "v.txt", "whole")
    assert (tmp_path / "v.txt").read_text() == "whole"
    assert not dead.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "v.txt"])  # its own temp file renamed


def test_sigkill_during_export_leaves_nothing_loadable(built, tmp_path):
    cmd = [sys.executable, "-m", "zhcls", "export", str(built / "model"), "-o", str(tmp_path / "b"), "--data", str(built / "texts.txt")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    partial = None
    while time.time() < deadline and proc.poll() is None:
        found = [p for p in tmp_path.glob(".b.*.tmp") if (p / "manifest.json").is_file()]
        if found:
            partial = found[0]
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    if partial is None:
        pytest.skip("the export finished before it could be killed")
    assert not (tmp_path / "b").exists()
    with pytest.raises(BundleError, match="temporary directory of an unfinished export"):
        Predictor(partial)
    from zhcls.export.onnx import export_bundle

    export_bundle(built / "model", tmp_path / "b", data=[Example("足球")] * 3, latency_texts=3)
    assert not partial.exists() and Predictor(tmp_path / "b").predict(["足球"])[0]


# -- 9. the server ----------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["gbk", "latin-1"])
def test_server_answers_an_undecodable_body_with_422(built, encoding):
    import warnings

    from zhcls.serve.http import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    client = TestClient(create_app(Predictor(built / "bundle")), raise_server_exceptions=False)
    body = '{"texts": ["足球比赛", "café"]}'.encode(encoding, errors="replace")
    r = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "UTF-8" in r.json()["detail"], r.text


# -- damaged run files ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from zhcls import load_config, train

    root = tmp_path_factory.mktemp("run")
    cfg = write_config(root / "c.toml", write_jsonl(root / "train.json", make_corpus(6, seed=1)), write_jsonl(root / "dev.json", make_corpus(2, seed=2)), model="tfidf.v1")
    return train(load_config(cfg), root / "run").run_dir


@pytest.mark.parametrize(
    "name, content, command",
    [
        ("metrics.json", b"{bad", ["runs", "compare", "RUN"]),
        ("metrics.json", b"{bad", ["runs", "list", "RUN"]),
        ("log.jsonl", b"\xff\xfe", ["report", "RUN", "-o", "OUT"]),
        ("log.jsonl", b'{"step": 1}\n[1]\n', ["report", "RUN", "-o", "OUT"]),
        ("config.toml", b"x = [", ["report", "RUN", "-o", "OUT"]),
    ],
)
def test_damaged_run_files_are_named(finished_run, tmp_path, capsys, name, content, command):
    run = _copy(finished_run, tmp_path / "run")
    (run / name).write_bytes(content)
    args = [str(run) if a == "RUN" else str(tmp_path / "report.md") if a == "OUT" else a for a in command]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and name in err and "Traceback" not in err and "unexpected" not in err, err


def test_a_damaged_checkpoint_is_named(tiny_files, tmp_path, capsys):
    cfg = write_config(tmp_path / "c.toml", tiny_files["train"], None)
    run = tmp_path / "run"
    run.mkdir()
    from zhcls.config import dump_config, load_config

    (run / "config.toml").write_text(dump_config(load_config(cfg)), encoding="utf-8")
    (run / "checkpoint").mkdir()
    (run / "checkpoint" / "state.json").write_text("{bad", encoding="utf-8")
    code, _, err = run_cli(["train", cfg, "-o", run, "--quiet"], capsys)
    assert code == 2 and "damaged checkpoint" in err and "--force" in err, err


def test_output_paths_of_the_wrong_kind(built, finished_run, tiny_files, tmp_path, capsys):
    a_dir = tmp_path / "a_dir"
    a_dir.mkdir()
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("keep me", encoding="utf-8")
    cfg = write_config(tmp_path / "c.toml", tiny_files["train"], None, model="tfidf.v1")
    cases = [
        (["report", finished_run, "-o", a_dir], "is a directory"),
        (["teacher", "label", finished_run, tiny_files["train"], "-o", a_dir], "is a directory"),
        (["export", built / "model", "-o", a_file, "--data", built / "texts.txt"], "is a file"),
        (["train", cfg, "-o", a_file], "is a file"),
        (["train", cfg, "-o", a_file, "--force"], "is a file"),
        (["augment", tiny_files["train"], "/proc/no/such/out.json"], "cannot write here"),
    ]
    for args, message in cases:
        code, _, err = run_cli(args, capsys)
        assert code == 2 and message in err and "Traceback" not in err, (args, err)
    assert a_file.read_text(encoding="utf-8") == "keep me" and not (tmp_path / ".a_file.txt.old").exists()
