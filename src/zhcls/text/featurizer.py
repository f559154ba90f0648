"""normalize -> tokenize -> ids: the whole text pipeline of a neural model, saved as tokenizer.json."""

from __future__ import annotations

import zlib
from typing import Any, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .normalize import normalize
from .tokenizers import get_tokenizer
from .vocab import Vocab


class TextParams(BaseModel):
    """Text settings shared by every neural model (they sit in [model] beside the model's own keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tokenizer: str = "char.v1"
    lowercase: bool = True
    max_len: int = Field(256, ge=1)  # tokens kept from the start of each text
    min_freq: int = Field(1, ge=1)
    max_vocab: int = Field(50_000, ge=10)


class Featurizer:
    def __init__(self, tokenizer: str, lowercase: bool, max_len: int, vocab: Vocab, ngrams: int = 1, buckets: int = 0) -> None:
        self.tokenizer_name = tokenizer
        self.lowercase = lowercase
        self.max_len = max_len
        self.vocab = vocab
        self.ngrams = ngrams
        self.buckets = buckets
        self._tokenize = get_tokenizer(tokenizer)

    @classmethod
    def fit(cls, texts: Sequence[str], params: TextParams, ngrams: int = 1, buckets: int = 0) -> "Featurizer":
        tokenize = get_tokenizer(params.tokenizer)
        vocab = Vocab.build(
            (tokenize(normalize(t, lowercase=params.lowercase)) for t in texts),
            min_freq=params.min_freq,
            max_size=params.max_vocab,
        )
        return cls(params.tokenizer, params.lowercase, params.max_len, vocab, ngrams, buckets)

    @property
    def num_ids(self) -> int:
        """Rows the embedding table needs: the vocabulary, then the hashed n-gram buckets."""
        return len(self.vocab) + self.buckets

    def full_tokens(self, text: str) -> list[str]:
        return self._tokenize(normalize(text, lowercase=self.lowercase))

    def tokens(self, text: str) -> list[str]:
        return self.full_tokens(text)[: self.max_len]

    def encode(self, text: str) -> list[int]:
        return self.encode_tokens(self.tokens(text))

    def encode_tokens(self, tokens: list[str]) -> list[int]:
        """Ids of already truncated tokens, then their hashed n-grams (all 2-grams, then all 3-grams, ...)."""
        ids = self.vocab.encode(tokens)
        if self.buckets and self.ngrams > 1 and len(tokens) > 1:
            ids += hashed_ngrams(tokens, self.ngrams, len(self.vocab), self.buckets)
        return ids or [1]  # an all-unknown text still gets one (UNK) position

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "featurizer",
            "normalize": {"nfkc": True, "lowercase": self.lowercase},
            "tokenizer": self.tokenizer_name,
            "max_len": self.max_len,
            "ngrams": self.ngrams,
            "buckets": self.buckets,
            "vocab": self.vocab.tokens,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Featurizer":
        return cls(
            data["tokenizer"], data["normalize"]["lowercase"], data["max_len"], Vocab(data["vocab"]), data["ngrams"], data["buckets"]
        )


NGRAM_SEP = b"\x1f"


def hashed_ngrams(tokens: Sequence[str], max_n: int, base: int, buckets: int) -> list[int]:
    r"""base + crc32("\x1f".join(gram).encode("utf-8")) % buckets for every n-gram of 2..max_n tokens, in
    order of n, then position. crc32, not hash(): Python's str hash changes per process, ids must not.

    The crc of each n-gram continues the crc of its (n-1)-gram prefix (zlib.crc32(data, start) extends a
    crc), so no n-gram string is ever built; the ids are those of hashing the joined strings.
    """
    crc = zlib.crc32
    encoded = [t.encode("utf-8") for t in tokens]
    prefix = [crc(NGRAM_SEP, crc(e)) for e in encoded]  # crc of "token\x1f"
    out: list[int] = []
    for n in range(2, max_n + 1):
        last = encoded[n - 1 :]
        if not last:
            break
        full = [crc(e, p) for e, p in zip(last, prefix)]  # crc of "t_i\x1f...\x1ft_{i+n-1}"
        out += [base + h % buckets for h in full]
        prefix = [crc(NGRAM_SEP, h) for h in full]
    return out


def pad(seqs: Sequence[Sequence[int]], min_len: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad id lists with 0 into an int64 matrix; also return the true lengths."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    width = max(int(lengths.max(initial=0)), min_len)
    out = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out, lengths
