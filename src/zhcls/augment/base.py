"""What every augmentation strategy shares: the text cut into pieces, locked protected spans, and Params.

A strategy is a small object with a `rate` and `apply(pieces, rng) -> pieces`. Pieces are characters
(a run of Latin letters or digits counts as one, as in the char.v1 tokenizer) or jieba words; every
protected span (see protect.py) is a single locked piece no op may split, change or delete.

    strategy = augmenters.get("delete.v1").factory(DeleteParams(rate=0.2))
    pieces = segment("价格199元，很划算", strategy.level)
    out = join(strategy.apply(pieces, np.random.default_rng(0)))
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .protect import find_spans

Level = Literal["char", "word"]


class StrategyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rate: float = Field(0.1, ge=0.0, le=1.0)  # per piece: the probability it is changed


@dataclass(frozen=True)
class Piece:
    text: str
    locked: str = ""  # the protected-span kind ("number", "date", "url", "email", "time", "term"); "" if free
    pos: str = ""  # jieba part-of-speech flag for word pieces

    @property
    def editable(self) -> bool:
        """Free to change: not protected, not white space, not punctuation or symbols alone."""
        return not self.locked and not self.text.isspace() and not all(_is_punct(c) for c in self.text)


class Strategy:
    """Base of the registered strategies. `fit` gathers corpus resources (most need none)."""

    name = ""
    level: Level = "char"
    changes_numbers = False  # True only for equivalent.v1: it may rewrite a whole standalone number
    may_drop_spans = False  # True only for truncate.v1: it may leave whole protected spans out

    def __init__(self, params: StrategyParams) -> None:
        self.params = params
        self.rate = params.rate

    def fit(self, texts: Sequence[str]) -> "Strategy":
        return self

    def apply(self, pieces: list[Piece], rng: np.random.Generator) -> list[Piece]:
        raise NotImplementedError


def _is_punct(c: str) -> bool:
    return unicodedata.category(c)[0] in "PSZC"


_LATIN = re.compile(r"[A-Za-z0-9_]+|[Ａ-Ｚａ-ｚ０-９]+")


ENTITY = "entity"  # Piece.locked of an annotated entity span (tagging data): kept whole, its offsets shifted


def segment(text: str, level: Level, terms: Sequence[str] = (), entities: Sequence[tuple[int, int]] = ()) -> list[Piece]:
    """`text` cut into pieces; joining them gives `text` back exactly. `entities`: sorted, non-overlapping
    (start, end) spans, each one locked piece of kind ENTITY, before any other protected span is looked for."""
    if entities:
        pieces, pos = [], 0
        for start, end in entities:
            pieces += segment(text[pos:start], level, terms) + [Piece(text[start:end], ENTITY)]
            pos = end
        return pieces + segment(text[pos:], level, terms)
    pieces = []
    pos = 0
    for span in find_spans(text, terms):
        pieces += _free_pieces(text[pos : span.start], level)
        pieces.append(Piece(span.text(text), span.kind))
        pos = span.end
    pieces += _free_pieces(text[pos:], level)
    return pieces


def _free_pieces(text: str, level: Level) -> list[Piece]:
    if not text:
        return []
    if level == "word":
        return [Piece(w, "", flag) for w, flag in posseg(text)]
    out: list[Piece] = []
    i = 0
    while i < len(text):
        m = _LATIN.match(text, i)
        if m:
            out.append(Piece(m.group()))
            i = m.end()
        else:
            out.append(Piece(text[i]))
            i += 1
    return out


def join(pieces: Iterable[Piece]) -> str:
    return "".join(p.text for p in pieces)


def posseg(text: str) -> list[tuple[str, str]]:
    """jieba words with their part-of-speech flags."""
    try:
        import jieba
        import jieba.posseg as pseg
    except ImportError:
        from ..errors import ConfigError

        raise ConfigError("word-level augmentation needs the jieba package", hint="pip install 'zhcls[augment]'") from None
    jieba.setLogLevel(logging.WARNING)
    return [(p.word, p.flag) for p in pseg.cut(text)]


def editable_indices(pieces: Sequence[Piece]) -> list[int]:
    return [i for i, p in enumerate(pieces) if p.editable]


def bernoulli(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """Which of `n` pieces to change: each independently with probability `rate`."""
    return rng.random(n) < rate


def sample_weighted(rng: np.random.Generator, items: Sequence[str], cumulative: np.ndarray) -> str:
    """One item drawn with probability proportional to its weight (`cumulative` = cumsum of weights)."""
    return items[int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))]
