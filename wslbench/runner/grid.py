"""Hyper-parameter grids: a YAML file → parameter sets → runs (local pool or Dask).

Grid file::

    preset: smoke            # optional, default "demo"
    fixed: {seed: 0}         # optional, applied to every run
    grid:                    # cartesian product ...
      nu: [0.0, 0.001]
      criterion: [pi, omega]
    # ... or an explicit list instead of ``grid``:
    # runs: [{nu: 0.0}, {nu: 0.001, criterion: omega}]

Each run is a child process (see :mod:`execute`), so a local thread pool of
``workers`` threads runs ``workers`` notebooks at once; ``dask_address``
submits each run to an existing ``dask.distributed`` scheduler instead. A
failing run never stops the others.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from wslbench.errors import ConfigError, DataFormatError, DataNotFoundError
from wslbench.presets import PRESET_NAMES
from wslbench.runner.run_folder import RunResult, execute_run

__all__ = ["MAX_GRID_RUNS", "load_grid", "expand_grid", "run_grid"]

_TOP_KEYS = {"preset", "fixed", "grid", "runs", "timeout"}
#: Most runs one grid file may expand to (a typo such as 12 × 10 values would
#: otherwise enumerate 10¹² combinations before anything runs).
MAX_GRID_RUNS = 10_000
_SCALARS = (bool, int, float, str, type(None))


def _check_value(where: str, value: Any) -> None:
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value):
        return
    raise ConfigError(f"{where}: got {value!r}; expected a number, string, bool or list of them")


def expand_grid(spec: dict[str, Any], allowed: set[str] | None = None) -> list[dict[str, Any]]:
    """Parameter sets (``preset`` included) of a parsed grid spec, validated."""
    if not isinstance(spec, dict):
        raise ConfigError(f"grid file must be a mapping with 'grid' or 'runs', got {type(spec).__name__}")
    unknown = set(spec) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"unknown grid key(s) {', '.join(sorted(unknown))}; expected some of: {', '.join(sorted(_TOP_KEYS))}")
    if ("grid" in spec) == ("runs" in spec):
        raise ConfigError("grid file needs exactly one of 'grid' (cartesian product) or 'runs' (explicit list)")
    preset = spec.get("preset", "demo")
    if preset not in PRESET_NAMES:
        raise ConfigError(f"unknown preset {preset!r}; expected one of: {', '.join(PRESET_NAMES)}")
    fixed = spec.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise ConfigError("'fixed' must be a mapping of parameter: value")
    if "grid" in spec:
        grid = spec["grid"]
        if not isinstance(grid, dict) or not grid:
            raise ConfigError("'grid' must be a non-empty mapping of parameter: [values]")
        for name, values in grid.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"grid parameter {name!r}: expected a non-empty list of values, got {values!r}")
        total = math.prod(len(values) for values in grid.values())
        if total > MAX_GRID_RUNS:
            raise ConfigError(
                f"the grid expands to {total} runs; expected at most {MAX_GRID_RUNS} "
                "(split it into several grid files)"
            )
        names = list(grid)
        sets = [dict(zip(names, combo)) for combo in itertools.product(*grid.values())]
    else:
        runs = spec["runs"]
        if not isinstance(runs, list) or not runs or not all(isinstance(r, dict) for r in runs):
            raise ConfigError("'runs' must be a non-empty list of parameter mappings")
        if len(runs) > MAX_GRID_RUNS:
            raise ConfigError(f"'runs' lists {len(runs)} runs; expected at most {MAX_GRID_RUNS}")
        sets = [dict(r) for r in runs]
    out = []
    for params in sets:
        merged = {"preset": preset, **fixed, **params}
        for name, value in merged.items():
            if not isinstance(name, str):
                raise ConfigError(f"parameter names must be strings, got {name!r}")
            _check_value(f"parameter {name!r}", value)
        if allowed is not None:
            bad = sorted(set(merged) - allowed)
            if bad:
                raise ConfigError(f"unknown parameter(s) {', '.join(bad)}; expected some of the notebook's: {', '.join(sorted(allowed))}")
        out.append(merged)
    return out


def load_grid(path: str | Path, allowed: set[str] | None = None) -> tuple[list[dict[str, Any]], float | None]:
    """Read a grid YAML file (``yaml.safe_load``); return parameter sets and the timeout."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"grid file {path} does not exist; expected a YAML file")
    try:
        spec = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataFormatError(
            f"grid file {path} is not valid YAML: {exc}; expected plain UTF-8 YAML (no Python tags)"
        ) from exc
    sets = expand_grid(spec, allowed)
    timeout = spec.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
        raise ConfigError(f"'timeout' must be a number of seconds, got {timeout!r}")
    return sets, timeout


def _run_one(notebook: Path, params: dict[str, Any], out: Path, *, timeout: float | None,
             threads: int | None) -> RunResult:
    """:func:`execute_run`, with an unexpected error reported as a failed run, not raised."""
    started = time.time()
    try:
        return execute_run(notebook, params, out, timeout=timeout, threads=threads)
    except Exception as exc:  # one broken run must not stop (or hide) the others
        print(f"wslbench: run {params} failed before finishing: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        return RunResult(Path(out) / notebook.stem, "failed", time.time() - started, -1)


def run_grid(
    notebook: Path,
    param_sets: list[dict[str, Any]],
    out: Path,
    *,
    workers: int = 1,
    dask_address: str | None = None,
    timeout: float | None = None,
    on_done: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Run every parameter set; returns one :class:`RunResult` per set, in order."""
    if workers < 1:
        raise ConfigError(f"workers must be ≥ 1, got {workers}")
    threads = 1 if (workers > 1 or dask_address) else None
    if dask_address:
        from distributed import Client, as_completed

        with Client(dask_address) as client:
            futures = [
                client.submit(_run_one, notebook, p, out, timeout=timeout, threads=threads, pure=False)
                for p in param_sets
            ]
            for fut in as_completed(futures):
                if on_done is not None:
                    on_done(fut.result())
            return client.gather(futures)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_run_one, notebook, p, out, timeout=timeout, threads=threads)
            for p in param_sets
        ]
        results = []
        for fut in futures:
            result = fut.result()
            if on_done is not None:
                on_done(result)
            results.append(result)
        return results
