"""``wslbench reproduce NOTEBOOK``: a paper's claims over paired seeds (issue 18).

The notebook names its claim set in its metadata
(``{"wslbench": {"claims": "wslbench.experiments.dr:CLAIMS"}}``). Every seed
runs the claim set's ``measure`` once, in this process; every claim is then
judged by :func:`wslbench.claims.judge`. ``DIR/reproduce.json``::

    {"notebook": "01_dr_heatmaps", "preset": "demo", "seeds": [0, 1, 2],
     "seconds": 612.4, "provenance": {...},
     "claims": [{"id", "statement", "metric", "arms": {arm: [per seed]}, "effect",
                 "ci95": [lo, hi], "threshold", "reproduced", ...}],
     "measurements": [{name: value} per seed]}  (every arm, also those no claim uses)

With ``record``, the same file goes to ``benchmarks/reproduce/<notebook>.json``
of the checkout, where the README's reproduction table reads it.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wslbench.claims import ClaimSet, judge
from wslbench.errors import ConfigError, DataFormatError
from wslbench.presets import PRESET_NAMES
from wslbench.provenance import provenance
from wslbench.runner.record import atomic_write_text

__all__ = ["notebook_claims", "reproduce", "claim_line", "claims_table", "recorded_reproduction", "RECORD_DIR"]

RECORD_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "reproduce"


def notebook_claims(path: Path) -> ClaimSet:
    """The :class:`ClaimSet` a notebook declares in ``metadata.wslbench.claims``."""
    import nbformat

    try:
        meta = nbformat.read(str(path), as_version=4).metadata.get("wslbench", {})
    except Exception as exc:  # nbformat raises many types on a broken file
        raise DataFormatError(f"cannot read notebook {path}: {exc}") from exc
    target = meta.get("claims")
    if target is None:
        raise ConfigError(f"{path.stem} declares no claims yet; expected metadata "
                          "wslbench.claims = 'module:CLAIM_SET' (each paper issue adds its own)")
    module, _, name = str(target).partition(":")
    try:
        claims = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise DataFormatError(f"{path.name} declares claims {target!r}, which do not exist") from exc
    if not isinstance(claims, ClaimSet):
        raise DataFormatError(f"{path.name}: {target!r} is not a ClaimSet")
    return claims


def reproduce(
    stem: str,
    claims: ClaimSet,
    *,
    preset: str = "demo",
    seeds: int = 3,
    out: Path,
    record: bool = False,
    on_seed: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Measure ``claims`` for seeds ``0 … seeds-1``, judge them and write ``out/reproduce.json``.

    Raises:
        ConfigError: unknown preset, fewer than 2 seeds, or ``out/reproduce.json``
            already there (results are never overwritten).
    """
    if preset not in PRESET_NAMES:
        raise ConfigError(f"unknown preset {preset!r}; expected one of: {', '.join(PRESET_NAMES)}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise ConfigError(f"--seeds must be an integer >= 2 (a paired interval needs two), got {seeds!r}")
    target = Path(out) / "reproduce.json"
    if target.exists():
        raise ConfigError(f"{target} already exists; choose another --out (results are never overwritten)")
    started = time.perf_counter()
    per_seed = []
    for seed in range(seeds):
        t0 = time.perf_counter()
        per_seed.append(dict(claims.measure(preset, seed)))
        if on_seed is not None:
            on_seed(seed, time.perf_counter() - t0)
    document = {
        "notebook": stem, "preset": preset, "seeds": list(range(seeds)),
        "seconds": time.perf_counter() - started, "provenance": provenance(),
        "claims": [judge(claim, per_seed) for claim in claims.claims],
        "measurements": per_seed,
    }
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, text)
    if record:
        RECORD_DIR.mkdir(parents=True, exist_ok=True)
        atomic_write_text(RECORD_DIR / f"{stem}.json", text)
    return document


def claim_line(entry: dict[str, Any]) -> str:
    """One terminal line per claim: verdict, effect, interval and threshold."""
    low, high = entry["ci95"]
    verdict = "reproduced" if entry["reproduced"] else "NOT reproduced"
    note = f"; below floor: {', '.join(entry['below_floor'])}" if entry["below_floor"] else ""
    return (f"{verdict:<15} {entry['id']}: {entry['metric']} effect {entry['effect']:+.4g} "
            f"[{low:+.4g}, {high:+.4g}] (threshold {entry['threshold']:g}){note}")


def recorded_reproduction(stem: str) -> dict[str, Any] | None:
    """The ``reproduce.json`` recorded for notebook ``stem`` (``--record``), or ``None``."""
    path = RECORD_DIR / f"{stem}.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path} is not valid JSON: {exc}") from exc


def claims_table(document: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per claim of a ``reproduce.json``: verdict, both arms' means over seeds, the
    paired effect and its 95 % interval, and the floors missed."""
    rows = []
    for entry in document["claims"]:
        mean = {k: sum(v) / len(v) for k, v in entry["arms"].items()}
        rows.append({"claim": entry["id"], "metric": entry["metric"],
                     "reproduced": entry["reproduced"],
                     "treatment": mean[entry["treatment"]], "baseline": mean[entry["baseline"]],
                     "effect": entry["effect"],
                     "ci95": f"[{entry['ci95'][0]:+.4g}, {entry['ci95'][1]:+.4g}]",
                     "below floor": "; ".join(entry["below_floor"])})
    return rows
