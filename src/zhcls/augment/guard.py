"""Label-safe mode: a trained model vets every augmented row before it is kept.

A row is kept when the model still predicts the row's label for the augmented text with probability
at least `min_confidence`. Dropped rows are counted by reason:

- `label_changed`: the model predicts the label for the source text but another label for the copy;
- `source_mispredicted`: the model already misses the source, and the copy is not predicted right either;
- `low_confidence`: the label is predicted, with probability below `min_confidence`;
- `unknown_label`: the row's label is not one the model knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..data.example import Example

REASONS = ("label_changed", "source_mispredicted", "low_confidence", "unknown_label")


@dataclass
class GuardResult:
    kept: list[Example]
    dropped: list[tuple[Example, str]]
    counts: dict[str, int] = field(default_factory=dict)


def guard(model, sources: Sequence[Example], augmented: Sequence[Example], *, min_confidence: float = 0.0, batch_size: int = 512) -> GuardResult:
    """Filter `augmented` (each with meta["aug_index"], the position of its source in `sources`)."""
    labels = model.labels_
    src_pred = _predict(model, [e.text for e in sources], batch_size).argmax(axis=1) if sources else np.zeros(0, dtype=int)
    proba = _predict(model, [e.text for e in augmented], batch_size) if augmented else np.zeros((0, len(labels)))
    kept: list[Example] = []
    dropped: list[tuple[Example, str]] = []
    counts = dict.fromkeys(REASONS, 0)
    for ex, p in zip(augmented, proba):
        reason = None
        if ex.label not in labels:
            reason = "unknown_label"
        else:
            y = labels.index(ex.label)
            if int(p.argmax()) != y:
                reason = "label_changed" if int(src_pred[ex.meta["aug_index"]]) == y else "source_mispredicted"
            elif p[y] < min_confidence:
                reason = "low_confidence"
        if reason is None:
            kept.append(ex)
        else:
            dropped.append((ex, reason))
            counts[reason] += 1
    return GuardResult(kept, dropped, counts)


def _predict(model, texts: list[str], batch_size: int) -> np.ndarray:
    return np.concatenate([model.predict_proba(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)])
