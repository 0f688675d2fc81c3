"""Seeding: a run is determined by its seed, not by what the process did before."""

from __future__ import annotations

import random

import torch


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's generators (the task's modules and batches draw from them)."""
    random.seed(seed)
    torch.manual_seed(seed)
