"""Notebook execution, grids, run folders and summaries."""

from __future__ import annotations

from wslbench.runner.execute import execute_notebook
from wslbench.runner.percentile_ranks import (
    TABLE1_PERCENTILE_RANKS,
    modal_values_by_percentile,
    modal_values_table,
    percentile_ranks,
    value_percentile_ranks,
)
from wslbench.runner.record import (
    RUN_DIR_ENV,
    record,
    record_config,
    recorded,
    run_dir,
    save_figure,
)

__all__ = ["execute_notebook", "RUN_DIR_ENV", "record", "record_config", "recorded", "run_dir",
           "save_figure"]
__all__ += [
    "TABLE1_PERCENTILE_RANKS",
    "percentile_ranks",
    "value_percentile_ranks",
    "modal_values_by_percentile",
    "modal_values_table",
]
