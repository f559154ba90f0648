"""Several processes on one model: torch.distributed as torchrun starts it (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT in the environment), gloo on CPUs and NCCL on GPUs.

Training is DistributedDataParallel over the dense weights. Sparse embedding gradients (the fastText
table, the n-gram bag of textcnn/bigru) are averaged here by hand with dense all_gathers of their rows,
which every backend has: NCCL has no sparse all-reduce, and one code path is the one the CPU tests check.
"""

from __future__ import annotations

import inspect
import os
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist

from .device import resolve_device
from .world import World, from_env

TIMEOUT_ENV = "ZHCLS_DIST_TIMEOUT_S"  # how long a rank waits for the others (rank 0 evaluates, labels a teacher...)
DEFAULT_TIMEOUT_S = 2 * 3600


def current() -> World:
    """The process group this process has joined (one process when none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), from_env().local_rank)


@contextmanager
def session(device_spec: str = "auto") -> Iterator[World]:
    """Join the process group of the environment for the duration of the block (nothing to do in a single
    process, or when the caller has joined one already). GPUs: NCCL for CUDA tensors, gloo for the few
    CPU-side objects; CPUs: gloo."""
    world = from_env()
    if world.size <= 1 or dist.is_initialized():
        yield current()
        return
    device = resolve_device(device_spec, world.local_rank)
    backend = "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend, timeout=timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))))
    try:
        yield current()
    finally:
        dist.destroy_process_group()


def rank_slice(idx: np.ndarray, world: World) -> np.ndarray:
    """This rank's rows of a global batch: contiguous, sizes differing by at most one, so the N slices
    together are exactly the batch one process would take."""
    return np.array_split(idx, world.size)[world.rank]


def broadcast(obj: Any, world: World) -> Any:
    """Rank 0's `obj` on every rank (pickled; keep tensors on the CPU)."""
    if not world.distributed:
        return obj
    box = [obj if world.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any, world: World) -> list[Any] | None:
    """Every rank's `obj`, in rank order, on rank 0; None on the others."""
    if not world.distributed:
        return [obj]
    out: list[Any] | None = [None] * world.size if world.main else None
    dist.gather_object(obj, out, dst=0)
    return out


def sum_(value: torch.Tensor, world: World) -> torch.Tensor:
    if world.distributed:
        value = value.clone()
        dist.all_reduce(value)
    return value


def wrap(module: torch.nn.Module, device: torch.device, sparse: Sequence[torch.nn.Parameter], find_unused: bool = False) -> torch.nn.Module:
    """DistributedDataParallel over the dense parameters; `sparse` ones are left to `average_sparse_grads`."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    sparse_ids = {id(p) for p in sparse}
    ignored = [name for name, p in module.named_parameters() if id(p) in sparse_ids]
    if ignored:
        DDP._set_params_and_buffers_to_ignore_for_model(module, ignored)
    kwargs: dict[str, Any] = {"find_unused_parameters": find_unused}
    # No buffer of a zhcls net changes while training (no batch norm), so none is sent at every step.
    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:
        kwargs["forward_sync_buffers"] = False
    else:  # pragma: no cover - torch before 2.13
        kwargs["broadcast_buffers"] = False
    if device.type == "cuda":
        kwargs["device_ids"] = [device.index]
    return DDP(module, **kwargs)


def average_sparse_grads(params: Sequence[torch.nn.Parameter], world: World) -> None:
    """Average the sparse gradients of `params` over the ranks, as DDP does for dense ones: each rank's
    touched rows (coalesced) are all-gathered, padded to the longest, and concatenated in rank order, so
    every rank gets the same gradient. SparseAdam coalesces it (adds rows that several ranks touched)."""
    if not world.distributed:
        return
    for p in params:
        g = p.grad
        if g is None:
            g = torch.sparse_coo_tensor(
                torch.zeros((1, 0), dtype=torch.long, device=p.device), p.new_zeros((0, *p.shape[1:])), p.shape, check_invariants=False
            )
        g = g.coalesce()
        idx, val = g.indices(), g.values()
        n = torch.tensor([idx.shape[1]], device=p.device)
        sizes = [torch.zeros_like(n) for _ in range(world.size)]
        dist.all_gather(sizes, n)
        width = int(max(int(s) for s in sizes))
        pad_idx = idx.new_zeros((idx.shape[0], width))
        pad_idx[:, : idx.shape[1]] = idx
        pad_val = val.new_zeros((width, *val.shape[1:]))
        pad_val[: val.shape[0]] = val
        all_idx = [torch.empty_like(pad_idx) for _ in range(world.size)]
        all_val = [torch.empty_like(pad_val) for _ in range(world.size)]
        dist.all_gather(all_idx, pad_idx)
        dist.all_gather(all_val, pad_val)
        rows = [int(s) for s in sizes]
        indices = torch.cat([i[:, :k] for i, k in zip(all_idx, rows)], dim=1)
        values = torch.cat([v[:k] for v, k in zip(all_val, rows)], dim=0) / world.size
        p.grad = torch.sparse_coo_tensor(indices, values, p.shape, check_invariants=False)  # built from valid parts
