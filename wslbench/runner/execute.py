"""Execute one notebook with papermill in a child process bound to a run folder.

The child gets ``WSLBENCH_RUN_DIR`` in its environment, so the notebook's
:func:`~wslbench.runner.record` calls land in ``<run_dir>/metrics.json``. A
child process per run keeps runs isolated (environment, memory, signals) and
makes the same call safe from local process pools and Dask worker threads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wslbench.errors import DataNotFoundError, RunError
from wslbench.runner.record import RUN_DIR_ENV

__all__ = ["execute_notebook", "KERNEL_NAME"]

KERNEL_NAME = "python3"


def execute_notebook(
    notebook: str | Path,
    run_dir: str | Path,
    parameters: dict[str, Any],
    *,
    timeout: float | None = None,
    threads: int | None = None,
    env: Mapping[str, str] | None = None,
    output_name: str = "executed.ipynb",
    log_name: str = "log.txt",
) -> subprocess.CompletedProcess[str]:
    """Run ``notebook`` with ``parameters`` into ``run_dir/output_name``.

    Args:
        notebook: path of the source notebook (must have a cell tagged ``parameters``).
        run_dir: existing folder receiving the executed notebook, metrics and figures.
        parameters: values injected after the ``parameters`` cell.
        timeout: per-cell execution timeout in seconds (``None``: no limit).
        threads: torch threads in the kernel (``WSLBENCH_THREADS``); default: unchanged.
        env: extra environment variables of the kernel (e.g. ``ATEN_CPU_CAPABILITY``).
        output_name: file name of the executed notebook inside ``run_dir``.
        log_name: file name of the combined stdout/stderr log inside ``run_dir``.

    Returns:
        The finished child process; ``returncode != 0`` means the notebook failed
        (the partial executed notebook is still written by papermill).
    """
    notebook = Path(notebook).resolve()
    run_dir = Path(run_dir).resolve()
    if not notebook.is_file():
        raise DataNotFoundError(f"notebook {notebook} does not exist; expected a .ipynb file")
    if not run_dir.is_dir():
        raise RunError(f"run folder {run_dir} does not exist; expected an existing folder")
    env = {**os.environ, **(env or {})}
    env[RUN_DIR_ENV] = str(run_dir)
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONUNBUFFERED"] = "1"
    if threads is not None:
        env["WSLBENCH_THREADS"] = str(threads)
        env["OMP_NUM_THREADS"] = str(threads)
    spec = {
        "input": str(notebook),
        "output": str(run_dir / output_name),
        "parameters": parameters,
        "cwd": str(notebook.parent),
        "timeout": timeout,
        "kernel_name": KERNEL_NAME,
    }
    with open(run_dir / log_name, "w", encoding="utf-8") as log:
        return subprocess.run(
            [sys.executable, "-m", "wslbench.runner._papermill_child", json.dumps(spec)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
