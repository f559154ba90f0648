"""Training and scoring of the span models (tagger.v1, joint.v1) inside `train`: their splits may have
entities instead of (or beside) labels, several datasets may share the model (`[[datasets]]`), and their
metrics add entity-level scores to the classification ones."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from ..config import DataConfig, RunConfig
from ..data.example import Example
from ..data.readers import read_split
from ..errors import ConfigError, DataError
from ..registry import models
from ..text.normalize import normalize

log = logging.getLogger(__name__)


def is_span_model(name: str) -> bool:
    return bool(getattr(models.get(name).factory, "tags_spans", False))


def read_span_splits(data: DataConfig, what: str, *, tags: bool, labels: bool) -> dict[str, list[Example]]:
    """The splits of one dataset. Train must be annotated for what the model learns; a text that is empty,
    or dev/test entity types that train never shows (a tag set mismatch), are errors naming file and line."""
    if data.train is None:
        raise DataError(f"{what}: train is not set", hint='add train = "path/to/train.json"')
    data.check_data_dir()
    splits: dict[str, list[Example]] = {}
    for name in ("train", "dev", "test"):
        examples = read_split(data, name)
        if examples is None:
            continue
        if not examples:
            raise DataError(f"{what}: the {name} file {data.path(name)} has no examples")
        for ex in examples:
            if not normalize(ex.text):
                raise DataError(f"{ex.source}: empty text", hint="remove the line, or run `zhcls data check` to list every problem")
        splits[name] = examples
    train = splits["train"]
    if tags and labels and not any(e.entities is not None or e.label is not None for e in train):
        raise DataError(f"{train[0].file}: no example has a label or entities", hint="joint.v1 needs labels, entities or both")
    if tags and not labels and not any(e.entities is not None for e in train):
        raise DataError(f"{train[0].file}: no example has entities", hint='use JSON lines with an "entities" field, or format = "conll"')
    known = {x.type for e in train for x in (e.entities or ())}
    for name in ("dev", "test"):
        for ex in splits.get(name, []):
            unknown = sorted({x.type for x in ex.entities or ()} - known)
            if unknown:
                raise DataError(
                    f"{ex.source}: entity type {unknown[0]} is not in the training data (tag set mismatch; train has {', '.join(sorted(known)) or 'none'})",
                    hint="annotate the splits with the same types, or add examples of this type to train",
                )
    return splits


def load_span_splits(cfg: RunConfig) -> dict[str, list[Example]]:
    cls = models.get(cfg.model.name).factory
    return read_span_splits(cfg.data, "[data]", tags=True, labels=cls.classifies)


def extra_datasets(cfg: RunConfig) -> list[dict[str, list[Example]]]:
    """The splits of each `[[datasets]]` entry (joint.v1 only)."""
    if not cfg.datasets:
        return []
    if cfg.model.name != "joint.v1":
        raise ConfigError(f"[[datasets]] trains several datasets on one joint model; {cfg.model.name} has one task", hint='set [model] name = "joint.v1"')
    return [read_span_splits(d, f"datasets[{i}]", tags=True, labels=True) for i, d in enumerate(cfg.datasets)]


def fit_span_model(model: Any, cfg: RunConfig, train: list[Example], dev: list[Example] | None, extra: list[dict[str, list[Example]]], progress=None,
                   work_dir: Path | None = None, **distill: Any) -> None:
    """`distill`: fit_examples' soft-target options, for [data]'s group (fit_span_distilled)."""
    groups = [train] + [s["train"] for s in extra]
    weights = [cfg.data_weight] + [d.weight for d in cfg.datasets]
    dev_all = list(dev or []) + [e for s in extra for e in s.get("dev", [])]
    if "soft" in distill:
        distill["soft"] = [distill["soft"]] + [None] * len(extra)
    model.fit_examples(groups, dev_all or None, weights=weights, progress=progress, work_dir=work_dir, **distill)


def fit_span_distilled(model: Any, cfg: RunConfig, splits: dict[str, list[Example]], train: list[Example], dev: list[Example] | None,
                       extra: list[dict[str, list[Example]]], progress=None, work_dir: Path | None = None, warm_start: bool = False) -> dict[str, Any]:
    """[distill] for a span model: a tagger.v1/joint.v1 teacher run teaches the student's tag head. Transfer
    set: the train split (its entities) + its [[augment]] copies (`use_augment`) + the unlabeled texts, which
    the teacher tags (its best path is their hard tags). Every transfer text also gets the teacher's tag
    probabilities at temperature T (the CRF's marginals: tagging/decode.py tag_marginals), learned with the
    weight `alpha` (tag_training.batch_losses). Class labels, where the data has them, stay hard.
    `warm_start`: the student goes on from its own weights (a pruned model's recovery). Returns what
    metrics.json records under "distill"."""
    from ..config import expand_path
    from ..data.unlabeled import read_unlabeled
    from ..distill.transfer import unlabeled_cap
    from ..models.base import load_model
    from ..tagging.decode import decode, tag_marginals

    d = cfg.distill
    if d.soft_targets or len(d.teacher) != 1:
        raise ConfigError("[distill] for tagger.v1/joint.v1 takes one teacher run", hint='teacher = "runs/tagger" (a tagger.v1 or joint.v1 run); soft_targets files are for classifiers')
    unsupported = {"loss": d.loss != "kl", "augmented": bool(d.augmented), "min_confidence": d.min_confidence > 0}
    for key in (k for k, used in unsupported.items() if used):  # settings of classifier distillation: refused, not ignored
        raise ConfigError(f"[distill] {key}: not supported for a tagging student (KL on tag probabilities, [[augment]] copies, every unlabeled text)",
                          hint=f"remove {key} from [distill]")
    teacher = load_model(expand_path(d.teacher[0]))
    if not getattr(teacher, "tags_spans", False):
        raise ConfigError(f"[distill] teacher {d.teacher[0]} is a {teacher.name} run; a tagging student needs a tagger.v1 or joint.v1 teacher",
                          hint="train the teacher with [model] name = \"tagger.v1\" first")
    labeled = train[: len(splits["train"])] if d.labeled else []
    copies = train[len(splits["train"]) :] if d.use_augment else []
    texts, info = read_unlabeled(d.unlabeled, cfg.data, splits, cap=unlabeled_cap(d, len(splits["train"])), seed=cfg.training.seed)
    if not labeled + copies + texts:
        raise ConfigError("[distill] leaves an empty transfer set", hint="set labeled = true, or name unlabeled files")
    # one teacher pass over the transfer set: its emissions give the unlabeled texts' entities and every text's soft targets
    _, emissions = teacher.outputs([e.text for e in labeled + copies] + texts)
    crf, tags = teacher.crf_scores(), teacher.tags_.labels
    found = [decode(em, tags, crf, len(t))[0] for t, em in zip(texts, emissions[len(labeled) + len(copies) :])]
    unlabeled = [Example(t, None, entities=tuple(spans)) for t, spans in zip(texts, found)]
    soft = [tag_marginals(em, crf, d.temperature) if len(em) else None for em in emissions]
    fit_span_model(model, cfg, labeled + copies + unlabeled, dev, extra, progress=progress, work_dir=work_dir, soft=soft,
                   teacher_tags=tags, alpha=d.alpha, temperature=d.temperature, warm_start=warm_start)
    return {"teacher": list(d.teacher), "kind": "tags", "temperature": d.temperature, "alpha": d.alpha,
            "transfer": {"labeled": len(labeled), "augmented": len(copies), "unlabeled": len(unlabeled)},
            "unlabeled_entities": sum(len(e.entities or ()) for e in unlabeled), **info}


def span_metrics(model: Any, examples: Sequence[Example], top_errors: int = 20) -> dict[str, Any]:
    """Classification metrics over the labeled examples (joint.v1), and under "entities" entity-level
    P/R/F1 per type and micro/macro over the examples with entities, plus "span_errors", the most frequent."""
    from ..eval.metrics import classification_metrics
    from ..tagging.metrics import entity_metrics, span_errors

    out: dict[str, Any] = {"n": len(examples)}
    labeled = [e for e in examples if e.label is not None] if getattr(model, "classifies", True) and len(model.labels_) else []
    if labeled:
        out.update(classification_metrics([e.label for e in labeled], model.predict([e.text for e in labeled]), model.labels_.labels))
        out["n"] = len(examples)
    tagged = [e for e in examples if e.entities is not None]
    if tagged:
        texts = [e.text for e in tagged]
        pred = [[x for x, _ in p] for p in model.predict_spans(texts)]
        gold = [list(e.entities) for e in tagged]
        out["entities"] = entity_metrics(gold, pred, [len(t) for t in texts])
        out["entities"]["span_errors"] = span_errors(texts, gold, pred, top=top_errors)
        out["entity_f1"] = out["entities"]["micro_f1"]
    if not labeled and not tagged:
        raise DataError("no example has a label or entities to score against", hint="evaluate on annotated data")
    return out
