"""Reproducibility: one call seeds every random source wslbench uses."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["seed_everything", "torch_generator", "numpy_rng", "set_threads"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and make torch pick deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def torch_generator(seed: int) -> torch.Generator:
    """A private torch generator (data order, dropout masks of samplers...)."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def numpy_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A NumPy generator from a seed (or pass an existing generator through)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def set_threads(n: int | None = None) -> int:
    """Fix torch's intra-op thread count (``WSLBENCH_THREADS`` or all cores)."""
    if n is None:
        n = int(os.environ.get("WSLBENCH_THREADS", "0")) or (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n
