"""Golden metrics per notebook: the papermill regression suite (issues 11 and 17).

``tests/golden/<notebook stem>.json``::

    {"notebook": "01_dr_heatmaps", "parameters": {"preset": "smoke", "seed": 0},
     "measured": {"machine": "AVX512", "selections": ["native, 1 thread", ...], "margin": 3.0},
     "metrics": {
        "image_auc": {"value": 0.83, "abs": 0.004, "rel": 1e-05, "spread": 0.0013,
                      "policy": "measured spread 0.0013 over 5 kernel selections; ..."},
        "froc.hemorrhage": {"value": 0.0, "range": [0.0, 1.0],
                            "policy": "sanity range only: ..."}}}

Tolerance policy. PyTorch's CPU kernels differ per instruction set and thread
count (ATen's vectorised paths, oneDNN convolutions, BLAS), and a few hundred
training steps amplify last-bit differences, so a golden value is only
meaningful with a tolerance *measured* on the notebook itself.
:func:`measure_metrics` runs the golden configuration under several kernel
selections of this machine (:func:`kernel_selections`: native, every lower
``ATEN_CPU_CAPABILITY``, oneDNN capped at a lower ISA, two threads), and
:func:`make_golden` sets each metric's ``abs`` tolerance to ``MARGIN`` times the
observed spread plus a floor for JSON round-off. A metric whose non-numeric
value changes between selections cannot be a golden.

Degenerate metrics. A golden records what a model learned: a classifier at
chance, an F1 (or FROC area) of 0, or similarities all ≈ 1 guard noise, not
behaviour. :func:`degenerate_metrics` finds them by name and value and
:func:`make_golden` refuses them unless they are declared *sanity ranges*
(``wslbench golden update NB --sanity PATTERN --reason TEXT``), which are only
checked for presence, finiteness and their range. Declarations are kept
across updates; ``--golden PATTERN`` turns a metric back into a measured value.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wslbench.errors import ConfigError, DataFormatError, DataNotFoundError, RunError
from wslbench.runner.record import atomic_write_text

__all__ = ["GOLDEN_PARAMETERS", "MARGIN", "FLOOR_ABS", "FLOOR_REL", "CHANCE_LEVEL",
           "KernelSelection", "kernel_selections", "portable_selection", "native_capability",
           "golden_path", "load_golden", "compare_metrics", "measure_metrics", "make_golden",
           "degenerate_metrics", "diff_golden", "flatten_metrics", "write_golden"]

GOLDEN_PARAMETERS = {"preset": "smoke", "seed": 0}
MARGIN = 3.0  # tolerance = MARGIN × spread over the kernel selections + floor
FLOOR_ABS = 2e-6  # notebooks round recorded floats to 6 decimals
FLOOR_REL = 1e-5
CHANCE_LEVEL = 0.6  # binary tasks: an accuracy or AUC at or below this is not a learned model
SIMILARITY_CEILING = 0.99  # similarities that are all above this say nothing

_CAPABILITIES = ("default", "avx2", "avx512")  # ATen's CPU kernel levels on x86-64, low to high
_ONEDNN_BELOW = {"avx512": "AVX2", "avx2": "SSE41"}


@dataclass(frozen=True)
class KernelSelection:
    """One way to run the same computation: environment variables and torch threads."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    threads: int = 1


def native_capability() -> str:
    """ATen's CPU capability on this machine without overrides (``default``/``avx2``/``avx512``)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    out = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
        env=env, capture_output=True, text=True, check=False,
    ).stdout.strip().lower()
    return out if out in _CAPABILITIES else "default"


def kernel_selections(native: str | None = None) -> list[KernelSelection]:
    """The selections :func:`measure_metrics` runs: native first, then the lower ones.

    On an AVX-512 machine: native, ``ATEN_CPU_CAPABILITY=default``, ``=avx2``, oneDNN
    capped at AVX2, and native with two threads.
    """
    native = native or native_capability()
    level = _CAPABILITIES.index(native) if native in _CAPABILITIES else 0
    selections = [KernelSelection("native, 1 thread")]
    selections += [KernelSelection(f"ATEN_CPU_CAPABILITY={cap}", {"ATEN_CPU_CAPABILITY": cap})
                   for cap in _CAPABILITIES[:level]]
    if native in _ONEDNN_BELOW:
        isa = _ONEDNN_BELOW[native]
        selections.append(KernelSelection(f"ONEDNN_MAX_CPU_ISA={isa}", {"ONEDNN_MAX_CPU_ISA": isa}))
    selections.append(KernelSelection("native, 2 threads", threads=2))
    return selections


def portable_selection(environ: dict[str, str] | None = None,
                       native: str | None = None) -> KernelSelection:
    """The selection the regression test runs under: never the machine's native one
    when a lower one exists, so a green suite means another CPU passes too.

    An ``ATEN_CPU_CAPABILITY`` already set by the user is kept as it is.
    """
    import os

    environ = dict(os.environ if environ is None else environ)
    if environ.get("ATEN_CPU_CAPABILITY"):
        cap = environ["ATEN_CPU_CAPABILITY"]
        return KernelSelection(f"ATEN_CPU_CAPABILITY={cap} (set by the user)",
                               {"ATEN_CPU_CAPABILITY": cap})
    native = native or native_capability()
    level = _CAPABILITIES.index(native) if native in _CAPABILITIES else 0
    if level == 0:
        return KernelSelection("native, 1 thread (no lower capability on this CPU)")
    cap = _CAPABILITIES[level - 1]
    return KernelSelection(f"ATEN_CPU_CAPABILITY={cap}", {"ATEN_CPU_CAPABILITY": cap})


def golden_path(folder: Path, notebook_stem: str) -> Path:
    return Path(folder) / f"{notebook_stem}.json"


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metric dicts become dotted names; lists (nested too) become ``name[i][j]``."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        out.update(_flatten_value(name, value))
    return out


def _flatten_value(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return flatten_metrics(value, name)
    if isinstance(value, list):
        out: dict[str, Any] = {}
        for i, item in enumerate(value):
            out.update(_flatten_value(f"{name}[{i}]", item))
        return out
    return {name: value}


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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare_metrics(got: dict[str, Any], golden: dict[str, Any]) -> list[str]:
    """Failures (empty when all metrics match): missing, extra, NaN, out of tolerance/range."""
    expected = golden["metrics"]
    flat = flatten_metrics(got)
    problems = []
    for name in sorted(set(expected) - set(flat)):
        problems.append(f"{name}: missing (expected {expected[name]['value']!r})")
    for name in sorted(set(flat) - set(expected)):
        problems.append(f"{name}: unexpected metric (got {flat[name]!r}); update the golden file if intended")
    for name in sorted(set(expected) & set(flat)):
        problem = _check_one(name, expected[name], flat[name])
        if problem:
            problems.append(problem)
    return problems


def _check_one(name: str, spec: dict[str, Any], value: Any) -> str | None:
    want = spec["value"]
    if isinstance(value, float) and math.isnan(value):
        return f"{name}: got NaN, expected {want!r}"
    if "range" in spec:
        if not _is_number(value):
            return None if not _is_number(want) else f"{name}: expected a number, got {value!r}"
        lo, hi = spec["range"] if spec["range"] is not None else (None, None)
        if not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
            return f"{name}: got {value!r}, expected a finite number in [{lo}, {hi}] (sanity range)"
        return None
    if not _is_number(want) or "abs" not in spec:
        return None if value == want else f"{name}: expected {want!r} exactly, got {value!r}"
    if not _is_number(value):
        return f"{name}: expected a number near {want!r}, got {value!r}"
    rel, abs_ = spec.get("rel", FLOOR_REL), spec["abs"]
    tol = abs_ + rel * abs(want)
    if not abs(value - want) <= tol:
        return f"{name}: expected {want!r} ± {tol:.3g} (abs {abs_:g}, rel {rel:g}), got {value!r}"
    return None


# --------------------------------------------------------------------------- measurement


def measure_metrics(
    notebook: Path,
    selections: Iterable[KernelSelection],
    *,
    jobs: int = 2,
    on_done: Callable[[KernelSelection, Any], None] | None = None,
) -> list[dict[str, Any]]:
    """Run ``notebook`` (smoke, seed 0) once per selection; flat metrics in selection order.

    One-thread selections run ``jobs`` at a time; multi-thread ones run alone
    afterwards, so no run competes for the cores its thread count asks for.

    Raises:
        RunError: a run failed (its log's tail is in the message).
    """
    from wslbench.runner.run_folder import execute_run

    selections = list(selections)
    results: dict[int, dict[str, Any]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="wslbench-golden-"))

    def run(i: int) -> None:
        sel = selections[i]
        result = execute_run(notebook, dict(GOLDEN_PARAMETERS), tmp / str(i), threads=sel.threads,
                             html=False, env=sel.env)
        if on_done is not None:
            on_done(sel, result)
        if result.status != "succeeded":
            tail = (result.folder / "log.txt").read_text()[-3000:]
            raise RunError(f"{notebook.stem} failed under {sel.name}:\n{tail}")
        results[i] = flatten_metrics(json.loads((result.folder / "metrics.json").read_text()))

    try:
        single = [i for i, s in enumerate(selections) if s.threads == 1]
        multi = [i for i, s in enumerate(selections) if s.threads != 1]
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for future in [pool.submit(run, i) for i in single]:
                future.result()
        for i in multi:
            run(i)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [results[i] for i in range(len(selections))]


# --------------------------------------------------------------------------- degeneracy

_COMPONENT = re.compile(r"\[[^\]]*\]")


def _components(name: str) -> list[str]:
    return [_COMPONENT.sub("", part) for part in name.split(".")]


def _is_classifier_score(name: str) -> bool:
    parts = _components(name)
    return any(re.search(r"(accuracy|auc)$", p) and not re.search(r"(deletion|insertion)_auc$", p)
               and not p.startswith("robust_") for p in parts)


def _is_detection_score(name: str) -> bool:
    parts = _components(name)
    return parts[-1] == "f1" or any(p == "froc" or p.startswith("froc_") for p in parts[:-1])


def _similarity_group(name: str) -> str | None:
    parts = _components(name)
    for i, p in enumerate(parts):
        if "similarity" in p:
            return ".".join(parts[: i + 1])
    return None


def degenerate_metrics(flat: dict[str, Any]) -> dict[str, str]:
    """Metrics that say a model learned nothing, with the reason.

    - a classifier score (a name part ending in ``accuracy`` or ``auc``, not a
      deletion/insertion area, not a ``robust_`` accuracy under attack) at or
      below :data:`CHANCE_LEVEL`;
    - a detection score (``f1``, a FROC area) equal to 0;
    - a similarity group (one metric and its ``[i][j]`` entries) whose values
      are all at least :data:`SIMILARITY_CEILING`.
    """
    found: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for name, value in flat.items():
        if not _is_number(value):
            continue
        if _is_classifier_score(name) and value <= CHANCE_LEVEL:
            found[name] = f"classifier score {value:g} is at or below chance ({CHANCE_LEVEL})"
        elif _is_detection_score(name) and value == 0:
            found[name] = "detection score is 0"
        group = _similarity_group(name)
        if group is not None:
            groups.setdefault(group, []).append(name)
    for group, names in groups.items():
        if all(flat[n] >= SIMILARITY_CEILING for n in names):
            for n in names:
                found[n] = f"every similarity of {group} is ≥ {SIMILARITY_CEILING}"
    return found


# --------------------------------------------------------------------------- documents


def _sanity_range(values: list[Any]) -> list[float] | None:
    numbers = [v for v in values if _is_number(v)]
    if numbers and all(0.0 <= v <= 1.0 for v in numbers):
        return [0.0, 1.0]
    return None


def _round_up(x: float) -> float:
    """``x`` rounded *up* to three significant digits (a readable tolerance, never tighter)."""
    step = 10.0 ** (math.floor(math.log10(x)) - 2)
    return float(f"{math.ceil(x / step * (1 - 1e-12)) * step:.3g}")


def make_golden(
    stem: str,
    runs: list[dict[str, Any]],
    previous: dict[str, Any] | None,
    *,
    selections: list[KernelSelection] | None = None,
    sanity: dict[str, str] | None = None,
    promote: Iterable[str] = (),
    machine: str | None = None,
) -> dict[str, Any]:
    """A golden document from the flat metrics of one run per kernel selection.

    Args:
        stem: the notebook's stem.
        runs: flat metrics (:func:`flatten_metrics`), native selection first.
        previous: the current golden document; its sanity declarations are kept.
        selections: the selections ``runs`` came from (recorded in the file).
        sanity: ``{fnmatch pattern: reason}`` of metrics to record as sanity ranges.
        promote: patterns of previously declared sanity metrics to measure again.
        machine: the native CPU capability (recorded in the file).

    Raises:
        ConfigError: a metric is degenerate, or its non-numeric value changes
            between selections, and it is not declared a sanity range.
    """
    if not runs:
        raise ConfigError("make_golden needs at least one run's metrics")
    promote = list(promote)
    reasons = dict(sanity or {})
    old = (previous or {}).get("metrics", {})
    native = runs[0]
    names = set().union(*runs)
    missing = {n: i for n in names for i, r in enumerate(runs) if n not in r}
    if missing:
        raise ConfigError(f"metrics present in some kernel selections only: {sorted(missing)}")
    degenerate = degenerate_metrics(native)
    out: dict[str, Any] = {}
    refused: list[str] = []
    for name in sorted(names):
        values = [r[name] for r in runs]
        value = native[name]
        declared = next((r for p, r in reasons.items() if fnmatch.fnmatchcase(name, p)), None)
        if declared is None and "range" in old.get(name, {}) and not any(
            fnmatch.fnmatchcase(name, p) for p in promote
        ):
            declared = old[name]["policy"].removeprefix("sanity range only: ")
        if declared is not None:
            out[name] = {"value": value, "range": _sanity_range(values),
                         "policy": f"sanity range only: {declared}"}
            continue
        if name in degenerate:
            refused.append(f"{name} = {value!r}: {degenerate[name]}")
            continue
        if not all(_is_number(v) for v in values):
            if any(v != value for v in values):
                refused.append(f"{name}: changes with the kernel selection ({values!r})")
                continue
            out[name] = {"value": value, "policy": "exact (label or flag)"}
            continue
        spread = max(values) - min(values)
        if isinstance(value, int) and spread == 0:
            out[name] = {"value": value, "policy": "exact (count): identical in every kernel selection"}
            continue
        out[name] = {
            "value": value, "abs": _round_up(MARGIN * spread + FLOOR_ABS), "rel": FLOOR_REL,
            "spread": spread,
            "policy": f"measured spread {spread:.3g} over {len(runs)} kernel selections; "
                      f"tolerance {MARGIN:g}× spread + {FLOOR_ABS:g} (JSON round-off)",
        }
    if refused:
        raise ConfigError(
            f"{stem}: refusing a golden that guards noise:\n  " + "\n  ".join(refused)
            + "\nmake the smoke preset learn, or declare these metrics sanity ranges with "
              "`wslbench golden update NOTEBOOK --sanity PATTERN --reason TEXT`"
        )
    measured = {"machine": machine, "margin": MARGIN,
                "selections": [s.name for s in selections] if selections else None}
    return {"notebook": stem, "parameters": dict(GOLDEN_PARAMETERS), "measured": measured,
            "metrics": out}


def diff_golden(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Human-readable old → new lines, with the new tolerance or range."""
    before = {k: v["value"] for k, v in (old or {}).get("metrics", {}).items()}
    lines = []
    for name in sorted(set(before) | set(new["metrics"])):
        spec = new["metrics"].get(name)
        a, b = before.get(name, "(absent)"), spec["value"] if spec else "(removed)"
        mark = " " if a == b else "*"
        note = ""
        if spec and "range" in spec:
            note = f"  [sanity range {spec['range']}]"
        elif spec and "abs" in spec:
            note = f"  [± {spec['abs']:g}]"
        lines.append(f"{mark} {name}: {a!r} -> {b!r}{note}")
    return lines


def write_golden(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(document, indent=2, sort_keys=True) + "\n")
