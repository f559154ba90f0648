"""One record and the label set: plain data, no tensors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..tagging.spans import Entity


@dataclass(frozen=True)
class Example:
    """A text, its label (None when unlabeled), and where it came from, so every problem can name it."""

    text: str
    label: str | None = None
    file: str = ""  # the data file it was read from ("" for an example built in code)
    line: int = 0  # its first physical line in `file`, from 1 (0: not from a file)
    copy: int = 0  # 0: the record as read; N: the N-th augmented copy of it ([[augment]])
    entities: tuple[Entity, ...] | None = None  # character spans (tagging data); None: not annotated
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def source(self) -> str:
        """"path:line" (and "#augN" for an augmented copy), for messages."""
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}#aug{self.copy}" if self.copy else where


class LabelSet:
    """Ordered, immutable label <-> id mapping; the column order of `predict_proba`."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels: tuple[str, ...] = tuple(labels)
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be unique")
        self._index = {label: i for i, label in enumerate(self.labels)}

    @classmethod
    def from_labels(cls, labels: Iterable[str]) -> "LabelSet":
        return cls(sorted(set(labels)))

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self):
        return iter(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSet) and self.labels == other.labels

    def __repr__(self) -> str:
        return f"LabelSet({list(self.labels)!r})"

    def index(self, label: str) -> int:
        return self._index[label]

    def encode(self, labels: Iterable[str]) -> list[int]:
        return [self._index[label] for label in labels]
