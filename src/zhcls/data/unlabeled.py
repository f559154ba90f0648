"""In-domain texts without labels: read, de-duplicated against the labeled splits, capped.

Read here, below distill/ and build, so that what counts as a held-out text is decided in one place: the
[distill] transfer set (distill/transfer.py) uses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import DataConfig, expand_path
from ..text.normalize import normalize
from .example import Example
from .readers import ReadOptions, read_examples


def dedupe_unlabeled(texts: list[str], exclude: list[str]) -> tuple[list[str], dict[str, int]]:
    """Unlabeled texts that neither repeat one another nor, once normalized, occur in `exclude` (dev and
    test, so evaluation never sees a text a model was fitted to; train, which is already labeled)."""
    seen = {normalize(t) for t in exclude}
    kept: list[str] = []
    dropped = {"overlap": 0, "duplicate": 0, "empty": 0}
    own: set[str] = set()
    for text in texts:
        key = normalize(text)
        if not key:
            dropped["empty"] += 1
        elif key in seen:
            dropped["overlap"] += 1
        elif key in own:
            dropped["duplicate"] += 1
        else:
            own.add(key)
            kept.append(text)
    return kept, dropped


def read_unlabeled(
    paths: Sequence[str], data: DataConfig, splits: dict[str, list[Example]], *, cap: int | None, seed: int
) -> tuple[list[str], dict[str, object]]:
    """(texts, info) from `paths` read as [data] reads (any label field ignored), without the texts of any
    split, at most `cap` of them (a seeded sample that keeps file order)."""
    plain = ReadOptions(data.format, data.text_field, None, data.tsv_order)
    texts: list[str] = []
    for path in paths:
        texts += [e.text for e in read_examples(Path(expand_path(path)), plain)]
    n_read = len(texts)
    held_out = [e.text for name in ("dev", "test", "train") for e in splits.get(name) or []]
    texts, dropped = dedupe_unlabeled(texts, held_out)
    kept = len(texts) if cap is None else min(cap, len(texts))
    if kept < len(texts):
        rng = np.random.default_rng(seed)
        texts = [texts[i] for i in sorted(rng.choice(len(texts), size=kept, replace=False))]
    return texts, {"unlabeled_read": n_read, "unlabeled_dropped": dropped, "unlabeled_capped_to": kept}
