"""The training loop of tagger.v1 and joint.v1: batches from one or more datasets, a tag loss (CRF or
softmax) and a class loss weighted per task, dev evaluation once per epoch (or every `eval_every` steps),
early stopping, the best weights kept.

A batch comes from one dataset ("group") and trains the heads its examples are annotated for: an example
with entities trains the tag head, one with a label the class head. Groups take turns in proportion to
their weights. As the classifiers' Trainer does, it writes a checkpoint at every evaluation into the
run's directory, and a killed run resumes from it exactly (the same batches, dropout and result).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..config import TrainingConfig
from ..errors import RunError
from ..scale.device import describe, resolve_device
from ..tagging.features import pad_features
from .trainer import (
    FitResult,
    apply_checkpoint,
    epoch_batches,
    linear_schedule,
    make_optimizers,
    read_checkpoint,
    rng_state,
    save_checkpoint,
)


@dataclass
class Rows:
    """Encoded examples of one dataset: features per text, tag ids per character (None: not annotated for
    tagging) and a class id (-1: no label)."""

    features: list[tuple[np.ndarray, np.ndarray]]
    tags: list[np.ndarray | None]
    labels: np.ndarray
    weight: float = 1.0
    soft: list[np.ndarray | None] | None = None  # distillation: a teacher's tag probabilities [T, K] per text


@dataclass
class _LoopState:
    """Where fit_joint is, saved in each checkpoint: the next batch of the epoch, the early-stopping counters."""

    fingerprint: str = ""
    epoch: int = 0
    batch: int = 0
    step: int = 0
    best_score: float | None = None
    best_step: int = 0
    head_best: dict[str, float] = field(default_factory=dict)
    bad_evals: int = 0
    stopped: bool = False
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def batch_plan(groups: Sequence[Rows], batch_size: int, seed: int, epoch: int) -> list[tuple[int, np.ndarray]]:
    """(group, row indices) for one epoch. The epoch has as many batches as the groups have together; group g
    gets a share of them proportional to weight_g x its own number of batches, cycling through its own
    shuffled batches. With equal weights (the default) that is one pass over every dataset per epoch, as in
    single-task training: sampling in proportion to size, so an epoch means the same for each task."""
    natural = [epoch_batches(np.fromiter((len(f[0]) for f in g.features), np.int64), batch_size, seed + 7919 * i, epoch) for i, g in enumerate(groups)]
    sizes = np.asarray([len(b) for b in natural], dtype=np.float64)
    share = np.asarray([g.weight for g in groups], dtype=np.float64) * sizes
    if not share.sum():
        return []
    counts = np.floor(share / share.sum() * sizes.sum() + 0.5).astype(int)
    plan = [(i, natural[i][j % len(natural[i])]) for i in range(len(groups)) for j in range(counts[i]) if natural[i]]
    order = np.random.default_rng([seed, epoch, 17]).permutation(len(plan))
    return [plan[k] for k in order]


def batch_losses(
    modules: torch.nn.Module, group: Rows, idx: np.ndarray, *, label_smoothing: float = 0.0, tags: bool = True, classes: bool = True,
    alpha: float = 0.0, temperature: float = 1.0,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(tag loss, class loss) of one batch, each None where no text of it is annotated for that head (or the
    head is off). Both are per text, averaged over the batch's texts: a text's tag loss is the negative
    log-likelihood of its whole tag sequence (the CRF's; for a softmax head the sum of its characters'
    cross-entropies), as its class loss is that of its label. A mean over characters instead would weigh a
    tagged sentence of 45 characters as 1/45 of a label, and leave the shared encoder to the class head.

    Distillation (`group.soft`, `alpha` > 0): the tag loss is (1 - alpha) x that loss + alpha x T^2 x the
    KL divergence, summed over the characters, from the teacher's tag probabilities to the softmax of the
    student's emissions / T (T = `temperature`), as the classifiers' KD loss is for one label."""
    net, crf = modules.net, modules.crf
    device = next(net.parameters()).device
    ids, grams, lengths = (torch.from_numpy(a).to(device) for a in pad_features([group.features[i] for i in idx]))
    out = net(ids, grams, lengths)
    emissions, logits = out if net.out is not None else (out, None)
    tag_loss = class_loss = None
    tagged = [k for k, i in enumerate(idx) if group.tags[i] is not None]
    if tagged and tags:
        y = torch.full(ids.shape, -100, dtype=torch.long)
        for k in tagged:
            row = group.tags[idx[k]]
            y[k, : len(row)] = torch.from_numpy(row)
        rows = torch.as_tensor(tagged, device=device)
        y = y.to(device)[rows]
        em = emissions[rows].float()
        if crf is not None:
            tag_loss = -crf(em, y.clamp(min=0), mask=y >= 0, reduction="mean")
        else:
            tag_loss = torch.nn.functional.cross_entropy(em.reshape(-1, em.shape[-1]), y.reshape(-1), ignore_index=-100, reduction="sum") / len(tagged)
        if group.soft is not None and alpha > 0:
            target = torch.zeros(em.shape, dtype=torch.float32)
            known = torch.zeros(em.shape[:2], dtype=torch.bool)
            for row, k in enumerate(tagged):
                probs = group.soft[idx[k]]
                if probs is not None:
                    n = min(len(probs), int((y[row] >= 0).sum()))  # a teacher that read fewer characters teaches fewer
                    target[row, :n] = torch.from_numpy(np.asarray(probs[:n], dtype=np.float32))
                    known[row, :n] = True
            target, known = target.to(device), known.to(device)
            log_student = torch.log_softmax(em / temperature, dim=-1)
            kl = (target * (torch.log(target.clamp(min=1e-12)) - log_student)).sum(dim=-1)
            soft_loss = kl.masked_fill(~known, 0.0).sum() / len(tagged) * temperature**2
            tag_loss = (1 - alpha) * tag_loss + alpha * soft_loss
    labeled = np.flatnonzero(group.labels[idx] >= 0)
    if logits is not None and len(labeled) and classes:
        rows = torch.as_tensor(labeled, device=device)
        target = torch.as_tensor(group.labels[idx][labeled], device=device)
        class_loss = torch.nn.functional.cross_entropy(logits[rows].float(), target, label_smoothing=label_smoothing)
    return tag_loss, class_loss


def fit_joint(
    modules: torch.nn.Module, groups: Sequence[Rows], cfg: TrainingConfig, *, lr: float,
    tag_weight: float, class_weight: float, evaluate: Callable[[], dict[str, Any]] | None, progress=None,
    work_dir: Path | None = None, fingerprint: str = "", alpha: float = 0.0, temperature: float = 1.0,
    schedule: str = "constant", warmup_ratio: float = 0.0,
) -> FitResult:
    """`modules`: a TaggerModule (net and crf). `evaluate()` scores the current weights on dev:
    {"score": ..., "heads": {head: its own dev score}, other dev_ numbers}; higher is better. The best
    score's weights are kept; early stopping waits for every head: `patience` evaluations in a row in which
    neither the score nor any head's own best improved (a head that learns slower is not cut short by one
    that has peaked). `work_dir`: checkpoints go to work_dir/checkpoint, and one there of the same
    `fingerprint` (config and data) is resumed; one of another is refused. `alpha`, `temperature`: the
    distillation loss on groups with soft targets (batch_losses). `schedule` "linear": the rate warms up over
    `warmup_ratio` of the steps of all `cfg.epochs`, then decays linearly (trainer.linear_schedule)."""
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    modules.to(device)
    optimizers, dense = make_optimizers(modules, lr, cfg.weight_decay)
    progress = progress or (lambda kind, info: None)

    def batch_loss(group: Rows, idx: np.ndarray) -> torch.Tensor:
        tag_loss, class_loss = batch_losses(modules, group, idx, label_smoothing=cfg.label_smoothing, tags=tag_weight > 0, classes=class_weight > 0,
                                            alpha=alpha, temperature=temperature)
        loss = torch.zeros((), device=device)
        if tag_loss is not None:
            loss = loss + tag_weight * tag_loss
        if class_loss is not None:
            loss = loss + class_weight * class_loss
        return loss

    result = FitResult({}, {}, device=describe(device))
    state = _LoopState(fingerprint=fingerprint)
    best_state = _copy(modules)
    ckpt = read_checkpoint(work_dir, fingerprint) if work_dir is not None else None
    if ckpt is not None:
        raw, _ = apply_checkpoint(ckpt, modules, optimizers, 0, device, lambda step: cfg.seed + step)
        state, best_state, result.resumed_from = _LoopState(**raw), ckpt["best"], raw["step"]
    loss_sum, loss_n, started = 0.0, 0, time.perf_counter() - state.seconds
    total = len(batch_plan(groups, cfg.batch_size, cfg.seed, 0)) * cfg.epochs  # every epoch's plan has about as many batches
    warmup = int(round(warmup_ratio * total))
    modules.train()
    while state.epoch < cfg.epochs and not state.stopped:
        epoch = state.epoch
        plan = batch_plan(groups, cfg.batch_size, cfg.seed, epoch)
        for b in range(state.batch, len(plan)):
            g, idx = plan[b]
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss = batch_loss(groups[g], idx)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise RunError(
                    f"training diverged: the loss is {value} at step {state.step + 1} (epoch {epoch + 1}); nothing was saved",
                    hint=f"lower training.lr (it is {lr:g}) or keep training.max_grad_norm above 0",
                )
            if loss.requires_grad:
                loss.backward()
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(dense, cfg.max_grad_norm)
                if schedule == "linear":
                    for opt in optimizers:
                        for group in opt.param_groups:
                            group["lr"] = lr * linear_schedule(state.step, total, warmup)
                for opt in optimizers:
                    opt.step()
            state.step, state.batch = state.step + 1, b + 1
            loss_sum, loss_n = loss_sum + value, loss_n + 1
            progress("step", {"step": state.step, "total": len(plan) * cfg.epochs, "loss": value, "epoch": epoch})
            end = b == len(plan) - 1
            if end:
                state.epoch, state.batch = epoch + 1, 0
            if not (cfg.eval_every and state.step % cfg.eval_every == 0) and not end:
                continue
            record: dict[str, Any] = {"step": state.step, "epoch": epoch + (1 if end else 0), "train_loss": round(loss_sum / max(loss_n, 1), 6)}
            loss_sum, loss_n = 0.0, 0
            modules.eval()
            scores = evaluate() if evaluate is not None else {"score": -record["train_loss"]}
            modules.train()
            score, heads = scores.pop("score"), scores.pop("heads", {})
            record.update(scores)
            improved = state.best_score is None or score > state.best_score
            if improved:
                state.best_score, state.best_step = score, state.step
                best_state = _copy(modules)
            better = sorted(h for h, v in heads.items() if v > state.head_best.get(h, -math.inf))
            state.head_best.update({h: heads[h] for h in better})
            state.bad_evals = 0 if improved or better else state.bad_evals + 1
            record.update(best=improved, heads_improved=better, seconds=round(time.perf_counter() - started, 3))
            state.history.append(record)
            progress("eval", record)
            state.stopped = evaluate is not None and bool(cfg.patience) and state.bad_evals >= cfg.patience
            state.seconds = time.perf_counter() - started
            if work_dir is not None:
                save_checkpoint(work_dir, modules, optimizers, best_state, [rng_state(device)], state.__dict__, state.history)
            if state.stopped:
                break
    modules.eval()
    result.history, result.best_score, result.best_step, result.steps = state.history, state.best_score, state.best_step, state.step
    result.epochs = state.epoch + (1 if state.batch else 0)  # an epoch early stopping cut short counts
    result.stopped = "early_stopping" if state.stopped else "epoch_budget"
    result.best_state, result.last_state = best_state, _copy(modules)
    return result


def _copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
