"""Word replacement strategies: same part of speech (jieba.posseg, vocabulary from the training corpus),
synonyms from a Cilin-style dictionary file, and nearest neighbours in a local word2vec file."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from pydantic import Field

from ..errors import ConfigError, DataError
from ..registry import augmenters
from .base import Piece, Strategy, StrategyParams, posseg, sample_weighted

# Flags never replaced: punctuation, numerals and quantities, English, unknown, and function words
# (particles, conjunctions, prepositions, auxiliaries) whose swap changes grammar, not content.
_SKIP_POS = ("x", "m", "mq", "eng", "un", "uj", "ul", "uz", "ud", "ug", "uv", "u", "c", "p", "w", "y", "e", "o", "q", "r")


def _replaceable(word: str, flag: str) -> bool:
    return bool(word.strip()) and flag not in _SKIP_POS and not any(c.isdigit() for c in word)


class PosParams(StrategyParams):
    max_fit_texts: int = Field(20_000, ge=1)  # the POS vocabulary is built from at most this many texts
    min_count: int = Field(1, ge=1)


@augmenters.register("pos.v1", params=PosParams)
class SamePosReplace(Strategy):
    """Each content word becomes, with probability `rate`, another corpus word with the same jieba
    part-of-speech flag, drawn by corpus frequency. Needs `fit` (the Augmenter calls it with the
    training texts); unfitted, it changes nothing."""

    name = "pos.v1"
    level = "word"

    def __init__(self, params: PosParams) -> None:
        super().__init__(params)
        self.params: PosParams = params
        self.vocab: dict[str, tuple[list[str], np.ndarray]] = {}

    def fit(self, texts: Sequence[str]) -> "SamePosReplace":
        by_pos: dict[str, Counter[str]] = {}
        for t in texts[: self.params.max_fit_texts]:
            for word, flag in posseg(t):
                if _replaceable(word, flag):
                    by_pos.setdefault(flag, Counter())[word] += 1
        self.vocab = {}
        for flag, counts in by_pos.items():
            words = sorted(w for w, c in counts.items() if c >= self.params.min_count)
            if len(words) >= 2:
                self.vocab[flag] = (words, np.cumsum([counts[w] for w in words], dtype=np.float64))
        return self

    def apply(self, pieces: list[Piece], rng: np.random.Generator) -> list[Piece]:
        out = list(pieces)
        draws = rng.random(len(out))
        for i, (p, d) in enumerate(zip(pieces, draws)):
            if d < self.rate and p.editable and p.pos in self.vocab and _replaceable(p.text, p.pos):
                words, cum = self.vocab[p.pos]
                for _ in range(3):  # a draw equal to the word itself is drawn again, a few times at most
                    new = sample_weighted(rng, words, cum)
                    if new != p.text:
                        out[i] = Piece(new, "", p.pos)
                        break
        return out


class SynonymParams(StrategyParams):
    path: str  # Cilin-style file: `Aa01A01= 人 士 人物`; only `=` groups are synonyms (`#` related, `@` alone)


@augmenters.register("synonym.v1", params=SynonymParams)
class SynonymReplace(Strategy):
    """Each word found in the synonym dictionary becomes, with probability `rate`, one of its synonyms."""

    name = "synonym.v1"
    level = "word"

    def __init__(self, params: SynonymParams) -> None:
        super().__init__(params)
        self.synonyms = load_cilin(params.path)

    def apply(self, pieces: list[Piece], rng: np.random.Generator) -> list[Piece]:
        out = list(pieces)
        draws = rng.random(len(out))
        for i, (p, d) in enumerate(zip(pieces, draws)):
            if d < self.rate and p.editable:
                cands = self.synonyms.get(p.text)
                if cands:
                    out[i] = Piece(cands[int(rng.integers(len(cands)))], "", p.pos)
        return out


def load_cilin(path: str | Path) -> dict[str, tuple[str, ...]]:
    """word -> its synonyms (every other word of every `=` group it is in), sorted."""
    from ..config import expand_path

    file = Path(expand_path(str(path)))
    if not file.is_file():
        raise ConfigError(f"synonym.v1: dictionary {file} does not exist", hint="give a Cilin-style file: one group per line, `Aa01A01= 人 士 人物`")
    return _load_cilin(str(file), file.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _load_cilin(path: str, _mtime: int) -> dict[str, tuple[str, ...]]:
    groups: dict[str, set[str]] = {}
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            code = parts[0]
            if len(code) < 2 or code[-1] not in "=#@":
                raise DataError(f"{path}:{lineno}: expected a Cilin code ending in =, # or @ (like `Aa01A01=`), got {code!r}")
            if code[-1] != "=":
                continue
            words = [w for w in dict.fromkeys(parts[1:]) if not any(c.isdigit() for c in w)]
            for w in words:
                groups.setdefault(w, set()).update(x for x in words if x != w)
    return {w: tuple(sorted(s)) for w, s in groups.items() if s}


class VectorParams(StrategyParams):
    path: str  # word2vec text file (`zhcls embeddings train` writes one)
    level: Literal["char", "word"] = "word"  # "char" for character vectors (the char.v1 default of `embeddings train`)
    topn: int = Field(5, ge=1)
    min_similarity: float = Field(0.5, ge=-1.0, le=1.0)
    limit: int | None = Field(200_000, ge=1)  # read at most this many vectors (the file's most frequent first)


@augmenters.register("vectors.v1", params=VectorParams)
class NeighbourReplace(Strategy):
    """Each word (or character) with a vector becomes, with probability `rate`, one of its `topn`
    nearest neighbours whose cosine similarity is at least `min_similarity`."""

    name = "vectors.v1"

    def __init__(self, params: VectorParams) -> None:
        super().__init__(params)
        self.params: VectorParams = params
        self.level = params.level
        self.kv = load_vectors(params.path, params.limit)
        self._cache: dict[str, tuple[str, ...]] = {}

    def neighbours(self, word: str) -> tuple[str, ...]:
        if word not in self._cache:
            found: tuple[str, ...] = ()
            if word in self.kv.key_to_index:
                found = tuple(
                    w for w, s in self.kv.most_similar(word, topn=self.params.topn)
                    if s >= self.params.min_similarity and w != word and not any(c.isdigit() for c in w)
                )
            self._cache[word] = found
        return self._cache[word]

    def apply(self, pieces: list[Piece], rng: np.random.Generator) -> list[Piece]:
        out = list(pieces)
        draws = rng.random(len(out))
        for i, (p, d) in enumerate(zip(pieces, draws)):
            if d < self.rate and p.editable:
                cands = self.neighbours(p.text)
                if cands:
                    out[i] = Piece(cands[int(rng.integers(len(cands)))], "", p.pos)
        return out


def load_vectors(path: str, limit: int | None):
    from ..config import expand_path

    file = Path(expand_path(path))
    if not file.is_file():
        raise ConfigError(f"vectors.v1: {file} does not exist", hint="train vectors with `zhcls embeddings train` or give a word2vec text file")
    return _load_vectors(str(file), file.stat().st_mtime_ns, limit)


@lru_cache(maxsize=2)
def _load_vectors(path: str, _mtime: int, limit: int | None):
    try:
        from gensim.models import KeyedVectors
    except ImportError:
        raise ConfigError("vectors.v1 needs gensim", hint="pip install 'zhcls[train]'") from None
    try:
        return KeyedVectors.load_word2vec_format(path, binary=False, limit=limit)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a word2vec text file ({exc})", hint="the first line is `COUNT DIM`, then `word v1 v2 ...` per line") from None
