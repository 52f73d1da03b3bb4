"""Golden metrics per notebook: the papermill regression suite (issue 11).

``tests/golden/<notebook stem>.json``::

    {"notebook": "01_dr_heatmaps", "parameters": {"preset": "smoke", "seed": 0},
     "metrics": {"image_auc": {"value": 0.83, "rel": 1e-6, "abs": 1e-9, "policy": "..."}, ...}}

Tolerance policy: the smoke runs are seeded end to end and run with one torch
thread, so on one machine they repeat bit for bit; the default float tolerance
(``rel`` 1e-6, ``abs`` 1e-9) only absorbs JSON round-off. Integers and strings
are compared exactly. A metric whose value depends on thread scheduling or a
platform's BLAS can carry a looser ``abs``/``rel`` in its file, with a
``policy`` sentence saying why. Golden files change only through
``wslbench golden update NOTEBOOK``, which prints old vs new values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from wslbench.errors import DataFormatError, DataNotFoundError
from wslbench.runner.record import atomic_write_text

__all__ = ["DEFAULT_REL", "DEFAULT_ABS", "GOLDEN_PARAMETERS", "golden_path", "load_golden",
           "compare_metrics", "make_golden", "diff_golden", "flatten_metrics", "write_golden"]

DEFAULT_REL = 1e-6
DEFAULT_ABS = 1e-9
GOLDEN_PARAMETERS = {"preset": "smoke", "seed": 0}


def golden_path(folder: Path, notebook_stem: str) -> Path:
    return Path(folder) / f"{notebook_stem}.json"


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metric dicts become dotted names; lists become ``name[i]``."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten_metrics(value, name))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    out.update(flatten_metrics(item, f"{name}[{i}]"))
                else:
                    out[f"{name}[{i}]"] = item
        else:
            out[name] = value
    return out


def load_golden(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataNotFoundError(
            f"no golden file {path}; create it with `wslbench golden update {path.stem}`"
        )
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise DataFormatError(f"golden file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data.get("metrics"), dict):
        raise DataFormatError(f"golden file {path} has no 'metrics' mapping")
    return data


def compare_metrics(got: dict[str, Any], golden: dict[str, Any]) -> list[str]:
    """Failures (empty when all metrics match): missing, extra, NaN, out of tolerance."""
    expected = golden["metrics"]
    flat = flatten_metrics(got)
    problems = []
    for name in sorted(set(expected) - set(flat)):
        problems.append(f"{name}: missing (expected {expected[name]['value']!r})")
    for name in sorted(set(flat) - set(expected)):
        problems.append(f"{name}: unexpected metric (got {flat[name]!r}); update the golden file if intended")
    for name in sorted(set(expected) & set(flat)):
        spec, value = expected[name], flat[name]
        want = spec["value"]
        if isinstance(value, float) and math.isnan(value):
            problems.append(f"{name}: got NaN, expected {want!r}")
        elif isinstance(want, bool) or not isinstance(want, (int, float)) or (
            isinstance(want, int) and isinstance(value, int) and "abs" not in spec
        ):
            if value != want:
                problems.append(f"{name}: expected {want!r} exactly, got {value!r}")
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"{name}: expected a number near {want!r}, got {value!r}")
        else:
            rel, abs_ = spec.get("rel", DEFAULT_REL), spec.get("abs", DEFAULT_ABS)
            tol = abs_ + rel * abs(want)
            if not abs(value - want) <= tol:
                problems.append(
                    f"{name}: expected {want!r} ± {tol:.3g} (abs {abs_:g}, rel {rel:g}), got {value!r}"
                )
    return problems


def make_golden(stem: str, metrics: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """A golden document for ``metrics``, keeping tolerances/policies of ``previous`` entries."""
    old = (previous or {}).get("metrics", {})
    out = {}
    for name, value in flatten_metrics(metrics).items():
        entry = {k: v for k, v in old.get(name, {}).items() if k != "value"}
        if not entry:
            if isinstance(value, float):
                entry = {"rel": DEFAULT_REL, "abs": DEFAULT_ABS,
                         "policy": "seeded, one thread: repeats exactly on one machine"}
            else:
                entry = {"policy": "exact (count, shape or label)"}
        out[name] = {"value": value, **entry}
    return {"notebook": stem, "parameters": dict(GOLDEN_PARAMETERS), "metrics": out}


def diff_golden(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Human-readable old → new lines."""
    before = {k: v["value"] for k, v in (old or {}).get("metrics", {}).items()}
    after = {k: v["value"] for k, v in new["metrics"].items()}
    lines = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name, "(absent)"), after.get(name, "(removed)")
        mark = " " if a == b else "*"
        lines.append(f"{mark} {name}: {a!r} -> {b!r}")
    return lines


def write_golden(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(document, indent=2, sort_keys=True) + "\n")

