"""The headline claims of Xue et al. checked by ``wslbench reproduce 04_cnncs_cells`` (issue 23).

One seed trains, on the same data and from the same seed, CNNCS, ECNNCS-1,
ECNNCS-2 and CNNCS with L = 3 lines, plus the density-map baseline, and scores
every arm by F1 at ρ over the whole test images (4.2). The claims compare them
pairwise (Table 2: ECNNCS-2 0.862 ≥ ECNNCS-1 0.851 ≥ CNNCS 0.821; 3.1 and Fig. 6:
the redundancy of many lines). The density map (``f1_density``) is measured
beside them: the paper does not compare with it, and it is the strongest
learned baseline here.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from wslbench.claims import Claim, ClaimSet
from wslbench.experiments.cnncs.config import cnncs_config
from wslbench.experiments.cnncs.data import make_cell_data
from wslbench.experiments.cnncs.evaluate import (
    evaluate_density_baseline,
    evaluate_local_maxima,
    train_density_baseline,
)
from wslbench.experiments.cnncs.train import evaluate_cnncs_images, train_cnncs

__all__ = ["CLAIMS", "measure", "FEW_LINES", "claims_table"]

#: L of the arm without redundancy (issue 23: "F1 with L = 27 lines exceeds F1 with L = 3").
FEW_LINES = 3

#: An arm below this F1 on any seed has learnt nothing to compare (a detector at chance
#: scores near 0): the comparison is void.
LEARNT = 0.25


def measure(preset: str, seed: int) -> dict[str, float]:
    """Whole-image F1 of every arm for one seed (shared data, D and initialisation seed).

    Returns:
        ``f1_cnncs``, ``f1_ecnncs1``, ``f1_ecnncs2``, ``f1_cnncs_few_lines``,
        ``f1_local_maxima``, ``f1_density`` and the ``lines`` of the main arms.
    """
    config = cnncs_config(preset, seed=seed)
    data = make_cell_data(config)
    out: dict[str, float] = {"lines": float(config.n_lines)}
    arms = {"cnncs": replace(config, variant="cnncs"),
            "ecnncs1": replace(config, variant="ecnncs1"),
            "ecnncs2": replace(config, variant="ecnncs2"),
            "cnncs_few_lines": replace(config, variant="cnncs", n_lines=FEW_LINES)}
    for name, arm in arms.items():
        out[f"f1_{name}"] = evaluate_cnncs_images(train_cnncs(arm, data), data)["f1"]
    out["f1_local_maxima"] = evaluate_local_maxima(config, data)["f1"]
    out["f1_density"] = evaluate_density_baseline(train_density_baseline(config, data), data)["f1"]
    return out


CLAIMS = ClaimSet(
    measure=measure,
    claims=(
        Claim("ecnncs2_ge_ecnncs1", "ECNNCS-2 (end to end, eq. 5–9) beats ECNNCS-1 (LISTA): "
              "F1 0.862 vs 0.851 on ICPR 2012 (4.3, Table 2)", "whole-image F1",
              "f1_ecnncs2", "f1_ecnncs1", floors={"f1_ecnncs1": LEARNT, "f1_ecnncs2": LEARNT}),
        Claim("ecnncs1_ge_cnncs", "ECNNCS-1 (end to end through LISTA) beats CNNCS (L2 only): "
              "F1 0.851 vs 0.821 (4.3, Table 2)", "whole-image F1",
              "f1_ecnncs1", "f1_cnncs", floors={"f1_cnncs": LEARNT, "f1_ecnncs1": LEARNT}),
        Claim("cnncs_beats_local_maxima", "CNNCS beats a classical detector (local maxima of "
              "a smoothed darkness map; 4.3 compares with the contest's entries)",
              "whole-image F1", "f1_cnncs", "f1_local_maxima",
              floors={"f1_cnncs": LEARNT, "f1_local_maxima": LEARNT}),
        Claim("redundancy_helps", f"Many lines (L = 27) beat few (L = {FEW_LINES}): the "
              "redundancy of the encoding (3.1, Fig. 6)", "whole-image F1",
              "f1_cnncs", "f1_cnncs_few_lines", floors={"f1_cnncs": LEARNT}),
    ),
)


def claims_table(path: Path | None = None) -> list[dict[str, object]]:
    """The recorded claims of ``wslbench reproduce 04_cnncs_cells --record`` as table rows
    (:func:`wslbench.runner.reproduce.claims_table`: verdict, each arm's mean F1, mean paired
    effect and its 95 % interval) with the density map's mean F1 beside them; ``[]`` when
    nothing is recorded yet.

    Args:
        path: a ``reproduce.json``; default the recorded one of the checkout.
    """
    from wslbench.runner.reproduce import RECORD_DIR
    from wslbench.runner.reproduce import claims_table as generic_table

    path = RECORD_DIR / "04_cnncs_cells.json" if path is None else Path(path)
    if not path.exists():
        return []
    document = json.loads(path.read_text())
    density = [m["f1_density"] for m in document.get("measurements", []) if "f1_density" in m]
    mean_density = sum(density) / len(density) if density else None
    return [{**row, "density-map F1": mean_density, "seeds": len(document["seeds"]),
             "preset": document["preset"]} for row in generic_table(document)]
