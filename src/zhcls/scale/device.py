"""[training] device and precision: the torch device a model trains on, and mixed precision through
torch.autocast (with a gradient scaler for fp16 on CUDA).

    device    = "auto" | "cpu" | "cuda" | "cuda:N"    auto: CUDA when this machine has it, else the CPU
    precision = "fp32" | "bf16" | "fp16"              bf16 works on CPUs too; fp16 needs CUDA

The config only names a device; whether this machine has it is checked when training starts, so a
config written for a GPU cluster still validates on a laptop.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager

import torch

from ..errors import ConfigError

DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str = "auto", local_rank: int | None = None, what: str = "training.device") -> torch.device:
    """The torch.device `spec` names on this machine. `local_rank`: the process's index on its machine
    under torchrun; with several processes "auto" and "cuda" mean cuda:LOCAL_RANK, one GPU each. `what`
    names the setting in errors."""
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        built = f"a CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
        raise ConfigError(
            f"{what} = {spec!r}, but this machine has no CUDA device (torch {torch.__version__} is {built})",
            hint=f'set {what} = "auto" (CUDA when there is one) or "cpu"; on a GPU machine, install a CUDA build of PyTorch',
        )
    count = torch.cuda.device_count()
    if spec in ("auto", "cuda"):
        index = local_rank or 0
    elif local_rank is not None:
        raise ConfigError(
            f"{what} = {spec!r} names one GPU, but this run has several processes",
            hint=f'set {what} = "cuda": each process then takes the GPU of its LOCAL_RANK',
        )
    else:
        index = int(spec.split(":", 1)[1])
    if index >= count:
        raise ConfigError(
            f"{'local rank' if local_rank is not None else what} asks for cuda:{index}, but this machine has {count} CUDA device(s)",
            hint="start at most one process per GPU (--nproc / --nproc-per-node), or name an existing cuda:N",
        )
    return torch.device("cuda", index)


def check_precision(device: torch.device, precision: str) -> None:
    """Refuse a precision the device cannot run, before anything trains."""
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(
            f'training.precision = "fp16" needs a CUDA device; this run is on {device}',
            hint='use precision = "bf16" on CPUs (autocast supports it there), or "fp32"',
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"training.precision = \"bf16\": {torch.cuda.get_device_name(device)} has no bfloat16 support",
            hint='use precision = "fp16" (with loss scaling) or "fp32" on this GPU',
        )


def autocast(device: torch.device, precision: str) -> ContextManager[Any]:
    """Mixed precision for the forward pass; fp32 runs exactly as without it (no autocast at all, so CPU
    results stay bit for bit what they were)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def grad_scaler(device: torch.device, precision: str) -> "torch.amp.GradScaler | None":
    """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def describe(device: torch.device) -> str:
    """"cpu", or "cuda:0 (NVIDIA H100 80GB HBM3)" for metrics.json."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a module's weights are (the CPU for one without parameters)."""
    for p in module.parameters():
        return p.device
    return torch.device("cpu")
