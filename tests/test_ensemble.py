"""ensemble.v1's combiners: what each computes, cross-fitting that never scores a row with a combiner that saw
it, "auto"'s choice, and the served bundle equal to the model for every method."""

from __future__ import annotations

import numpy as np
import pytest

from zhcls.config import TrainingConfig
from zhcls.data.example import Example
from zhcls.eval.probs import softmax
from zhcls.models import ensemble
from zhcls.models.base import build_model
from zhcls.models.ensemble import EPS, EnsembleParams, choose_method, combine, cross_fit, fit_combiner, fit_loglinear


def _flat_and_sharp(n: int = 400, k: int = 10, seed: int = 0):
    """Member 0 is right 90% of the time but nearly uniform; member 1 is sure of itself and right half the time."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    flat = np.full((n, k), 1.0)
    sharp = np.full((n, k), 0.01)
    for i in range(n):
        flat[i, y[i] if rng.random() < 0.9 else (y[i] + 1) % k] += 0.25
        sharp[i, y[i] if rng.random() < 0.5 else rng.integers(0, k)] = 1.0
    return np.stack([flat / flat.sum(1, keepdims=True), sharp / sharp.sum(1, keepdims=True)]), y


def test_loglinear_is_the_weighted_product_of_experts_served_as_stacking():
    stack, y = _flat_and_sharp()
    w, coef, intercept = fit_combiner(stack, y, EnsembleParams(members=("a", "b"), method="loglinear"))
    expected = softmax(np.tensordot(w, np.log(np.clip(stack, EPS, 1.0)), axes=1))
    np.testing.assert_allclose(combine(stack, w, coef, intercept), expected, atol=1e-9)
    assert (w >= 0).all()
    assert w[0] > 1.0, "the flat but accurate member is sharpened (a weight above 1 is a temperature below 1)"


def test_loglinear_reaches_the_minimum_of_its_convex_loss():
    stack, y = _flat_and_sharp(seed=1)
    w = fit_loglinear(stack, y)
    logp = np.log(np.clip(stack, EPS, 1.0))

    def nll(v):
        z = np.tensordot(v, logp, axes=1)
        return float(-(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1))).mean())

    rng = np.random.default_rng(2)
    assert all(nll(w) <= nll(np.clip(w + rng.normal(0, 0.05, w.shape), 0, None)) + 1e-9 for _ in range(20))


def test_auto_keeps_the_product_when_the_mean_lets_the_sharp_member_decide():
    stack, y = _flat_and_sharp(seed=3)
    method, oof, tried = choose_method(stack, y, EnsembleParams(members=("a", "b"), method="auto"), seed=0, metric="accuracy")
    assert set(tried) == {"weights", "loglinear"} and method == "loglinear"
    assert tried["loglinear"]["accuracy"] > tried["weights"]["accuracy"]
    assert (oof.argmax(1) == y).mean() == pytest.approx(tried["loglinear"]["accuracy"], abs=1e-6)


@pytest.mark.parametrize("method", ["weights", "loglinear", "stacking"])
def test_cross_fitting_never_scores_a_row_with_a_combiner_fitted_on_it(method, monkeypatch):
    stack, y = _flat_and_sharp(n=60)
    stack[0, :, 0] += np.arange(60) * 1e-6  # a fingerprint of each row, to see which rows a fit got
    fingerprint = {round(float(v), 9): i for i, v in enumerate(stack[0, :, 0])}
    real = ensemble.fit_combiner
    fits: list[set[int]] = []

    def spy(s, yy, params):
        fits.append({fingerprint[round(float(v), 9)] for v in s[0, :, 0]})
        return real(s, yy, params)

    monkeypatch.setattr(ensemble, "fit_combiner", spy)
    scored: dict[int, int] = {}
    real_combine = ensemble.combine

    def combine_spy(s, *a):
        for v in s[0, :, 0]:
            scored[fingerprint[round(float(v), 9)]] = len(fits) - 1
        return real_combine(s, *a)

    monkeypatch.setattr(ensemble, "combine", combine_spy)
    cross_fit(stack, y, EnsembleParams(members=("a", "b"), method=method, folds=5), seed=0)
    assert len(fits) == 5 and sorted(scored) == list(range(60))
    assert all(row not in fits[fit] for row, fit in scored.items())


@pytest.mark.parametrize("method", ["auto", "weights", "loglinear", "stacking"])
def test_every_method_exports_a_bundle_equal_to_the_model(method, tmp_path, tiny_corpus):
    from zhcls import load_model
    from zhcls.export.onnx import export_bundle
    from zhcls.serve.predictor import Predictor

    members = ensemble.Ensemble.tiny_params(tmp_path / "members", tiny_corpus.texts, tiny_corpus.labels)["members"]
    clf = build_model("ensemble.v1", {"members": members, "method": method, "folds": 2}, TrainingConfig())
    clf.fit(tiny_corpus.texts, tiny_corpus.labels, eval_set=(tiny_corpus.texts, tiny_corpus.labels))
    assert clf.fit_report()["method"] in (("weights", "loglinear") if method == "auto" else (method,))
    clf.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.fit_report()["method"] == clf.fit_report()["method"]
    texts = list(tiny_corpus.texts[:12]) + ["没见过的字", ""]
    export_bundle(tmp_path / "m", tmp_path / "b", data=[Example(t) for t in texts], latency_texts=5)
    np.testing.assert_allclose(Predictor(tmp_path / "b").predict_proba(texts), again.predict_proba(texts), atol=1e-4)
    if method == "weights":  # int8: every member's weights, the TF-IDF member's included
        int8 = export_bundle(tmp_path / "m", tmp_path / "q", data=[Example(t) for t in texts], quantize="int8", latency_texts=5)
        assert int8["precision"] == "int8" and any(name.endswith("linear.safetensors") for name in int8["files"])
        np.testing.assert_allclose(Predictor(tmp_path / "q").predict_proba(texts), again.predict_proba(texts), atol=0.05)
