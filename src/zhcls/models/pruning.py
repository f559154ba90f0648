"""What the neural models share when they are pruned (`zhcls compress`, docs/compression.md).

A model's own `prune(width, max_vocab, texts=..., labels=...)` (textcnn.py, bigru.py, fasttext.py,
transformer.py) decides which filters, hidden units or heads stay; this module decides which embedding rows
stay: the `max_vocab` tokens that matter most (by frequency on the training texts, or by embedding norm)
and a `width` share of the hashed n-gram buckets (most used, weighted by how much they move the logits).
A removed token becomes UNK, in training and serving alike, since the pruned vocabulary is what
tokenizer.json holds; a removed bucket shares one row with every other removed bucket. Each of those
two rows starts as the mean of the rows it replaces, weighted by how often the training texts use them,
so a pruned model starts close to its parent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from ..errors import ConfigError
from ..text.featurizer import Featurizer
from ..text.vocab import Vocab

VocabBy = Literal["frequency", "norm"]


def keep_count(n: int, width: float) -> int:
    """How many of `n` units a model of relative `width` keeps: rounded, at least one."""
    return max(1, min(n, int(round(n * width))))


def top_k(scores: Any, k: int) -> np.ndarray:
    """Indices of the `k` largest scores in increasing order (ties: the lower index stays)."""
    s = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((np.arange(len(s)), -s))
    return np.sort(order[:k])


def check_width(width: float, max_vocab: int | None, *, zero_ok: bool = False) -> None:
    """`zero_ok`: the model can be pruned to width 0 (`prunes_to_bag`)."""
    if width == 0.0 and not zero_ok:
        raise ConfigError(
            "width 0 keeps no filters, units or heads; only a textcnn.v1 or bigru.v1 with an n-gram bag (bag_dim > 0) can drop its CNN or GRU and keep the bag",
            hint="e.g. --width 1/4 keeps a quarter of them",
        )
    if not 0.0 <= width <= 1.0:
        raise ConfigError(f"width {width:g} is outside [0, 1]", hint="e.g. --width 2/3 keeps two thirds of the filters, units or heads")
    if max_vocab is not None and max_vocab < 10:
        raise ConfigError(f"max_vocab {max_vocab} is below 10", hint="keep at least 10 tokens (PAD and UNK count)")


@dataclass
class RowPlan:
    """How the ids of a pruned featurizer read the parent's embedding table.

    New token i is old token `tokens[i]`; new UNK (id 1) is the count-weighted mean of `unk_from`. New
    n-gram row j is old n-gram row `grams[j]` (offsets from the vocabulary's end), and, when buckets were
    pruned, one last row is the count-weighted mean of `other_from`. `grams` None: the n-gram rows are
    the parent's, unchanged.
    """

    featurizer: Featurizer
    old_vocab: int
    tokens: np.ndarray
    unk_from: np.ndarray
    unk_weights: np.ndarray
    grams: np.ndarray | None = None
    other_from: np.ndarray | None = None
    other_weights: np.ndarray | None = None

    @property
    def vocab_pruned(self) -> bool:
        return len(self.tokens) < self.old_vocab

    def token_table(self, weight):  # torch [old V, D] -> [new V, D]
        out = weight[self.tokens].clone()
        if self.vocab_pruned:
            out[1] = mean_rows(weight, self.unk_from, self.unk_weights, weight[1])
        return out

    def table(self, weight):  # torch [old ids, D] -> [new ids, D]: tokens, then n-gram buckets
        import torch

        tokens = self.token_table(weight[: self.old_vocab])
        grams = weight[self.old_vocab :]
        if self.grams is not None:
            other = mean_rows(grams, self.other_from, self.other_weights, torch.zeros_like(grams[0]))
            grams = torch.cat([grams[self.grams], other[None]])
        return torch.cat([tokens, grams])


def mean_rows(weight, rows: np.ndarray, weights: np.ndarray, fallback):
    """The `weights`-weighted mean of `weight[rows]` (a merged row: UNK, the shared n-gram row), or `fallback`."""
    import torch

    if not len(rows) or weights.sum() <= 0:
        return fallback.clone()
    w = torch.as_tensor(weights / weights.sum(), dtype=weight.dtype)
    return (weight[torch.as_tensor(rows)] * w[:, None]).sum(dim=0)


def id_counts(featurizer: Featurizer, texts: Sequence[str]) -> np.ndarray:
    """How often each id occurs in the encoded `texts` [num_ids]."""
    ids = [i for text in texts for i in featurizer.encode(text)]
    return np.bincount(np.asarray(ids, dtype=np.int64), minlength=featurizer.num_ids).astype(np.float64)


def kept_tokens(counts: np.ndarray, norms: Any, max_vocab: int | None, vocab_by: VocabBy) -> np.ndarray:
    """The ids of the tokens a pruned vocabulary keeps, in order: PAD and UNK (ids 0 and 1) always, then the
    `max_vocab` - 2 most frequent (or largest) of the rest, ties broken by size, then id."""
    n = len(counts)
    if max_vocab is None or max_vocab >= n:
        return np.arange(n)
    rest = np.arange(2, n)
    norms = np.asarray(norms, dtype=np.float64)
    primary = counts[rest] if vocab_by == "frequency" else norms[rest]
    order = np.lexsort((rest, -norms[rest], -primary))
    return np.concatenate([[0, 1], np.sort(rest[order[: max_vocab - 2]])])


def plan_rows(
    featurizer: Featurizer,
    texts: Sequence[str],
    *,
    bucket_width: float,
    max_vocab: int | None,
    token_norms: np.ndarray,
    bucket_norms: np.ndarray | None = None,
    vocab_by: VocabBy = "frequency",
) -> RowPlan:
    """Which tokens and n-gram buckets a pruned model keeps. `token_norms` [V]: the size of each token's
    embedding (used by vocab_by="norm" and to break ties); `bucket_norms` [n-gram rows]: how far each bucket's
    row moves the logits, weighted by how often the texts use it to rank the buckets."""
    f = featurizer
    counts = id_counts(f, texts)
    n_vocab = len(f.vocab)
    tok_counts = counts[:n_vocab]
    tokens = kept_tokens(tok_counts, token_norms, max_vocab, vocab_by)
    dropped = np.setdiff1d(np.arange(1, n_vocab), tokens[2:])  # old UNK and every removed token
    vocab = Vocab([f.vocab.tokens[i] for i in tokens])

    kept_buckets = f.kept_buckets
    grams = other_from = other_weights = None
    real = f.bucket_rows - (1 if f.kept_buckets is not None else 0)  # rows of a bucket of their own
    k = keep_count(real, bucket_width) if real else 0
    if real and k < real:
        gram_counts = counts[n_vocab:]
        norms = np.asarray(bucket_norms, dtype=np.float64) if bucket_norms is not None else np.ones(f.bucket_rows)
        score = gram_counts[:real] * norms[:real]  # the share of the logits a bucket moves over the texts
        order = np.lexsort((np.arange(real), -norms[:real], -score))
        grams = np.sort(order[:k])
        other_from = np.setdiff1d(np.arange(f.bucket_rows), grams)  # the parent's shared row, if it had one, joins
        other_weights = gram_counts[other_from]
        kept_buckets = f.kept_buckets[grams] if f.kept_buckets is not None else grams
    new = Featurizer(f.tokenizer_name, f.lowercase, f.max_len, vocab, f.ngrams, f.buckets, kept_buckets)
    return RowPlan(new, n_vocab, tokens, dropped, tok_counts[dropped], grams, other_from, other_weights)


def out_input_means(net, featurizer: Featurizer, texts: Sequence[str], min_len: int, batch_size: int = 256, absolute: bool = True) -> np.ndarray:
    """The mean absolute value of each input feature of `net.out` (its last linear layer) over `texts`:
    how much the classifier has to read from each pooled filter or hidden unit (`absolute` False: the plain mean)."""
    import torch

    from .trainer import predict_logits

    total: list[Any] = []

    def hook(module, args):
        x = args[0].detach()
        total.append((x.abs() if absolute else x).sum(dim=0))

    handle = net.out.register_forward_pre_hook(hook)
    try:
        predict_logits(net, featurizer.encode_batch(texts), batch_size=batch_size, min_len=min_len)
    finally:
        handle.remove()
    return (torch.stack(total).sum(dim=0) / max(1, len(texts))).double().numpy()


def pruned_like(model: Any, updates: dict[str, Any], featurizer: Featurizer, state: dict[str, Any]):
    """A fitted copy of `model` with params changed by `updates`, the pruned featurizer and weights."""
    params = type(model.params).model_validate({**model.params.model_dump(), **updates})
    return pruned_as(type(model), params, model, featurizer, state)


def pruned_as(cls: Any, params: Any, model: Any, featurizer: Featurizer, state: dict[str, Any]):
    """A fitted `cls` model with `params`, `model`'s labels and training settings, the featurizer and weights."""
    clf = cls(params, model.training)
    clf.labels_ = model.labels_
    clf.featurizer_ = featurizer
    clf.net_ = clf.build_net(featurizer.num_ids, len(model.labels_))
    clf.net_.load_state_dict({k: v.contiguous() for k, v in state.items()})
    clf.net_.eval()
    return clf


def prunes_to_bag(model: Any) -> bool:
    """Whether width 0 is possible: a hybrid (textcnn.v1, bigru.v1 with an NgramBag) can drop its sequence
    model and keep the bag (`bag_only`)."""
    return getattr(getattr(model, "net_", None), "bag", None) is not None


def bag_only(model: Any, max_vocab: int | None, *, texts: Sequence[str], vocab_by: VocabBy = "frequency"):
    """A hybrid's n-gram bag as a fasttext.v1 model: the same ids, the bag's embedding rows, every bucket, and
    its columns of the output layer (the last `bag_dim` of them). What the CNN or GRU gave the logits on
    average over `texts` (the mean of its pooled features, times their output weights) moves into the bias,
    so the model starts from the parent's class balance; recovery distills the rest. Tokens are ranked by
    how far their bag row moves the logits, as fasttext.v1's own pruning ranks them."""
    import torch

    from ..text.featurizer import TextParams
    from .fasttext import FastText, FastTextParams

    net, p = model.net_, model.params
    state, bag = net.state_dict(), net.bag
    w_out, rows = state["out.weight"], state["bag.embedding.weight"]
    dim = bag.embedding.embedding_dim
    cols = w_out.shape[1] - dim  # the sequence model's pooled features come first
    means = out_input_means(net, model.featurizer_, texts, model.min_len, absolute=False)[:cols]
    norms = (rows @ w_out[:, cols:].T).norm(dim=1).numpy()
    plan = plan_rows(model.featurizer_, texts, bucket_width=1.0, max_vocab=max_vocab, token_norms=norms[: bag.vocab_size],
                     bucket_norms=norms[bag.vocab_size :], vocab_by=vocab_by)
    shift = w_out[:, :cols].double() @ torch.as_tensor(means, dtype=torch.float64)
    new = {"embedding.weight": plan.table(rows), "out.weight": w_out[:, cols:], "out.bias": (state["out.bias"].double() + shift).to(w_out.dtype)}
    params = FastTextParams.model_validate({
        **{k: getattr(p, k) for k in TextParams.model_fields}, "embed_dim": dim, "ngrams": p.ngrams, "buckets": p.buckets,
        **({"max_vocab": len(plan.featurizer.vocab)} if plan.vocab_pruned else {}),
    })
    return pruned_as(FastText, params, model, plan.featurizer, new)
