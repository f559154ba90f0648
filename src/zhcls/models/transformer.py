"""`transformer.v1`: a Hugging Face sequence classifier (BERT, RoBERTa, ERNIE 3.0 ... through
AutoModelForSequenceClassification) fine-tuned from a LOCAL checkpoint directory, typically as a teacher.

    [model]
    name = "transformer.v1"
    path = "/models/chinese-roberta-wwm-ext"   # config.json, weights, tokenizer files; nothing is downloaded
    max_length = 128                           # tokens per text; longer texts are truncated (counted in metrics.json)

Training is zhcls's Trainer (dev evaluation, early stopping, checkpoints, resume) with BERT's schedule:
linear warmup over `warmup_ratio` of the steps, then linear decay, and `grad_accum` micro-batches per
step. The fine-tuned model is saved with `save_pretrained` (safetensors) into the zhcls model directory,
beside zhcls.json, so the directory is also a plain Hugging Face checkpoint.

Needs the `teacher` extra: pip install 'zhcls[teacher]'.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict, Field

from ..config import expand_path
from ..errors import ConfigError
from ..registry import models
from ..text.normalize import normalize
from .base import EvalSet, ProgressHook
from .neural import TorchClassifier

log = logging.getLogger(__name__)


class TransformerParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str  # local Hugging Face checkpoint directory
    max_length: int = Field(128, ge=4)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    grad_accum: int = Field(1, ge=1)  # micro-batches per optimizer step (training.batch_size is split among them)


def transformers_module():
    try:
        import transformers
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "transformer.v1 needs the Python package 'transformers', which is not installed", hint="pip install 'zhcls[teacher]'"
        ) from exc
    transformers.logging.set_verbosity_error()  # "newly initialized classifier" is expected when fine-tuning
    transformers.utils.logging.disable_progress_bar()  # zhcls shows its own progress; stderr stays readable
    return transformers


def checkpoint_dir(value: str) -> Path:
    """model.path as a directory that holds a Hugging Face checkpoint, or a ConfigError that says how to get one."""
    path = Path(expand_path(value))
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"model.path: {path} is not a local Hugging Face checkpoint (no config.json)",
            hint="download the model once elsewhere (e.g. `huggingface-cli download hfl/chinese-roberta-wwm-ext --local-dir DIR`) and point path at DIR",
        )
    return path


class HFEncoder:
    """The text side: normalize (as every zhcls model does) -> the checkpoint's tokenizer -> ids, truncated."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    @property
    def num_ids(self) -> int:
        return len(self.tokenizer)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id or 0

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        out = self.tokenizer([normalize(t, lowercase=False) for t in texts], truncation=True, max_length=self.max_length)
        return [list(ids) for ids in out["input_ids"]]

    def truncation(self, texts: Sequence[str]) -> dict[str, Any]:
        lengths = [len(ids) for ids in self.tokenizer([normalize(t, lowercase=False) for t in texts])["input_ids"]]
        cut = sum(1 for n in lengths if n > self.max_length)
        return {"max_length": self.max_length, "truncated": cut, "n": len(lengths), "longest": max(lengths, default=0)}


def tiny_checkpoint(path: Path, texts: Sequence[str], *, hidden_size: int = 32, layers: int = 2, heads: int = 2,
                    intermediate_size: int = 64, max_positions: int = 64, seed: int = 0) -> Path:
    """A randomly initialized BERT (by default hidden 32, 2 layers, 2 heads) whose vocabulary is the texts'
    characters, each also as a "##" continuation piece so that Latin words and numbers split into characters
    rather than becoming UNK: a local checkpoint for tests, smoke runs and benchmarks, since nothing may be
    downloaded. BERT's tokenizer lowercases, so only lowercase letters enter the vocabulary."""
    import torch

    t = transformers_module()
    path.mkdir(parents=True, exist_ok=True)
    chars = sorted({ch for text in texts for ch in normalize(text, lowercase=True) if not ch.isspace()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{ch}" for ch in chars if not _is_cjk(ch))]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = t.BertTokenizerFast(str(path / "vocab.txt"))
    cfg = t.BertConfig(vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=heads,
                       intermediate_size=intermediate_size, max_position_embeddings=max_positions)
    torch.manual_seed(seed)
    t.BertModel(cfg).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def _is_cjk(ch: str) -> bool:
    """A character BERT's tokenizer splits off on its own (its _is_chinese_char ranges), never a "##" piece."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
                                              (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


VOCAB_MAP = "vocab_map.safetensors"  # a vocabulary-pruned model: tokenizer id -> embedding row (zhcls compress)


def _net(model: Any, pad_id: int, id_map: Any = None):
    import torch

    class HFNet(torch.nn.Module):
        """forward(ids, lengths) -> logits, the interface of every zhcls net; padding is masked out.
        `id_map` (after vocabulary pruning): the tokenizer's ids -> rows of the smaller embedding, a removed
        token's id -> UNK's row; inside the net, so training, export and serving all map the same way."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.register_buffer("id_map", id_map, persistent=False)

        def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
            ids = ids.masked_fill(~mask, pad_id)
            if self.id_map is not None:
                ids = self.id_map[ids]
            out = self.model(input_ids=ids, attention_mask=mask.long())
            return out.logits

    return HFNet()


@models.register("transformer.v1", params=TransformerParams)
class Transformer(TorchClassifier):
    name = "transformer.v1"
    params_type = TransformerParams
    default_lr = 2e-5

    @classmethod
    def tiny_params(cls, work_dir: Path, texts: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
        return {"path": str(tiny_checkpoint(work_dir / "tiny-bert", texts)), "max_length": 32, "warmup_ratio": 0.0}

    def _checkpoint(self) -> Path:
        return checkpoint_dir(self.params.path)

    def trainer_options(self) -> dict[str, Any]:
        # find_unused_parameters: a checkpoint may carry weights classification never uses (a pooler, task
        # embeddings), which DistributedDataParallel would otherwise wait for
        return {"warmup_ratio": self.params.warmup_ratio, "schedule": "linear", "grad_accum": self.params.grad_accum, "find_unused_parameters": True}

    def _featurizer_for(self, texts: Sequence[str]) -> HFEncoder:  # type: ignore[override]
        encoder = self.__dict__.pop("_encoder", None)  # the one fit() loaded to count truncation
        if encoder is None:
            tokenizer = transformers_module().AutoTokenizer.from_pretrained(str(self._checkpoint()), local_files_only=True)
            encoder = HFEncoder(tokenizer, self.params.max_length)
        return encoder

    def build_net(self, num_ids: int, n_classes: int):
        t = transformers_module()
        model = t.AutoModelForSequenceClassification.from_pretrained(
            str(self._checkpoint()), num_labels=n_classes, local_files_only=True, ignore_mismatched_sizes=True
        )
        if model.get_input_embeddings().num_embeddings < num_ids:
            model.resize_token_embeddings(num_ids)
        return _net(model, self._pad_id)

    def fit(self, texts: Sequence[str], labels: Sequence[str], *, eval_set: EvalSet | None = None, work_dir: str | Path | None = None,
            progress: ProgressHook | None = None, targets=None) -> "Transformer":
        encoder = self._featurizer_for(texts)
        self._encoder, self._pad_id = encoder, encoder.pad_id
        self.truncation_ = encoder.truncation(texts)
        if self.truncation_["truncated"]:
            t = self.truncation_
            log.warning("%d of %d training texts (%.1f%%) are longer than max_length = %d tokens and were truncated (longest: %d)",
                        t["truncated"], t["n"], 100 * t["truncated"] / t["n"], t["max_length"], t["longest"])
        return super().fit(texts, labels, eval_set=eval_set, work_dir=work_dir, progress=progress, targets=targets)  # type: ignore[return-value]

    def fit_report(self) -> dict[str, Any]:
        report = super().fit_report()
        if getattr(self, "truncation_", None):  # texts cut at max_length (a run's metrics.json says how many)
            report["truncation"] = self.truncation_
        return report

    def export_serving(self, out: Path, export_part) -> dict[str, Any]:
        """The fine-tuned classifier as an ONNX graph (ids, lengths -> logits, the interface of every zhcls
        graph) and the checkpoint's fast tokenizer as `hf_tokenizer.json`, which the Predictor runs with the
        `tokenizers` package: no torch and no transformers at serving time."""
        import onnx

        from ..artifact import write_json
        from ..errors import ExportError
        from .graphs import OPSET, export_torch

        tokenizer = self.featurizer_.tokenizer
        if not getattr(tokenizer, "is_fast", False):
            raise ExportError(
                f"{self.params.path}: the checkpoint has no fast tokenizer (tokenizer.json), which serving needs",
                hint="load it once with transformers' AutoTokenizer(use_fast=True) and save_pretrained it into the checkpoint",
            )
        self.to("cpu")  # traced on the CPU, where bundles run
        export_torch(self.net_, out / "model.onnx")
        onnx.checker.check_model(onnx.load(str(out / "model.onnx")))
        tokenizer.backend_tokenizer.save(str(out / "hf_tokenizer.json"))
        write_json(out / "tokenizer.json", {"kind": "hf_tokenizer", "file": "hf_tokenizer.json", "max_length": self.params.max_length, "lowercase": False})
        return {
            "backend": "onnx",
            "input": {
                "ids": {"dtype": "int64", "shape": ["batch", "time"], "padding_id": self._pad_id_or_zero()},
                "lengths": {"dtype": "int64", "shape": ["batch"]},
                "output": {"name": "logits", "dtype": "float32", "shape": ["batch", len(self.classes_)]},
                "min_length": 1,
                "max_length": self.params.max_length,
                "opset": OPSET,
                "graph": "net",
            },
        }

    def _pad_id_or_zero(self) -> int:
        return int(self.featurizer_.pad_id)

    def _save_files(self, path: Path) -> None:
        hf = self.net_.model
        hf.config.id2label = dict(enumerate(self.labels_.labels))
        hf.config.label2id = {label: i for i, label in enumerate(self.labels_.labels)}
        hf.save_pretrained(str(path))  # safetensors
        if getattr(self.net_, "id_map", None) is not None:
            from safetensors.torch import save_file

            save_file({"id_map": self.net_.id_map.contiguous()}, str(path / VOCAB_MAP))
        self.featurizer_.tokenizer.save_pretrained(str(path))

    def _load_files(self, path: Path) -> None:
        t = transformers_module()
        tokenizer = t.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.featurizer_ = HFEncoder(tokenizer, self.params.max_length)
        config = t.AutoConfig.from_pretrained(str(path), local_files_only=True)
        if getattr(config, PRUNED_HEADS, None):  # transformers 5 no longer rebuilds pruned heads itself
            from safetensors.torch import load_file

            model = t.AutoModelForSequenceClassification.from_config(config)
            n_heads = config.num_attention_heads
            prune_structure(model, {int(layer): [h for h in range(n_heads) if h not in set(gone)] for layer, gone in getattr(config, PRUNED_HEADS).items()})
            model.load_state_dict(load_file(str(path / "model.safetensors")))
        else:
            model = t.AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
        id_map = None
        if (path / VOCAB_MAP).is_file():
            from safetensors.torch import load_file

            id_map = load_file(str(path / VOCAB_MAP))["id_map"]
        self.net_ = _net(model, self.featurizer_.pad_id, id_map)
        self.net_.eval()

    def prune(self, width: float, max_vocab: int | None = None, *, texts: Sequence[str], labels: Sequence[str], vocab_by: str = "frequency") -> "Transformer":
        """A copy with `width` of the attention heads and of the FFN neurons of every layer (zhcls compress),
        the ones that matter most on `texts`: Michel et al.'s importance, |dL/dm| summed over batches for a
        mask m of ones on each head's output (and on each FFN neuron's), the loss being cross-entropy on
        `labels`. Every layer keeps the same count, so one intermediate_size describes the pruned model.

        `max_vocab`: the embedding keeps that many rows (the special tokens and the most frequent tokens of
        `texts`, or those with the largest embeddings); the tokenizer is left as it is, and an id map in the
        net sends a removed token to UNK's row."""
        import copy

        from .base import check_fitted
        from .pruning import check_width, keep_count, top_k

        check_fitted(self, "net_")
        check_width(width, max_vocab)
        model = copy.deepcopy(self.net_.model)
        id_map = getattr(self.net_, "id_map", None)
        layers = encoder_layers(model)
        heads, ffn = head_importance(_net(model, self.featurizer_.pad_id, id_map), self.featurizer_, texts, labels, self.labels_.labels)
        keep_heads = {i: top_k(heads[i], keep_count(len(heads[i]), width)).tolist() for i in range(len(layers))}
        k_ffn = keep_count(ffn.shape[1], width)
        keep_ffn = {i: top_k(ffn[i], k_ffn).tolist() for i in range(len(layers))}
        prune_structure(model, keep_heads, keep_ffn)
        n_heads = model.config.num_attention_heads
        before = {int(k): set(v) for k, v in (getattr(model.config, PRUNED_HEADS, None) or {}).items()}
        original = {i: [h for h in range(n_heads) if h not in before.get(i, set())] for i in range(len(layers))}  # ids in the unpruned model
        model.config.intermediate_size = k_ffn
        setattr(model.config, PRUNED_HEADS, {str(i): [h for h in range(n_heads) if h not in {original[i][j] for j in keep_heads[i]}] for i in range(len(layers))})
        clf = type(self)(self.params, self.training)
        clf.labels_, clf.featurizer_ = self.labels_, self.featurizer_
        if max_vocab is not None:
            id_map = prune_vocab(model, self.featurizer_, texts, max_vocab, id_map, vocab_by)
        clf.net_ = _net(model, self.featurizer_.pad_id, id_map)
        clf.net_.eval()
        return clf


def prune_vocab(model: Any, encoder: HFEncoder, texts: Sequence[str], max_vocab: int, id_map: Any, vocab_by: str) -> Any:
    """Cut the word embedding of `model` to `max_vocab` rows in place and return the tokenizer-id -> row map.
    The special tokens always stay; UNK's row becomes the count-weighted mean of the rows it replaces."""
    import numpy as np
    import torch

    from .pruning import top_k

    emb = model.get_input_embeddings().weight.detach()
    n_ids = len(encoder.tokenizer) if id_map is None else len(id_map)
    rows = torch.arange(n_ids) if id_map is None else id_map  # tokenizer id -> current row
    counts = np.bincount(rows[torch.as_tensor([i for ids in encoder.encode_batch(texts) for i in ids], dtype=torch.long)].numpy(),
                         minlength=emb.shape[0]).astype(np.float64)
    special = sorted({int(rows[i]) for i in encoder.tokenizer.all_special_ids if i < n_ids})
    unk_id = encoder.tokenizer.unk_token_id
    if unk_id is None or max_vocab >= emb.shape[0]:
        if unk_id is None:
            raise ConfigError("transformer.v1: this tokenizer has no UNK token to send removed tokens to", hint="leave out --max-vocab")
        return id_map
    score = counts if vocab_by == "frequency" else emb.norm(dim=1).double().numpy()
    score = score + np.where(np.isin(np.arange(emb.shape[0]), special), np.inf, 0.0)  # specials first
    kept = top_k(score, max(max_vocab, len(special)))
    unk = int(rows[unk_id])
    new_row = np.full(emb.shape[0], -1, dtype=np.int64)
    new_row[kept] = np.arange(len(kept))
    dropped = np.flatnonzero(new_row < 0)
    weight = emb[torch.as_tensor(kept)].clone()
    w = counts[dropped]
    if w.sum() > 0:  # UNK stands for every removed token now: start it at their mean
        merged = np.concatenate([[unk], dropped])
        share = torch.as_tensor(np.concatenate([[counts[unk]], w]) / (counts[unk] + w.sum()), dtype=emb.dtype)
        weight[new_row[unk]] = (emb[torch.as_tensor(merged)] * share[:, None]).sum(dim=0)
    new_row[dropped] = new_row[unk]
    pad = model.get_input_embeddings().padding_idx  # a special token: kept
    new = torch.nn.Embedding(len(kept), emb.shape[1], padding_idx=None if pad is None else int(new_row[pad]))
    with torch.no_grad():
        new.weight.copy_(weight)
    model.set_input_embeddings(new)
    model.config.vocab_size = len(kept)
    return torch.as_tensor(new_row)[rows]


PRUNED_HEADS = "pruned_heads"  # config.json: {layer: [removed heads]}, what transformers 4's prune_heads recorded


def encoder_layers(model: Any) -> Any:
    """The BERT-style layers (BERT, RoBERTa, ERNIE): encoder.layer[i] with attention.self/.output and
    intermediate/output; pruning needs that layout."""
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    need = lambda layer: all(hasattr(layer, a) for a in ("attention", "intermediate", "output")) and hasattr(layer.attention, "self")  # noqa: E731
    if layers is None or not len(layers) or not all(need(layer) for layer in layers):
        raise ConfigError(f"{type(model).__name__}: not a BERT-style encoder (encoder.layer[i].attention.self), which head pruning needs",
                          hint="prune a BERT, RoBERTa or ERNIE checkpoint")
    return layers


def prune_structure(model: Any, heads: dict[int, list[int]], ffn: dict[int, list[int]] | None = None) -> None:
    """Keep heads `heads[layer]` (indices among the layer's current heads) and FFN neurons `ffn[layer]`:
    the query/key/value rows and attention-output columns of the other heads, and the intermediate rows and
    output columns of the other neurons, are cut out, as transformers 4's prune_heads did (with its
    prune_linear_layer)."""
    import torch
    from transformers.pytorch_utils import prune_linear_layer

    for i, layer in enumerate(encoder_layers(model)):
        att = layer.attention.self
        d = att.attention_head_size
        keep = heads.get(i)
        if keep is not None and len(keep) < att.num_attention_heads:
            idx = torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep])
            att.query, att.key, att.value = (prune_linear_layer(lin, idx) for lin in (att.query, att.key, att.value))
            layer.attention.output.dense = prune_linear_layer(layer.attention.output.dense, idx, dim=1)
            att.num_attention_heads, att.all_head_size = len(keep), len(keep) * d
        neurons = (ffn or {}).get(i)
        if neurons is not None and len(neurons) < layer.intermediate.dense.out_features:
            idx = torch.as_tensor(neurons)
            layer.intermediate.dense = prune_linear_layer(layer.intermediate.dense, idx)
            layer.output.dense = prune_linear_layer(layer.output.dense, idx, dim=1)


def head_importance(net: Any, encoder: HFEncoder, texts: Sequence[str], labels: Sequence[str], classes: Sequence[str],
                    batch_size: int = 32, max_texts: int = 4096) -> tuple[list[Any], Any]:
    """Michel et al. (2019): for masks of ones on every head's output and every FFN neuron, the gradient of
    the loss with respect to the mask, |dL/dm| summed over batches. Returns ([heads] per layer, [layers, neurons])
    as numpy arrays. Dropout is off, so the same model and texts give the same ranking."""
    import numpy as np
    import torch

    from .trainer import to_tensors

    layers = encoder_layers(net.model)
    head_masks = [torch.ones(layer.attention.self.num_attention_heads, requires_grad=True) for layer in layers]
    ffn_masks = [torch.ones(layer.intermediate.dense.out_features, requires_grad=True) for layer in layers]

    def on_heads(mask):
        def hook(module, args, out):
            a = out[0]
            a = (a.view(*a.shape[:-1], len(mask), -1) * mask[:, None]).view(a.shape)
            return (a, *out[1:])
        return hook

    hooks = [layer.attention.self.register_forward_hook(on_heads(m)) for layer, m in zip(layers, head_masks)]
    hooks += [layer.intermediate.register_forward_hook(lambda module, args, out, m=m: out * m) for layer, m in zip(layers, ffn_masks)]
    index = {label: i for i, label in enumerate(classes)}
    rows = [i for i, label in enumerate(labels) if label in index][:max_texts]
    seqs = encoder.encode_batch([texts[i] for i in rows])
    y = torch.as_tensor([index[labels[i]] for i in rows])
    params = [p for p in net.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)  # only the masks need gradients
    was_training = net.training
    net.eval()
    masks = head_masks + ffn_masks
    total = [torch.zeros(len(m), dtype=torch.float64) for m in masks]
    try:
        for start in range(0, len(rows), batch_size):
            ids, lengths = to_tensors(seqs[start : start + batch_size], 1)
            loss = torch.nn.functional.cross_entropy(net(ids, lengths), y[start : start + batch_size])
            for acc, g in zip(total, torch.autograd.grad(loss, masks)):
                acc += g.abs().double()
    finally:
        for h in hooks:
            h.remove()
        for p in params:
            p.requires_grad_(True)
        net.train(was_training)
    return [t.numpy() for t in total[: len(layers)]], np.stack([t.numpy() for t in total[len(layers) :]])
