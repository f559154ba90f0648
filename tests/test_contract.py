"""The estimator contract, checked for every registered model (sklearn's check_estimator idea).

Every name in `models.names()` is covered, with the small params the model declares (`tiny_params`):
fit, predict_proba order, batch = one at a time, save/load equality without pickle, and export parity
(or a clear ExportError)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from zhcls import load_model
from zhcls.config import TrainingConfig
from zhcls.errors import ExportError, NotFittedError
from zhcls.models.base import build_model
from zhcls.registry import models

FAST = TrainingConfig(epochs=15, batch_size=8, lr=1e-2, patience=0)
# tagger.v1 has no class head (tests/test_tagging.py covers it); joint.v1 keeps the contract as a classifier
NAMES = [n for n in models.names() if getattr(models.get(n).factory, "classifies", True)]
SEEDED = [n for n in NAMES if n not in ("tfidf.v1", "ensemble.v1")]  # these two have no random state


def _tiny(name: str, work_dir: Path, corpus) -> dict:
    if name == "transformer.v1":
        pytest.importorskip("transformers")
    return models.get(name).factory.tiny_params(work_dir, corpus.texts, corpus.labels)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("contract")


@pytest.fixture(scope="module")
def params(work, tiny_corpus):
    return {}


def _params(params, name, work, corpus):
    if name not in params:
        params[name] = _tiny(name, work / name.replace(".", "_"), corpus)
    return params[name]


def _fit(name, params, work, corpus, training=FAST):
    clf = build_model(name, _params(params, name, work, corpus), training)
    return clf.fit(corpus.texts, corpus.labels, eval_set=(corpus.texts, corpus.labels))


@pytest.fixture(scope="module")
def fitted(params, work, tiny_corpus):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _fit(name, params, work, tiny_corpus)
        return cache[name]

    return get


def test_registry_snapshot():
    expected = json.loads((Path(__file__).parent / "registry_snapshot.json").read_text())
    assert {"models": models.names()} == expected


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_overfits(name, params, work, tiny_corpus):
    clf = build_model(name, _params(params, name, work, tiny_corpus), FAST)
    assert clf.fit(tiny_corpus.texts, tiny_corpus.labels, eval_set=(tiny_corpus.texts, tiny_corpus.labels)) is clf
    if name != "transformer.v1":  # a random 2-layer BERT at 15 epochs need not separate the toy set
        assert clf.predict(tiny_corpus.texts) == tiny_corpus.labels


@pytest.mark.parametrize("name", NAMES)
def test_predict_proba_shape_and_order(name, fitted, tiny_corpus):
    clf = fitted(name)
    proba = clf.predict_proba(tiny_corpus.texts)
    assert proba.shape == (len(tiny_corpus.texts), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert isinstance(clf.classes_, np.ndarray) and list(clf.classes_) == sorted(set(tiny_corpus.labels))  # as in scikit-learn
    assert clf.predict(tiny_corpus.texts) == list(clf.classes_[proba.argmax(1)])
    assert [clf.labels_.index(label) for label in clf.classes_] == list(range(len(clf.classes_)))


@pytest.mark.parametrize("name", NAMES)
def test_not_fitted_error(name, params, work, tiny_corpus):
    with pytest.raises(NotFittedError):
        build_model(name, _params(params, name, work, tiny_corpus)).predict_proba(["你好"])


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_one_at_a_time(name, fitted, tiny_corpus):
    clf = fitted(name)
    texts = tiny_corpus.texts[:5] + ["短", "一个非常非常长的句子，" * 5]
    batch = clf.predict_proba(texts)
    single = np.vstack([clf.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(batch, single, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_roundtrip(name, fitted, tiny_corpus, tmp_path):
    clf = fitted(name)
    clf.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(clf)
    assert list(loaded.classes_) == list(clf.classes_) and loaded.labels_ == clf.labels_
    np.testing.assert_allclose(loaded.predict_proba(tiny_corpus.texts), clf.predict_proba(tiny_corpus.texts), atol=1e-6)
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"zhcls.json", "config.toml"} <= files
    assert not any(p.suffix in (".pkl", ".pickle", ".pt", ".bin") for p in (tmp_path / "m").rglob("*"))


@pytest.mark.parametrize("name", NAMES)
def test_export_parity_or_clear_refusal(name, fitted, tiny_corpus, tmp_path):
    from zhcls.data.example import Example
    from zhcls.export.onnx import export_bundle
    from zhcls.serve.predictor import Predictor

    fitted(name).save(tmp_path / "m")
    examples = [Example(t, l) for t, l in zip(tiny_corpus.texts, tiny_corpus.labels)]
    try:
        manifest = export_bundle(tmp_path / "m", tmp_path / "b", data=examples, latency_texts=5)
    except ExportError as exc:
        assert exc.hint, "a refusal says what to do instead"
        return
    assert manifest["parity"]["fp32"]["max_abs_diff"] <= 1e-4
    got = Predictor(tmp_path / "b").predict_proba(tiny_corpus.texts)
    np.testing.assert_allclose(got, load_model(tmp_path / "m").predict_proba(tiny_corpus.texts), atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_text_does_not_crash(name, fitted):
    proba = fitted(name).predict_proba(["", "😀😀", "zzzz qqqq"])
    assert proba.shape == (3, 3) and np.isfinite(proba).all()


@pytest.mark.parametrize("name", SEEDED)
def test_seeded_determinism(name, params, work, tiny_corpus):
    training = TrainingConfig(epochs=2, batch_size=8)
    a, b = (_fit(name, params, work, tiny_corpus, training) for _ in range(2))
    np.testing.assert_array_equal(a.predict_proba(tiny_corpus.texts), b.predict_proba(tiny_corpus.texts))
