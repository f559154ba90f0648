"""The torch module behind tagger.v1 and joint.v1: one encoder over characters and their hashed n-grams
(a BiGRU or a CNN), or a pretrained BERT-style encoder over the characters alone; a tag head (emissions
[B, T, K]) and, for joint.v1, a class head (logits [B, C]).

forward(ids [B, T], grams [B, T, G], lengths [B]) -> (emissions, logits) or emissions alone (no class head).
Padding never changes a text's outputs: the backward GRU reads each text reversed within its length, the
convolutions see zeros past the end, and pooling is masked.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from .nets import bigru_layer


def _mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


class CharBert(nn.Module):
    """A BERT-style encoder (a Hugging Face AutoModel) read one character per token: [CLS] c1 .. cn [SEP]
    -> one state per character [B, T, H]. Feeding characters rather than the checkpoint's word pieces keeps
    position i of the output on text[i], so entity offsets stay exact (the usual practice for Chinese NER
    with BERT, whose Chinese vocabulary is one character per piece anyway).

    `id_map`: the tagger's character ids -> the checkpoint's token ids (a character the checkpoint lacks ->
    its UNK); a buffer saved with the weights, so serving needs no tokenizer. [CLS] and [SEP] are placed
    inside the net, so the graph's inputs are those of every tagger graph (ids, lengths)."""

    def __init__(self, model: nn.Module, id_map: torch.Tensor, cls_id: int, sep_id: int, pad_id: int) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("id_map", id_map)
        self.cls_id, self.sep_id, self.pad_id = cls_id, sep_id, pad_id
        self.width = int(model.config.hidden_size)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        tokens = self.id_map[ids].masked_fill(~_mask(lengths, t), self.pad_id)
        edge = torch.zeros_like(tokens[:, :1])
        x = torch.cat([edge + self.cls_id, tokens, edge + self.pad_id], dim=1).scatter(1, (lengths + 1).unsqueeze(1), edge + self.sep_id)
        h = self.model(input_ids=x, attention_mask=_mask(lengths + 2, t + 2).long()).last_hidden_state
        return h[:, 1 : t + 1]


class JointNet(nn.Module):
    def __init__(
        self, num_ids: int, gram_rows: int, n_grams: int, n_tags: int, n_classes: int, *, embed_dim: int, gram_dim: int,
        hidden_size: int, num_layers: int, encoder: str, kernel_size: int, dropout: float, backbone: CharBert | None = None,
        class_bag_dim: int = 0,
    ) -> None:
        """encoder "transformer": `backbone` reads the characters (no n-gram features, and embed_dim,
        hidden_size, num_layers, kernel_size are the checkpoint's business). `class_bag_dim` > 0 (with a
        class head, not with a transformer): the class head also reads the mean of its own character and
        n-gram embeddings, which nothing else reads."""
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        if encoder == "transformer":
            self.backbone, self.grams, gram_dim = backbone, None, 0
            states = backbone.width
        else:
            self.embedding = nn.Embedding(num_ids, embed_dim, padding_idx=0)
            # sparse: a step updates only the rows of the n-grams in its batch (SparseAdam, see the trainer)
            self.grams = nn.Embedding(gram_rows, gram_dim, padding_idx=0, sparse=True) if n_grams and gram_dim else None
            states = 2 * hidden_size
            self._recurrent_or_conv(embed_dim + (gram_dim if self.grams is not None else 0), hidden_size, num_layers, encoder, kernel_size)
        self.tags = nn.Linear(states, n_tags)
        self.class_chars = self.class_grams = None
        if n_classes and class_bag_dim and encoder != "transformer":
            # sparse as the encoder's n-grams; padding (id 0 in both) reads zeros, so the bag is a plain sum
            self.class_chars = nn.Embedding(num_ids, class_bag_dim, padding_idx=0, sparse=True)
            self.class_grams = nn.Embedding(gram_rows, class_bag_dim, padding_idx=0, sparse=True) if n_grams else None
        if n_classes:
            self.attention = nn.Linear(states, 1)
            bags = (gram_dim if self.grams is not None else 0) + (class_bag_dim if self.class_chars is not None else 0)
            self.out = nn.Linear(states + bags, n_classes)
        else:
            self.out = None

    def _recurrent_or_conv(self, width: int, hidden_size: int, num_layers: int, encoder: str, kernel_size: int) -> None:
        if encoder == "bigru":
            sizes = [width] + [2 * hidden_size] * (num_layers - 1)
            self.forward_layers = nn.ModuleList(nn.GRU(n, hidden_size, batch_first=True) for n in sizes)
            self.backward_layers = nn.ModuleList(nn.GRU(n, hidden_size, batch_first=True) for n in sizes)
        else:
            sizes = [width] + [2 * hidden_size] * (num_layers - 1)
            self.convs = nn.ModuleList(nn.Conv1d(n, 2 * hidden_size, kernel_size, padding=kernel_size // 2) for n in sizes)

    def encode(self, ids: torch.Tensor, grams: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(per-character states [B, T, 2H], per-character n-gram vectors [B, T, Dg] or None)."""
        lengths = lengths.clamp(min=1)
        if self.encoder == "transformer":
            return self.backbone(ids, lengths) * _mask(lengths, ids.shape[1]).unsqueeze(-1), None
        x = self.embedding(ids)
        bag = None
        if self.grams is not None:
            vectors = self.grams(grams)
            # ONNX Runtime's ReduceSum over the n-gram axis costs more than adding the G (usually 2) slices
            bag = functools.reduce(torch.add, vectors.unbind(2)) if torch.onnx.is_in_onnx_export() else vectors.sum(dim=2)
            x = torch.cat([x, bag], dim=2)
        h = self.dropout(x)
        if self.encoder == "bigru":
            for i, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers)):
                if i:
                    h = self.dropout(h)
                h = bigru_layer(fwd, bwd, h, lengths)
            if torch.onnx.is_in_onnx_export():  # ONNX's GRU (sequence_lens) already writes zeros past each length
                return h, bag
            return h * _mask(lengths, ids.shape[1]).unsqueeze(-1).to(h.dtype), bag
        valid = _mask(lengths, ids.shape[1]).unsqueeze(-1).to(h.dtype)
        for i, conv in enumerate(self.convs):
            if i:
                h = self.dropout(h)
            h = torch.relu(conv((h * valid).transpose(1, 2))).transpose(1, 2)
        return h * valid, bag

    def forward(self, ids: torch.Tensor, grams: torch.Tensor, lengths: torch.Tensor):
        h, bag = self.encode(ids, grams, lengths)
        emissions = self.tags(self.dropout(h))
        if self.out is None:
            return emissions
        lengths = lengths.clamp(min=1)
        mask = _mask(lengths, ids.shape[1])
        scores = self.attention(h).squeeze(-1).masked_fill(~mask, float("-inf"))
        pooled = (torch.softmax(scores, dim=1).unsqueeze(-1) * h).sum(dim=1)
        parts = [pooled]
        if bag is not None:
            parts.append((bag * mask.unsqueeze(-1)).sum(dim=1) / lengths.unsqueeze(-1).to(bag.dtype))
        if self.class_chars is not None:
            own = self.class_chars(ids).sum(dim=1)
            if self.class_grams is not None:
                own = own + self.class_grams(grams).sum(dim=(1, 2))
            parts.append(own / lengths.unsqueeze(-1).to(own.dtype))
        return emissions, self.out(self.dropout(torch.cat(parts, dim=1)))


class TaggerModule(nn.Module):
    """The net and its CRF (None for a softmax head): one state dict, `net.*` and `crf.*`."""

    def __init__(self, net: JointNet, crf: nn.Module | None) -> None:
        super().__init__()
        self.net = net
        self.crf = crf


def export_onnx(net: JointNet, path, n_grams: int) -> list[str]:
    """The net as an ONNX graph (ids, grams, lengths -> emissions[, logits]); returns the output names."""
    import warnings

    ids = torch.tensor([[2, 3, 4, 5, 6, 7], [2, 3, 4, 0, 0, 0]], dtype=torch.long)
    grams = torch.ones((2, 6, n_grams), dtype=torch.long) * (ids > 0).long().unsqueeze(-1)
    lengths = torch.tensor([6, 3], dtype=torch.long)
    outputs = ["emissions"] + (["logits"] if net.out is not None else [])
    axes = {"ids": {0: "batch", 1: "time"}, "grams": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "emissions": {0: "batch", 1: "time"}, "logits": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice; export's parity gate checks the graph
        torch.onnx.export(
            net.eval(), (ids, grams, lengths), str(path), input_names=["ids", "grams", "lengths"], output_names=outputs,
            dynamic_axes={k: v for k, v in axes.items() if k in ("ids", "grams", "lengths", *outputs)}, opset_version=17, dynamo=False,
        )
    return outputs
