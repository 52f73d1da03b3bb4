"""Paper claims as paired comparisons over seeds (DESIGN §4.9, issue 18).

A paper declares a :class:`ClaimSet`: one ``measure(preset, seed)`` function that
runs the paper's claim experiment once (every arm of one seed shares data and
initialisation) and returns named measurements, and the :class:`Claim` objects
that compare two of those measurements. :func:`judge` turns the per-seed values
into a verdict: the mean paired difference, its 95 % t-interval, and
``reproduced`` — true only when the whole interval lies beyond the claim's
threshold and every arm it depends on cleared its floor (a baseline at chance
voids the comparison). Nothing here is set by hand: the verdict is recomputed
from the arms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from wslbench.errors import ConfigError

__all__ = ["Claim", "ClaimSet", "judge", "paired_interval"]


@dataclass(frozen=True)
class Claim:
    """One headline finding: ``treatment`` beats ``baseline`` on ``metric``.

    Attributes:
        id: short identifier (``sparsity-lowers-l1``).
        statement: the paper's sentence, with its section.
        metric: what is compared (for the reader: ``FROC area``, ``Dice``…).
        treatment: measurement key of the arm the paper says is better.
        baseline: measurement key of the arm it is compared with.
        direction: ``"greater"`` (treatment higher is better) or ``"less"``.
        threshold: smallest effect, in the claim's direction, that counts.
        floors: ``{measurement key: minimum}`` every seed must reach (e.g. a
            baseline's accuracy above chance) for the comparison to mean anything.
    """

    id: str
    statement: str
    metric: str
    treatment: str
    baseline: str
    direction: Literal["greater", "less"] = "greater"
    threshold: float = 0.0
    floors: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ClaimSet:
    """A paper's claims and the one paired experiment that measures them all."""

    measure: Callable[[str, int], Mapping[str, float]]
    claims: tuple[Claim, ...]

    def __post_init__(self) -> None:
        ids = [c.id for c in self.claims]
        if not ids or len(set(ids)) != len(ids):
            raise ConfigError(f"a claim set needs claims with distinct ids, got {ids}")


def paired_interval(differences: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``differences`` and its two-sided Student-t interval.

    Raises:
        ConfigError: fewer than two differences (no interval without a spread).
    """
    from scipy.stats import t

    n = len(differences)
    if n < 2:
        raise ConfigError(f"a paired interval needs at least 2 seeds, got {n}")
    mean = sum(differences) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    half = float(t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def judge(claim: Claim, per_seed: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """The ``reproduce.json`` entry of ``claim`` from one measurement dict per seed."""
    keys = {claim.treatment, claim.baseline, *claim.floors}
    for i, values in enumerate(per_seed):
        missing = sorted(keys - set(values))
        if missing:
            raise ConfigError(f"claim {claim.id}: seed #{i} measured no {missing}")
    arms = {k: [float(v[k]) for v in per_seed] for k in (claim.treatment, claim.baseline)}
    sign = 1.0 if claim.direction == "greater" else -1.0
    diffs = [sign * (t - b) for t, b in zip(arms[claim.treatment], arms[claim.baseline])]
    effect, low, high = paired_interval(diffs)
    below = [f"{k} {float(v[k]):.4g} < {floor:g} (seed #{i})"
             for k, floor in claim.floors.items() for i, v in enumerate(per_seed) if v[k] < floor]
    return {
        "id": claim.id,
        "statement": claim.statement,
        "metric": claim.metric,
        "direction": claim.direction,
        "treatment": claim.treatment,
        "baseline": claim.baseline,
        "arms": arms,
        "effect": effect,
        "ci95": [low, high],
        "threshold": claim.threshold,
        "floors": dict(claim.floors),
        "below_floor": below,
        "reproduced": bool(low > claim.threshold and not below),
    }
