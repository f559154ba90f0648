"""`textcnn.v1`: Kim's CNN over character (or word) embeddings, max-pooled per kernel size."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from pydantic import Field

from ..registry import models
from .neural import NgramParams, TorchClassifier
from .pruning import VocabBy

if TYPE_CHECKING:
    from .fasttext import FastText


class TextCNNParams(NgramParams):
    kernel_sizes: tuple[int, ...] = (2, 3, 4)
    num_filters: int = Field(128, gt=0)


@models.register("textcnn.v1", params=TextCNNParams)
class TextCNN(TorchClassifier):
    name = "textcnn.v1"
    params_type = TextCNNParams
    # At 10 epochs and patience 3 it stopped before converging on FewCLUE few_all (iflytek's best dev epoch
    # was 36, tnews' 22): 2.3 points of mean dev accuracy lost (benchmarks/results/student_defaults.md).
    default_epochs = 40
    default_patience = 5

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

    def prune(self, width: float, max_vocab: int | None = None, *, texts: Sequence[str], labels: Sequence[str] | None = None,
              vocab_by: VocabBy = "frequency") -> "TextCNN | FastText":
        """A copy with `width` of the filters of each kernel size, `width` of the n-gram bag's buckets and at
        most `max_vocab` tokens (zhcls compress). A filter's importance is the mean of its pooled activation
        over `texts` times the norm of the output weights that read it: what the classifier takes from it.

        Width 0 drops the CNN of a hybrid and keeps its n-gram bag (pruning.bag_only): a fasttext.v1 model.
        No width of the CNN comes near its speed, because a text's cost in the serving graph is mostly its
        operators and table rows, which a narrower CNN keeps (docs/compression.md)."""
        import torch

        from .base import check_fitted
        from .pruning import bag_only, check_width, keep_count, out_input_means, plan_rows, pruned_like, prunes_to_bag, top_k

        check_fitted(self, "net_")
        check_width(width, max_vocab, zero_ok=prunes_to_bag(self))
        if width == 0.0:
            return bag_only(self, max_vocab, texts=texts, vocab_by=vocab_by)
        net, state = self.net_, self.net_.state_dict()
        n, nk = self.params.num_filters, len(net.kernel_sizes)
        w_out = state["out.weight"]
        score = out_input_means(net, self.featurizer_, texts, self.min_len) * w_out.norm(dim=0).double().numpy()
        k = keep_count(n, width)
        keep = [top_k(score[i * n : (i + 1) * n], k) for i in range(nk)]
        bag = net.bag is not None
        bag_norms = None
        if bag:  # a bucket's row moves the logits by W_bag @ row
            bag_norms = (state["bag.embedding.weight"][net.bag.vocab_size :] @ w_out[:, n * nk :].T).norm(dim=1).numpy()
        plan = plan_rows(self.featurizer_, texts, bucket_width=width if bag else 1.0, max_vocab=max_vocab,
                         token_norms=state["embedding.weight"].norm(dim=1).numpy(), bucket_norms=bag_norms, vocab_by=vocab_by)
        new = {"embedding.weight": plan.token_table(state["embedding.weight"])}
        for i, rows in enumerate(keep):
            new[f"convs.{i}.weight"] = state[f"convs.{i}.weight"][rows]
            new[f"convs.{i}.bias"] = state[f"convs.{i}.bias"][rows]
        cols = [torch.as_tensor(i * n + rows) for i, rows in enumerate(keep)]
        if bag:
            new["bag.embedding.weight"] = plan.table(state["bag.embedding.weight"])
            cols.append(torch.arange(n * nk, w_out.shape[1]))
        new["out.weight"], new["out.bias"] = w_out[:, torch.cat(cols)], state["out.bias"]
        updates = {"num_filters": k, "max_vocab": len(plan.featurizer.vocab)} if plan.vocab_pruned else {"num_filters": k}
        return pruned_like(self, updates, plan.featurizer, new)
