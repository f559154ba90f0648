"""TorchClassifier: the one shared base of the neural models. A model supplies its Params and a
`build_net`; fitting, prediction and the model directory are the same for all of them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from pydantic import Field

from ..data.example import LabelSet
from ..errors import ConfigError, DataError
from ..eval.probs import softmax
from ..text.featurizer import Featurizer, TextParams
from .base import Classifier, EvalSet, ProgressHook, check_fit_input, check_fitted

if TYPE_CHECKING:
    from ..eval.probs import SoftTargets

TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_FILE = "weights.safetensors"


class NeuralParams(TextParams):
    embed_dim: int = Field(128, gt=0)
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    vectors: str | None = None  # a local word2vec text file; rows for known tokens replace the random init (rescaled, see load_vectors)


class NgramParams(NeuralParams):
    """Hashed token n-grams beside the tokens (models/nets.py NgramBag): `ngrams` = 1 turns them off."""

    ngrams: int = Field(3, ge=1, le=4)  # token n-grams of 2..ngrams tokens, hashed into `buckets` rows
    buckets: int = Field(100_000, ge=0)
    bag_dim: int = Field(64, ge=0)  # width of the n-gram bag's embedding (0: no bag)

    @property
    def uses_ngrams(self) -> bool:
        return self.ngrams > 1 and self.buckets > 0 and self.bag_dim > 0


class TorchClassifier(Classifier):
    params_type = NeuralParams
    min_len = 1  # every batch is padded to at least this many positions
    default_lr = 1e-3
    learns_from_soft_targets = True
    trains_distributed = True

    def build_net(self, num_ids: int, n_classes: int):  # -> torch.nn.Module
        raise NotImplementedError

    def prepare_net(self, net, seqs: Sequence[Sequence[int]]) -> None:
        """Set what a new net learns from its training ids before the first step (fasttext.v1's idf)."""

    sparse_lr_scale = 1.0  # the learning rate of the sparse n-gram embeddings, relative to training.lr

    def trainer_options(self) -> dict[str, Any]:
        """Extra keyword arguments for Trainer.fit (a transformer asks for warmup and accumulation)."""
        return {"sparse_lr": (self.training.lr or self.default_lr) * self.sparse_lr_scale}

    def _featurizer_for(self, texts: Sequence[str]) -> Featurizer:
        text = TextParams.model_validate({k: getattr(self.params, k) for k in TextParams.model_fields})
        ngrams, buckets = getattr(self.params, "ngrams", 1), getattr(self.params, "buckets", 0)
        if isinstance(self.params, NgramParams) and not self.params.uses_ngrams:  # bag_dim 0: the CNN or GRU reads tokens only
            ngrams = 1
        return Featurizer.fit(texts, text, ngrams=ngrams, buckets=buckets if ngrams > 1 else 0)

    def _bag_shape(self) -> dict[str, int]:
        """vocab_size and bag_dim for a net with an NgramBag, read from the fitted featurizer (so a model saved
        without n-grams loads as it was trained)."""
        f = self.featurizer_
        if not f.buckets:
            return {}
        return {"vocab_size": len(f.vocab), "bag_dim": self.params.bag_dim}

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        eval_set: EvalSet | None = None,
        work_dir: str | Path | None = None,
        progress: ProgressHook | None = None,
        targets: "SoftTargets | None" = None,
    ) -> "TorchClassifier":
        """`targets`: a teacher's soft targets per text (distillation); the classes are then the teacher's,
        and a label may be None for a text that has only soft targets (unlabeled transfer text)."""
        import torch

        from .trainer import Trainer, fingerprint_of

        if targets is None:
            check_fit_input(texts, labels)
            labels_ = LabelSet.from_labels(labels)
        else:
            labels_ = check_distill_input(texts, labels, targets)
        featurizer = self.featurizer_ = self._featurizer_for(texts)
        torch.manual_seed(self.training.seed)  # weights init; the Trainer carries the stream on (dropout)
        net = self.build_net(featurizer.num_ids, len(labels_))
        if getattr(self.params, "vectors", None):
            load_vectors(net.embedding, featurizer, self.params.vectors)
        seqs = featurizer.encode_batch(texts)
        self.prepare_net(net, seqs)
        y = np.asarray([-1 if label is None else labels_.index(label) for label in labels], dtype=np.int64)
        dev = None
        if eval_set is not None and len(eval_set[0]):
            dev_y = np.asarray([labels_.index(l) if l in labels_ else -1 for l in eval_set[1]], dtype=np.int64)
            dev = (featurizer.encode_batch(eval_set[0]), dev_y)
        # Not the device, so a run resumes on another one; nor precision "fp32", so checkpoints written
        # before there was a precision setting still resume.
        run_training = self.training.model_dump(exclude={"device"} | ({"precision"} if self.training.precision == "fp32" else set()))
        fingerprint = fingerprint_of(
            self.name, self.params.model_dump(), run_training, list(texts), list(labels), *([targets.digest()] if targets else [])
        )
        result = Trainer(self.training, work_dir, progress).fit(
            net, seqs, y, n_classes=len(labels_), dev=dev, min_len=self.min_len, fingerprint=fingerprint,
            lr=self.training.lr or self.default_lr, soft=targets, **self.trainer_options(),
        )
        net.load_state_dict(result.best_state)  # CPU tensors into the weights on the training device
        net.eval()
        self.labels_, self.featurizer_, self.net_ = labels_, featurizer, net
        self.fit_result_ = result
        return self

    def predict_logits(self, texts: Sequence[str]) -> np.ndarray:
        from .trainer import predict_logits

        check_fitted(self, "net_")
        return predict_logits(self.net_, self.featurizer_.encode_batch(texts), min_len=self.min_len, precision=self.training.precision)

    def to(self, device: "str | Any") -> "TorchClassifier":
        """Predict on `device` from now on ("cpu", "cuda", "cuda:1", "auto" or a torch.device). A model
        stays on the device it trained on; one loaded from disk is on the CPU."""
        import torch

        from ..scale.device import resolve_device

        check_fitted(self, "net_")
        self.net_.to(device if isinstance(device, torch.device) else resolve_device(device, what="device"))
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return softmax(self.predict_logits(texts))

    def fit_report(self) -> dict[str, Any]:
        result = getattr(self, "fit_result_", None)
        if result is None:  # loaded from disk: the run's metrics.json has the report
            return {}
        return {
            "best_step": result.best_step, "steps": result.steps, "resumed_from": result.resumed_from,
            "stopped": result.stopped, "epochs": result.epochs,
            "device": result.device, "precision": result.precision, "world_size": result.world_size,
            **({"dev_cross_fitted": result.dev_cross_fitted} if result.dev_cross_fitted else {}),
        }

    def fit_history(self) -> list[dict[str, Any]]:
        result = getattr(self, "fit_result_", None)
        return list(result.history) if result is not None else []

    def last_model(self) -> "TorchClassifier":
        """fit keeps the best evaluation's weights; model-last gets the weights training ended with."""
        result = getattr(self, "fit_result_", None)
        return self.with_state(result.last_state) if result is not None else self

    def export_serving(self, out: Path, export_part) -> dict[str, Any]:
        from ..artifact import write_json
        from .graphs import OPSET, write_onnx

        check_fitted(self, "net_")
        self.to("cpu")  # the graph is traced and the tables are read on the CPU, where bundles run
        graph = write_onnx(self, out / "model.onnx")
        write_json(out / TOKENIZER_FILE, self.featurizer_.to_json())
        return {
            "backend": "onnx",
            "input": {
                "ids": {"dtype": "int64", "shape": ["batch", "time"], "padding_id": 0},
                "lengths": {"dtype": "int64", "shape": ["batch"]},
                "output": {"name": "logits", "dtype": "float32", "shape": ["batch", len(self.classes_)]},
                "min_length": int(self.min_len),
                "max_length": self.featurizer_.max_len,
                "opset": OPSET,
                "graph": graph,
            },
        }

    def with_state(self, state: dict[str, Any]) -> "TorchClassifier":
        """A copy sharing everything but the weights (for saving model-last beside model-best)."""
        import copy

        other = copy.copy(self)
        other.net_ = copy.deepcopy(self.net_)
        other.net_.load_state_dict(state)
        return other

    def _save_files(self, path: Path) -> None:
        from safetensors.torch import save_file

        from ..artifact import write_json

        check_fitted(self, "net_")
        write_json(path / TOKENIZER_FILE, self.featurizer_.to_json())
        # CPU tensors, so a model trained on a GPU loads on a machine without one
        save_file({k: v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()}, str(path / WEIGHTS_FILE))

    def _load_files(self, path: Path) -> None:
        from safetensors.torch import load_file

        from ..artifact import read_json

        self.featurizer_ = Featurizer.from_json(read_json(path / TOKENIZER_FILE))
        self.net_ = self.build_net(self.featurizer_.num_ids, len(self.labels_))
        self.net_.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
        self.net_.eval()


def check_distill_input(texts: Sequence[str], labels: Sequence[str | None], targets: "SoftTargets") -> LabelSet:
    n = len(texts)
    if not n or len(labels) != n or len(targets.probs) != n:
        raise DataError(f"distillation needs one label (or None) and one row of soft targets per text (got {n} texts, {len(labels)} labels, {len(targets.probs)} rows)")
    classes = LabelSet(targets.classes)
    unknown = sorted({label for label in labels if label is not None and label not in classes})
    if unknown:
        raise DataError(f"labels the teacher does not know: {', '.join(unknown[:10])}", hint=f"the teacher's labels: {', '.join(classes.labels[:20])}")
    return classes


def load_vectors(embedding, featurizer: Featurizer, path: str) -> int:
    """Copy rows of a word2vec text file into `embedding` for tokens in the vocabulary.

    Read by hand, line by line, rather than with gensim: only vocabulary rows are kept, so a
    multi-gigabyte file (Tencent's 8M-word vectors) never has to fit in memory. The copied rows are
    rescaled so that their mean norm is that of the embedding's initial rows. Returns rows copied.
    """
    import torch

    from ..config import expand_path

    file = Path(expand_path(path))
    if not file.is_file():
        raise ConfigError(f"model.vectors: {file} does not exist", hint="train vectors with `zhcls embeddings train` or give a word2vec text file")
    dim = embedding.weight.shape[1]
    rows: dict[int, list[float]] = {}
    with open(file, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if lineno == 1 and len(parts) == 2:
                if int(parts[1]) != dim:
                    raise ConfigError(f"model.vectors: {file} has {parts[1]}-dimensional vectors, model.embed_dim is {dim}", hint=f"set embed_dim = {parts[1]}")
                continue
            idx = featurizer.vocab.index.get(parts[0])
            if idx is None or idx < 2 or len(parts) != dim + 1:
                continue
            rows[idx] = [float(v) for v in parts[1:]]
    if not rows:
        return 0
    weight, ids = embedding.weight, torch.tensor(sorted(rows))
    vectors = torch.tensor([rows[i] for i in sorted(rows)], dtype=weight.dtype)
    with torch.no_grad():
        # Rescale to the mean row norm of the initial rows: word2vec vectors are much shorter (row norm ~1.8
        # for `zhcls embeddings train`'s vs ~11.3 for N(0, 1) rows of dim 128), so copied as they are, covered
        # tokens would start ~6x weaker than the random rows of uncovered ones. The padding row (id 0) is
        # zero and stays out of the mean.
        init = weight[1:].norm(dim=1).mean()
        norm = vectors.norm(dim=1).mean()
        if norm > 0:
            vectors = vectors * (init / norm)
        weight[ids.to(weight.device)] = vectors.to(weight.device)
    return len(rows)
