"""normalize -> tokenize -> ids: the whole text pipeline of a neural model, saved as tokenizer.json."""

from __future__ import annotations

import array
import base64
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
    """`kept_buckets`: after pruning (zhcls compress), the hash buckets that keep a row of their own, in
    order; every other bucket shares one last row, as a token outside the vocabulary shares UNK's."""

    def __init__(
        self, tokenizer: str, lowercase: bool, max_len: int, vocab: Vocab, ngrams: int = 1, buckets: int = 0,
        kept_buckets: Sequence[int] | None = None,
    ) -> None:
        self.tokenizer_name = tokenizer
        self.lowercase = lowercase
        self.max_len = max_len
        self.vocab = vocab
        self.ngrams = ngrams
        self.buckets = buckets
        self.kept_buckets = None if kept_buckets is None else np.unique(np.asarray(kept_buckets, dtype=np.int64))
        self._rows: array.array | None = None  # hash bucket -> id, when buckets were pruned
        if self.kept_buckets is not None:
            rows = np.full(buckets, len(self.kept_buckets), dtype=np.int64)
            rows[self.kept_buckets] = np.arange(len(self.kept_buckets))
            # Indexed per n-gram in Python. An array of int64, not a list: the list's 100k int objects lie all
            # over the heap and miss the cache (tnews titles, tri-grams, 100k buckets: hashing 14.0 against
            # 17.6 us per text, 12.3 unpruned; numpy indexing one n-gram at a time is slower still)
            self._rows = array.array("q", (rows + len(vocab)).tobytes())
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
        return len(self.vocab) + self.bucket_rows

    @property
    def bucket_rows(self) -> int:
        """Rows of the n-gram part: one per bucket, or one per kept bucket and one shared by the rest."""
        return self.buckets if self.kept_buckets is None else len(self.kept_buckets) + 1

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
            ids += hashed_ngrams(tokens, self.ngrams, len(self.vocab), self.buckets, self._rows)
        return ids or [1]  # an all-unknown text still gets one (UNK) position

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def to_json(self) -> dict[str, Any]:
        out = {
            "kind": "featurizer",
            "normalize": {"nfkc": True, "lowercase": self.lowercase},
            "tokenizer": self.tokenizer_name,
            "max_len": self.max_len,
            "ngrams": self.ngrams,
            "buckets": self.buckets,
            "vocab": self.vocab.tokens,
        }
        if self.kept_buckets is not None:  # a bitmap over the buckets: 12.5 kB for 100k, where a list of ids is ~300 kB
            bits = np.zeros(self.buckets, dtype=bool)
            bits[self.kept_buckets] = True
            out["kept_buckets"] = {"count": len(self.kept_buckets), "bitmap": base64.b64encode(np.packbits(bits).tobytes()).decode("ascii")}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Featurizer":
        kept = None
        if data.get("kept_buckets") is not None:
            packed = np.frombuffer(base64.b64decode(data["kept_buckets"]["bitmap"]), dtype=np.uint8)
            kept = np.flatnonzero(np.unpackbits(packed)[: data["buckets"]])
            if len(kept) != data["kept_buckets"]["count"]:
                raise ValueError(f"kept_buckets: the bitmap has {len(kept)} buckets, its count says {data['kept_buckets']['count']}")
        return cls(
            data["tokenizer"], data["normalize"]["lowercase"], data["max_len"], Vocab(data["vocab"]), data["ngrams"], data["buckets"], kept
        )


NGRAM_SEP = b"\x1f"


def hashed_ngrams(tokens: Sequence[str], max_n: int, base: int, buckets: int, rows: Sequence[int] | None = None) -> list[int]:
    r"""base + crc32("\x1f".join(gram).encode("utf-8")) % buckets for every n-gram of 2..max_n tokens, in
    order of n, then position (`rows`: rows[crc % buckets] instead, the ids of pruned buckets). crc32, not
    hash(): Python's str hash changes per process, ids must not.

    The crc of each n-gram continues the crc of its (n-1)-gram prefix (zlib.crc32(data, start) extends a
    crc), so no n-gram string is ever built; the ids are those of hashing the joined strings. (Caching each
    token's crc across calls saved 0.5 of 13 us per tnews title: not worth a cache.)
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
        out += [base + h % buckets for h in full] if rows is None else [rows[h % buckets] for h in full]
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
