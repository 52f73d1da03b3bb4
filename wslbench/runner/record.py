"""How a notebook reports numbers and figures to its run folder.

A notebook calls :func:`record` for each metric and :func:`save_figure` for
each figure. When it runs under ``wslbench run``/``grid`` (or the regression
suite), the environment variable ``WSLBENCH_RUN_DIR`` names the run folder and
values go to ``metrics.json`` and ``figures/``; interactively they are kept in
memory (:func:`recorded`) and nothing is written.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from wslbench.errors import InvalidInputError

__all__ = ["RUN_DIR_ENV", "record", "record_config", "recorded", "run_dir", "save_figure",
           "atomic_write_text"]

RUN_DIR_ENV = "WSLBENCH_RUN_DIR"
_MEMORY: dict[str, Any] = {}


def run_dir() -> Path | None:
    """The run folder this process writes to, or ``None`` when interactive."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary name and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:  # a failed write leaves the old file and no temporary one
        tmp.unlink(missing_ok=True)


def _jsonable(name: str, value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"metric {name!r} is {value}; expected a finite number")
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(name, v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(f"{name}.{k}", v) for k, v in value.items()}
    raise InvalidInputError(
        f"metric {name!r} has type {type(value).__name__}; expected a number, string, "
        "bool or a list/dict of them"
    )


def record(name: str, value: Any) -> Any:
    """Record metric ``name`` = ``value`` (a finite number, string, or list/dict of them).

    Returns ``value`` unchanged so it can be used inline.
    """
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"metric name must be a non-empty string, got {name!r}")
    clean = _jsonable(name, value)
    _MEMORY[name] = clean
    folder = run_dir()
    if folder is not None:
        path = folder / "metrics.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        current[name] = clean
        atomic_write_text(path, json.dumps(current, indent=2, sort_keys=True))
    return value


def record_config(config: Any) -> Any:
    """Write the notebook's resolved configuration and device into ``params.json``.

    ``config`` is the preset dataclass after overrides; its ``device`` field (``None``:
    CUDA when available) is resolved the way training resolves it. Returns ``config``.
    """
    from wslbench.devices import resolve_device
    from wslbench.presets import config_to_dict

    resolved = config_to_dict(config)
    folder = run_dir()
    if folder is not None:
        path = folder / "params.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        current["config"] = _jsonable("config", resolved)
        current["device"] = str(resolve_device(getattr(config, "device", None)))
        atomic_write_text(path, json.dumps(current, indent=2, sort_keys=True, default=str))
    return config


def recorded() -> dict[str, Any]:
    """Metrics recorded so far in this process."""
    return dict(_MEMORY)


def save_figure(fig: Any, name: str) -> Path | None:
    """Save a matplotlib or plotly figure as ``figures/<name>.png`` (or ``.html`` for plotly).

    Returns the written path, or ``None`` when not inside a run folder.
    """
    folder = run_dir()
    if folder is None:
        return None
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise InvalidInputError(f"figure name {name!r} must be a plain file stem")
    out = folder / "figures"
    out.mkdir(parents=True, exist_ok=True)
    if hasattr(fig, "savefig"):
        path = out / f"{name}.png"
        tmp = out / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    elif hasattr(fig, "write_html"):
        path = out / f"{name}.html"
        tmp = out / f".{name}.tmp.html"
        fig.write_html(tmp, include_plotlyjs="directory")
    else:
        raise InvalidInputError(
            f"save_figure expects a matplotlib or plotly figure, got {type(fig).__name__}"
        )
    os.replace(tmp, path)
    return path
