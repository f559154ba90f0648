"""The estimator contract, checked for every registered model (sklearn's check_estimator idea)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zhcls import load_model
from zhcls.config import TrainingConfig
from zhcls.errors import NotFittedError
from zhcls.models.base import build_model
from zhcls.registry import models

# Small and fast: the contract does not depend on model size.
SMALL = {
    "textcnn.v1": {"embed_dim": 16, "num_filters": 16},
    "bigru.v1": {"embed_dim": 16, "hidden_size": 16},
    "fasttext.v1": {"embed_dim": 16, "buckets": 1000},
    "tfidf.v1": {},
}
# transformer.v1 needs a local checkpoint; tests/test_distill.py builds a tiny BERT and checks the same contract.
NEEDS_CHECKPOINT = {"transformer.v1"}
FAST = TrainingConfig(epochs=15, batch_size=8, lr=1e-2, patience=0)


@pytest.fixture(scope="module")
def fitted(tiny_corpus):
    return {name: build_model(name, SMALL[name], FAST).fit(tiny_corpus.texts, tiny_corpus.labels) for name in sorted(SMALL)}


def test_registry_snapshot():
    from pathlib import Path

    expected = json.loads((Path(__file__).parent / "registry_snapshot.json").read_text())
    assert {"models": models.names()} == expected
    assert set(models.names()) == set(SMALL) | NEEDS_CHECKPOINT


@pytest.mark.parametrize("name", sorted(SMALL))
def test_fit_returns_self_and_overfits(name, tiny_corpus):
    clf = build_model(name, SMALL[name], FAST)
    assert clf.fit(tiny_corpus.texts, tiny_corpus.labels) is clf
    assert clf.predict(tiny_corpus.texts) == tiny_corpus.labels  # a separable toy set is learnt exactly


@pytest.mark.parametrize("name", sorted(SMALL))
def test_predict_proba_shape_and_order(name, fitted, tiny_corpus):
    clf = fitted[name]
    proba = clf.predict_proba(tiny_corpus.texts)
    assert proba.shape == (len(tiny_corpus.texts), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert list(clf.classes_.labels) == sorted(set(tiny_corpus.labels))
    assert clf.predict(tiny_corpus.texts) == [clf.classes_.labels[i] for i in proba.argmax(1)]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_not_fitted_error(name):
    with pytest.raises(NotFittedError):
        build_model(name, SMALL[name]).predict_proba(["你好"])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_batch_equals_one_at_a_time(name, fitted, tiny_corpus):
    clf = fitted[name]
    texts = tiny_corpus.texts[:5] + ["短", "一个非常非常长的句子，" * 5]
    batch = clf.predict_proba(texts)
    single = np.vstack([clf.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(batch, single, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_save_load_roundtrip(name, fitted, tiny_corpus, tmp_path):
    clf = fitted[name]
    clf.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(clf)
    assert loaded.classes_ == clf.classes_
    np.testing.assert_allclose(loaded.predict_proba(tiny_corpus.texts), clf.predict_proba(tiny_corpus.texts), atol=1e-6)
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"zhcls.json", "config.toml", "tokenizer.json", "weights.safetensors"} <= files
    assert not any(p.suffix in (".pkl", ".pickle", ".pt", ".bin") for p in (tmp_path / "m").iterdir())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_unknown_text_does_not_crash(name, fitted):
    proba = fitted[name].predict_proba(["", "😀😀", "zzzz qqqq"])
    assert proba.shape == (3, 3) and np.isfinite(proba).all()


@pytest.mark.parametrize("name", [n for n in sorted(SMALL) if n != "tfidf.v1"])
def test_seeded_determinism(name, tiny_corpus):
    a = build_model(name, SMALL[name], TrainingConfig(epochs=2, batch_size=8)).fit(tiny_corpus.texts, tiny_corpus.labels)
    b = build_model(name, SMALL[name], TrainingConfig(epochs=2, batch_size=8)).fit(tiny_corpus.texts, tiny_corpus.labels)
    np.testing.assert_array_equal(a.predict_proba(tiny_corpus.texts), b.predict_proba(tiny_corpus.texts))
