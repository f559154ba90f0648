"""Bundles: parity with the trained model, int8, self-verification, and prediction without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_cli
from zhcls.config import TrainingConfig
from zhcls.data.example import Example
from zhcls.models.base import build_model
from zhcls.serve import Predictor
from zhcls.serve.bundle import BundleError

SMALL = {
    "textcnn.v1": {"embed_dim": 16, "num_filters": 16},
    "bigru.v1": {"embed_dim": 16, "hidden_size": 16},
    "fasttext.v1": {"embed_dim": 16, "buckets": 1000},
    "tfidf.v1": {},
}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tiny_corpus):
    root = tmp_path_factory.mktemp("models")
    for name, params in SMALL.items():
        build_model(name, params, TrainingConfig(epochs=10, batch_size=8, lr=1e-2)).fit(tiny_corpus.texts, tiny_corpus.labels).save(root / name)
    return root


def _examples(corpus):
    extra = ["一个很长很长的句子，" * 40, "短", "😀", ""]
    return [Example(t, l) for t, l in zip(corpus.texts, corpus.labels)] + [Example(t) for t in extra]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_export_matches_the_model(name, models_dir, tiny_corpus, tmp_path):
    from zhcls import load_model
    from zhcls.export.onnx import export_bundle

    examples = _examples(tiny_corpus)
    manifest = export_bundle(models_dir / name, tmp_path / "b", data=examples, latency_texts=20)
    assert manifest["parity"]["fp32"]["max_abs_diff"] <= 1e-4 and manifest["parity"]["fp32"]["label_agreement"] == 1.0
    assert set(manifest["files"]) == {p.name for p in (tmp_path / "b").iterdir()} - {"manifest.json"}
    assert manifest["latency"]["p50_ms"] > 0 and sum(manifest["size_bytes"].values()) > 0
    assert manifest["labels"] == sorted(set(tiny_corpus.labels)) and manifest["model"] == name
    texts = [e.text for e in examples]
    np.testing.assert_allclose(Predictor(tmp_path / "b").predict_proba(texts), load_model(models_dir / name).predict_proba(texts), atol=1e-4)


def test_int8_records_the_change(models_dir, tiny_corpus, tmp_path):
    from zhcls.export.onnx import export_bundle

    manifest = export_bundle(models_dir / "textcnn.v1", tmp_path / "b", quantize="int8", data=_examples(tiny_corpus), latency_texts=20)
    q = manifest["parity"]["int8"]
    assert manifest["precision"] == "int8" and 0 <= q["label_agreement"] <= 1
    assert q["accuracy_change"] == pytest.approx(q["accuracy_int8"] - q["accuracy_fp32"])
    assert Predictor(tmp_path / "b").predict(["足球比赛"])[0] in manifest["labels"]


def test_tfidf_int8_stores_one_scale_per_class_and_predicts_as_before(models_dir, tiny_corpus, tmp_path):
    from safetensors.numpy import load_file

    from zhcls.export.onnx import export_bundle

    examples = _examples(tiny_corpus)
    fp32 = export_bundle(models_dir / "tfidf.v1", tmp_path / "fp32", data=examples, latency_texts=5)
    int8 = export_bundle(models_dir / "tfidf.v1", tmp_path / "int8", data=examples, quantize="int8", latency_texts=5)
    assert int8["precision"] == "int8" and int8["parity"]["int8"]["label_agreement"] == 1.0
    coef = load_file(str(tmp_path / "fp32" / "linear.safetensors"))["coef"]
    q = load_file(str(tmp_path / "int8" / "linear.safetensors"))
    assert "coef" not in q and q["coef_int8"].dtype == np.int8
    scale = np.repeat(q["coef_scale"], int(q["coef_block"][0]), axis=1)[:, : coef.shape[1]]  # one per block of weights
    assert np.all(np.abs(q["coef_int8"].astype(np.float32) * scale - coef) <= scale / 2 + 1e-7)
    assert int8["size_bytes"]["linear.safetensors"] < 0.5 * fp32["size_bytes"]["linear.safetensors"]
    texts = [e.text for e in examples]
    np.testing.assert_allclose(Predictor(tmp_path / "int8").predict_proba(texts), Predictor(tmp_path / "fp32").predict_proba(texts), atol=0.02)


def test_parity_gate_refuses_and_writes_nothing(models_dir, tiny_corpus, tmp_path, monkeypatch):
    from zhcls.export import onnx as export_mod

    real = export_mod.Predictor.predict_proba
    monkeypatch.setattr(export_mod.Predictor, "predict_proba", lambda self, texts: np.roll(real(self, texts), 1, axis=1))
    with pytest.raises(export_mod.ExportError, match="disagrees"):
        export_mod.export_bundle(models_dir / "textcnn.v1", tmp_path / "b", data=_examples(tiny_corpus))
    assert list(tmp_path.iterdir()) == []


def test_tampered_and_incomplete_bundles_are_refused(models_dir, tiny_corpus, tmp_path, capsys):
    from zhcls.export.onnx import export_bundle

    export_bundle(models_dir / "textcnn.v1", tmp_path / "b", data=_examples(tiny_corpus), latency_texts=10)
    tok = tmp_path / "b" / "tokenizer.json"
    data = json.loads(tok.read_text(encoding="utf-8"))
    data["max_len"] = 3
    tok.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BundleError, match="sha256 does not match"):
        Predictor(tmp_path / "b")
    code, _, err = run_cli(["predict", tmp_path / "b", tmp_path / "b" / "manifest.json"], capsys)
    assert code == 2 and "tokenizer.json" in err
    tok.unlink()
    with pytest.raises(BundleError, match="tokenizer.json is missing"):
        Predictor(tmp_path / "b")


def test_predict_without_torch(models_dir, tiny_corpus, tmp_path):
    from zhcls.export.onnx import export_bundle

    export_bundle(models_dir / "textcnn.v1", tmp_path / "b", data=_examples(tiny_corpus), latency_texts=10)
    block = "import sys; sys.modules.update(torch=None, sklearn=None, scipy=None)\n"  # what `zhcls[serve]` lacks
    script = (
        block +
        "from zhcls.serve import Predictor\n"
        f"p = Predictor({str(tmp_path / 'b')!r})\n"
        "print(p.predict_scored(['足球比赛冠军'], top_k=1)[0].label, p.predict(['足球比赛冠军'])[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["体育", "体育"]
    done = subprocess.run(
        [sys.executable, "-c", block + "from zhcls.cli import main\nmain()", "predict", str(tmp_path / "b"), "-"],
        input="股票基金\n", capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["label"] == "财经"


def test_export_cli(models_dir, tiny_corpus, tmp_path, capsys):
    data = tmp_path / "texts.txt"
    data.write_text("\n".join(tiny_corpus.texts), encoding="utf-8")
    code, out, err = run_cli(["export", models_dir / "fasttext.v1", "-o", tmp_path / "b", "--data", data], capsys)
    assert code == 0, err
    assert "parity" in out and "p50" in out
    code, _, err = run_cli(["export", models_dir / "tfidf.v1", "-o", tmp_path / "c", "--quantize", "int4"], capsys)
    assert code == 2 and "int8" in err


def test_training_in_a_serving_install_says_what_to_install(tiny_corpus, tmp_path):
    from conftest import make_corpus, write_config, write_jsonl

    cfg = write_config(tmp_path / "c.toml", write_jsonl(tmp_path / "t.json", make_corpus(3)), None)
    block = "import sys; sys.modules.update(torch=None, sklearn=None, scipy=None)\n"
    done = subprocess.run([sys.executable, "-c", block + "from zhcls.cli import main\nmain()", "train", str(cfg), "-o", str(tmp_path / "r")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "zhcls[train]" in done.stderr and "Traceback" not in done.stderr


def test_predict_returns_labels_and_predict_scored_predictions(models_dir, tiny_corpus, tmp_path):
    from zhcls.export.onnx import export_bundle

    export_bundle(models_dir / "fasttext.v1", tmp_path / "b", data=_examples(tiny_corpus), latency_texts=5)
    p = Predictor(tmp_path / "b")
    texts = tiny_corpus.texts[:4]
    proba = p.predict_proba(texts)
    assert p.predict(texts) == list(p.classes_[proba.argmax(1)])  # labels, as every model's predict
    assert isinstance(p.classes_, np.ndarray) and p.labels_.index(p.classes_[1]) == 1
    scored = p.predict_scored(texts, top_k=2)
    assert [s.label for s in scored] == p.predict(texts) and all(len(s.scores) == 2 for s in scored)


def test_evaluate_accepts_a_bundle(models_dir, tiny_corpus, tmp_path, capsys):
    from conftest import write_jsonl
    from zhcls.export.onnx import export_bundle

    export_bundle(models_dir / "tfidf.v1", tmp_path / "b", data=_examples(tiny_corpus), latency_texts=5)
    data = write_jsonl(tmp_path / "test.json", tiny_corpus)
    code, from_bundle, err = run_cli(["evaluate", str(tmp_path / "b"), str(data), "--json"], capsys)
    assert code == 0, err
    code, from_model, err = run_cli(["evaluate", str(models_dir / "tfidf.v1"), str(data), "--json"], capsys)
    assert code == 0, err
    assert json.loads(from_bundle) == json.loads(from_model)  # parity: the same labels, so the same metrics


def test_tfidf_model_dir_and_bundle_share_one_tokenizer_schema(models_dir, tiny_corpus, tmp_path):
    from safetensors.numpy import load_file, save_file

    from zhcls import load_model
    from zhcls.artifact import write_checksums
    from zhcls.export.onnx import export_bundle

    export_bundle(models_dir / "tfidf.v1", tmp_path / "b", data=_examples(tiny_corpus), latency_texts=5)
    saved = json.loads((models_dir / "tfidf.v1" / "tokenizer.json").read_text(encoding="utf-8"))
    assert saved == json.loads((tmp_path / "b" / "tokenizer.json").read_text(encoding="utf-8"))
    assert saved["kind"] == "char_ngram_tfidf"
    # a model directory from before the shared schema: {"kind": "tfidf", "vocab", "C"}, no C in the weights
    old = tmp_path / "old"
    old.mkdir()
    for f in (models_dir / "tfidf.v1").iterdir():
        if f.name != "SHA256SUMS":
            (old / f.name).write_bytes(f.read_bytes())
    model = load_model(models_dir / "tfidf.v1")
    (old / "tokenizer.json").write_text(json.dumps({"kind": "tfidf", "analyzer": "char", "vocab": saved["vocab"], "C": model.C_}), encoding="utf-8")
    arrays = {k: v for k, v in load_file(str(old / "weights.safetensors")).items() if k != "C"}
    save_file(arrays, str(old / "weights.safetensors"))
    write_checksums(old)
    loaded = load_model(old)
    assert loaded.C_ == model.C_
    np.testing.assert_allclose(loaded.predict_proba(tiny_corpus.texts), model.predict_proba(tiny_corpus.texts), atol=1e-7)


def test_latency_texts_are_spread_over_the_split_not_its_first_label(monkeypatch, models_dir, tiny_corpus, tmp_path):
    from zhcls.export import onnx

    assert onnx.spread(list(range(10)), 4) == [0, 3, 6, 9] and onnx.spread([1, 2], 5) == [1, 2]
    ordered = sorted(zip(tiny_corpus.labels, tiny_corpus.texts))  # a file ordered by label, as online_shopping's is
    timed = []
    real = onnx.measure_latency
    monkeypatch.setattr(onnx, "measure_latency", lambda predictor, texts, **kw: timed.extend(texts) or real(predictor, texts, **kw))
    onnx.export_bundle(models_dir / "textcnn.v1", tmp_path / "b", data=[Example(t, label) for label, t in ordered], latency_texts=6)
    labels = {text: label for label, text in ordered}
    assert len(timed) == 6 and {labels[t] for t in timed} == set(tiny_corpus.labels)
