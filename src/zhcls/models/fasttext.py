"""`fasttext.v1`: fastText's model: mean of token and hashed n-gram embeddings, then a linear layer."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..registry import models
from .neural import NeuralParams, TorchClassifier


class FastTextParams(NeuralParams):
    embed_dim: int = Field(100, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    ngrams: int = Field(2, ge=1, le=4)  # token n-grams up to this length, hashed into `buckets`
    buckets: int = Field(200_000, ge=0)


@models.register("fasttext.v1", params=FastTextParams)
class FastText(TorchClassifier):
    name = "fasttext.v1"
    params_type = FastTextParams

    @classmethod
    def tiny_params(cls, work_dir, texts, labels):
        return {"embed_dim": 16, "buckets": 1000}
    default_lr = 1e-2  # a bag of embeddings with no hidden layer wants a larger step than a CNN

    def flops_per_text(self, n_ids: int, n_classes: int, graph: str | None = None) -> dict[str, Any]:
        d = self.params.embed_dim
        out: dict[str, Any] = {"per_text": n_ids * d + 2 * d * n_classes, "basis": "embedding sum (D per id, n-grams included) + output layer"}
        if graph == "bag_folded":  # one row of class scores per id, added
            out["graph_per_text"] = n_ids * n_classes + n_classes
        return out

    def build_net(self, num_ids: int, n_classes: int):
        from .nets import BagNet

        return BagNet(num_ids, n_classes, self.params.embed_dim, self.params.dropout)
