"""Losses over a batch of logits. Distillation is a change of targets, not of trainer: the teacher's
probabilities (and logits, where it has them) ride along with the hard labels.

    kl:  T² · KL(q_T || softmax(s / T)),  q_T = the teacher's distribution at temperature T (Hinton et al.)
    mse: mean over classes of (s - z)², z = the teacher's logits (log-probabilities when it has none)

A row with a hard label is weighted alpha · soft + (1 - alpha) · hard; a row without one (unlabeled
transfer text) gets the soft loss alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

KDKind = Literal["kl", "mse"]


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

    def target_tensor(self) -> torch.Tensor:
        """What the loss reads per row: q_T for kl; for mse the teacher logits (log-probabilities when it has none)."""
        if self.loss == "kl":
            return torch.from_numpy(temper(self.probs, self.temperature))
        z = self.logits if self.logits is not None else np.log(np.clip(self.probs, 1e-8, 1.0))
        return torch.from_numpy(np.asarray(z, dtype=np.float32))


def kd_loss(student_logits: torch.Tensor, target: torch.Tensor, temperature: float = 1.0, kind: KDKind = "kl") -> torch.Tensor:
    """Per-row soft loss [B]. kl: `target` is q_T (tempered teacher probabilities); mse: teacher logits."""
    if kind == "kl":
        log_p = F.log_softmax(student_logits / temperature, dim=1)
        return (torch.xlogy(target, target) - target * log_p).sum(dim=1) * (temperature**2)
    if kind == "mse":
        return ((student_logits - target) ** 2).mean(dim=1)
    raise ValueError(f"unknown distillation loss {kind!r}; choose 'kl' or 'mse'")


def distill_loss(
    student_logits: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
    kind: KDKind,
    class_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over the batch; rows with y < 0 (no hard label) take the soft loss alone."""
    soft = kd_loss(student_logits, target, temperature, kind)
    labeled = y >= 0
    if not bool(labeled.any()):
        return soft.mean()
    hard = F.cross_entropy(student_logits, y.clamp(min=0), weight=class_weight, reduction="none")
    per_row = torch.where(labeled, alpha * soft + (1.0 - alpha) * hard, soft)
    return per_row.mean()
