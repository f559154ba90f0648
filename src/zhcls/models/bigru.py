"""`bigru.v1`: a bidirectional GRU with attention pooling."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from pydantic import Field

from ..registry import models
from .neural import NgramParams, TorchClassifier
from .pruning import VocabBy

if TYPE_CHECKING:
    from .fasttext import FastText


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

    def prune(self, width: float, max_vocab: int | None = None, *, texts: Sequence[str], labels: Sequence[str] | None = None,
              vocab_by: VocabBy = "frequency") -> "BiGRU | FastText":
        """A copy with `width` of the hidden units of each GRU (each layer, each direction), `width` of the
        n-gram bag's buckets and at most `max_vocab` tokens (zhcls compress). A unit of the top layer is
        ranked by its mean pooled activation over `texts` times the norm of the output weights that read it;
        a unit below, by the size of the next layer's input weights that read it. Width 0 drops the GRUs of
        a hybrid and keeps its n-gram bag (pruning.bag_only): a fasttext.v1 model."""
        import torch

        from .base import check_fitted
        from .pruning import bag_only, check_width, keep_count, out_input_means, plan_rows, pruned_like, prunes_to_bag, top_k

        check_fitted(self, "net_")
        check_width(width, max_vocab, zero_ok=prunes_to_bag(self))
        if width == 0.0:
            return bag_only(self, max_vocab, texts=texts, vocab_by=vocab_by)
        net, state = self.net_, self.net_.state_dict()
        h, layers = self.params.hidden_size, self.params.num_layers
        k = keep_count(h, width)
        w_out = state["out.weight"]
        top = out_input_means(net, self.featurizer_, texts, self.min_len)[: 2 * h] * w_out[:, : 2 * h].norm(dim=0).double().numpy()
        keep: list[dict[str, torch.Tensor]] = [{} for _ in range(layers)]
        for layer in reversed(range(layers)):
            if layer == layers - 1:
                score = top
            else:  # what the next layer reads from each unit: the [fwd H | bwd H] columns of its input weights
                score = sum(state[f"{d}_layers.{layer + 1}.weight_ih_l0"].abs().sum(dim=0) for d in ("forward", "backward")).double().numpy()
            keep[layer] = {"forward": torch.as_tensor(top_k(score[:h], k)), "backward": torch.as_tensor(top_k(score[h:], k))}
        new: dict[str, torch.Tensor] = {}
        for layer in range(layers):
            cols = None if layer == 0 else torch.cat([keep[layer - 1]["forward"], h + keep[layer - 1]["backward"]])
            for d in ("forward", "backward"):
                units = keep[layer][d]
                rows = torch.cat([g * h + units for g in range(3)])  # the r, z and n gates of each kept unit
                pre = f"{d}_layers.{layer}."
                w_ih = state[pre + "weight_ih_l0"][rows]
                new[pre + "weight_ih_l0"] = w_ih if cols is None else w_ih[:, cols]
                new[pre + "weight_hh_l0"] = state[pre + "weight_hh_l0"][rows][:, units]
                new[pre + "bias_ih_l0"], new[pre + "bias_hh_l0"] = state[pre + "bias_ih_l0"][rows], state[pre + "bias_hh_l0"][rows]
        pooled = torch.cat([keep[-1]["forward"], h + keep[-1]["backward"]])
        new["attention.weight"], new["attention.bias"] = state["attention.weight"][:, pooled], state["attention.bias"]
        bag = net.bag is not None
        bag_norms = None
        if bag:
            bag_norms = (state["bag.embedding.weight"][net.bag.vocab_size :] @ w_out[:, 2 * h :].T).norm(dim=1).numpy()
            pooled = torch.cat([pooled, torch.arange(2 * h, w_out.shape[1])])
        plan = plan_rows(self.featurizer_, texts, bucket_width=width if bag else 1.0, max_vocab=max_vocab,
                         token_norms=state["embedding.weight"].norm(dim=1).numpy(), bucket_norms=bag_norms, vocab_by=vocab_by)
        new["embedding.weight"] = plan.token_table(state["embedding.weight"])
        if bag:
            new["bag.embedding.weight"] = plan.table(state["bag.embedding.weight"])
        new["out.weight"], new["out.bias"] = w_out[:, pooled], state["out.bias"]
        updates = {"hidden_size": k, "max_vocab": len(plan.featurizer.vocab)} if plan.vocab_pruned else {"hidden_size": k}
        return pruned_like(self, updates, plan.featurizer, new)
