"""The model registry: add (verified, immutable), promote, resolve registry:// URIs, concurrent adds."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from conftest import make_corpus, run_cli, write_config, write_jsonl


@pytest.fixture()
def cli():
    """The real `zhcls` app, run in-process through zhcls.cli.main (same exit-code mapping)."""
    return run_cli


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from zhcls import load_config, train
    from zhcls.export.onnx import export_bundle

    root = tmp_path_factory.mktemp("registry_bundle")
    train_file = write_jsonl(root / "train.json", make_corpus(12, seed=1))
    dev_file = write_jsonl(root / "dev.json", make_corpus(4, seed=2))
    run = train(load_config(write_config(root / "c.toml", train_file, dev_file, model="tfidf.v1")), root / "run").run_dir
    export_bundle(run, root / "bundle", latency_texts=10)
    return root / "bundle"


def test_add_promote_resolve_and_serve(bundle, tmp_path, cli, capsys, monkeypatch):
    from zhcls.serve.bundle import load_manifest
    from zhcls.serve.model_registry import ModelRegistry, resolve_bundle
    from zhcls.serve.predictor import Predictor

    root = tmp_path / "reg"
    code, out, err = cli(["registry", "add", bundle, "--name", "news", "--version", "v1", "--root", root], capsys)
    assert code == 0, err
    assert out.strip() == "news@v1"
    code, out, _ = cli(["registry", "add", bundle, "--name", "news", "--root", root], capsys)  # a timestamp id
    assert code == 0
    v2 = out.strip().split("@")[1]
    assert len(v2) > 10 and v2[:4].isdigit()

    reg = ModelRegistry(root)
    assert [r["version"] for r in reg.list("news")] == ["v1", v2]
    copy = root / "news" / "v1"
    assert load_manifest(copy)["files"] == load_manifest(bundle)["files"]  # verified, byte-identical copy
    assert not any(p.stat().st_mode & 0o222 for p in copy.iterdir())  # read-only files

    code, _, err = cli(["registry", "resolve", "registry://news@production", "--root", root], capsys)
    assert code == 2 and "nothing is promoted to production yet" in err
    code, out, _ = cli(["registry", "promote", "news", "v1", "--root", root], capsys)
    assert code == 0 and out.strip() == "news@production -> v1"
    assert resolve_bundle("registry://news@production", root) == copy
    assert resolve_bundle("registry://news", root) == copy  # no @: production
    assert resolve_bundle("registry://news@latest", root) == root / "news" / v2
    assert resolve_bundle(f"registry://news@{v2}", root) == root / "news" / v2
    assert resolve_bundle(bundle) == bundle  # a plain path passes through
    assert resolve_bundle(Path("registry://news@production"), root) == copy  # a typer Path argument folds the "//"

    assert cli(["registry", "promote", "news", v2, "--root", root], capsys)[0] == 0  # the alias moves
    cli(["registry", "promote", "news", "v1", "--alias", "staging", "--root", root], capsys)
    rows = {r["version"]: r for r in reg.list("news")}
    assert rows["v1"]["aliases"] == ["staging"] and rows[v2]["aliases"] == ["production"]

    monkeypatch.setenv("ZHCLS_REGISTRY", str(root))  # the root from the environment
    served = Predictor(resolve_bundle("registry://news@production"))  # what `zhcls serve registry://...` loads
    assert served.predict(["足球比赛冠军", "股票基金投资"]) == ["体育", "财经"]
    code, out, _ = cli(["registry", "list"], capsys)
    assert code == 0 and "production" in out and "staging" in out and "tfidf.v1" in out
    code, out, _ = cli(["registry", "list", "news", "--json"], capsys)
    assert [r["version"] for r in json.loads(out)] == ["v1", v2]
    events = sqlite3.connect(root / "registry.db").execute("SELECT action, version, alias FROM events ORDER BY id").fetchall()
    assert events == [("add", "v1", None), ("add", v2, None), ("promote", "v1", "production"), ("promote", v2, "production"), ("promote", "v1", "staging")]


def test_versions_are_immutable_and_input_is_checked(bundle, tmp_path, cli, capsys):
    import shutil

    root = tmp_path / "reg"
    assert cli(["registry", "add", bundle, "--name", "news", "--version", "v1", "--root", root], capsys)[0] == 0
    before = (root / "news" / "v1" / "manifest.json").read_bytes()
    code, _, err = cli(["registry", "add", bundle, "--name", "news", "--version", "v1", "--root", root], capsys)
    assert code == 2 and "already registered; versions are immutable" in err
    assert (root / "news" / "v1" / "manifest.json").read_bytes() == before

    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    (tampered / "tokenizer.json").write_text("{}", encoding="utf-8")
    code, _, err = cli(["registry", "add", tampered, "--name", "news", "--version", "v2", "--root", root], capsys)
    assert code == 2 and "sha256 does not match" in err
    assert not (root / "news" / "v2").exists()

    for args, message in (
        (["add", tmp_path, "--name", "news"], "not a bundle"),
        (["add", bundle, "--name", "../evil"], "not allowed"),
        (["add", bundle, "--name", "news", "--version", "latest"], "reserved"),
        (["promote", "news", "v9"], "no alias or version 'v9'"),
        (["promote", "nope", "v1"], "no model named 'nope'"),
        (["resolve", "registry://"], "not a registry URI"),
    ):
        code, _, err = cli(["registry", *args, "--root", root], capsys)
        assert code == 2 and message in err, (args, err)
    code, _, err = cli(["registry", "list", "--root", tmp_path / "empty"], capsys)
    assert code == 0 and "empty" in err
    assert sorted(p.name for p in (root / ".staging").iterdir()) == []  # no copies left behind


def _add_many(root: str, bundle: str, tag: str, n: int, barrier, results) -> None:
    from zhcls.serve.model_registry import ModelRegistry, RegistryError

    reg = ModelRegistry(root)
    barrier.wait()
    added, refused = [], 0
    for i in range(n):
        added.append(reg.add(bundle, "news", f"{tag}-{i}")["version"])
        try:
            reg.add(bundle, "news", "shared")  # every process races for the same version id
            added.append("shared")
        except RegistryError:
            refused += 1
    reg.promote("news", added[0])
    results.put((tag, added, refused))


def test_concurrent_adds_never_corrupt_the_index(bundle, tmp_path):
    from zhcls.serve.bundle import load_manifest
    from zhcls.serve.model_registry import ModelRegistry

    ctx = multiprocessing.get_context("spawn")
    procs, per = 4, 3
    barrier, results = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=_add_many, args=(str(tmp_path / "reg"), str(bundle), f"p{k}", per, barrier, results)) for k in range(procs)]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0

    added = [v for _, versions, _ in outcomes for v in versions]
    assert added.count("shared") == 1  # exactly one process won the shared id; the others were refused
    assert sum(refused for *_, refused in outcomes) == procs * per - 1
    db = sqlite3.connect(tmp_path / "reg" / "registry.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = ModelRegistry(tmp_path / "reg").list("news")
    assert sorted(r["version"] for r in rows) == sorted(added) and len(rows) == procs * per + 1
    for r in rows:
        load_manifest(r["path"])  # every registered copy is complete and verifies
    assert len([r for r in rows if "production" in r["aliases"]]) == 1
    dirs = {p.name for p in (tmp_path / "reg" / "news").iterdir()}
    assert dirs == set(added)  # no directory without an index row, and none missing
    assert list((tmp_path / "reg" / ".staging").iterdir()) == []
