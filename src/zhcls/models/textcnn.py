"""`textcnn.v1`: Kim's CNN over character (or word) embeddings, max-pooled per kernel size."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..registry import models
from .neural import NgramParams, TorchClassifier


class TextCNNParams(NgramParams):
    kernel_sizes: tuple[int, ...] = (2, 3, 4)
    num_filters: int = Field(128, gt=0)


@models.register("textcnn.v1", params=TextCNNParams)
class TextCNN(TorchClassifier):
    name = "textcnn.v1"
    params_type = TextCNNParams

    @classmethod
    def tiny_params(cls, work_dir, texts, labels):
        return {"embed_dim": 16, "num_filters": 16, "buckets": 1000, "bag_dim": 8}

    @property
    def min_len(self) -> int:  # type: ignore[override]
        return max(self.params.kernel_sizes)

    def flops_per_text(self, n_ids: int, n_classes: int, graph: str | None = None) -> dict[str, Any]:
        p = self.params
        d, f, ks = p.embed_dim, p.num_filters, p.kernel_sizes
        per = sum(max(n_ids - k + 1, 1) * 2 * d * f * k for k in ks) + 2 * f * len(ks) * n_classes
        out: dict[str, Any] = {"per_text": per, "basis": "convolutions as matrix products (2 D F k per window) + output layer"}
        if graph == "textcnn_tables":  # per window: one table row of all filters per tap, added; then the output layer
            cols, width = f * len(ks), max(ks)
            out["graph_per_text"] = max(n_ids, width) * width * cols + 2 * cols * n_classes
        return out

    def build_net(self, num_ids: int, n_classes: int):
        from .nets import TextCNNNet

        p = self.params
        return TextCNNNet(num_ids, n_classes, p.embed_dim, p.kernel_sizes, p.num_filters, p.dropout, **self._bag_shape())
