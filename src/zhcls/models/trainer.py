"""The training loop: seeded batches, AdamW, dev evaluation, early stopping, best/last weights, and
checkpoints that a killed run resumes from exactly (same batches, same dropout, same result)."""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..artifact import atomic_dir, read_json, recover_dir, write_text
from ..config import TrainingConfig
from ..errors import RunError
from ..eval.metrics import score_from_proba
from ..eval.probs import SoftTargets, softmax
from ..text.featurizer import pad
from .losses import distill_loss

CHECKPOINT = "checkpoint"
Hook = Callable[[str, dict[str, Any]], None]


@dataclass
class FitResult:
    best_state: dict[str, torch.Tensor]
    last_state: dict[str, torch.Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float | None = None
    best_step: int = 0
    steps: int = 0
    resumed_from: int | None = None
    stopped: str = "epoch_budget"  # or "early_stopping": patience ran out before the budget did
    epochs: int = 0


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Shuffled batches of similar length (less padding), a pure function of (seed, epoch) so a
    resumed run replays the very same order."""
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches: list[np.ndarray] = []
    for start in range(0, len(perm), chunk):
        idx = perm[start : start + chunk]
        idx = idx[np.argsort(lengths[idx], kind="stable")]
        batches.extend(idx[i : i + batch_size] for i in range(0, len(idx), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def to_tensors(seqs: Sequence[Sequence[int]], min_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids, lengths = pad(seqs, min_len)
    return torch.from_numpy(ids), torch.from_numpy(lengths)


@torch.no_grad()
def predict_logits(module: torch.nn.Module, seqs: Sequence[Sequence[int]], *, batch_size: int = 256, min_len: int = 1) -> np.ndarray:
    """Logits in input order; batches are formed by length so little time goes to padding."""
    was_training = module.training
    module.eval()
    order = np.argsort([len(s) for s in seqs], kind="stable")
    out: np.ndarray | None = None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids, lengths = to_tensors([seqs[i] for i in idx], min_len)
        logits = module(ids, lengths).float().numpy()
        if out is None:
            out = np.empty((len(seqs), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    module.train(was_training)
    if out is None:
        raise ValueError("no texts to predict")
    return out


def linear_schedule(step: int, total: int, warmup: int) -> float:
    """Factor on the learning rate for optimizer step `step` (0-based): a linear warmup over `warmup`
    steps, then a linear decay to 0 at `total` (BERT's schedule). A pure function of the step, so a
    resumed run continues it exactly."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def balanced_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """n / (k * count_c), scikit-learn's "balanced": every class weighs as much in the loss."""
    counts = np.bincount(np.asarray(y), minlength=n_classes).astype(np.float64)
    return len(y) / (n_classes * np.maximum(counts, 1))


def make_optimizers(
    module: torch.nn.Module, lr: float, weight_decay: float, sparse_lr: float | None = None
) -> tuple[list[torch.optim.Optimizer], list[torch.nn.Parameter]]:
    """AdamW for dense parameters; SparseAdam for sparse embeddings, whose rows are updated only when a
    batch uses them. A fastText table of 200k hashed n-grams would otherwise be rewritten in full at
    every step, which made it slower to train than a CNN."""
    sparse_ids = {id(m.weight) for m in module.modules() if isinstance(m, torch.nn.Embedding) and m.sparse}
    dense = [p for p in module.parameters() if id(p) not in sparse_ids]
    sparse = [p for p in module.parameters() if id(p) in sparse_ids]
    optimizers: list[torch.optim.Optimizer] = [torch.optim.AdamW(dense, lr=lr, weight_decay=weight_decay)]
    if sparse:
        optimizers.append(torch.optim.SparseAdam(sparse, lr=sparse_lr or lr))
    return optimizers, dense


class Trainer:
    def __init__(self, cfg: TrainingConfig, work_dir: str | Path | None = None, progress: Hook | None = None) -> None:
        self.cfg = cfg
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.progress = progress or (lambda kind, info: None)

    def fit(
        self,
        module: torch.nn.Module,
        seqs: Sequence[Sequence[int]],
        y: np.ndarray,
        *,
        n_classes: int,
        dev: tuple[Sequence[Sequence[int]], np.ndarray] | None = None,
        min_len: int = 1,
        fingerprint: str = "",
        lr: float = 1e-3,
        soft: SoftTargets | None = None,
        warmup_ratio: float = 0.0,
        schedule: str = "constant",
        grad_accum: int = 1,
        sparse_lr: float | None = None,
    ) -> FitResult:
        """`y` holds -1 for rows without a hard label (they need `soft`). `soft`: teacher targets per row
        (distillation). schedule "linear": warmup over `warmup_ratio` of the steps, then linear decay to 0.
        `grad_accum`: each batch is run as that many micro-batches whose gradients add up before one step.
        `sparse_lr`: the learning rate of sparse embeddings (default `lr`); [training] schedule and warmup_ratio,
        when set, win over the model's."""
        cfg = self.cfg
        torch.set_num_threads(cfg.threads)
        y_t = torch.as_tensor(np.asarray(y), dtype=torch.long)
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        labeled_y = np.asarray(y)[np.asarray(y) >= 0]
        weight = torch.tensor(balanced_weights(labeled_y, n_classes), dtype=torch.float32) if cfg.class_weights == "balanced" else None
        loss_fn = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
        schedule = cfg.schedule or schedule
        warmup_ratio = cfg.warmup_ratio if cfg.warmup_ratio is not None else warmup_ratio
        target = torch.from_numpy(soft.target_array()) if soft is not None else None
        if soft is None and len(labeled_y) < len(y):
            raise ValueError("rows without a hard label (y = -1) need soft targets")

        def batch_loss(idx: np.ndarray) -> torch.Tensor:
            ids, lens = to_tensors([seqs[i] for i in idx], min_len)
            logits = module(ids, lens)
            if soft is None:
                return loss_fn(logits, y_t[idx])
            return distill_loss(logits, y_t[idx], target[idx], temperature=soft.temperature, alpha=soft.alpha, kind=soft.loss, class_weight=weight)

        optimizers, dense = make_optimizers(module, lr, cfg.weight_decay, sparse_lr=sparse_lr)

        steps_per_epoch = (len(seqs) + cfg.batch_size - 1) // cfg.batch_size
        total = steps_per_epoch * cfg.epochs
        warmup = int(round(warmup_ratio * total))
        state = _State(fingerprint=fingerprint)
        best_state = _copy(module)
        resumed_from = None
        if self.work_dir is not None:
            try:
                loaded = self._load_checkpoint(module, optimizers, fingerprint)
            except RunError:
                raise
            except Exception as exc:  # noqa: BLE001 - a truncated or garbled file raises whatever its parser does
                raise RunError(
                    f"{self.work_dir / CHECKPOINT}: damaged checkpoint ({type(exc).__name__}: {str(exc)[:200]})",
                    hint="start the run over with --force, or train into a new directory",
                ) from None
            if loaded is not None:
                state, best_state = loaded
                resumed_from = state.step

        module.train()
        loss_sum, loss_n, started = 0.0, 0, time.perf_counter() - state.seconds
        while state.epoch < cfg.epochs and not state.stopped:
            batches = epoch_batches(lengths, cfg.batch_size, cfg.seed, state.epoch)
            for b in range(state.batch, len(batches)):
                idx = batches[b]
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                if grad_accum <= 1:
                    loss = batch_loss(idx)
                    loss.backward()
                else:
                    loss = torch.zeros(())
                    for part in np.array_split(idx, min(grad_accum, len(idx))):
                        part_loss = batch_loss(part) * (len(part) / len(idx))
                        part_loss.backward()
                        loss = loss + part_loss.detach()
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):  # before the step: the weights on disk and in memory stay finite
                    raise _diverged(f"the loss is {loss_value} at step {state.step + 1} (epoch {state.epoch + 1})", lr, self.work_dir)
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(dense, cfg.max_grad_norm)
                if schedule == "linear":
                    for opt, base in zip(optimizers, (lr, sparse_lr or lr)):
                        for group in opt.param_groups:
                            group["lr"] = base * linear_schedule(state.step, total, warmup)
                for opt in optimizers:
                    opt.step()
                state.step, state.batch = state.step + 1, b + 1
                loss_sum, loss_n = loss_sum + loss_value, loss_n + 1
                self.progress("step", {"step": state.step, "total": total, "loss": loss_value, "epoch": state.epoch})
                end_of_epoch = state.batch == len(batches)
                if end_of_epoch:
                    state.epoch, state.batch = state.epoch + 1, 0
                due = state.step % cfg.eval_every == 0 if cfg.eval_every else end_of_epoch
                if due or (end_of_epoch and state.epoch == cfg.epochs):
                    if not _finite(module):  # a huge step can turn weights to inf/NaN while the loss was still finite
                        raise _diverged(f"the weights are no longer finite after step {state.step}", lr, self.work_dir)
                    best_state = self._evaluate(module, state, best_state, dev, min_len, loss_sum / max(loss_n, 1), started)
                    loss_sum, loss_n = 0.0, 0
                    self._save_checkpoint(module, optimizers, state, best_state)
                if state.stopped:
                    break
        last_state = _copy(module)  # training always ends with an evaluation, which saved the checkpoint
        return FitResult(
            best_state, last_state, state.history, state.best_score, state.best_step, state.step, resumed_from,
            "early_stopping" if state.stopped else "epoch_budget", state.epoch,
        )

    def _evaluate(self, module, state: "_State", best_state, dev, min_len: int, train_loss: float, started: float):
        record: dict[str, Any] = {"step": state.step, "epoch": state.epoch, "train_loss": round(train_loss, 6)}
        if dev is not None and len(dev[0]):
            proba = softmax(predict_logits(module, dev[0], min_len=min_len))
            y_dev = np.asarray(dev[1])
            record["dev_accuracy"] = float((proba.argmax(1) == y_dev).mean())
            record["dev_macro_f1"] = score_from_proba(proba, y_dev, "macro_f1")
            score = record[f"dev_{self.cfg.metric}"]
            improved = state.best_score is None or score > state.best_score
        else:
            score, improved = -train_loss, True  # no dev set: the latest weights are the best we know
        if improved:
            state.best_score, state.best_step, state.bad_evals = score, state.step, 0
            best_state = _copy(module)
        else:
            state.bad_evals += 1
            if dev is not None and self.cfg.patience and state.bad_evals >= self.cfg.patience:
                state.stopped = True
        state.seconds = time.perf_counter() - started
        record.update(best=improved, seconds=round(state.seconds, 3))
        state.history.append(record)
        self.progress("eval", record)
        return best_state

    # -- checkpoints ----------------------------------------------------------------------------
    def _save_checkpoint(self, module, optimizers, state: "_State", best_state) -> None:
        if self.work_dir is None:
            return
        ckpt = self.work_dir / CHECKPOINT
        tensors: dict[str, torch.Tensor] = {"__torch_rng__": torch.get_rng_state()}
        param_groups, int_slots = [], []
        for k, optimizer in enumerate(optimizers):
            opt = optimizer.state_dict()
            param_groups.append(opt["param_groups"])
            for idx, slots in opt["state"].items():
                for name, value in slots.items():
                    if isinstance(value, int):  # SparseAdam counts steps in a Python int; restored as one, or its
                        int_slots.append(f"{k}.{idx}.{name}")  # bias correction runs in float32 and resume is not exact
                    tensors[f"{k}.{idx}.{name}"] = torch.as_tensor(value).clone()
        with atomic_dir(ckpt) as tmp:
            save_file(_contiguous(module.state_dict()), str(tmp / "model.safetensors"))
            save_file(_contiguous(best_state), str(tmp / "best.safetensors"))
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            (tmp / "state.json").write_text(json.dumps({**state.__dict__, "param_groups": param_groups, "int_slots": int_slots}), encoding="utf-8")
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in state.history)
        write_text(self.work_dir / "log.jsonl", lines)

    def _load_checkpoint(self, module, optimizers, fingerprint: str):
        ckpt = recover_dir(self.work_dir / CHECKPOINT)
        if not (ckpt / "state.json").is_file():
            return None
        raw = read_json(ckpt / "state.json")
        if raw.get("fingerprint") != fingerprint:
            raise RunError(
                f"{self.work_dir}: holds a checkpoint of a different config or data set",
                hint="use a new output directory, or --force to start this one over",
            )
        param_groups = raw.pop("param_groups")
        int_slots = set(raw.pop("int_slots", []))
        state = _State(**raw)
        module.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        tensors = load_file(str(ckpt / "optimizer.safetensors"))
        torch.set_rng_state(tensors.pop("__torch_rng__"))
        slots: list[dict[int, dict[str, torch.Tensor]]] = [{} for _ in optimizers]
        for key, value in tensors.items():
            k, idx, name = key.split(".", 2)
            slots[int(k)].setdefault(int(idx), {})[name] = int(value) if key in int_slots else value
        for optimizer, opt_slots, groups in zip(optimizers, slots, param_groups):
            optimizer.load_state_dict({"state": opt_slots, "param_groups": groups})
        return state, load_file(str(ckpt / "best.safetensors"))


def _finite(module: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


def _diverged(what: str, lr: float, work_dir: Path | None) -> RunError:
    kept = " The last good checkpoint is kept in checkpoint/." if work_dir is not None and (work_dir / CHECKPOINT).is_dir() else ""
    return RunError(
        f"training diverged: {what}; nothing was saved.{kept}",
        hint=f"lower training.lr (it is {lr:g}) or keep training.max_grad_norm above 0, then train again with --force or into a new directory",
    )


@dataclass
class _State:
    fingerprint: str = ""
    epoch: int = 0
    batch: int = 0  # batches of `epoch` already done
    step: int = 0
    best_score: float | None = None
    best_step: int = 0
    bad_evals: int = 0
    stopped: bool = False
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def _copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in state.items()}


def fingerprint_of(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()
