"""tfidf.v1's two losses: logistic regression, a linear SVM whose decision values one dev-fitted temperature
turns into probabilities, and "auto" choosing between them on dev."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from zhcls.config import TrainingConfig
from zhcls.eval.probs import softmax
from zhcls.models.base import build_model, load_model
from zhcls.models.tfidf import fit_temperature


def _corpus(k: int, n: int, seed: int):
    """Texts whose class shows in one of its characters, with every 5th label noisy."""
    rng = np.random.default_rng(seed)
    marks = "天地人和风雨山水"[:k]
    texts, labels = [], []
    for i in range(n):
        c = int(rng.integers(0, k))
        filler = "".join(rng.choice(list("的了是在有我他这个们中来上大为"), size=6))
        texts.append(filler[:3] + marks[c] + filler[3:])
        labels.append(f"c{(c + 1) % k if i % 5 == 0 else c}")
    return texts, labels


def _fit(loss: str, k: int = 3, **params):
    texts, labels = _corpus(k, 240, seed=k)
    dev = _corpus(k, 80, seed=k + 100)
    model = build_model("tfidf.v1", {"loss": loss, **params}, TrainingConfig(metric="accuracy"))
    return model.fit(texts, labels, eval_set=dev), dev


@pytest.mark.parametrize("k", [2, 4])
def test_hinge_probabilities_are_the_svm_decisions_over_the_dev_fitted_temperature(k):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    model, dev = _fit("hinge", k=k, C=0.5)
    texts, labels = _corpus(k, 240, seed=k)
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, dtype=np.float32)
    svm = LinearSVC(C=0.5).fit(vec.fit_transform(texts), labels)
    x_dev = vec.transform(dev[0])
    assert list(model.predict(dev[0])) == list(svm.predict(x_dev)), "the argmax is the SVM's own prediction"
    decision = svm.decision_function(x_dev)
    logits = np.stack([np.zeros_like(decision), decision], axis=1) if k == 2 else decision
    t = model.temperature_
    np.testing.assert_allclose(model.predict_proba(dev[0]), softmax(logits / t), atol=2e-5)
    assert model.fit_report()["loss"] == "hinge" and 0 < t


def test_the_temperature_minimizes_the_dev_log_loss():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 5)) * 4
    y = np.where(rng.random(300) < 0.6, logits.argmax(1), rng.integers(0, 5, 300))

    def nll(t):
        p = softmax(logits / t)
        return -np.log(p[np.arange(300), y]).mean()

    t = fit_temperature(logits, y)
    assert nll(t) <= min(nll(t * 1.1), nll(t / 1.1)) + 1e-9
    assert t > 1.0, "over-confident logits are softened"
    assert fit_temperature(logits, np.full(300, -1)) == 1.0, "no known label: no scaling"


def test_auto_tries_both_grids_on_dev_and_keeps_the_better(tmp_path):
    model, dev = _fit("auto")
    tried = {(h["loss"], h["C"]) for h in model.fit_history()}
    assert {loss for loss, _ in tried} == {"log", "hinge"} and len(tried) == 12
    best = max(model.fit_history(), key=lambda h: h["dev_accuracy"])["dev_accuracy"]
    chosen = [h for h in model.fit_history() if (h["loss"], h["C"]) == (model.loss_, model.C_)][0]
    assert chosen["dev_accuracy"] == best
    first_best = next(h for h in model.fit_history() if h["dev_accuracy"] == best)
    assert (chosen["loss"], chosen["C"]) == (first_best["loss"], first_best["C"]), "ties keep logistic regression, then the smaller C"
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.fit_report() == model.fit_report()
    np.testing.assert_array_equal(again.predict_proba(dev[0]), model.predict_proba(dev[0]))


def test_without_dev_auto_is_one_logistic_regression():
    texts, labels = _corpus(3, 120, seed=0)
    model = build_model("tfidf.v1", {}, TrainingConfig()).fit(texts, labels)
    assert model.loss_ == "log" and model.C_ == 10.0 and not hasattr(model, "temperature_")


def test_newton_cg_fits_the_same_logistic_regression_as_lbfgs():
    texts, labels = _corpus(4, 240, seed=1)
    fits = [build_model("tfidf.v1", {"loss": "log", "C": 10.0, "solver": solver}, TrainingConfig()).fit(texts, labels) for solver in ("lbfgs", "newton-cg")]
    dev, _ = _corpus(4, 80, seed=101)
    # the same loss, each solver stopping at its own tolerance
    np.testing.assert_allclose(fits[0].predict_proba(dev), fits[1].predict_proba(dev), atol=1e-2)


def test_every_c_of_the_warm_started_grid_reaches_its_own_optimum(monkeypatch):
    """Warm-started from the previous C, a loose tolerance counts the old weights as converged on many rows
    (scikit-learn averages the loss over them): larger Cs would silently return a smaller C's model."""
    from sklearn.linear_model import LogisticRegression

    import zhcls.models.tfidf as tfidf

    texts, labels = _corpus(2, 4000, seed=2)
    dev = _corpus(2, 80, seed=102)
    fitted, grids = [], []
    full_rows, fit_grid = tfidf._full_rows, tfidf.Tfidf._fit_grid
    monkeypatch.setattr(tfidf, "_full_rows", lambda coef, intercept, k: fitted.append(coef.copy()) or full_rows(coef, intercept, k))
    monkeypatch.setattr(tfidf.Tfidf, "_fit_grid", lambda self, loss, grid, x, y, *rest: grids.append((x, y)) or fit_grid(self, loss, grid, x, y, *rest))
    build_model("tfidf.v1", {"loss": "log"}, TrainingConfig(metric="accuracy")).fit(texts, labels, eval_set=dev)
    (x, y), = grids  # the model's own features and labels
    assert len(fitted) == len(tfidf.C_GRID)
    for c, coef in zip(sorted(tfidf.C_GRID), fitted):
        with warnings.catch_warnings():  # at 1e-10 the line search runs out of float precision first
            warnings.simplefilter("ignore")
            exact = LogisticRegression(C=c, solver="newton-cg", tol=1e-10, max_iter=2000).fit(x, y).coef_
        assert np.abs(coef - exact).max() < 0.005 * np.abs(exact).max(), f"C={c} stopped short of its optimum"  # at tol 1e-4: 1% off at C=5, 25% at C=50
