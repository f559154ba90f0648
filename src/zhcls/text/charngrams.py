"""TF-IDF over character n-grams, computed from saved arrays with numpy alone.

scikit-learn fits the vocabulary and IDF; this recomputes a text's TF-IDF row the way its
TfidfVectorizer(analyzer="char") does, so prediction needs neither scikit-learn nor scipy and the
serving install stays small. Tested for equality against scikit-learn.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .normalize import normalize

KIND = "char_ngram_tfidf"  # tokenizer.json "kind", the same in a tfidf.v1 model directory and in its bundle
PARAMS = ("ngram_min", "ngram_max", "sublinear_tf", "lowercase")


class CharNgramTfidf:
    def __init__(self, vocab: Sequence[str], idf: np.ndarray, ngram_min: int, ngram_max: int, sublinear_tf: bool, lowercase: bool) -> None:
        self.index = {gram: i for i, gram in enumerate(vocab)}
        self.idf = np.asarray(idf, dtype=np.float32)
        self.ngram_min, self.ngram_max = ngram_min, ngram_max
        self.sublinear_tf, self.lowercase = sublinear_tf, lowercase

    @classmethod
    def from_json(cls, data: dict[str, Any], idf: np.ndarray) -> "CharNgramTfidf":
        """From tokenizer.json (`to_json`) and the idf array kept beside the weights."""
        p = data["params"]
        return cls(data["vocab"], idf, p["ngram_min"], p["ngram_max"], p["sublinear_tf"], p["lowercase"])

    @staticmethod
    def to_json(vocab: Sequence[str], params: dict[str, Any]) -> dict[str, Any]:
        """tokenizer.json: {"kind": "char_ngram_tfidf", "params": {ngram_min, ngram_max, sublinear_tf, lowercase}, "vocab"}."""
        return {"kind": KIND, "params": {k: params[k] for k in PARAMS}, "vocab": list(vocab)}

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(column indices, L2-normalized TF-IDF values) of one text."""
        text = normalize(text, lowercase=self.lowercase)
        counts: dict[int, int] = {}
        get = self.index.get
        for n in range(self.ngram_min, min(self.ngram_max, len(text)) + 1):
            for i in range(len(text) - n + 1):
                j = get(text[i : i + n])
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
        idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        if self.sublinear_tf:
            tf = 1.0 + np.log(tf)
        values = tf * self.idf[idx]
        norm = float(np.sqrt((values * values).sum()))
        return idx, values / norm if norm > 0 else values

    def logits(self, texts: Sequence[str], coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
        """x @ coef.T + intercept for every text, touching only the columns a text uses."""
        out = np.empty((len(texts), coef.shape[0]), dtype=np.float32)
        for r, text in enumerate(texts):
            idx, values = self.row(text)
            out[r] = coef[:, idx] @ values + intercept
        return out
