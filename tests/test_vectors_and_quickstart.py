"""Pretrained vectors (trained by `zhcls embeddings train`), atomic saves, and the quickstart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import make_corpus, run_cli, write_config, write_jsonl
from zhcls.models.base import build_model


def test_embeddings_train_then_used_by_a_model(tmp_path, capsys):
    corpus = make_corpus(30)
    unlabeled = tmp_path / "unlabeled.txt"
    unlabeled.write_text("\n".join(corpus.texts) + "\n", encoding="utf-8")
    vectors = tmp_path / "vec.txt"
    code, out, err = run_cli(["embeddings", "train", unlabeled, "-o", vectors, "--dim", "16", "--min-count", "1", "--epochs", "2"], capsys)
    assert code == 0, err
    header = vectors.read_text(encoding="utf-8").splitlines()[0].split()
    assert header[1] == "16" and int(header[0]) > 20

    from zhcls.models.neural import load_vectors

    clf = build_model("textcnn.v1", {"embed_dim": 16, "num_filters": 8, "vectors": str(vectors)})
    clf.fit(corpus.texts[:30], corpus.labels[:30])
    # the vocabulary rows of the file were copied into the embedding before training began
    from zhcls.text.featurizer import Featurizer, TextParams

    featurizer = Featurizer.fit(corpus.texts[:30], TextParams())
    import torch

    emb = torch.nn.Embedding(featurizer.num_ids, 16)
    assert load_vectors(emb, featurizer, str(vectors)) == len(featurizer.vocab) - 2
    # copied in the file's direction (load_vectors rescales the rows; test_load_vectors_rescales_to_the_init_norm)
    first = vectors.read_text(encoding="utf-8").splitlines()[1].split()
    row, vec = emb.weight[featurizer.vocab.index[first[0]]].detach().numpy(), np.array(first[1:], dtype=np.float32)
    assert np.dot(row, vec) / (np.linalg.norm(row) * np.linalg.norm(vec)) == pytest.approx(1.0, abs=1e-5)


def test_load_vectors_rescales_to_the_init_norm(tmp_path):
    """Copied rows keep their direction and relative lengths, their mean norm becomes that of the initial rows;
    the padding row stays zero, uncovered rows keep their init."""
    import torch

    from zhcls.models.neural import load_vectors
    from zhcls.text.featurizer import Featurizer, TextParams

    featurizer = Featurizer.fit(["甲乙丙", "甲乙"], TextParams(min_freq=1))
    covered = ["甲", "乙"]
    assert all(c in featurizer.vocab.index for c in [*covered, "丙"])
    vec = tmp_path / "v.txt"
    vec.write_text("3 4\n甲 0.1 0 0 0\n乙 0 0.3 0 0\n无 1 1 1 1\n", encoding="utf-8")  # 无: not in the vocabulary
    torch.manual_seed(0)
    emb = torch.nn.Embedding(featurizer.num_ids, 4, padding_idx=0)
    before = emb.weight.detach().clone()
    init_norm = before[1:].norm(dim=1).mean().item()
    assert load_vectors(emb, featurizer, str(vec)) == 2
    w = emb.weight.detach()
    ia, ib = (featurizer.vocab.index[c] for c in covered)
    # mean norm of the copied rows (0.1 and 0.3, mean 0.2) scaled to the init's: factor init_norm / 0.2
    np.testing.assert_allclose(w[ia].numpy(), [0.1 * init_norm / 0.2, 0, 0, 0], rtol=1e-5)
    np.testing.assert_allclose(w[ib].numpy(), [0, 0.3 * init_norm / 0.2, 0, 0], rtol=1e-5)
    assert w[[ia, ib]].norm(dim=1).mean().item() == pytest.approx(init_norm, rel=1e-5)
    assert not w[0].any()
    others = [i for i in range(1, featurizer.num_ids) if i not in (ia, ib)]
    assert torch.equal(w[others], before[others])


def test_vectors_dimension_mismatch_is_a_config_error(tmp_path, capsys):
    vec = tmp_path / "v.txt"
    vec.write_text("1 4\n好 0.1 0.2 0.3 0.4\n", encoding="utf-8")
    train = write_jsonl(tmp_path / "t.json", make_corpus(3))
    cfg = write_config(tmp_path / "c.toml", train, None, extra="")
    code, _, err = run_cli(["train", cfg, "-o", tmp_path / "r", "--set", f'model.vectors="{vec}"', "--set", "model.embed_dim=8"], capsys)
    assert code == 2 and "embed_dim" in err


def test_failed_save_leaves_the_previous_model(tmp_path, tiny_corpus, monkeypatch):
    clf = build_model("tfidf.v1").fit(tiny_corpus.texts, tiny_corpus.labels)
    clf.save(tmp_path / "m")
    before = (tmp_path / "m" / "weights.safetensors").read_bytes()

    def boom(path):
        (path / "weights.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(clf, "_save_files", boom)
    with pytest.raises(OSError):
        clf.save(tmp_path / "m")
    assert (tmp_path / "m" / "weights.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary directory left behind


def test_quickstart_small(tmp_path, capsys):
    pytest.importorskip("snownlp")
    out = tmp_path / "qs"
    code, stdout, err = run_cli(
        ["quickstart", "-o", out, "--set", 'build.candidates=["fasttext.v1"]', "--set", "build.epochs=1", "--set", "build.int8=false",
         "--set", "model.max_len=32", "--set", "training.threads=1", "--quiet"], capsys
    )
    assert code == 0, err
    assert "chosen:" in stdout and str(out / "bundle") in stdout
    summary = json.loads((out / "build.json").read_text())
    assert [r["name"] for r in summary["candidates"]] == ["fasttext.v1"]  # the full candidate set: tests/test_build.py
    metrics = json.loads((Path(summary["chosen_run"]) / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.8  # a real corpus, learnt in one epoch
    counts = {name: sum(1 for _ in open(tmp_path / "qs-data" / f"{name}.tsv", encoding="utf-8")) for name in ("train", "dev", "test")}
    assert counts["train"] > 10_000 and counts["dev"] > 1000 and counts["test"] > 1000
    texts = {name: {l.rsplit("\t", 1)[0] for l in open(tmp_path / "qs-data" / f"{name}.tsv", encoding="utf-8")} for name in counts}
    assert not (texts["train"] & texts["test"]) and not (texts["train"] & texts["dev"])
