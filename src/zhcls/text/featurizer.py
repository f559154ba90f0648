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
        """Ids of already truncated tokens, with their hashed n-grams."""
        ids = self.vocab.encode(tokens)
        if self.buckets and self.ngrams > 1:
            base, buckets = len(self.vocab), self.buckets
            for n in range(2, self.ngrams + 1):
                for i in range(len(tokens) - n + 1):
                    # crc32, not hash(): Python's str hash changes per process, ids must not.
                    ids.append(base + zlib.crc32("\x1f".join(tokens[i : i + n]).encode("utf-8")) % buckets)
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


def pad(seqs: Sequence[Sequence[int]], min_len: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad id lists with 0 into an int64 matrix; also return the true lengths."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    width = max(int(lengths.max(initial=0)), min_len)
    out = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out, lengths
