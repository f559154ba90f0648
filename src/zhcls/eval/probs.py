"""Probability arithmetic shared by the models, the Trainer, distillation and bench: softmax, temperature,
and a teacher's soft targets. numpy only, no torch and no zhcls imports, so any layer may use it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

KDKind = Literal["kl", "mse"]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def temper(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) computed from probabilities: p^(1/T), renormalized. Zeros stay zero, so a
    one-hot teacher stays one-hot at any T."""
    p = np.asarray(probs, dtype=np.float64)
    if temperature != 1.0:
        with np.errstate(divide="ignore"):
            logp = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -np.inf) / temperature
        logp -= logp.max(axis=1, keepdims=True)
        p = np.exp(logp)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


@dataclass
class SoftTargets:
    """Teacher targets for each training row, columns in `classes` order."""

    classes: Sequence[str]
    probs: np.ndarray  # [n, k] teacher probabilities (temperature 1)
    logits: np.ndarray | None = None  # [n, k] where the teacher has logits
    temperature: float = 1.0
    alpha: float = 0.5  # weight of the soft loss on labeled rows
    loss: KDKind = "kl"

    def digest(self) -> str:
        h = hashlib.sha256(repr((list(self.classes), self.temperature, self.alpha, self.loss)).encode())
        h.update(np.ascontiguousarray(self.probs, dtype=np.float32).tobytes())
        if self.logits is not None:
            h.update(np.ascontiguousarray(self.logits, dtype=np.float32).tobytes())
        return h.hexdigest()

    def target_array(self) -> np.ndarray:
        """What the loss reads per row (float32): q_T for kl; for mse the teacher logits (log-probabilities
        when it has none)."""
        if self.loss == "kl":
            return temper(self.probs, self.temperature)
        z = self.logits if self.logits is not None else np.log(np.clip(self.probs, 1e-8, 1.0))
        return np.asarray(z, dtype=np.float32)
