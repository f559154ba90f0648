"""`bigru.v1`: a bidirectional GRU with attention pooling."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..registry import models
from .neural import NgramParams, TorchClassifier


class BiGRUParams(NgramParams):
    hidden_size: int = Field(128, gt=0)
    num_layers: int = Field(1, ge=1)


@models.register("bigru.v1", params=BiGRUParams)
class BiGRU(TorchClassifier):
    name = "bigru.v1"
    params_type = BiGRUParams

    @classmethod
    def tiny_params(cls, work_dir, texts, labels):
        return {"embed_dim": 16, "hidden_size": 16, "buckets": 1000, "bag_dim": 8}
    default_lr = 2e-3

    def flops_per_text(self, n_ids: int, n_classes: int, graph: str | None = None) -> dict[str, Any]:
        d, h, layers = self.params.embed_dim, self.params.hidden_size, self.params.num_layers
        step = sum(2 * 2 * 3 * ((d if i == 0 else 2 * h) + h) * h for i in range(layers))  # 2 directions, 3 gates
        return {"per_text": n_ids * (step + 2 * 2 * h) + 2 * 2 * h * n_classes, "basis": "GRU gates (both directions, every layer) + attention + output layer"}

    def build_net(self, num_ids: int, n_classes: int):
        from .nets import BiGRUNet

        p = self.params
        return BiGRUNet(num_ids, n_classes, p.embed_dim, p.hidden_size, p.num_layers, p.dropout, **self._bag_shape())
