"""Calibration: does a predicted probability of 0.8 come true 80% of the time? Pure numpy."""

from __future__ import annotations

from typing import Any

import numpy as np


def reliability(proba: np.ndarray, y_true: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Reliability bins over the top-1 confidence, and the expected calibration error.

    proba: [n, k] predicted probabilities; y_true: int array [n], -1 for a label the model does not know
    (always counted wrong). Bins are equal-width on [0, 1]; ECE = sum_b |acc_b - conf_b| * n_b / n,
    MCE = max_b |acc_b - conf_b| over non-empty bins.
    """
    proba = np.asarray(proba, dtype=np.float64)
    y_true = np.asarray(y_true)
    if proba.ndim != 2 or len(proba) != len(y_true):
        raise ValueError(f"proba must be [n, k] with n = len(y_true); got {proba.shape} and {y_true.shape}")
    n = len(y_true)
    confidence = proba.max(axis=1) if n else np.zeros(0)
    correct = (proba.argmax(axis=1) == y_true) if n else np.zeros(0, dtype=bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # A confidence of exactly 1.0 belongs to the last bin; bins are (lo, hi] otherwise, [0, hi] for the first.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    bins, ece, mce = [], 0.0, 0.0
    for b in range(n_bins):
        mask = index == b
        count = int(mask.sum())
        acc = float(correct[mask].mean()) if count else None
        conf = float(confidence[mask].mean()) if count else None
        if count:
            gap = abs(acc - conf)
            ece += gap * count / n
            mce = max(mce, gap)
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": count, "accuracy": acc, "confidence": conf})
    return {
        "n": n,
        "n_bins": n_bins,
        "ece": float(ece),
        "mce": float(mce),
        "accuracy": float(correct.mean()) if n else None,
        "mean_confidence": float(confidence.mean()) if n else None,
        "bins": bins,
    }
