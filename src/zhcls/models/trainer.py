"""The training loop: seeded batches, AdamW, dev evaluation, early stopping, best/last weights, and
checkpoints that a killed run resumes from exactly (same batches, same dropout, same result).

On any device ([training] device, precision) and on several processes under torchrun: each rank takes
its slice of every global batch, DistributedDataParallel averages the gradients (weighted so N ranks make
the update one process makes), rank 0 evaluates, decides early stopping for all and writes every file.
Checkpoints hold CPU tensors, so a run resumes on another device or with another number of processes."""

from __future__ import annotations

import contextlib
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
from ..eval.selection import cross_fitted_choice
from ..scale import distributed
from ..scale.device import autocast, check_precision, describe, grad_scaler, module_device, resolve_device
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
    device: str = "cpu"
    precision: str = "fp32"
    world_size: int = 1  # processes that trained it (DistributedDataParallel when more than one)
    # the kept evaluation's dev score with the choice of evaluation cross-fitted (zhcls.eval.selection)
    dev_cross_fitted: dict[str, Any] | None = None


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
def predict_logits(
    module: torch.nn.Module, seqs: Sequence[Sequence[int]], *, batch_size: int = 256, min_len: int = 1, precision: str = "fp32"
) -> np.ndarray:
    """Logits in input order, computed where the module's weights are; batches are formed by length so
    little time goes to padding. `precision` applies on CUDA only: on CPUs predictions stay fp32, what
    export and serving compute."""
    was_training = module.training
    module.eval()
    device = module_device(module)
    cast = autocast(device, precision if device.type == "cuda" else "fp32")
    order = np.argsort([len(s) for s in seqs], kind="stable")
    out: np.ndarray | None = None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids, lengths = to_tensors([seqs[i] for i in idx], min_len)
        with cast:
            logits = module(ids.to(device), lengths.to(device)).float().cpu().numpy()
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
        find_unused_parameters: bool = False,
    ) -> FitResult:
        """`y` holds -1 for rows without a hard label (they need `soft`). `soft`: teacher targets per row
        (distillation). schedule "linear": warmup over `warmup_ratio` of the steps, then linear decay to 0.
        `grad_accum`: each batch is run as that many micro-batches whose gradients add up before one step.
        `sparse_lr`: the learning rate of sparse embeddings (default `lr`); [training] schedule and warmup_ratio,
        when set, win over the model's. `find_unused_parameters`: for DistributedDataParallel, a net some of
        whose weights a step may not use."""
        cfg = self.cfg
        torch.set_num_threads(cfg.threads)
        world = distributed.current()
        device = resolve_device(cfg.device, world.local_rank if world.distributed else None)
        check_precision(device, cfg.precision)
        module.to(device)
        y_np = np.asarray(y)
        y_t = torch.as_tensor(y_np, dtype=torch.long).to(device)
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        labeled_y = y_np[y_np >= 0]
        class_w = balanced_weights(labeled_y, n_classes) if cfg.class_weights == "balanced" else None
        weight = torch.tensor(class_w, dtype=torch.float32).to(device) if class_w is not None else None
        loss_fn = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
        schedule = cfg.schedule or schedule
        warmup_ratio = cfg.warmup_ratio if cfg.warmup_ratio is not None else warmup_ratio
        target = torch.from_numpy(soft.target_array()).to(device) if soft is not None else None
        if soft is None and len(labeled_y) < len(y):
            raise ValueError("rows without a hard label (y = -1) need soft targets")
        optimizers, dense = make_optimizers(module, lr, cfg.weight_decay, sparse_lr=sparse_lr)
        dense_ids = {id(p) for p in dense}
        sparse = [p for p in module.parameters() if id(p) not in dense_ids]
        scaler = grad_scaler(device, cfg.precision)
        cast = autocast(device, cfg.precision)
        net = module  # what the training steps call: the module, or its DistributedDataParallel wrapper

        def batch_loss(idx: np.ndarray) -> torch.Tensor:
            ids, lens = to_tensors([seqs[i] for i in idx], min_len)
            with cast:
                logits = net(ids.to(device), lens.to(device))
            logits = logits.float()  # the loss in fp32 whatever the forward ran in (a no-op in fp32)
            if soft is None:
                return loss_fn(logits, y_t[idx])
            return distill_loss(logits, y_t[idx], target[idx], temperature=soft.temperature, alpha=soft.alpha, kind=soft.loss, class_weight=weight)

        def share(local: np.ndarray, idx: np.ndarray) -> float:
            """This rank's part of the global batch's mean loss: the losses are means over the rows (weighted
            by class for balanced cross-entropy), and ranks may hold one row more than others."""
            if soft is None and class_w is not None:
                return float(class_w[y_np[local]].sum() / class_w[y_np[idx]].sum())
            return len(local) / len(idx)

        def backward(loss: torch.Tensor) -> None:
            (scaler.scale(loss) if scaler is not None else loss).backward()

        def run_batch(idx: np.ndarray) -> torch.Tensor:
            """Forward and backward of one global batch (this rank's slice of it); the loss, summed over ranks."""
            factor = 1.0
            if world.distributed:
                local = distributed.rank_slice(idx, world)
                # DDP divides the summed gradients by the world size: scaling each rank's loss by
                # size x share makes the result the gradient of the global batch's mean loss.
                factor = world.size * share(local, idx) if len(local) else 0.0
                idx = local if len(local) else idx[:1]  # a rank without rows still joins the all-reduce, with zeros
            if grad_accum <= 1:
                loss = batch_loss(idx)
                if factor != 1.0:
                    loss = loss * factor
                backward(loss)
                return loss.detach()
            loss = torch.zeros((), device=device)
            parts = np.array_split(idx, min(grad_accum, len(idx)))
            for j, part in enumerate(parts):
                # micro-batches add up locally; DDP all-reduces once, after the last
                sync = net.no_sync() if net is not module and j < len(parts) - 1 else contextlib.nullcontext()
                with sync:
                    part_loss = batch_loss(part) * (len(part) / len(idx))
                    if factor != 1.0:
                        part_loss = part_loss * factor
                    backward(part_loss)
                loss = loss + part_loss.detach()
            return loss

        steps_per_epoch = (len(seqs) + cfg.batch_size - 1) // cfg.batch_size
        total = steps_per_epoch * cfg.epochs
        warmup = int(round(warmup_ratio * total))
        state = _State(fingerprint=fingerprint)
        best_state: dict[str, torch.Tensor] | None = _copy(module) if world.main else None
        resumed_from = None
        if self.work_dir is not None:
            try:
                # rank 0 reads the checkpoint; every rank gets it from there, so no other rank needs the run's files
                ckpt = self._read_checkpoint(fingerprint) if world.main else None
                if world.distributed:
                    shared = distributed.broadcast(None if ckpt is None else {k: v for k, v in ckpt.items() if k != "best"}, world)
                    ckpt = ckpt if world.main else shared
                loaded = None if ckpt is None else self._apply_checkpoint(ckpt, module, optimizers, scaler, world, device)
            except RunError:
                raise
            except Exception as exc:  # noqa: BLE001 - a truncated or garbled file raises whatever its parser does
                raise RunError(
                    f"{self.work_dir / CHECKPOINT}: damaged checkpoint ({type(exc).__name__}: {str(exc)[:200]})",
                    hint="start the run over with --force, or train into a new directory",
                ) from None
            if loaded is not None:
                state = loaded
                best_state = ckpt.get("best") if world.main else None
                resumed_from = state.step
        if world.distributed:
            if resumed_from is None and not world.main:
                # every rank built the same initial weights from training.seed; dropout masks must differ
                torch.manual_seed(_rank_seed(cfg.seed, world.rank))
            net = distributed.wrap(module, device, sparse, find_unused_parameters)

        net.train()
        loss_sum, loss_n, started = 0.0, 0, time.perf_counter() - state.seconds
        while state.epoch < cfg.epochs and not state.stopped:
            batches = epoch_batches(lengths, cfg.batch_size, cfg.seed, state.epoch)
            for b in range(state.batch, len(batches)):
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                loss = run_batch(batches[b])
                if world.distributed:
                    distributed.average_sparse_grads(sparse, world)
                    loss = distributed.sum_(loss, world)  # every rank sees the global loss, and stops on it alike
                loss_value = float(loss)
                if not math.isfinite(loss_value):  # before the step: the weights on disk and in memory stay finite
                    raise _diverged(f"the loss is {loss_value} at step {state.step + 1} (epoch {state.epoch + 1})", lr, self.work_dir)
                if scaler is not None:
                    for opt in optimizers:
                        scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(dense, cfg.max_grad_norm)
                if schedule == "linear":
                    for opt, base in zip(optimizers, (lr, sparse_lr or lr)):
                        for group in opt.param_groups:
                            group["lr"] = base * linear_schedule(state.step, total, warmup)
                for opt in optimizers:
                    if scaler is not None:
                        scaler.step(opt)  # skipped when fp16 gradients overflowed
                    else:
                        opt.step()
                if scaler is not None:
                    scaler.update()
                state.step, state.batch = state.step + 1, b + 1
                loss_sum, loss_n = loss_sum + loss_value, loss_n + 1
                if world.main:
                    self.progress("step", {"step": state.step, "total": total, "loss": loss_value, "epoch": state.epoch})
                end_of_epoch = state.batch == len(batches)
                if end_of_epoch:
                    state.epoch, state.batch = state.epoch + 1, 0
                due = state.step % cfg.eval_every == 0 if cfg.eval_every else end_of_epoch
                if due or (end_of_epoch and state.epoch == cfg.epochs):
                    if not _finite(module):  # a huge step can turn weights to inf/NaN while the loss was still finite
                        raise _diverged(f"the weights are no longer finite after step {state.step}", lr, self.work_dir)
                    rng = distributed.gather(rng_state(device), world)  # every rank's dropout stream, for an exact resume
                    if world.main:
                        best_state = self._evaluate(module, state, best_state, dev, min_len, loss_sum / max(loss_n, 1), started)
                        self._save_checkpoint(module, optimizers, state, best_state, rng, scaler, world)
                    state.stopped = distributed.broadcast(state.stopped, world)  # rank 0's early-stopping call holds for all
                    loss_sum, loss_n = 0.0, 0
                if state.stopped:
                    break
        last_state = _copy(module)  # training always ends with an evaluation, which saved the checkpoint
        cross_fitted = None
        if world.main and dev is not None and state.dev_preds:
            cross_fitted = cross_fitted_choice(np.asarray(state.dev_preds), np.asarray(dev[1]), cfg.metric, seed=cfg.seed)
        return FitResult(
            best_state if best_state is not None else last_state,  # ranks other than 0 keep no best weights: they save nothing
            last_state, state.history, state.best_score, state.best_step, state.step, resumed_from,
            "early_stopping" if state.stopped else "epoch_budget", state.epoch, describe(device), cfg.precision, world.size,
            cross_fitted,
        )

    def _evaluate(self, module, state: "_State", best_state, dev, min_len: int, train_loss: float, started: float):
        record: dict[str, Any] = {"step": state.step, "epoch": state.epoch, "train_loss": round(train_loss, 6)}
        if dev is not None and len(dev[0]):
            proba = softmax(predict_logits(module, dev[0], min_len=min_len, precision=self.cfg.precision))
            y_dev = np.asarray(dev[1])
            record["dev_accuracy"] = float((proba.argmax(1) == y_dev).mean())
            record["dev_macro_f1"] = score_from_proba(proba, y_dev, "macro_f1")
            state.dev_preds.append(proba.argmax(1).tolist())
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
    def _save_checkpoint(self, module, optimizers, state: "_State", best_state, rng: list, scaler, world) -> None:
        if self.work_dir is not None:
            save_checkpoint(self.work_dir, module, optimizers, best_state, rng, state.__dict__, state.history, scaler=scaler, world_size=world.size)

    def _read_checkpoint(self, fingerprint: str) -> dict[str, Any] | None:
        return read_checkpoint(self.work_dir, fingerprint)

    def _apply_checkpoint(self, ckpt: dict[str, Any], module, optimizers, scaler, world, device) -> "_State":
        """Load a checkpoint into the module, the optimizers (their state moves to the parameters' device)
        and this rank's random streams."""
        raw, scaler_state = apply_checkpoint(ckpt, module, optimizers, world.rank, device, lambda step: _rank_seed(self.cfg.seed, world.rank, step))
        if scaler is not None and scaler_state:
            scaler.load_state_dict(scaler_state)
        return _State(**raw)


# -- checkpoints: shared with the span models' loop (tag_training.fit_joint) -------------------------
def save_checkpoint(work_dir: Path, module, optimizers, best_state, rng: list, state: dict[str, Any], history: list[dict[str, Any]],
                    *, scaler=None, world_size: int = 1) -> None:
    """work_dir/checkpoint, written atomically: the weights, the best weights, every optimizer slot and each
    rank's random streams (`rng`: [(cpu, cuda or None)] per rank) as safetensors, and `state` (JSON: where
    the loop is, its early-stopping counters) in state.json; log.jsonl gets `history`."""
    ckpt = Path(work_dir) / CHECKPOINT
    tensors: dict[str, torch.Tensor] = {}
    for rank, (cpu_rng, cuda_rng) in enumerate(rng):
        suffix = f".{rank}" if rank else ""  # rank 0's keys are the ones of a single-process run
        tensors[f"__torch_rng__{suffix}"] = cpu_rng
        if cuda_rng is not None:
            tensors[f"__cuda_rng__{suffix}"] = cuda_rng
    param_groups, int_slots = [], []
    for k, optimizer in enumerate(optimizers):
        opt = optimizer.state_dict()
        param_groups.append(opt["param_groups"])
        for idx, slots in opt["state"].items():
            for name, value in slots.items():
                if isinstance(value, int):  # SparseAdam counts steps in a Python int; restored as one, or its
                    int_slots.append(f"{k}.{idx}.{name}")  # bias correction runs in float32 and resume is not exact
                tensors[f"{k}.{idx}.{name}"] = torch.as_tensor(value).detach().to("cpu", copy=True)
    extra = {"param_groups": param_groups, "int_slots": int_slots, "world_size": world_size,
             "scaler": scaler.state_dict() if scaler is not None else None}
    with atomic_dir(ckpt) as tmp:
        save_file(_cpu(module.state_dict()), str(tmp / "model.safetensors"))
        save_file(_cpu(best_state), str(tmp / "best.safetensors"))
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "state.json").write_text(json.dumps({**state, **extra}), encoding="utf-8")
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in history)
    write_text(Path(work_dir) / "log.jsonl", lines)


def read_checkpoint(work_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint's files as CPU tensors and JSON (None when there is none)."""
    ckpt = recover_dir(Path(work_dir) / CHECKPOINT)
    if not (ckpt / "state.json").is_file():
        return None
    raw = read_json(ckpt / "state.json")
    if raw.get("fingerprint") != fingerprint:
        raise RunError(
            f"{work_dir}: holds a checkpoint of a different config or data set",
            hint="use a new output directory, or --force to start this one over",
        )
    return {
        "state": raw, "model": load_file(str(ckpt / "model.safetensors")),
        "tensors": load_file(str(ckpt / "optimizer.safetensors")), "best": load_file(str(ckpt / "best.safetensors")),
    }


def apply_checkpoint(ckpt: dict[str, Any], module, optimizers, rank: int, device: torch.device,
                     fallback_seed: Callable[[int], int]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Load a checkpoint into the module, the optimizers (their state moves to the parameters' device) and
    this rank's random streams (`fallback_seed(step)` seeds a rank the checkpoint has none for). Returns the
    loop's saved state (state.json less the optimizer keys) and the saved GradScaler state."""
    raw = dict(ckpt["state"])
    param_groups = raw.pop("param_groups")
    int_slots = set(raw.pop("int_slots", []))
    scaler_state = raw.pop("scaler", None)
    raw.pop("world_size", None)
    module.load_state_dict(ckpt["model"])
    tensors = dict(ckpt["tensors"])
    rng = {key: tensors.pop(key) for key in list(tensors) if key.startswith("__")}
    _set_rng_state(rng, rank, device, fallback_seed(int(raw.get("step", 0))))
    slots: list[dict[int, dict[str, torch.Tensor]]] = [{} for _ in optimizers]
    for key, value in tensors.items():
        k, idx, name = key.split(".", 2)
        slots[int(k)].setdefault(int(idx), {})[name] = int(value) if key in int_slots else value
    for optimizer, opt_slots, groups in zip(optimizers, slots, param_groups):
        optimizer.load_state_dict({"state": opt_slots, "param_groups": groups})
    return raw, scaler_state


def rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(the CPU generator's state, the CUDA one's on a GPU): dropout draws from the device's generator."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_state(saved: dict[str, torch.Tensor], rank: int, device: torch.device, fallback_seed: int) -> None:
    """Restore this rank's streams; a rank the checkpoint has none for (the run now has more processes, or
    it moved to a GPU) starts a stream of its own from `fallback_seed`."""
    suffix = f".{rank}" if rank else ""
    cpu, cuda = saved.get(f"__torch_rng__{suffix}"), saved.get(f"__cuda_rng__{suffix}")
    if cpu is None or (device.type == "cuda" and cuda is None):
        torch.manual_seed(fallback_seed)
        return
    torch.set_rng_state(cpu)
    if device.type == "cuda":
        torch.cuda.set_rng_state(cuda, device)


def _rank_seed(seed: int, rank: int, step: int = 0) -> int:
    return int(np.random.default_rng([seed, rank, step]).integers(2**62))


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
    # each evaluation's predicted class per dev row, for the cross-fitted score of the evaluation kept
    dev_preds: list[list[int]] = field(default_factory=list)


def _copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights, copied to the CPU: what is saved, and what a CPU-only machine loads."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def fingerprint_of(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()
