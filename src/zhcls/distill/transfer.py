"""The transfer set and the distillation fit that `zhcls train` runs when the config has [distill].

transfer set = labeled train split (hard label + soft targets)
             + augmented texts (hard label where they carry one)
             + unlabeled texts (soft targets only): de-duplicated against dev/test (and train) on
               normalized text, capped by ratio and count, then filtered by the teacher's confidence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DistillConfig, RunConfig, expand_path
from ..data.example import Example
from ..data.readers import ReadOptions, fingerprint, read_examples
from ..data.unlabeled import read_unlabeled
from ..errors import ConfigError, DataError
from ..eval.probs import SoftTargets
from .soft import SoftLabels, label_texts, read_soft_targets
from .teachers import load_teacher

log = logging.getLogger(__name__)


@dataclass
class TransferSet:
    texts: list[str] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # "labeled" | "augmented" | "unlabeled"
    info: dict[str, Any] = field(default_factory=dict)

    def add(self, texts: list[str], labels: list[str | None], kind: str) -> None:
        self.texts += texts
        self.labels += labels
        self.kinds += [kind] * len(texts)


def build_transfer_set(cfg: RunConfig, splits: dict[str, list[Example]], augmented: list[Example] | None = None) -> TransferSet:
    d = _distill(cfg)
    train = splits["train"]
    ts = TransferSet()
    if d.labeled:
        ts.add([e.text for e in train], [e.label for e in train], "labeled")
    aug = list(augmented or [])
    options = ReadOptions.from_config(cfg.data)
    for path in d.augmented:
        aug += read_examples(Path(expand_path(path)), options)
    if aug:
        ts.add([e.text for e in aug], [e.label for e in aug], "augmented")
    unlabeled, info = read_unlabeled(d.unlabeled, cfg.data, splits, cap=unlabeled_cap(d, len(train)), seed=cfg.training.seed)
    ts.add(unlabeled, [None] * len(unlabeled), "unlabeled")
    ts.info = info
    if not ts.texts:
        raise ConfigError("[distill] leaves an empty transfer set", hint="set labeled = true, or name augmented/unlabeled files")
    return ts


def unlabeled_cap(d: DistillConfig, n_train: int) -> int | None:
    """At most max_unlabeled unlabeled texts, and at most unlabeled_ratio per train example."""
    cap = d.max_unlabeled
    if d.unlabeled_ratio is not None:
        cap = min(cap if cap is not None else 2**62, int(d.unlabeled_ratio * max(1, n_train)))
    return cap


def soft_labels_for(cfg: RunConfig, texts: list[str], dev: tuple[list[str], list[str]] | None = None) -> SoftLabels:
    """From the teacher (through the cache), or looked up by text in the soft-target files."""
    d = _distill(cfg)
    if d.teacher:
        teacher = load_teacher([expand_path(p) for p in d.teacher], d.teacher_weights, cfg.training.metric, dev=dev)
        return label_texts(teacher, texts, cache_dir=expand_path(d.cache_dir) if d.cache_dir else None, batch_size=d.batch_size)
    files = [read_soft_targets(expand_path(p)) for p in d.soft_targets]
    labels = files[0].labels
    rows: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for f in files:
        if f.labels != labels:
            raise DataError(f"{f.path}: its labels differ from {files[0].path}'s", hint="label every file with the same teacher")
        for i, text in enumerate(f.texts):
            rows[text] = (f.probs[i], f.logits[i] if f.logits is not None else None)
    missing = [t for t in texts if t not in rows]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(texts)} transfer texts have no row in the soft-target files (first: {missing[0][:40]!r})",
            hint="label every data file of the transfer set: `zhcls teacher label TEACHER TRAIN UNLABELED... -o soft.jsonl`",
        )
    probs = np.stack([rows[t][0] for t in texts])
    has_logits = all(rows[t][1] is not None for t in texts)
    logits = np.stack([rows[t][1] for t in texts]) if has_logits else None
    return SoftLabels(labels, list(texts), probs, logits, None, cached=True)


@dataclass
class DistillSet:
    """What a student fits on: texts, their hard labels (None for unlabeled text) and the teacher's soft
    targets, row for row; `info` is what metrics.json records about them."""

    texts: list[str]
    labels: list[str | None]
    targets: SoftTargets
    info: dict[str, Any]


def distill_set(cfg: RunConfig, splits: dict[str, list[Example]], *, augmented: list[Example] | None = None) -> DistillSet:
    """The transfer set of `cfg`'s [distill] section with the teacher's soft targets (train() then calls
    the student's fit with them: distillation is a change of targets, not of training procedure)."""
    d = _distill(cfg)
    ts = build_transfer_set(cfg, splits, augmented)
    dev = ([e.text for e in splits["dev"]], [e.label for e in splits["dev"]]) if splits.get("dev") else None
    soft = soft_labels_for(cfg, ts.texts, dev)
    keep = np.ones(len(ts.texts), dtype=bool)
    if d.min_confidence > 0:
        keep = np.array([k != "unlabeled" for k in ts.kinds]) | (soft.probs.max(axis=1) >= d.min_confidence)
    idx = np.flatnonzero(keep)
    texts = [ts.texts[i] for i in idx]
    labels = [ts.labels[i] for i in idx]
    targets = SoftTargets(
        soft.labels, soft.probs[idx], soft.logits[idx] if soft.logits is not None else None, d.temperature, d.alpha, d.loss,
    )
    counts = {kind: int(sum(1 for i in idx if ts.kinds[i] == kind)) for kind in ("labeled", "augmented", "unlabeled")}
    info = {
        "teacher": list(d.teacher) or None, "soft_targets": list(d.soft_targets) or None, "soft_targets_cached": soft.cached,
        "temperature": d.temperature, "alpha": d.alpha, "loss": d.loss, "transfer": counts,
        "unlabeled_low_confidence": int((~keep).sum()), **ts.info,
        # what the unlabeled files held: a build reuses a student only for the same texts (build._reusable)
        "unlabeled_files": [{"path": str(p), "sha256": fingerprint(p)} for p in map(Path, map(expand_path, d.unlabeled)) if p.is_file()],
    }
    log.info("distilling on %d texts (%s)", len(texts), ", ".join(f"{k} {v}" for k, v in counts.items()))
    return DistillSet(texts, labels, targets, info)


def _distill(cfg: RunConfig) -> DistillConfig:
    if cfg.distill is None:
        raise ConfigError("the config has no [distill] section")
    return cfg.distill
