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


def _transformers():
    try:
        import transformers
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "transformer.v1 needs the Python package 'transformers', which is not installed", hint="pip install 'zhcls[teacher]'"
        ) from exc
    transformers.logging.set_verbosity_error()  # "newly initialized classifier" is expected when fine-tuning
    transformers.utils.logging.disable_progress_bar()  # zhcls shows its own progress; stderr stays readable
    return transformers


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


def tiny_checkpoint(path: Path, texts: Sequence[str]) -> Path:
    """A randomly initialized BERT (hidden 32, 2 layers, 2 heads) whose vocabulary is the texts' characters:
    a local checkpoint for tests and smoke runs, since nothing may be downloaded."""
    import torch

    t = _transformers()
    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted({ch for text in texts for ch in normalize(text, lowercase=False)})
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = t.BertTokenizerFast(str(path / "vocab.txt"))
    cfg = t.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    t.BertModel(cfg).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def _net(model: Any, pad_id: int):
    import torch

    class HFNet(torch.nn.Module):
        """forward(ids, lengths) -> logits, the interface of every zhcls net; padding is masked out."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
            out = self.model(input_ids=ids.masked_fill(~mask, pad_id), attention_mask=mask.long())
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
        path = Path(expand_path(self.params.path))
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"model.path: {path} is not a local Hugging Face checkpoint (no config.json)",
                hint="download the model once elsewhere (e.g. `huggingface-cli download hfl/chinese-roberta-wwm-ext --local-dir DIR`) and point path at DIR",
            )
        return path

    def trainer_options(self) -> dict[str, Any]:
        return {"warmup_ratio": self.params.warmup_ratio, "schedule": "linear", "grad_accum": self.params.grad_accum}

    def _featurizer_for(self, texts: Sequence[str]) -> HFEncoder:  # type: ignore[override]
        encoder = self.__dict__.pop("_encoder", None)  # the one fit() loaded to count truncation
        if encoder is None:
            tokenizer = _transformers().AutoTokenizer.from_pretrained(str(self._checkpoint()), local_files_only=True)
            encoder = HFEncoder(tokenizer, self.params.max_length)
        return encoder

    def build_net(self, num_ids: int, n_classes: int):
        t = _transformers()
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
        hf.config.id2label = dict(enumerate(self.classes_.labels))
        hf.config.label2id = {label: i for i, label in enumerate(self.classes_.labels)}
        hf.save_pretrained(str(path))  # safetensors
        self.featurizer_.tokenizer.save_pretrained(str(path))

    def _load_files(self, path: Path) -> None:
        t = _transformers()
        tokenizer = t.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.featurizer_ = HFEncoder(tokenizer, self.params.max_length)
        model = t.AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
        self.net_ = _net(model, self.featurizer_.pad_id)
        self.net_.eval()
