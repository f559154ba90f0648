"""Index splits: stratified k-fold (used by label-issue search and cross-validation).

Pure functions of (labels, k, seed): the same input gives the same folds on every machine.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from typing import Sequence

import numpy as np

from ..errors import DataError

log = logging.getLogger(__name__)


def stratified_kfold(labels: Sequence[str] | np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """The held-out indices of each of `k` folds, sorted; every index is in exactly one fold, and each
    class is spread over the folds in proportion (scikit-learn's StratifiedKFold, shuffled with `seed`).

    A class with fewer than `k` examples cannot be in every fold; it is still split as evenly as it can be.
    """
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels)
    n = len(y)
    if k < 2:
        raise DataError(f"k-fold needs at least 2 folds, got {k}", hint="use --folds 5 (or any number from 2 to the size of the largest class)")
    counts = Counter(y.tolist())
    largest = max(counts.values(), default=0)
    if n < k or largest < k:
        raise DataError(
            f"{k} folds need at least {k} examples of some class; the largest class has {largest} (of {n} examples)",
            hint=f"use fewer folds, e.g. --folds {max(2, min(largest, 5))}",
        )
    rare = sorted(label for label, c in counts.items() if c < k)
    if rare:
        log.warning("%d class(es) have fewer than %d examples and are missing from some folds: %s", len(rare), k, ", ".join(map(str, rare[:10])))
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the rare-class warning, logged above instead
        return [np.sort(test) for _, test in splitter.split(np.zeros(n), y)]


def train_indices(folds: list[np.ndarray], i: int, n: int) -> np.ndarray:
    """The indices not held out by fold `i` (its training part)."""
    mask = np.ones(n, dtype=bool)
    mask[folds[i]] = False
    return np.flatnonzero(mask)
