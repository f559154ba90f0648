"""Classification metrics (scikit-learn underneath) as plain JSON-ready dicts."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """accuracy; macro/micro/weighted P/R/F1; per-class P/R/F1/support; confusion matrix (rows = true)."""
    labels = list(labels)
    # Labels only seen in y_true (absent from the model) still get a row, so nothing is hidden.
    extra = sorted(set(y_true) - set(labels))
    all_labels = labels + extra
    out: dict[str, Any] = {"n": len(y_true), "accuracy": float(accuracy_score(y_true, y_pred))}
    # Averages run over the labels that occur (in truth or prediction), as scikit-learn's default does:
    # a class absent from this split must not count as a zero.
    present = [label for label in all_labels if label in set(y_true) | set(y_pred)]
    for avg in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=present, average=avg, zero_division=0)
        out[f"{avg}_precision"], out[f"{avg}_recall"], out[f"{avg}_f1"] = float(p), float(r), float(f)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=all_labels, average=None, zero_division=0)
    out["per_class"] = {
        label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, label in enumerate(all_labels)
    }
    out["labels"] = all_labels
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=all_labels).tolist()
    return out


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: metrics[k] for k in ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "entity_f1") if k in metrics}


def score_from_proba(proba: np.ndarray, y: np.ndarray, metric: str) -> float:
    """Fast dev score for early stopping, on integer labels."""
    return score_predictions(proba.argmax(axis=1), y, metric)


def score_predictions(pred: np.ndarray, y: np.ndarray, metric: str) -> float:
    """accuracy, or macro F1 over the labels that occur, of predicted class ids against integer labels."""
    if metric == "accuracy":
        return float((pred == y).mean())
    _, _, f, _ = precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    return float(f)
