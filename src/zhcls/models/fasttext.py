"""`fasttext.v1`: fastText's model: mean of token and hashed n-gram embeddings, then a linear layer."""

from __future__ import annotations

from typing import Any, Literal, Sequence

from pydantic import Field

from ..errors import ConfigError
from ..registry import models
from .neural import NeuralParams, TorchClassifier
from .pruning import VocabBy


class FastTextParams(NeuralParams):
    embed_dim: int = Field(100, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    ngrams: int = Field(2, ge=1, le=4)  # token n-grams up to this length, hashed into `buckets`
    buckets: int = Field(200_000, ge=0)
    # "mean": fastText's average of embeddings; "tfidf": sublinear tf * idf weights, L2-normalized (models/nets.py BagNet)
    weighting: Literal["mean", "tfidf"] = "mean"


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
        elif graph == "bag_folded_tfidf":  # the same, weighted, after tf from every pair of positions
            out["graph_per_text"] = n_ids * n_ids + 8 * n_ids + 2 * n_ids * n_classes + n_classes
        return out

    def build_net(self, num_ids: int, n_classes: int):
        from .nets import BagNet

        return BagNet(num_ids, n_classes, self.params.embed_dim, self.params.dropout, self.params.weighting)

    def prepare_net(self, net, seqs) -> None:
        if self.params.weighting == "tfidf":
            net.set_idf(seqs)

    def prune(self, width: float, max_vocab: int | None = None, *, texts: Sequence[str], labels: Sequence[str] | None = None,
              vocab_by: VocabBy = "frequency") -> "FastText":
        """A copy with `width` of the hashed n-gram buckets and at most `max_vocab` tokens (zhcls compress), as
        fastText's `quantize -cutoff` keeps the rows that matter: a bucket is ranked by how often `texts` use it
        times how far its row moves the logits; the others share one row."""
        from .base import check_fitted
        from .pruning import check_width, plan_rows, pruned_like

        check_fitted(self, "net_")
        check_width(width, max_vocab)
        f = self.featurizer_
        if width < 1 and not f.buckets:
            raise ConfigError("this fasttext.v1 model has no n-gram buckets, so it has no width to prune",
                              hint="prune its vocabulary alone: --width 1 --max-vocab N")
        state = self.net_.state_dict()
        norms = (state["embedding.weight"] @ state["out.weight"].T).norm(dim=1).numpy()  # a row moves the logits by W @ row
        n_vocab = len(f.vocab)
        plan = plan_rows(f, texts, bucket_width=width, max_vocab=max_vocab, token_norms=norms[:n_vocab], bucket_norms=norms[n_vocab:], vocab_by=vocab_by)
        new = {"embedding.weight": plan.table(state["embedding.weight"]), "out.weight": state["out.weight"], "out.bias": state["out.bias"]}
        if "idf" in state:  # a shared row takes the mean idf of the rows it stands for
            new["idf"] = plan.table(state["idf"][:, None])[:, 0]
        updates = {"max_vocab": len(plan.featurizer.vocab)} if plan.vocab_pruned else {}
        return pruned_like(self, updates, plan.featurizer, new)
