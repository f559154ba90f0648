"""Teachers: anything that turns texts into probabilities over a fixed label set.

A teacher is one zhcls run (any model, a `transformer.v1` run included) or an ensemble of runs whose
probabilities are averaged, equally or weighted by each run's dev score. A previous student run is a
teacher like any other, which is all self-training needs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from ..artifact import dir_digest
from ..errors import ConfigError, DataError
from ..eval.probs import softmax
from ..models.base import Classifier, load_model, resolve_model_dir


@dataclass
class Teacher:
    """Members are fitted classifiers; `weights` sum to 1. `identity` is a content hash of the model
    directories and the weights, so a retrained run (or other weights) never reuses old soft targets."""

    members: list[Classifier]
    weights: np.ndarray
    paths: list[str]
    identity: str

    @property
    def labels(self) -> tuple[str, ...]:
        return self.members[0].labels_.labels

    def to(self, device) -> "Teacher":
        """Run the members that are torch models on `device` (a torch.device); the others stay on the CPU."""
        for member in self.members:
            if hasattr(member, "to"):
                member.to(device)
        return self

    def predict(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities [n, k], logits [n, k] or None). Logits only come from a single model that has them;
        an ensemble's mean of probabilities has none."""
        if len(self.members) == 1:
            member = self.members[0]
            if hasattr(member, "predict_logits"):
                logits = np.asarray(member.predict_logits(texts), dtype=np.float32)
                return softmax(logits.astype(np.float64)).astype(np.float32), logits
            return np.asarray(member.predict_proba(texts), dtype=np.float32), None
        probs = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        for member, w in zip(self.members, self.weights):
            probs += w * _aligned(member, self.labels, member.predict_proba(texts))
        return probs.astype(np.float32), None


def load_teacher(
    paths: Sequence[str | Path],
    weighting: Literal["equal", "dev", "fit"] = "equal",
    metric: str = "macro_f1",
    dev: tuple[Sequence[str], Sequence[str]] | None = None,
) -> Teacher:
    """weighting: "equal"; "dev": proportional to each run's recorded dev score; "fit": the weights (a grid
    on the simplex, step 0.1) whose ensemble scores best on `dev` (texts, labels)."""
    if not paths:
        raise ConfigError("no teacher given", hint="name one or more run directories, e.g. runs/tnews-bert")
    dirs = [resolve_model_dir(p) for p in paths]
    members = [load_model(d) for d in dirs]
    labels = members[0].labels_.labels
    for d, m in zip(dirs[1:], members[1:]):
        if set(m.labels_.labels) != set(labels):
            raise DataError(
                f"{d}: its labels differ from {dirs[0]}'s; an ensemble needs the same label set",
                hint=f"{dirs[0]}: {', '.join(labels[:10])}; {d}: {', '.join(m.labels_.labels[:10])}",
            )
    weights = np.ones(len(members))
    if weighting == "dev" and len(members) > 1:
        scores = [m.meta.get("metrics", {}).get("dev", {}).get(metric) for m in members]
        missing = [str(d) for d, s in zip(dirs, scores) if s is None]
        if missing:
            raise DataError(f"no dev {metric} recorded for {', '.join(missing)}", hint="train those runs with a dev split, or use equal weights")
        weights = np.asarray(scores, dtype=np.float64)
    elif weighting == "fit" and len(members) > 1:
        if dev is None or not len(dev[0]):
            raise ConfigError('teacher_weights = "fit" needs a dev split', hint='set [data] dev, or use teacher_weights = "dev"')
        weights = fit_weights([_aligned(m, labels, m.predict_proba(dev[0])) for m in members], labels, dev[1], metric)
    weights = weights / weights.sum()
    h = hashlib.sha256()
    for d, w in zip(dirs, weights):
        h.update(dir_digest(d).encode())
        h.update(f"{w:.12g}".encode())
    return Teacher(members, weights, [str(d) for d in dirs], h.hexdigest())


def fit_weights(member_probs: list[np.ndarray], labels: Sequence[str], dev_labels: Sequence[str], metric: str, step: float = 0.1) -> np.ndarray:
    """Ensemble weights from a grid on the simplex that score best on dev; ties go to the most even weights."""
    from itertools import product

    from ..eval.metrics import score_from_proba

    index = {label: i for i, label in enumerate(labels)}
    y = np.asarray([index.get(label, -1) for label in dev_labels])
    units = int(round(1 / step))
    best: tuple[float, float, tuple[int, ...]] | None = None
    for combo in product(range(units + 1), repeat=len(member_probs) - 1):
        if sum(combo) > units:
            continue
        w = (*combo, units - sum(combo))
        probs = sum(wi * p for wi, p in zip(w, member_probs))
        key = (score_from_proba(probs, y, metric), -float(np.var(w)), w)
        if best is None or key[:2] > best[:2]:
            best = key
    return np.asarray(best[2], dtype=np.float64) / units


def _aligned(member: Classifier, labels: tuple[str, ...], probs: np.ndarray) -> np.ndarray:
    own = member.labels_.labels
    if own == labels:
        return np.asarray(probs, dtype=np.float64)
    return np.asarray(probs, dtype=np.float64)[:, [own.index(label) for label in labels]]
