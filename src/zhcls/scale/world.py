"""Who this process is among the processes torchrun started (RANK, WORLD_SIZE, LOCAL_RANK in the
environment), and the checks and command line of a launch. No torch import: `zhcls train --nproc` runs
these before it starts torchrun."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import ConfigError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and logs."""
        return self.rank == 0


def from_env() -> World:
    """The world torchrun describes in the environment; one process when it is not there."""
    try:
        return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        return World()


def check_distributable(model: Any, world_size: int) -> None:
    """A ConfigError (exit 2) for a model (or model class) that has no distributed training: it is not trained
    by gradient descent (tfidf.v1), or it only combines runs trained already (ensemble.v1)."""
    if world_size > 1 and not getattr(model, "trains_distributed", False):
        name = getattr(model, "name", type(model).__name__)
        raise ConfigError(
            f"{name} cannot train on several processes ({world_size} were started): only the torch models "
            "(textcnn.v1, bigru.v1, fasttext.v1, transformer.v1) train with DistributedDataParallel",
            hint=f"train {name} in one process: drop --nproc (or torchrun); it uses one CPU core per run",
        )


def torchrun_command(nproc: int, zhcls_args: Sequence[str]) -> list[str]:
    """`python -m torch.distributed.run --standalone --nproc-per-node N -m zhcls ARGS`: torchrun on this
    machine (a free port is picked for the rendezvous, so several runs can share a machine)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "zhcls", *zhcls_args]
