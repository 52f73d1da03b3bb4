"""A toy claim set for the ``wslbench reproduce`` tests (issue 18).

``measure`` is a paired experiment whose treatment beats the baseline by 1 ± a
seed-dependent jitter; the "at chance" arm is fixed at 0.5.
"""

from __future__ import annotations

from wslbench.claims import Claim, ClaimSet


def measure(preset: str, seed: int) -> dict[str, float]:
    jitter = (0.3, -0.2, 0.1, -0.25, 0.05)[seed % 5]
    return {"treatment": 2.0 + jitter, "baseline": 1.0, "noise": 1.0 + jitter, "at_chance": 0.5}


CLAIMS = ClaimSet(measure, (
    Claim("better", "Toy §1: the treatment beats the baseline.", "score", "treatment", "baseline"),
    Claim("noise", "Toy §2: noise beats the baseline.", "score", "noise", "baseline"),
    Claim("void", "Toy §3: better, but the baseline must learn.", "score", "treatment", "baseline",
          floors={"at_chance": 0.6}),
))
