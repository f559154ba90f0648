"""The estimator contract every model keeps, and the model directory it saves to.

    fit(texts, labels) -> self;  predict_proba(texts) -> [n, k] in `classes_` order;
    predict(texts) -> list[str];  save(dir);  load_model(dir)
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import tomli_w
from pydantic import BaseModel, ValidationError

from .. import __version__
from ..artifact import atomic_dir, is_temp_dir, read_json, recover_dir, verify_checksums, write_checksums, write_json
from ..config import TrainingConfig, format_validation_error, with_model_defaults
from ..data.example import LabelSet
from ..errors import ConfigError, DataError, ExportError, NotFittedError, ZhclsError
from ..registry import models

META_FILE = "zhcls.json"
SCHEMA_VERSION = 1

# Called by a model during fit: ("step", {"step", "total", "loss"}) or ("eval", record).
ProgressHook = Callable[[str, dict[str, Any]], None]
EvalSet = tuple[Sequence[str], Sequence[str]]
# Writes a complete sub-bundle of `model` into a directory (export/onnx.py): how a model made of other
# models (ensemble.v1) exports its parts without knowing the bundle format.
PartExporter = Callable[["Classifier", Path], dict[str, Any]]


class Classifier:
    """Shared behaviour of every registered model; subclasses implement fit, predict_proba and the file I/O."""

    name: str = ""
    params_type: type[BaseModel]
    default_lr: float | None = None  # training.lr when the config leaves it out (None: the model takes no lr)
    # training.epochs and training.patience when the config leaves them out (None: TrainingConfig's 10 and 3)
    default_epochs: int | None = None
    default_patience: int | None = None
    learns_from_soft_targets = False  # fit(..., targets=SoftTargets) works: the model can be a [distill] student
    trains_distributed = False  # fit works under torchrun (DistributedDataParallel, docs/scale.md)

    def __init__(self, params: BaseModel | dict | None = None, training: TrainingConfig | None = None) -> None:
        self.params = _validate_params(type(self), params)
        self.training = with_model_defaults(training or TrainingConfig(), type(self))
        self.meta: dict[str, Any] = {}  # metrics and data fingerprints, filled by the run that trains it

    # -- contract -------------------------------------------------------------------------------
    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        eval_set: EvalSet | None = None,
        work_dir: str | Path | None = None,
        progress: ProgressHook | None = None,
    ) -> "Classifier":
        raise NotImplementedError

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def predict(self, texts: Sequence[str]) -> list[str]:
        proba = self.predict_proba(texts)
        labels = self.labels_.labels
        return [labels[i] for i in proba.argmax(axis=1)]

    @property
    def classes_(self) -> np.ndarray:
        """The labels in column order of predict_proba, an array as in scikit-learn; `labels_` (a LabelSet)
        maps a label to its column."""
        check_fitted(self, "labels_")
        return np.asarray(self.labels_.labels, dtype=object)

    # -- what the rest of zhcls asks of a model ---------------------------------------------------
    @classmethod
    def tiny_params(cls, work_dir: Path, texts: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
        """Params for a small, fast instance (the contract tests and smoke checks run every registered model
        with them); a model that needs files (a checkpoint, member runs) writes them under `work_dir`."""
        return {}

    def fit_report(self) -> dict[str, Any]:
        """What fitting chose and how it ended (best step, C, ensemble weights ...), for metrics.json. The keys
        in RUN_KEYS are also copied to the top level of metrics.json (`best_step`, `truncation` ...)."""
        return {}

    def fit_history(self) -> list[dict[str, Any]]:
        """One record per dev evaluation during fit ({"step", "epoch", "dev_<metric>", ...}), for log.jsonl."""
        return []

    def last_model(self) -> "Classifier":
        """The model as training ended, for model-last/. A model that keeps its best evaluation's weights
        returns a copy with the last ones; a model fitted in one go is its own last model."""
        return self

    def flops_per_text(self, n_ids: int, n_classes: int, graph: str | None = None) -> dict[str, Any] | None:
        """FLOPs of one forward pass over a text of `n_ids` input ids (a multiply-add counts 2), from the params
        alone (bench asks a model rebuilt from a bundle's manifest): {"per_text", "basis"}, and where the
        exported `graph` precomputes part of it into tables, "graph_per_text" (what that graph executes).
        None when the model does not count its FLOPs (tfidf.v1's sparse features; an ensemble's members
        count for it, each over its own ids)."""
        return None

    def export_serving(self, out: Path, export_part: PartExporter) -> dict[str, Any]:
        """Write the files a bundle serves this model from into `out` (always `tokenizer.json`) and return
        the manifest's {"backend": ..., "input": {...}}; `export_part` exports a part of a composite model.
        A model that cannot be served without its training framework raises ExportError."""
        raise ExportError(f"{self.name} models cannot be exported to a bundle yet", hint="serve the run directory with `zhcls predict RUN`")

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path, *, config_toml: str | None = None) -> Path:
        check_fitted(self, "labels_")
        path = Path(path)
        with atomic_dir(path) as tmp:
            self._save_files(tmp)
            write_json(tmp / META_FILE, self._meta_json())
            (tmp / "config.toml").write_text(config_toml or self._config_toml(), encoding="utf-8")
            write_checksums(tmp)  # last: the sha256 of every file above, checked by load
        return path

    @classmethod
    def load(cls, path: str | Path, *, verify: bool = True) -> "Classifier":
        """`verify`: check the files against the directory's SHA256SUMS first (load_model has done so)."""
        path = Path(path)
        if verify:
            verify_checksums(path)
        meta = read_meta(path)
        try:
            training = TrainingConfig.model_validate(meta.get("training", {}))
            clf = cls(cls.saved_params(meta["params"]), training)
            clf.labels_ = LabelSet(meta["labels"])
            clf.meta = {k: meta[k] for k in ("metrics", "data", "created") if k in meta}
            clf._load_files(path)
        except ZhclsError:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged file surfaces as whatever its parser raises
            raise DataError(f"{path}: cannot load the model ({type(exc).__name__}: {str(exc)[:300]})", hint=DAMAGED_HINT) from None
        return clf

    @classmethod
    def saved_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The params a saved model was trained with, as this version reads them: a parameter added since,
        whose default builds a different net, takes the value that matches the saved weights."""
        return params

    def _save_files(self, path: Path) -> None:
        raise NotImplementedError

    def _load_files(self, path: Path) -> None:
        raise NotImplementedError

    def _meta_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "zhcls_version": __version__,
            "model": self.name,
            "labels": list(self.labels_.labels),
            "params": self.params.model_dump(mode="json"),
            "training": self.training.model_dump(mode="json"),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **{k: v for k, v in self.meta.items() if k in ("metrics", "data")},
        }

    def _config_toml(self) -> str:
        return tomli_w.dumps(
            {"model": {"name": self.name, **self.params.model_dump(mode="json", exclude_none=True)}, "training": self.training.model_dump(mode="json", exclude_none=True)}
        )


# fit_report keys that metrics.json also carries at its top level, where reports and `runs compare` read them.
RUN_KEYS = ("best_step", "steps", "resumed_from", "truncation", "device", "precision", "world_size")


def _validate_params(cls: type[Classifier], params: BaseModel | dict | None) -> BaseModel:
    if isinstance(params, cls.params_type):
        return params
    raw = params.model_dump() if isinstance(params, BaseModel) else (params or {})
    try:
        return cls.params_type.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix="model"), hint=f"valid keys for {cls.name}: {', '.join(cls.params_type.model_fields)}") from None


def check_fit_input(texts: Sequence[str], labels: Sequence[str]) -> None:
    if len(texts) != len(labels) or not len(texts):
        raise DataError(f"fit needs as many labels as texts, and at least one (got {len(texts)} texts, {len(labels)} labels)")


def check_fitted(obj: object, attr: str) -> None:
    if not hasattr(obj, attr):
        raise NotFittedError(f"this {type(obj).__name__} is not fitted yet", hint="call fit() or load a saved model first")


def build_model(name: str, params: BaseModel | dict | None = None, training: TrainingConfig | None = None) -> Classifier:
    entry = models.get(name)
    return entry.factory(params, training)


def resolve_model_dir(path: str | Path) -> Path:
    """A run directory stands for its best model; a model directory for itself."""
    path = recover_dir(Path(path))
    if is_temp_dir(path):
        raise DataError(f"{path}: the temporary directory of an unfinished save or export, not a model", hint="pass the directory it was writing (without the leading '.' and '.tmp')")
    if (path / META_FILE).is_file():
        return path
    for child in ("model-best", "model-last"):
        if (recover_dir(path / child) / META_FILE).is_file():
            return path / child
    if not path.exists():
        raise DataError(f"{path}: no such run or model directory", hint="train one with `zhcls train CONFIG -o RUN`")
    raise DataError(f"{path}: not a zhcls run or model directory (no {META_FILE})", hint="pass a run directory or its model-best/ folder")


DAMAGED_HINT = "the model directory is damaged or incomplete; restore it from a copy, or train the model again"


def read_meta(path: Path) -> dict[str, Any]:
    """zhcls.json of a model directory, or a DataError naming it."""
    file = path / META_FILE
    try:
        meta = read_json(file)
    except (OSError, ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise DataError(f"{file}: unreadable ({str(exc)[:200]})", hint=DAMAGED_HINT) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), str):
        raise DataError(f"{file}: not a zhcls model description (no \"model\" name)", hint=DAMAGED_HINT)
    return meta


def load_model(path: str | Path) -> Classifier:
    path = resolve_model_dir(path)
    verify_checksums(path)  # a directory saved before SHA256SUMS existed loads unchecked
    meta = read_meta(path)
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise DataError(f"{path}: model schema {meta.get('schema_version')} is not supported by zhcls {__version__}")
    return models.get(meta["model"]).factory.load(path, verify=False)
