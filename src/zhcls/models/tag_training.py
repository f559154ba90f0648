"""The training loop of tagger.v1 and joint.v1: batches from one or more datasets, a tag loss (CRF or
softmax) and a class loss weighted per task, dev evaluation once per epoch (or every `eval_every` steps),
early stopping, the best weights kept.

A batch comes from one dataset ("group") and trains the heads its examples are annotated for: an example
with entities trains the tag head, one with a label the class head. Groups take turns in proportion to
their weights. Unlike the classifiers' Trainer there is no checkpoint: an interrupted run trains again.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..config import TrainingConfig
from ..errors import RunError
from ..scale.device import describe, resolve_device
from ..tagging.features import pad_features
from .trainer import epoch_batches, make_optimizers


@dataclass
class Rows:
    """Encoded examples of one dataset: features per text, tag ids per character (None: not annotated for
    tagging) and a class id (-1: no label)."""

    features: list[tuple[np.ndarray, np.ndarray]]
    tags: list[np.ndarray | None]
    labels: np.ndarray
    weight: float = 1.0


@dataclass
class TagFitResult:
    best_state: dict[str, torch.Tensor]
    last_state: dict[str, torch.Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float | None = None
    best_step: int = 0
    steps: int = 0
    epochs: int = 0
    stopped: str = "epoch_budget"
    device: str = "cpu"


def batch_plan(groups: Sequence[Rows], batch_size: int, seed: int, epoch: int) -> list[tuple[int, np.ndarray]]:
    """(group, row indices) for one epoch. The epoch has as many batches as the groups have together;
    group g gets a share weight_g / sum(weights) of them, cycling through its own shuffled batches."""
    natural = [epoch_batches(np.fromiter((len(f[0]) for f in g.features), np.int64), batch_size, seed + 7919 * i, epoch) for i, g in enumerate(groups)]
    total = sum(len(b) for b in natural)
    weights = np.asarray([g.weight for g in groups], dtype=np.float64)
    counts = np.floor(weights / weights.sum() * total + 0.5).astype(int)
    plan = [(i, natural[i][j % len(natural[i])]) for i in range(len(groups)) for j in range(counts[i]) if natural[i]]
    order = np.random.default_rng([seed, epoch, 17]).permutation(len(plan))
    return [plan[k] for k in order]


def fit_joint(
    modules: torch.nn.Module, groups: Sequence[Rows], cfg: TrainingConfig, *, lr: float,
    tag_weight: float, class_weight: float, evaluate: Callable[[], dict[str, float]] | None, progress=None,
) -> TagFitResult:
    """`modules`: a TaggerModule (net and crf). `evaluate()` scores the current weights on dev:
    {"score": ..., other dev_ numbers}; higher is better."""
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    modules.to(device)
    net, crf = modules.net, modules.crf
    optimizers, dense = make_optimizers(modules, lr, cfg.weight_decay)
    ce = torch.nn.CrossEntropyLoss(ignore_index=-100)
    cls_ce = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    progress = progress or (lambda kind, info: None)
    has_classes = getattr(net, "out", None) is not None

    def batch_loss(group: Rows, idx: np.ndarray) -> torch.Tensor:
        ids, grams, lengths = (torch.from_numpy(a).to(device) for a in pad_features([group.features[i] for i in idx]))
        out = net(ids, grams, lengths)
        emissions, logits = out if has_classes else (out, None)
        loss = torch.zeros((), device=device)
        tagged = [k for k, i in enumerate(idx) if group.tags[i] is not None]
        if tagged and tag_weight > 0:
            y = torch.full(ids.shape, -100, dtype=torch.long)
            for k in tagged:
                tags = group.tags[idx[k]]
                y[k, : len(tags)] = torch.from_numpy(tags)
            rows = torch.as_tensor(tagged, device=device)
            y = y.to(device)[rows]
            em = emissions[rows].float()
            if crf is not None:
                mask = y >= 0
                loss = loss + tag_weight * -crf(em, y.clamp(min=0), mask=mask, reduction="token_mean")
            else:
                loss = loss + tag_weight * ce(em.reshape(-1, em.shape[-1]), y.reshape(-1))
        labeled = np.flatnonzero(group.labels[idx] >= 0)
        if logits is not None and len(labeled) and class_weight > 0:
            rows = torch.as_tensor(labeled, device=device)
            target = torch.as_tensor(group.labels[idx][labeled], device=device)
            loss = loss + class_weight * cls_ce(logits[rows].float(), target)
        return loss

    result = TagFitResult({}, {}, device=describe(device))
    best_state = _copy(modules)
    bad_evals, started, loss_sum, loss_n = 0, time.perf_counter(), 0.0, 0
    step = 0
    modules.train()
    for epoch in range(cfg.epochs):
        plan = batch_plan(groups, cfg.batch_size, cfg.seed, epoch)
        for b, (g, idx) in enumerate(plan):
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss = batch_loss(groups[g], idx)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise RunError(
                    f"training diverged: the loss is {value} at step {step + 1} (epoch {epoch + 1}); nothing was saved",
                    hint=f"lower training.lr (it is {lr:g}) or keep training.max_grad_norm above 0",
                )
            if loss.requires_grad:
                loss.backward()
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(dense, cfg.max_grad_norm)
                for opt in optimizers:
                    opt.step()
            step += 1
            loss_sum, loss_n = loss_sum + value, loss_n + 1
            progress("step", {"step": step, "total": len(plan) * cfg.epochs, "loss": value, "epoch": epoch})
            end = b == len(plan) - 1
            if not (cfg.eval_every and step % cfg.eval_every == 0) and not end:
                continue
            record: dict[str, Any] = {"step": step, "epoch": epoch + (1 if end else 0), "train_loss": round(loss_sum / max(loss_n, 1), 6)}
            loss_sum, loss_n = 0.0, 0
            modules.eval()
            scores = evaluate() if evaluate is not None else {"score": -record["train_loss"]}
            modules.train()
            score = scores.pop("score")
            record.update(scores)
            improved = result.best_score is None or score > result.best_score
            if improved:
                result.best_score, result.best_step, bad_evals = score, step, 0
                best_state = _copy(modules)
            else:
                bad_evals += 1
            record.update(best=improved, seconds=round(time.perf_counter() - started, 3))
            result.history.append(record)
            progress("eval", record)
            if evaluate is not None and cfg.patience and bad_evals >= cfg.patience:
                result.stopped = "early_stopping"
                break
        result.epochs = epoch + 1
        if result.stopped == "early_stopping":
            break
    modules.eval()
    result.best_state, result.last_state, result.steps = best_state, _copy(modules), step
    return result


def _copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
