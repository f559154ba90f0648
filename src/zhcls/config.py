"""The run config: flat, typed TOML sections validated on load; the resolved config is saved with every run."""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError, DataError

DataFormat = Literal["auto", "jsonl", "tsv", "csv", "fasttext", "paddle", "lines", "conll"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataConfig(Section):
    """Where the data is and how its fields map onto text and label.

    Paths may use environment variables (`${ZHCLS_DATA_DIR}/fewclue/...`); relative paths are
    taken from the current directory, as every other command-line tool does.
    """

    train: str | None = None
    dev: str | None = None
    test: str | None = None
    format: DataFormat = "auto"
    text_field: str | None = None  # None: detected (`sentence`, `content`, `text`, `review`, ...)
    label_field: str | None = None  # None: detected (`label_desc`, `label_des`, `label`, ...)
    tsv_order: Literal["auto", "text_label", "label_text"] = "auto"

    def path(self, split: str) -> Path | None:
        value = getattr(self, split)
        return None if value is None else Path(expand_path(value))

    def check_data_dir(self) -> None:
        """A DataError naming ZHCLS_DATA_DIR when a split's file is missing and its path uses it: the
        example configs read the benchmark data from there, and a fresh clone may not have it."""
        for split in ("train", "dev", "test"):
            value, path = getattr(self, split), self.path(split)
            if value is None or "ZHCLS_DATA_DIR" not in value or path is None or path.exists():
                continue
            if "ZHCLS_DATA_DIR" in os.environ:
                how = f"ZHCLS_DATA_DIR={os.environ['ZHCLS_DATA_DIR']}"
            else:
                how = f"ZHCLS_DATA_DIR unset, so the default {default_data_dir()} (from {Path.cwd()})"
            raise DataError(
                f"{path}: file not found ([data] {split} = {value!r}, with {how})",
                hint="set ZHCLS_DATA_DIR to the folder holding the data, e.g. ZHCLS_DATA_DIR=/path/to/data zhcls ...; "
                "the config's header comment says which files it needs",
            )


class TrainingConfig(Section):
    seed: int = 42
    epochs: int = Field(10, ge=1)  # when left out: the model's own where it has one (textcnn.v1 40), else 10
    batch_size: int = Field(64, ge=1)
    lr: float | None = Field(None, gt=0, le=1.0)  # None: the model's own default (textcnn 1e-3, fasttext 1e-2, ...)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(5.0, ge=0)  # 0 turns clipping off
    eval_every: int = Field(0, ge=0)  # steps between dev evaluations; 0: once per epoch
    patience: int = Field(3, ge=0)  # evaluations without improvement before stopping; 0: never stop early (left out: textcnn.v1 5)
    metric: Literal["accuracy", "macro_f1"] = "macro_f1"
    class_weights: Literal["none", "balanced"] = "none"
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)  # hard-label loss only; soft targets are used as they are
    schedule: Literal["constant", "linear"] | None = None  # None: the model's own (linear warmup + decay for transformer.v1)
    warmup_ratio: float | None = Field(None, ge=0.0, lt=1.0)  # share of the steps warmed up ("linear"); None: the model's own
    threads: int = Field(1, ge=1)
    # "auto": CUDA when this machine has it; "cpu", "cuda", "cuda:N". Checked against the machine when
    # training starts; not part of a run's identity, so a run resumes on another device (docs/scale.md).
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # bf16/fp16: torch.autocast (fp16 needs CUDA and scales the loss)

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", value):
            raise ValueError(f"{value!r} is not a device; choose auto, cpu, cuda or cuda:N")
        return value


class TrackConfig(Section):
    """Optional MLflow logging of each finished run (`pip install 'zhcls[track]'`)."""

    mlflow: bool = False
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///<runs dir>/mlflow.db
    experiment: str = "zhcls"
    run_name: str | None = None  # None: the run directory's name
    report: bool = True  # also log the Markdown report and its figures as artifacts


class ModelSection(BaseModel):
    """`name` picks a registered model; the other keys are validated by that model's Params."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = "textcnn.v1"

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class AugmentStep(BaseModel):
    """One `[[augment]]` entry: a registered strategy (`name`, `rate` and its other keys, validated by its
    Params), `n` copies of every train example, and its own `seed` (default training.seed + position).
    Applied to the train split only (docs/augmentation.md)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str
    n: int = Field(1, ge=1)
    seed: int | None = None

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DistillConfig(Section):
    """`[distill]`: train the [model] student on a teacher's soft targets (docs/distillation.md).

    The teacher is one or more zhcls runs (several: an ensemble), or soft targets written earlier by
    `zhcls teacher label`. A previous student run as teacher is self-training.
    """

    teacher: list[str] = []  # run or model directories; a single string is accepted too
    teacher_weights: Literal["equal", "dev", "fit"] = "equal"  # ensemble: mean; weighted by each run's dev score; or fitted on dev
    soft_targets: list[str] = []  # soft.jsonl files from `zhcls teacher label`, instead of a teacher
    temperature: float = Field(2.0, gt=0)
    alpha: float = Field(0.5, ge=0.0, le=1.0)  # weight of the soft loss on labeled rows (1 - alpha: hard labels)
    loss: Literal["kl", "mse"] = "kl"  # kl: KL at temperature T, times T²; mse: on logits
    labeled: bool = True  # the train split is part of the transfer set
    augmented: list[str] = []  # files of augmented texts (a label, where present, is used as hard label)
    use_augment: bool = True  # also the [[augment]] section's output, when the config has one
    unlabeled: list[str] = []  # files of in-domain texts without labels (any label field is ignored)
    unlabeled_ratio: float | None = Field(None, gt=0)  # at most this many unlabeled texts per labeled one
    max_unlabeled: int | None = Field(None, ge=0)  # and at most this many in all
    min_confidence: float = Field(0.0, ge=0.0, le=1.0)  # drop unlabeled rows whose top teacher probability is lower
    batch_size: int = Field(256, ge=1)  # teacher labelling batch
    cache_dir: str | None = None  # soft-target cache; default $ZHCLS_CACHE_DIR or ~/.cache/zhcls

    @field_validator("teacher", "soft_targets", "augmented", "unlabeled", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_source(self) -> "DistillConfig":
        if bool(self.teacher) == bool(self.soft_targets):
            raise ValueError("set exactly one of teacher (run directories) or soft_targets (files from `zhcls teacher label`)")
        return self


class BuildConfig(Section):
    """`[build]`: what `zhcls build` trains and how it chooses (docs/build.md)."""

    candidates: list[str] = ["tfidf.v1", "fasttext.v1", "textcnn.v1", "bigru.v1"]
    transformer: str | None = None  # a local Hugging Face checkpoint: also fine-tune transformer.v1 as a candidate
    # distilled from the ensemble of the candidates. fasttext.v1 joined textcnn.v1 after benchmarks/results/
    # build_students*.md: on dev it led the TextCNN student on tnews few_all and iflytek train_0 (by 17 points,
    # where no unlabeled text exists), trailed it by 1 of 160 texts on eprstmt few_all and 4 of 6,257 on
    # online_shopping cat_2k, and serves in ~0.05 ms
    students: list[str] = ["textcnn.v1", "fasttext.v1"]
    unlabeled: list[str] = []  # in-domain texts without labels, for the students' transfer set
    # the students' transfer set also gets augmented copies of the train texts (augment's default recipe, one
    # copy per entry and text), labeled by the teacher; the candidates train without them. A config whose
    # [[augment]] has entries uses those, for every run, instead
    student_augment: bool = False
    max_unlabeled: int | None = Field(50_000, ge=0)
    vectors: bool = True  # with unlabeled: char vectors trained on it + train start the char.v1 neural models' embeddings
    alpha: float = Field(0.5, ge=0.0, le=1.0)  # students: weight of the soft loss on labeled rows
    temperature: float = Field(2.0, gt=0)
    ensemble: Literal["auto", "weights", "loglinear", "stacking"] = "auto"
    epochs: int = Field(40, ge=1)  # at least this epoch budget per candidate: early stopping (patience) ends training
    patience: int = Field(4, ge=1)
    int8: bool = True  # neural candidates are also exported as int8 bundles
    compress: bool = True  # when no bundle meets the budget, prune the best neural run until one does (zhcls compress)
    # > 0: the ensemble is chosen when the best single candidate leads it on dev by at most this many standard
    # errors of its dev score (zhcls.build.select). Off by default: measured, it helps on some tasks and hurts
    # on others about as much (benchmarks/results/build.md, docs/build.md)
    ensemble_se: float = Field(0.0, ge=0)
    budget_ms: float | None = Field(None, gt=0)  # p50 latency per text, 1 thread, tokenization included
    budget_mb: float | None = Field(None, gt=0)  # bundle size


class DatasetConfig(DataConfig):
    """`[[datasets]]`: another dataset for the same joint.v1 model (docs/tagging.md). Each batch comes from one
    dataset and trains the heads its examples are annotated for; `weight` sets its share of the batches,
    next to [data]'s `data_weight`."""

    weight: float = Field(1.0, gt=0)


class RunConfig(Section):
    schema_version: Literal[1] = 1
    data: DataConfig = DataConfig()
    datasets: list[DatasetConfig] = []
    data_weight: float = Field(1.0, gt=0)  # [data]'s share of the batches when [[datasets]] adds others
    model: ModelSection = ModelSection()
    training: TrainingConfig = TrainingConfig()
    distill: DistillConfig | None = None
    track: TrackConfig = TrackConfig()
    augment: list[AugmentStep] = []
    build: BuildConfig = BuildConfig()


def default_data_dir() -> str:
    return os.environ.get("ZHCLS_DATA_DIR", "../shared/data")


def expand_path(value: str) -> str:
    env = dict(os.environ)
    env.setdefault("ZHCLS_DATA_DIR", default_data_dir())
    # os.path.expandvars reads os.environ only; substitute the default by hand for that one name.
    value = value.replace("${ZHCLS_DATA_DIR}", env["ZHCLS_DATA_DIR"]).replace("$ZHCLS_DATA_DIR", env["ZHCLS_DATA_DIR"])
    return os.path.expanduser(os.path.expandvars(value))


def parse_override(item: str) -> tuple[list[str], Any]:
    """`training.lr=3e-4` -> (["training", "lr"], 0.0003); the value is read as TOML, else as a string."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r} has no '='", hint="write it as section.key=value, e.g. --set training.lr=3e-4")
    key, raw = item.split("=", 1)
    keys = [k.strip() for k in key.strip().split(".") if k.strip()]
    if not keys:
        raise ConfigError(f"--set {item!r} has no key", hint="write it as section.key=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return keys, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = _deepcopy(raw)
    for item in overrides:
        keys, value = parse_override(item)
        node = out
        for k in keys[:-1]:
            child = node.setdefault(k, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(keys[:-1])} is not a section")
            node = child
        node[keys[-1]] = value
    return out


def _deepcopy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deepcopy(v) if isinstance(v, dict) else v for k, v in d.items()}


# Rows of one embedding table (hashed n-gram buckets, a vocabulary): more than this cannot be indexed
# by the int32 ids ONNX graphs use, and at 100 dimensions it would already take 800 GB.
MAX_TABLE_ROWS = 2**31 - 1
MAX_TABLE_BYTES = 16 * 2**30  # one float32 table; twice that with its gradient, four times with Adam's moments
TABLE_ROWS = ("buckets", "max_vocab")
TABLE_DIMS = ("embed_dim", "bag_dim")


def non_finite(raw: Any, where: str = "") -> str | None:
    """The dotted path of the first NaN or inf in a raw config, if any. TOML has `inf` and `nan` (and
    reads 1e999 as inf); no setting of zhcls means either."""
    if isinstance(raw, float) and not math.isfinite(raw):
        return f"{where} = {raw}"
    items = raw.items() if isinstance(raw, dict) else enumerate(raw) if isinstance(raw, list) else ()
    for k, v in items:
        found = non_finite(v, f"{where}.{k}" if where and isinstance(k, str) else f"{where}[{k}]" if where else str(k))
        if found:
            return found
    return None


def check_sizes(params: BaseModel, source: str) -> None:
    """Refuse tables that cannot be allocated before training starts (the allocator would abort later)."""
    dims = [d for d in (getattr(params, name, None) for name in TABLE_DIMS) if isinstance(d, int) and d > 0]
    for name in TABLE_ROWS:
        rows = getattr(params, name, None)
        if not isinstance(rows, int):
            continue
        size = rows * max(dims, default=1) * 4
        if rows > MAX_TABLE_ROWS or size > MAX_TABLE_BYTES:
            raise ConfigError(
                f"{source}: model.{name} = {rows} is too large: its table would take {size / 2**30:,.0f} GiB "
                f"(limit {MAX_TABLE_BYTES // 2**30} GiB, at most {MAX_TABLE_ROWS} rows)",
                hint=f"fastText uses 2000000 buckets; try model.{name} = 200000",
            )


def config_from_dict(raw: dict[str, Any], source: str = "config") -> RunConfig:
    bad = non_finite(raw)
    if bad:
        raise ConfigError(f"{source}: {bad} is not a finite number", hint="use a finite value, e.g. training.lr = 1e-3")
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}", hint=_hint_for(exc)) from None
    # The model's own keys are checked against its registered Params now, not at training time.
    from .registry import models

    entry = models.get(cfg.model.name)
    try:
        params = entry.params.model_validate(cfg.model.options())
    except ValidationError as exc:
        raise ConfigError(
            f"{source}: {format_validation_error(exc, prefix='model')}",
            hint=f"valid keys for {cfg.model.name}: {', '.join(entry.params.model_fields)}",
        ) from None
    check_sizes(params, source)
    from .registry import augmenters

    for i, step in enumerate(cfg.augment):  # each [[augment]] entry's keys against its strategy's Params
        params = augmenters.get(step.name).params
        try:
            params.model_validate(step.options())
        except ValidationError as exc:
            raise ConfigError(
                f"{source}: {format_validation_error(exc, prefix=f'augment[{i}]')}",
                hint=f"valid keys for {step.name}: name, n, seed, {', '.join(params.model_fields)}",
            ) from None
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist", hint="create one with `zhcls config init > config.toml`")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", hint="check quoting and brackets on that line") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    overrides = list(overrides or [])
    try:
        return config_from_dict(apply_overrides(raw, overrides), source=str(path))
    except ConfigError as exc:
        if not overrides or not _is_valid(raw):
            raise  # no --set, or the file itself is wrong: the error names the file
        error = exc
    for i, item in enumerate(overrides):  # the file is fine alone: name the first --set that breaks it
        try:
            config_from_dict(apply_overrides(raw, overrides[: i + 1]), source=f"--set {item}")
        except ConfigError as exc:
            raise exc from None
    raise error


def _is_valid(raw: dict[str, Any]) -> bool:
    try:
        config_from_dict(raw)
    except ConfigError:
        return False
    return True


def model_params(cfg: RunConfig) -> BaseModel:
    from .registry import models

    return models.get(cfg.model.name).params.model_validate(cfg.model.options())


def default_lr(model_name: str) -> float | None:
    """The learning rate `model_name` trains with when [training] lr is not set (the model class's
    `default_lr`); None for a model without one (tfidf.v1 has no learning rate)."""
    from .registry import models

    lr = models.get(model_name).factory.default_lr
    return None if lr is None else float(lr)


MODEL_TRAINING_DEFAULTS = {"epochs": "default_epochs", "patience": "default_patience"}  # [training] key -> model attribute


def with_model_defaults(training: TrainingConfig, model: Any) -> TrainingConfig:
    """`training` with the model class's own epochs and patience (`default_epochs`, `default_patience`) where
    the config left them out: textcnn.v1 needs a longer budget than TrainingConfig's 10 epochs to converge on
    few-shot data (benchmarks/results/student_defaults.md). A value the config sets always wins."""
    update = {key: value for key, attr in MODEL_TRAINING_DEFAULTS.items()
              if key not in training.model_fields_set and (value := getattr(model, attr, None)) is not None}
    return training.model_copy(update=update) if update else training


def resolved_training(training: TrainingConfig, model_name: str) -> dict[str, Any]:
    """[training] with every default filled in, lr included: an unset lr shows the model's default, the
    value the model trains with anyway, so the same config trains the same weights as before (and so do an
    unset epochs and patience, where the model has its own)."""
    from .registry import models

    training = with_model_defaults(training, models.get(model_name).factory)
    out = training.model_dump(mode="json", exclude_none=True)
    if training.lr is None and (lr := default_lr(model_name)) is not None:
        out["lr"] = lr
        out = {k: out[k] for k in TrainingConfig.model_fields if k in out}  # lr in its place, not at the end
    return out


def resolved_dict(cfg: RunConfig) -> dict[str, Any]:
    """The config with every default filled in, the model's Params and its default lr included."""
    out = cfg.model_dump(mode="json", exclude_none=True)
    out["model"] = {"name": cfg.model.name, **model_params(cfg).model_dump(mode="json", exclude_none=True)}
    out["training"] = resolved_training(cfg.training, cfg.model.name)
    if not cfg.datasets:  # configs without [[datasets]] resolve as they did before it existed
        out.pop("datasets", None)
        out.pop("data_weight", None)
    out.pop("augment", None)
    if cfg.augment:
        from .registry import augmenters

        out["augment"] = [
            {"name": s.name, "n": s.n, **({} if s.seed is None else {"seed": s.seed}),
             **augmenters.get(s.name).params.model_validate(s.options()).model_dump(mode="json", exclude_none=True)}
            for s in cfg.augment
        ]
    return out


def dump_config(cfg: RunConfig) -> str:
    return tomli_w.dumps(resolved_dict(cfg))


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in ((prefix,) if prefix else ()) + tuple(err["loc"]))
        msg = "unknown key (typo?)" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def _hint_for(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = err["loc"]
    if err["type"] == "extra_forbidden" and loc:
        section = {"data": DataConfig, "training": TrainingConfig, "track": TrackConfig, "distill": DistillConfig}.get(str(loc[0]))
        if section is not None:
            import difflib

            close = difflib.get_close_matches(str(loc[-1]), section.model_fields, n=1)
            guess = f"did you mean {close[0]!r}? " if close else ""
            return f"{guess}valid keys in [{loc[0]}]: {', '.join(section.model_fields)}"
        return f"valid sections: {', '.join(RunConfig.model_fields)}"
    return "see `zhcls config init` for a commented example"
