"""Per-character features of a tagging model: one id per character of the original text, and hashed
character n-grams around each character. Saved as tokenizer.json; the predictor runs this same code.

One token per original character (each character normalized on its own: NFKC, lowercase) keeps the
offsets of predicted entities exact: position i of the model is `text[i]`, whatever normalization does.
"""

from __future__ import annotations

import zlib
from typing import Any, Sequence

import numpy as np

from ..text.featurizer import NGRAM_SEP
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
        self._cache: dict[str, tuple[int, bytes, int]] = {}
        self._boundary = (0, BOUNDARY.encode("utf-8"), zlib.crc32(NGRAM_SEP, zlib.crc32(BOUNDARY.encode("utf-8"))))

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
        return [char_token(ch, self.lowercase) for ch in text[: self.max_len]]

    def _char(self, ch: str) -> tuple[int, bytes, int]:
        """(vocab id, utf-8 of the token, crc32 of the token and the n-gram separator) of one character,
        cached (bounded: a server sees arbitrary characters)."""
        tok = char_token(ch, self.lowercase)
        encoded = tok.encode("utf-8")
        entry = (self.vocab.index.get(tok, 1), encoded, zlib.crc32(NGRAM_SEP, zlib.crc32(encoded)))
        if len(self._cache) < 100_000:
            self._cache[ch] = entry
        return entry

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids [T] int64, grams [T, G] int64) for the first max_len characters (T >= 1: an empty text
        reads as one space).

        The n-gram ids are those of hashed_ngrams over the tokens padded with BOUNDARY, each n-gram's crc
        continuing its prefix's; the per-character part of that (the token's crc) comes from a cache, so a
        50-character text costs one crc32 call per position and n-gram length (about 2x faster)."""
        cache, entry = self._cache, self._char
        rows = [cache.get(ch) or entry(ch) for ch in text[: self.max_len] or " "]
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        t, n_max = len(rows), self.ngrams
        if not self.n_grams:
            return ids, np.zeros((t, 0), dtype=np.int64)
        edge = [self._boundary] * (n_max - 1)
        padded = edge + rows + edge
        encoded = [r[1] for r in padded]
        prefix = [r[2] for r in padded]
        crc, columns = zlib.crc32, []
        for n in range(2, n_max + 1):
            full = [crc(e, p) for e, p in zip(encoded[n - 1 :], prefix)]  # crc of the n-gram at each start
            if n < n_max:
                prefix = [crc(NGRAM_SEP, h) for h in full]
            grams = np.asarray(full, dtype=np.int64)
            for k in range(n):  # the n-gram in which the position is the k-th character
                lo = n_max - n + k
                columns.append(grams[lo : lo + t])
        salts = SALT * np.arange(1, len(columns) + 1, dtype=np.int64)
        return ids, (np.stack(columns, axis=1) + salts) % self.buckets + 1

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
