"""The torch modules behind the neural models: `forward(ids [B, T], lengths [B]) -> logits [B, K]`.

Padding never changes a text's output (pooling is masked, the GRU never reads padding before text), so one text predicted alone
and the same text in a padded batch get the same probabilities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


class NgramBag(nn.Module):
    """The fastText half of a hybrid student: the mean embedding of every id of a text, its tokens and its
    hashed n-grams. It gives a CNN or GRU what makes n-gram models strong on small data: a direct,
    position-free vote of every bi- and tri-gram, next to the sequence model's features.

    ids hold a text's token ids (< vocab_size) first, then its n-gram ids (>= vocab_size), as the
    Featurizer writes them; `split` gives the sequence model the token part only.
    """

    def __init__(self, num_ids: int, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        # sparse: a step updates only the rows of the n-grams in its batch (SparseAdam, see the trainer)
        self.embedding = nn.Embedding(num_ids, dim, padding_idx=0, sparse=True)

    def split(self, ids: torch.Tensor, min_width: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(token ids, number of tokens per text): the token columns only, n-gram positions set to padding.
        Cutting the columns the tokens never reach matters: a text of n characters has about 3n ids with
        tri-grams, and the CNN or GRU would otherwise run over all of them (measured: 3x the step time)."""
        is_token = ids < self.vocab_size
        n_tokens = ((ids > 0) & is_token).sum(dim=1)
        width = torch.clamp(n_tokens.max(), min=min_width) if ids.shape[0] else ids.shape[1]
        return ids.masked_fill(~is_token, 0)[:, :width], n_tokens

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = _mask(lengths, ids.shape[1]).unsqueeze(-1).to(torch.float32)
        return (self.embedding(ids) * mask).sum(dim=1) / lengths.clamp(min=1).unsqueeze(-1).to(torch.float32)


class TextCNNNet(nn.Module):
    """Kim's CNN; with `bag_dim` > 0 a hybrid: the CNN reads the tokens, an NgramBag all ids, and one linear
    layer reads both."""

    def __init__(
        self, num_ids: int, n_classes: int, embed_dim: int, kernel_sizes: tuple[int, ...], num_filters: int, dropout: float,
        vocab_size: int | None = None, bag_dim: int = 0,
    ) -> None:
        super().__init__()
        self.kernel_sizes = tuple(kernel_sizes)
        vocab_size = vocab_size or num_ids
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, num_filters, k) for k in self.kernel_sizes)
        self.bag = NgramBag(num_ids, vocab_size, bag_dim) if bag_dim else None
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(num_filters * len(self.kernel_sizes) + bag_dim, n_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        tokens, n_tokens = self.bag.split(ids, max(self.kernel_sizes)) if self.bag is not None else (ids, lengths)
        x = self.embedding(tokens).transpose(1, 2)  # [B, E, T]
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs):
            h = F.relu(conv(x))  # [B, F, T-k+1]
            # Windows that start past the text's end see only padding; a text shorter than k keeps its
            # first window (the caller pads every batch to at least max(kernel_sizes)).
            valid = _mask(torch.clamp(n_tokens - k + 1, min=1), h.shape[2])
            pooled.append(h.masked_fill(~valid[:, None, :], 0.0).amax(dim=2))
        if self.bag is not None:
            pooled.append(self.bag(ids, lengths))
        return self.out(self.dropout(torch.cat(pooled, dim=1)))


def reverse_within(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of x [B, T, D] within its length; padding stays at the end."""
    t = torch.arange(x.shape[1], device=x.device)[None, :]
    idx = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))


def bigru_layer(fwd: nn.GRU, bwd: nn.GRU, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """One bidirectional layer [B, T, D] -> [B, T, 2H]: `fwd` reads each text forward, `bwd` reads it reversed
    within its length. Exported to ONNX as one bidirectional GRU node given the lengths (sequence_lens), whose
    reverse direction starts at each text's last character: the same outputs at every valid position, without
    the reversal's index arithmetic (about 30 shape and gather nodes per layer, half the graph's time at 1
    thread for a short text)."""
    if torch.onnx.is_in_onnx_export():
        return _BiGRUOnnx.apply(h, lengths, *onnx_gru_weights(fwd, bwd))
    ahead, _ = fwd(h)
    behind, _ = bwd(reverse_within(h, lengths))
    return torch.cat([ahead, reverse_within(behind, lengths)], dim=2)


def onnx_gru_weights(fwd: nn.GRU, bwd: nn.GRU) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(W [2, 3H, D], R [2, 3H, H], B [2, 6H]) of ONNX's GRU, gates in its z, r, h order (PyTorch's: r, z, n)."""

    def zrh(w: torch.Tensor) -> torch.Tensor:
        r, z, n = w.chunk(3, dim=0)
        return torch.cat([z, r, n], dim=0)

    w = torch.stack([zrh(g.weight_ih_l0) for g in (fwd, bwd)])
    r = torch.stack([zrh(g.weight_hh_l0) for g in (fwd, bwd)])
    b = torch.stack([torch.cat([zrh(g.bias_ih_l0), zrh(g.bias_hh_l0)]) for g in (fwd, bwd)])
    return w, r, b


def onnx_gru_reference(x: torch.Tensor, lengths: torch.Tensor, w: torch.Tensor, r: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ONNX's bidirectional GRU (linear_before_reset = 1, sequence_lens) on x [B, T, D] -> [B, T, 2H], written
    out step by step; zeros past each length, as onnxruntime gives. The traced value of the export node."""
    batch, t_len, _ = x.shape
    hidden = r.shape[2]
    out = x.new_zeros(batch, t_len, 2, hidden)
    for d in range(2):
        wz, wr, wh = w[d].chunk(3)
        rz, rr, rh = r[d].chunk(3)
        bwz, bwr, bwh, brz, brr, brh = b[d].chunk(6)
        for i in range(batch):
            n = int(lengths[i])
            state = x.new_zeros(hidden)
            for t in range(n) if d == 0 else range(n - 1, -1, -1):
                z = torch.sigmoid(x[i, t] @ wz.T + state @ rz.T + bwz + brz)
                g = torch.sigmoid(x[i, t] @ wr.T + state @ rr.T + bwr + brr)
                cand = torch.tanh(x[i, t] @ wh.T + g * (state @ rh.T + brh) + bwh)
                state = (1 - z) * cand + z * state
                out[i, t, d] = state
    return out.reshape(batch, t_len, 2 * hidden)


class _BiGRUOnnx(torch.autograd.Function):
    """Export only: an ONNX GRU node (direction bidirectional, sequence_lens = lengths)."""

    @staticmethod
    def forward(ctx, x, lengths, w, r, b):  # noqa: ANN001 - autograd's signature
        return onnx_gru_reference(x, lengths, w, r, b)

    @staticmethod
    def symbolic(g, x, lengths, w, r, b):  # noqa: ANN001
        seq_lens = g.op("Cast", lengths, to_i=6)  # int32, as ONNX's GRU takes it
        y = g.op("GRU", g.op("Transpose", x, perm_i=[1, 0, 2]), w, r, b, seq_lens,
                 hidden_size_i=r.type().sizes()[2], direction_s="bidirectional", linear_before_reset_i=1)  # [T, 2, B, H]
        shape = g.op("Constant", value_t=torch.tensor([0, 0, -1], dtype=torch.int64))
        return g.op("Reshape", g.op("Transpose", y, perm_i=[2, 0, 1, 3]), shape)  # [B, T, 2H]


class BiGRUNet(nn.Module):
    """Bidirectional GRU + attention pooling.

    Built from one-directional GRUs, the backward one reading each text reversed within its length,
    rather than nn.GRU(bidirectional=True) over packed sequences: padding then never reaches a valid
    position, and the graph exports to ONNX (packed sequences do not).
    """

    def __init__(
        self, num_ids: int, n_classes: int, embed_dim: int, hidden_size: int, num_layers: int, dropout: float,
        vocab_size: int | None = None, bag_dim: int = 0,
    ) -> None:
        super().__init__()
        vocab_size = vocab_size or num_ids
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.bag = NgramBag(num_ids, vocab_size, bag_dim) if bag_dim else None
        sizes = [embed_dim] + [2 * hidden_size] * (num_layers - 1)
        self.forward_layers = nn.ModuleList(nn.GRU(n, hidden_size, batch_first=True) for n in sizes)
        self.backward_layers = nn.ModuleList(nn.GRU(n, hidden_size, batch_first=True) for n in sizes)
        self.attention = nn.Linear(2 * hidden_size, 1)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden_size + bag_dim, n_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        all_ids, all_lengths = ids, lengths
        if self.bag is not None:
            ids, lengths = self.bag.split(ids)
        lengths = lengths.clamp(min=1)
        h = self.dropout(self.embedding(ids))
        for i, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers)):
            if i:
                h = self.dropout(h)
            h = bigru_layer(fwd, bwd, h, lengths)  # [B, T, 2H]
        scores = self.attention(h).squeeze(-1).masked_fill(~_mask(lengths, ids.shape[1]), float("-inf"))
        pooled = (torch.softmax(scores, dim=1).unsqueeze(-1) * h).sum(dim=1)
        if self.bag is not None:
            pooled = torch.cat([pooled, self.bag(all_ids, all_lengths)], dim=1)
        return self.out(self.dropout(pooled))


class BagNet(nn.Module):
    """fastText: the mean of token and hashed n-gram embeddings, then one linear layer.

    weighting "tfidf" pools as TF-IDF + a linear model does (scikit-learn's TfidfVectorizer with
    sublinear_tf and the L2 norm): the text is the L2-normalized vector of (1 + log tf) * idf over its ids,
    and the embeddings are summed with those weights. The folded serving graph then computes exactly a
    linear model over TF-IDF features, with the table learned by SGD. `idf` [ids] is a buffer that
    `set_idf` fills from the training texts (it travels in the weights file).
    """

    def __init__(self, num_ids: int, n_classes: int, embed_dim: int, dropout: float, weighting: str = "mean") -> None:
        super().__init__()
        # sparse: each step touches only the rows of the tokens and n-grams in the batch
        self.embedding = nn.Embedding(num_ids, embed_dim, padding_idx=0, sparse=True)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(embed_dim, n_classes)
        self.weighting = weighting
        if weighting == "tfidf":
            self.register_buffer("idf", torch.ones(num_ids))

    def set_idf(self, seqs) -> None:
        """idf = ln((1 + n) / (1 + df)) + 1 over the training texts' ids (scikit-learn's smooth_idf); the
        padding id weighs nothing."""
        df = torch.zeros(self.idf.shape[0], dtype=torch.float64)
        for seq in seqs:
            df[torch.as_tensor(sorted(set(int(i) for i in seq)), dtype=torch.long)] += 1
        idf = torch.log((1.0 + len(seqs)) / (1.0 + df)) + 1.0
        idf[0] = 0.0
        self.idf.copy_(idf.to(self.idf.dtype))

    def tfidf_weights(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, T] weight of each position: the id's (1 + log tf) * idf, shared by its tf positions, over the
        text's L2 norm. Serving graphs compute the same (models/graphs.py)."""
        mask = _mask(lengths, ids.shape[1]).to(torch.float32)
        tf = (ids.unsqueeze(2) == ids.unsqueeze(1)).to(torch.float32).sum(dim=2)  # [B, T]: count of this id in its text
        unique = (1.0 + torch.log(tf)) * self.idf[ids]  # the id's TF-IDF value
        share = unique / tf * mask
        norm = torch.sqrt(torch.clamp((share * unique).sum(dim=1, keepdim=True), min=1e-12))
        return share / norm

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.weighting == "tfidf":
            pooled = (self.embedding(ids) * self.tfidf_weights(ids, lengths).unsqueeze(-1)).sum(dim=1)
            return self.out(self.dropout(pooled))
        mask = _mask(lengths, ids.shape[1]).unsqueeze(-1).to(torch.float32)
        summed = (self.embedding(ids) * mask).sum(dim=1)
        mean = summed / lengths.clamp(min=1).unsqueeze(-1).to(torch.float32)
        return self.out(self.dropout(mean))
