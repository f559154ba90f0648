"""`textcnn.v1`: Kim's CNN over character (or word) embeddings, max-pooled per kernel size."""

from __future__ import annotations

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

    def build_net(self, num_ids: int, n_classes: int):
        from .nets import TextCNNNet

        p = self.params
        return TextCNNNet(num_ids, n_classes, p.embed_dim, p.kernel_sizes, p.num_filters, p.dropout, **self._bag_shape())
