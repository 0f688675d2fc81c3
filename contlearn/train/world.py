"""Which process of a data-parallel training this is, read from what ``torchrun`` puts in the
environment; no torch import, so that checking it costs nothing."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    """This process's place among the processes training one task."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    launched: bool = False  # started by torchrun: joins a process group, even of one
    backend: str | None = None  # once joined: "nccl" or "gloo"

    @property
    def main(self) -> bool:
        """Whether this process claims, writes and records (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether this process trains in a process group (``torchrun`` started it)."""
        return self.launched


SINGLE = World()


def from_environment() -> World:
    """The world ``torchrun`` describes in the environment (one process when it does not)."""
    if "WORLD_SIZE" not in os.environ:
        return SINGLE
    return World(
        rank=int(os.environ["RANK"]),
        size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", os.environ["RANK"])),
        launched=True,
    )
