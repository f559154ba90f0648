"""Per-character features of a tagging model: one id per character of the original text, and hashed
character n-grams around each character. Saved as tokenizer.json; the predictor runs this same code.

One token per original character (each character normalized on its own: NFKC, lowercase) keeps the
offsets of predicted entities exact: position i of the model is `text[i]`, whatever normalization does.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..text.featurizer import hashed_ngrams
from ..text.normalize import normalize
from ..text.vocab import Vocab

SPACE = "<sp>"  # white space and invisible characters, which normalize() removes, still hold a position
BOUNDARY = "<s>"  # pads the n-grams at a text's edges
RAW = 2**32  # hashed_ngrams with this many "buckets" returns the crc32 itself
SALT = 0x9E3779B1  # mixed into a gram's hash per position in the window, so "ab" left of b and right of a differ


def char_token(ch: str, lowercase: bool = True) -> str:
    return normalize(ch, lowercase=lowercase) or SPACE


class CharFeatures:
    """`ngrams` = N: every n-gram of 2..N characters covering a position is a feature of it
    (n features per n), hashed into `buckets` rows (row 0 is padding); N = 1 turns them off."""

    kind = "char_features"

    def __init__(self, vocab: Vocab, *, lowercase: bool = True, max_len: int = 512, ngrams: int = 2, buckets: int = 200_000) -> None:
        self.vocab, self.lowercase, self.max_len = vocab, lowercase, max_len
        self.ngrams, self.buckets = ngrams if buckets > 0 else 1, buckets
        self._cache: dict[str, str] = {}

    @classmethod
    def fit(cls, texts: Sequence[str], *, lowercase: bool = True, max_len: int = 512, ngrams: int = 2, buckets: int = 200_000,
            min_freq: int = 1, max_vocab: int = 50_000) -> "CharFeatures":
        vocab = Vocab.build(([char_token(c, lowercase) for c in t[:max_len]] for t in texts), min_freq=min_freq, max_size=max_vocab)
        return cls(vocab, lowercase=lowercase, max_len=max_len, ngrams=ngrams, buckets=buckets)

    @property
    def n_grams(self) -> int:
        """Features per position: n for every n in 2..ngrams."""
        return sum(range(2, self.ngrams + 1))

    @property
    def num_ids(self) -> int:
        return len(self.vocab)

    @property
    def gram_rows(self) -> int:
        return self.buckets + 1 if self.n_grams else 1

    def tokens(self, text: str) -> list[str]:
        cache = self._cache
        out = []
        for ch in text[: self.max_len]:
            tok = cache.get(ch)
            if tok is None:
                tok = char_token(ch, self.lowercase)
                if len(cache) < 100_000:  # bounded: a server sees arbitrary characters
                    cache[ch] = tok
            out.append(tok)
        return out

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids [T] int64, grams [T, G] int64) for the first max_len characters (T >= 1: an empty text
        reads as one space)."""
        tokens = self.tokens(text) or [SPACE]
        ids = np.asarray(self.vocab.encode(tokens), dtype=np.int64)
        t, n_max = len(tokens), self.ngrams
        if not self.n_grams:
            return ids, np.zeros((t, 0), dtype=np.int64)
        pad = [BOUNDARY] * (n_max - 1)
        raw = np.asarray(hashed_ngrams(pad + tokens + pad, n_max, 0, RAW), dtype=np.int64)
        columns, at = [], 0
        for n in range(2, n_max + 1):
            count = t + 2 * (n_max - 1) - n + 1
            grams = raw[at : at + count]
            at += count
            for k in range(n):  # the n-gram in which the position is the k-th character
                lo = n_max - n + k
                columns.append((grams[lo : lo + t] + SALT * (len(columns) + 1)) % self.buckets + 1)
        return ids, np.stack(columns, axis=1)

    def encode_batch(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.encode(t) for t in texts]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "normalize": {"nfkc": True, "lowercase": self.lowercase, "per_character": True},
            "max_len": self.max_len, "ngrams": self.ngrams, "buckets": self.buckets, "vocab": self.vocab.tokens,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CharFeatures":
        if data.get("kind") != cls.kind:
            raise ValueError(f"tokenizer.json is {data.get('kind')!r}, not {cls.kind!r}")
        return cls(Vocab(data["vocab"]), lowercase=data["normalize"]["lowercase"], max_len=data["max_len"], ngrams=data["ngrams"], buckets=data["buckets"])


def pad_features(encoded: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids [B, T], grams [B, T, G], lengths [B]), right-padded with 0."""
    lengths = np.fromiter((len(ids) for ids, _ in encoded), dtype=np.int64, count=len(encoded))
    width = int(lengths.max(initial=1))
    g = encoded[0][1].shape[1] if encoded else 0
    ids = np.zeros((len(encoded), width), dtype=np.int64)
    grams = np.zeros((len(encoded), width, g), dtype=np.int64)
    for i, (a, b) in enumerate(encoded):
        ids[i, : len(a)] = a
        grams[i, : len(a)] = b
    return ids, grams, lengths
