"""Honest dev scores for choices made on dev.

A model that picks one of several settings by its dev score (tfidf.v1 its loss and C, a neural model the
evaluation it keeps) reports the maximum, which overstates how it does on new text, and the more settings
it tried the more. `zhcls build` ranks candidates by dev score; ensemble.v1 already reports a cross-fitted
one, so the others' maxima gave them an edge the test set does not confirm (iflytek/0: tfidf.v1 dev 45.9,
the ensemble 44.2; on test 40.7 and 42.1). Cross-fitting the selection puts every candidate on the same
footing: dev is split into k folds, and each fold is scored by the setting the other folds choose.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .metrics import score_predictions

FOLDS = 5


def dev_folds(y: np.ndarray, folds: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, score rows) of each fold: stratified when every class has `folds` rows, else plain
    k-fold, both shuffled with `seed`. Labels may be any integers (-1 for a label the model never saw)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    y = np.asarray(y)
    _, codes = np.unique(y, return_inverse=True)
    k = min(folds, len(y))
    stratify = np.bincount(codes).min() >= k
    splitter = StratifiedKFold(k, shuffle=True, random_state=seed) if stratify else KFold(k, shuffle=True, random_state=seed)
    yield from splitter.split(np.zeros(len(y)), codes)


def cross_fitted_choice(preds: np.ndarray, y: np.ndarray, metric: str, *, folds: int = FOLDS, seed: int = 0) -> dict[str, Any] | None:
    """The dev score of "keep the setting with the best dev score", measured without letting any row vote
    for the setting that scores it. preds [settings, n]: each setting's predicted class per dev row, in
    the order the model breaks ties (the first best wins, as it does in the model). None with fewer than
    two settings or rows than folds: there is no choice to correct, or too little to split."""
    preds, y = np.asarray(preds), np.asarray(y)
    if preds.ndim != 2 or len(preds) < 2 or len(y) < max(folds, 2):
        return None
    out = np.empty(len(y), dtype=preds.dtype)
    chosen = []
    for fit_rows, score_rows in dev_folds(y, folds, seed):
        scores = [score_predictions(p[fit_rows], y[fit_rows], metric) for p in preds]
        best = int(np.argmax(scores))  # the first of equal scores
        out[score_rows] = preds[best, score_rows]
        chosen.append(best)
    return {
        "accuracy": round(score_predictions(out, y, "accuracy"), 6),
        "macro_f1": round(score_predictions(out, y, "macro_f1"), 6),
        "settings": len(preds),
        "chosen": chosen,
    }


def paired_lead(a: np.ndarray, b: np.ndarray, y: np.ndarray, metric: str, *, resamples: int = 500, seed: int = 0) -> dict[str, Any]:
    """How far predictions `a` lead predictions `b` on the same rows `y` (at least two), and the standard
    error of that lead.

    The error is paired: both are scored on the same rows, so what they both get right or wrong cancels and
    only the rows they disagree on count. Two models a point apart on 690 texts may be 0.7 points of noise
    apart (iflytek, tfidf.v1 with log against hinge loss: they disagree on 10% of the texts) or a clear
    winner, depending on how often they disagree; the error of each score alone is 1.9 points either way.
    For accuracy the error is exact (the standard deviation of the per-row differences over sqrt(n));
    macro-F1 has no per-row terms, so its error is the standard deviation of the lead over `resamples`
    bootstrap resamples of the rows (seeded: the same rows give the same figure)."""
    a, b, y = np.asarray(a), np.asarray(b), np.asarray(y)
    n = len(y)
    lead = score_predictions(a, y, metric) - score_predictions(b, y, metric)
    if metric == "accuracy":
        diff = (a == y).astype(np.float64) - (b == y)
        se = float(diff.std(ddof=1) / np.sqrt(n))
    else:
        rng = np.random.default_rng(seed)
        leads = []
        for _ in range(resamples):
            rows = rng.integers(0, n, n)
            leads.append(score_predictions(a[rows], y[rows], metric) - score_predictions(b[rows], y[rows], metric))
        se = float(np.std(leads, ddof=1))
    return {"lead": round(lead, 6), "se": round(se, 6), "n": n, "disagree": int((a != b).sum())}
