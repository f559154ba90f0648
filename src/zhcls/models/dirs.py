"""The directories zhcls writes, each with one loader: a run, a model, a bundle.

    runs/x/               RunDir     config.toml, metrics.json, log.jsonl, model-best/, model-last/
    runs/x/model-best/    ModelDir   zhcls.json, config.toml, the model's files, SHA256SUMS  -> load() a Classifier
    bundles/x/            BundleDir  manifest.json, tokenizer.json, model.onnx ...            -> load() a Predictor

`read_run_split` is the one way to read a split the way the run that trained a model read it (export's
parity texts, bench's texts, the report's examples); `load_predictor` opens whichever of the three a
command is given (`zhcls predict`, `zhcls evaluate`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np
from pydantic import ValidationError

from ..artifact import read_json
from ..config import DataConfig, format_validation_error
from ..data.example import Example, LabelSet
from ..errors import DataError
from .base import Classifier, load_model, read_meta, resolve_model_dir

if TYPE_CHECKING:
    from ..serve.predictor import Predictor


class Predicts(Protocol):
    """What a Classifier and a bundle's Predictor both offer: predict_proba in `classes_` order."""

    classes_: np.ndarray
    labels_: LabelSet

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def predict(self, texts: Sequence[str]) -> list[str]: ...


def read_run_split(config_file: Path, split: str) -> list[Example] | None:
    """The `split` ("train", "dev", "test") named in the [data] section of a run's config.toml (at the run's
    root or in a model directory), read with the reader settings training used. None when the file or the
    split is not there; a ZhclsError naming the file when it cannot be read."""
    from ..data.readers import read_split

    if not config_file.is_file():
        return None
    try:
        section = tomllib.loads(config_file.read_text(encoding="utf-8")).get("data") or {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{config_file}: unreadable ({exc})", hint="the run directory is damaged; train the run again") from None
    if not section:
        return None
    try:
        data = DataConfig.model_validate(section)
    except ValidationError as exc:
        raise DataError(f"{config_file}: {format_validation_error(exc, prefix='data')}", hint="the run directory is damaged; train the run again") from None
    return read_split(data, split)


@dataclass(frozen=True)
class ModelDir:
    """A saved model (`Classifier.save`): a run's model-best/ or model-last/, or any directory saved alone."""

    path: Path

    @classmethod
    def find(cls, path: str | Path) -> "ModelDir":
        """A model directory, or the best model of a run directory; a DataError saying what `path` is otherwise."""
        return cls(resolve_model_dir(path))

    def meta(self) -> dict[str, Any]:
        return read_meta(self.path)

    def split(self, name: str) -> list[Example] | None:
        return read_run_split(self.path / "config.toml", name)

    def load(self) -> Classifier:
        return load_model(self.path)


@dataclass(frozen=True)
class RunDir:
    """A training run (`train`), finished or under way."""

    path: Path

    @property
    def best(self) -> ModelDir:
        return ModelDir(self.path / "model-best")

    @property
    def last(self) -> ModelDir:
        return ModelDir(self.path / "model-last")

    @property
    def finished(self) -> bool:
        return (self.path / "metrics.json").is_file()

    def metrics(self) -> dict[str, Any]:
        return read_json(self.path / "metrics.json")

    def split(self, name: str) -> list[Example] | None:
        return read_run_split(self.path / "config.toml", name)

    def load(self) -> Classifier:
        return self.best.load()


@dataclass(frozen=True)
class BundleDir:
    """An exported bundle (`export_bundle`): verified as a whole when loaded."""

    path: Path

    @staticmethod
    def is_bundle(path: str | Path) -> bool:
        from ..serve.bundle import is_bundle

        return is_bundle(path)

    def manifest(self, *, verify: bool = True) -> dict[str, Any]:
        from ..serve.bundle import load_manifest

        return load_manifest(self.path, verify=verify)

    def load(self, *, threads: int = 1) -> "Predictor":
        from ..serve.predictor import Predictor

        return Predictor(self.path, threads=threads)


def load_predictor(path: str | Path) -> Predicts:
    """What `path` predicts with: a bundle (or `registry://NAME@ALIAS`) as its Predictor, which needs no torch;
    a run or model directory as its Classifier."""
    from ..serve.model_registry import resolve_bundle

    path = resolve_bundle(path)  # registry://NAME@production -> its bundle; plain paths unchanged
    if BundleDir.is_bundle(path):
        return BundleDir(path).load()
    return ModelDir.find(path).load()
