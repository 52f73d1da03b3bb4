"""Run folders: one per notebook execution, written atomically, never overwritten.

Layout (issue 2): ``<out>/<notebook stem>/<UTC time>-<params hash>/`` holding
``params.json`` (the parameters, the seed, :func:`~wslbench.provenance.provenance`, and the
resolved configuration and device once the notebook calls
:func:`~wslbench.runner.record.record_config`), ``status.json``, ``metrics.json`` (from :func:`record`),
``executed.ipynb``, ``executed.html``, ``figures/`` and ``log.txt``.

The folder is built under a hidden temporary name (``.<name>.partial``) and
renamed into place when the run ends, successfully or not. A run killed
mid-way leaves its ``.partial`` folder, which :mod:`summary` reports as
``incomplete``; other folders are never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wslbench.errors import RunError
from wslbench.presets import PRESET_NAMES
from wslbench.provenance import provenance
from wslbench.runner.execute import execute_notebook
from wslbench.runner.record import atomic_write_text

__all__ = ["RunResult", "params_hash", "execute_run", "PARTIAL_SUFFIX"]

PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class RunResult:
    """Where a run went and how it ended."""

    folder: Path
    status: str
    duration_s: float
    returncode: int


def params_hash(params: dict[str, Any]) -> str:
    """Short stable hash of a parameter dict."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:8]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str))


def _reserve(parent: Path, stem: str) -> tuple[Path, Path]:
    """Create a unique partial folder for final name ``stem`` (suffix -2, -3… if taken)."""
    parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        name = stem if i == 1 else f"{stem}-{i}"
        final = parent / name
        partial = parent / f".{name}{PARTIAL_SUFFIX}"
        if final.exists():
            continue
        try:
            partial.mkdir()
        except FileExistsError:
            continue
        return partial, final
    raise RunError(f"could not find a free run folder name for {stem} in {parent}")


def execute_run(
    notebook: Path,
    parameters: dict[str, Any],
    out: Path,
    *,
    timeout: float | None = None,
    threads: int | None = None,
    html: bool = True,
    env: Mapping[str, str] | None = None,
) -> RunResult:
    """Execute ``notebook`` with ``parameters`` into a new run folder under ``out``.

    Args:
        notebook: the source notebook.
        parameters: papermill parameters (``preset`` included).
        out: runs root; the folder goes to ``out/<notebook stem>/<time>-<hash>``.
        timeout: per-cell timeout in seconds.
        threads: torch threads in the kernel.
        html: also export ``executed.html``.
        env: extra environment variables of the kernel (kernel selection for goldens).
    """
    preset = parameters.get("preset")
    if preset is not None and preset not in PRESET_NAMES:
        raise RunError(f"unknown preset {preset!r}; expected one of: {', '.join(PRESET_NAMES)}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    partial, final = _reserve(Path(out) / notebook.stem, f"{stamp}-{params_hash(parameters)}")
    (partial / "figures").mkdir()
    _write_json(partial / "params.json", {"notebook": notebook.name, "parameters": parameters,
                                          "seed": parameters.get("seed"),
                                          "provenance": provenance()})
    started = time.time()
    status: dict[str, Any] = {"status": "running", "started": started, "pid": os.getpid()}
    _write_json(partial / "status.json", status)
    interrupted = False
    previous = signal.getsignal(signal.SIGTERM) if _main_thread() else None
    if previous is not None:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        proc = execute_notebook(notebook, partial, parameters, timeout=timeout, threads=threads,
                                env=env)
        returncode = proc.returncode
    except KeyboardInterrupt:
        interrupted, returncode = True, -signal.SIGINT
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    duration = time.time() - started
    state = "interrupted" if interrupted else ("succeeded" if returncode == 0 else "failed")
    status.update(status=state, ended=time.time(), duration_s=duration, returncode=returncode)
    _write_json(partial / "status.json", status)
    if interrupted:  # leave it partial: summary shows it as incomplete
        raise KeyboardInterrupt
    if html and (partial / "executed.ipynb").exists():
        try:
            _export_html(partial / "executed.ipynb", partial / "executed.html")
        except Exception as exc:  # a broken export must not lose the finished run
            with open(partial / "log.txt", "a", encoding="utf-8") as log:
                log.write(f"\nwslbench: HTML export failed: {type(exc).__name__}: {exc}\n")
    os.replace(partial, final)
    return RunResult(final, state, duration, returncode)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _export_html(notebook: Path, target: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    atomic_write_text(target, body)
