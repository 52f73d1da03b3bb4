"""Training utilities: checkpoints, loops, early stopping, schedulers."""

from __future__ import annotations

from wslbench.training.checkpoint import load_checkpoint, load_state_dict, save_checkpoint

__all__ = ["save_checkpoint", "load_checkpoint", "load_state_dict"]
from wslbench.training.progress import ProgressCallback, StopRequested, report, tqdm_progress

__all__ += ["ProgressCallback", "StopRequested", "report", "tqdm_progress"]
