"""Notebook execution, grids, run folders and summaries."""

from __future__ import annotations

from wslbench.runner.execute import execute_notebook
from wslbench.runner.record import RUN_DIR_ENV, record, recorded, run_dir, save_figure

__all__ = ["execute_notebook", "RUN_DIR_ENV", "record", "recorded", "run_dir", "save_figure"]
