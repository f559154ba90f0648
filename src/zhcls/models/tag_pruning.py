"""Width and vocabulary pruning of tagger.v1 and joint.v1 (`zhcls compress`, docs/compression.md).

`width` keeps that share of the encoder's units (GRU hidden units per direction and layer, or CNN filters)
and of the n-gram vectors' dimensions (the n-gram table is most of a tagger's bundle: 200,000 rows);
`max_vocab` keeps the most frequent (or largest) character embeddings, a removed character reading as UNK,
whose row starts as the count-weighted mean of the rows it replaces. The tag and class heads and the CRF
keep their outputs. What stays is what the heads read most: a top-layer unit is ranked by its mean
absolute state over the texts times the size of the head weights that read it, a unit below by the size of
the next layer's input weights that read it, an n-gram dimension by its size in the table times the
weights that read it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ConfigError
from ..tagging.features import CharFeatures, pad_features
from ..text.vocab import Vocab
from .pruning import VocabBy, check_width, keep_count, kept_tokens, mean_rows, top_k


def prune_joint(model: Any, width: float, max_vocab: int | None, texts: Sequence[str], vocab_by: VocabBy = "frequency",
                max_texts: int = 4096) -> Any:
    """A fitted copy of `model` (a JointModel) at `width` and at most `max_vocab` characters."""
    import torch

    check_width(width, max_vocab)
    p = model.params
    if p.encoder == "transformer":
        raise ConfigError(f"{model.name} with encoder = \"transformer\" cannot be pruned yet; its BiGRU and CNN encoders can",
                          hint="compress a tagger with encoder = \"bigru\" or \"cnn\", or train a smaller checkpoint")
    net = model.module_.net
    state = {k: v.detach().cpu() for k, v in model.module_.state_dict().items()}
    h, layers, emb = p.hidden_size, p.num_layers, state["net.embedding.weight"].shape[1]
    grams = net.grams is not None
    g_dim = state["net.grams.weight"].shape[1] if grams else 0
    k = keep_count(h, width)
    g_keep = top_k(_gram_scores(state, p.encoder, emb, h, g_dim, layers), keep_count(g_dim, width)) if grams else np.arange(0)

    # which units of each layer stay: the top layer by what the heads read, a lower one by what the next reads
    readers = state["net.tags.weight"].norm(dim=0)
    if "net.out.weight" in state:
        readers = readers + state["net.out.weight"][:, : 2 * h].norm(dim=0) + state["net.attention.weight"][0].abs()
    keep: list[np.ndarray] = [np.arange(0)] * layers
    for layer in reversed(range(layers)):
        if layer == layers - 1:
            score = _mean_states(model, texts[:max_texts]) * readers.double().numpy()
        elif p.encoder == "bigru":
            score = sum(state[f"net.{d}_layers.{layer + 1}.weight_ih_l0"].abs().sum(dim=0) for d in ("forward", "backward")).double().numpy()
        else:
            score = state[f"net.convs.{layer + 1}.weight"].abs().sum(dim=(0, 2)).double().numpy()
        # a BiGRU keeps k units of each direction ([forward H | backward H]); a CNN 2k of its 2H filters
        keep[layer] = np.concatenate([top_k(score[:h], k), h + top_k(score[h:], k)]) if p.encoder == "bigru" else top_k(score, 2 * k)

    new: dict[str, Any] = {key: v for key, v in state.items() if key.startswith("crf.") or key == "net.tags.bias"}
    for layer in range(layers):
        cols = torch.as_tensor(np.concatenate([np.arange(emb), emb + g_keep]) if layer == 0 else keep[layer - 1])
        units = torch.as_tensor(keep[layer])
        if p.encoder == "bigru":
            for i, d in enumerate(("forward", "backward")):
                own = units[i * k : (i + 1) * k] - i * h  # this direction's units, 0..H-1
                rows = torch.cat([g * h + own for g in range(3)])  # their r, z and n gates
                pre = f"net.{d}_layers.{layer}."
                new[pre + "weight_ih_l0"] = state[pre + "weight_ih_l0"][rows][:, cols]
                new[pre + "weight_hh_l0"] = state[pre + "weight_hh_l0"][rows][:, own]
                new[pre + "bias_ih_l0"], new[pre + "bias_hh_l0"] = state[pre + "bias_ih_l0"][rows], state[pre + "bias_hh_l0"][rows]
        else:
            pre = f"net.convs.{layer}."
            new[pre + "weight"], new[pre + "bias"] = state[pre + "weight"][units][:, cols], state[pre + "bias"][units]
    top = torch.as_tensor(keep[-1])
    new["net.tags.weight"] = state["net.tags.weight"][:, top]
    if "net.out.weight" in state:
        new["net.attention.weight"], new["net.attention.bias"] = state["net.attention.weight"][:, top], state["net.attention.bias"]
        # columns: the states, the shared n-gram bag, then the class head's own bag, which keeps its width
        own = torch.arange(2 * h + g_dim, state["net.out.weight"].shape[1])
        new["net.out.weight"] = state["net.out.weight"][:, torch.cat([top, 2 * h + torch.as_tensor(g_keep, dtype=torch.long), own])]
        new["net.out.bias"] = state["net.out.bias"]
    if grams:
        new["net.grams.weight"] = state["net.grams.weight"][:, torch.as_tensor(g_keep, dtype=torch.long)]
    if "net.class_grams.weight" in state:
        new["net.class_grams.weight"] = state["net.class_grams.weight"]
    features, remap = _pruned_vocab(model.features_, state["net.embedding.weight"], texts, max_vocab, vocab_by)
    new["net.embedding.weight"] = remap(state["net.embedding.weight"])
    if "net.class_chars.weight" in state:
        new["net.class_chars.weight"] = remap(state["net.class_chars.weight"])

    updates = {"hidden_size": k, "gram_dim": len(g_keep) if grams else p.gram_dim}
    if len(features.vocab) < len(model.features_.vocab):
        updates["max_vocab"] = len(features.vocab)
    params = type(p).model_validate({**p.model_dump(), **updates})
    clone = type(model)(params, model.training)
    clone.labels_, clone.tags_, clone.features_ = model.labels_, model.tags_, features
    clone.module_ = clone._build_module()
    clone.module_.load_state_dict({key: v.contiguous() for key, v in new.items()})
    clone.module_.eval()
    return clone


def _mean_states(model: Any, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """[2H]: the mean absolute encoder state of each unit over the characters of `texts`, dropout off."""
    import torch

    net = model.module_.net
    encoded = model.features_.encode_batch(list(texts) or [""])
    total, n = None, 0
    was_training = net.training
    net.eval()
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            ids, grams, lengths = (torch.from_numpy(a) for a in pad_features(encoded[start : start + batch_size]))
            states, _ = net.encode(ids, grams, lengths)  # zero past each text's end
            part = states.abs().sum(dim=(0, 1)).double()
            total, n = (part if total is None else total + part), n + int(lengths.clamp(min=1).sum())
    net.train(was_training)
    return (total / max(1, n)).numpy()


def _gram_scores(state: dict[str, Any], encoder: str, emb: int, h: int, g_dim: int, layers: int) -> np.ndarray:
    """[G]: each n-gram dimension's size in the table times the size of the weights that read it (the first
    layer's inputs, and the class head's n-gram bag)."""
    table = state["net.grams.weight"][1:]  # row 0 is padding
    rms = table.pow(2).mean(dim=0).sqrt()
    if encoder == "bigru":
        read = sum(state[f"net.{d}_layers.0.weight_ih_l0"][:, emb : emb + g_dim].norm(dim=0) for d in ("forward", "backward"))
    else:
        read = state["net.convs.0.weight"][:, emb : emb + g_dim].norm(dim=(0, 2))
    if "net.out.weight" in state:
        read = read + state["net.out.weight"][:, 2 * h : 2 * h + g_dim].norm(dim=0)
    return (rms * read).double().numpy()


def _pruned_vocab(features: CharFeatures, weight: Any, texts: Sequence[str], max_vocab: int | None,
                  vocab_by: VocabBy) -> tuple[CharFeatures, Callable[[Any], Any]]:
    """(features over at most `max_vocab` characters, chosen by `weight`, the character embeddings; a
    function from a table with one row per character to the kept rows: the embeddings, the class head's
    own bag). PAD and UNK stay at ids 0 and 1; UNK's row is the count-weighted mean of the removed ones."""
    n = len(features.vocab)
    if max_vocab is None or max_vocab >= n:
        return features, lambda table: table.clone()
    counts = np.bincount(np.concatenate([features.encode(t)[0] for t in texts] or [np.zeros(0, np.int64)]), minlength=n).astype(np.float64)
    kept = kept_tokens(counts, weight.norm(dim=1).double().numpy(), max_vocab, vocab_by)
    dropped = np.setdiff1d(np.arange(1, n), kept)  # the old UNK and every removed character

    def remap(table: Any) -> Any:
        out = table[kept].clone()
        out[1] = mean_rows(table, dropped, counts[dropped], table[1])
        return out

    f = features
    pruned = CharFeatures(Vocab([f.vocab.tokens[i] for i in kept]), lowercase=f.lowercase, max_len=f.max_len, ngrams=f.ngrams, buckets=f.buckets)
    return pruned, remap
