"""Token vocabulary with fixed PAD/UNK ids, saved as a JSON list."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

PAD, UNK = "<pad>", "<unk>"


class Vocab:
    def __init__(self, tokens: list[str]) -> None:
        if tokens[:2] != [PAD, UNK]:
            tokens = [PAD, UNK] + [t for t in tokens if t not in (PAD, UNK)]
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], *, min_freq: int = 1, max_size: int | None = None) -> "Vocab":
        counts = Counter(t for tokens in token_lists for t in tokens)
        # Frequency first, then the token itself: the same corpus always gives the same ids.
        ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - 2)]
        return cls([PAD, UNK] + ranked)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: list[str]) -> list[int]:
        get = self.index.get
        return [get(t, 1) for t in tokens]
