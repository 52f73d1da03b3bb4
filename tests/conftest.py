"""Shared pytest setup: one torch thread per test worker, deterministic seeds."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("WSLBENCH_THREADS", "1")
torch.set_num_threads(int(os.environ["WSLBENCH_THREADS"]))


@pytest.fixture(autouse=True)
def _seed_and_isolate_run_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from seed 0 and outside any run folder."""
    monkeypatch.delenv("WSLBENCH_RUN_DIR", raising=False)
    torch.manual_seed(0)
