"""Losses over a batch of logits. Distillation is a change of targets, not of trainer: the teacher's
probabilities (and logits, where it has them) ride along with the hard labels.

    kl:  T² · KL(q_T || softmax(s / T)),  q_T = the teacher's distribution at temperature T (Hinton et al.)
    mse: mean over classes of (s - z)², z = the teacher's logits (log-probabilities when it has none)

A row with a hard label is weighted alpha · soft + (1 - alpha) · hard; a row without one (unlabeled
transfer text) gets the soft loss alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..eval.probs import KDKind, SoftTargets, temper

__all__ = ["KDKind", "SoftTargets", "distill_loss", "kd_loss", "temper"]


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
