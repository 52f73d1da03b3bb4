"""The paper's findings as claims for ``wslbench reproduce 05_mri_masks`` (issue 24 item 6).

One seed = one synthetic cohort (``seed``) and one CNN initialisation (``train_seed``),
fold 0; every arm of a seed shares them. :func:`measure` returns:

- ``test_balanced_accuracy`` and ``chance_balanced_accuracy`` (0.5, a classifier that
  ignores the image), ``val_balanced_accuracy`` (the floor every mask claim needs);
- the group mask's ``energy_in_atrophy`` (share of ``1 − m`` inside the true atrophy)
  and ``energy_3x_share`` (three times the atrophy's share of the brain), and
  ``ad_probability_drop`` (1 − prob_CNN masked / unmasked on validation AD, 2.4);
- ``neighbour_similarity``: mean ROI similarity (2.4) of the group mask with the masks of
  the neighbouring values λ₁ = 10⁻³ (Table 3A), λ₂ = 10⁻⁴ (Table 3B) and β₁ = 0.5
  (Table 2A), at the demo's λ₂ = 10⁻³ (the paper's Table 2 value); a neighbour whose mask
  perturbs nothing counts 0;
- ``intra_subject_similarity`` / ``inter_subject_similarity`` of session masks (2.3.4).

A CNN below ``min_val_balanced_accuracy`` gets no mask (refused, see
:func:`~wslbench.experiments.mri.masks.learned_run`): its mask arms are NaN and its
``val_balanced_accuracy`` fails the floors, so no mask claim can pass on it.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import torch

from wslbench.claims import Claim, ClaimSet
from wslbench.experiments.mri.config import MRIConfig, mri_config
from wslbench.experiments.mri.data import make_mri_data
from wslbench.experiments.mri.masks import (
    group_mask_cached,
    intra_inter,
    mask_report,
    session_masks,
)
from wslbench.experiments.mri.train import train_fold_cached
from wslbench.metrics.mask_similarity import roi_vector

__all__ = ["CLAIMS", "measure", "NEIGHBOURS", "recorded_claims"]

#: Neighbouring hyper-parameter values compared with the preset's group mask (Tables 2–3).
NEIGHBOURS: dict[str, float] = {"lambda1": 1e-3, "lambda2": 1e-4, "beta1": 0.5}

_MASK_ARMS = ("energy_in_atrophy", "energy_3x_share", "ad_probability_drop",
              "neighbour_similarity", "intra_subject_similarity", "inter_subject_similarity")


def measure(preset: str, seed: int) -> dict[str, float]:
    """Every arm of one seed (module docstring)."""
    config = mri_config(preset, seed=seed, train_seed=seed)
    data = make_mri_data(config)
    run = train_fold_cached(config, data, 0)
    out = {"test_balanced_accuracy": float(run.test_balanced_accuracy),
           "chance_balanced_accuracy": 0.5,
           "val_balanced_accuracy": float(run.val_balanced_accuracy or 0.0)}
    if out["val_balanced_accuracy"] < config.min_val_balanced_accuracy:
        return {**out, **{arm: math.nan for arm in _MASK_ARMS}}
    base = group_mask_cached(config, data).mask
    report = mask_report(config, data, base)
    neighbours = [group_mask_cached(replace(config, **{name: value}), data).mask
                  for name, value in NEIGHBOURS.items()]
    sessions = session_masks(config, data)
    intra, inter = intra_inter(sessions.masks, sessions.subjects, data.atlas)
    return {**out, "energy_in_atrophy": report["energy_in_atrophy"],
            "energy_3x_share": 3.0 * report["atrophy_share"],
            "ad_probability_drop": report["ad_probability_drop"],
            "neighbour_similarity": _neighbour_similarity(base, neighbours, data.atlas.labels),
            "intra_subject_similarity": math.nan if intra is None else intra,
            "inter_subject_similarity": math.nan if inter is None else inter}


def _neighbour_similarity(base: torch.Tensor, neighbours: list[torch.Tensor],
                          labels: np.ndarray) -> float:
    """Mean ROI cosine similarity (2.4) of the base group mask with each neighbour's; a mask
    that perturbs no ROI (all ones after the 0.95 threshold: its regularisation won) shares no
    location with any other and counts 0 (NaN if the base mask itself is such a mask)."""
    vectors = roi_vector(torch.cat([base, *neighbours]), labels)
    norms = np.linalg.norm(vectors, axis=1)
    if norms[0] == 0:
        return math.nan
    return float(np.mean([v @ vectors[0] / (n * norms[0]) if n > 0 else 0.0
                          for v, n in zip(vectors[1:], norms[1:])]))


_LEARNED = {"val_balanced_accuracy": MRIConfig.min_val_balanced_accuracy}

CLAIMS = ClaimSet(measure=measure, claims=(
    Claim("cnn_learns",
          "3: the CNN classifies AD vs CN well on the independent test set (paper: test "
          "balanced accuracy 0.88 over folds); here: above 0.8",
          "test balanced accuracy", "test_balanced_accuracy", "chance_balanced_accuracy",
          threshold=0.3),
    Claim("mask_finds_atrophy",
          "3.2.1: the group mask lies in the regions atrophied in AD; here: its energy inside "
          "the true atrophy is at least 3x the atrophy's share of the brain, and masking "
          "lowers the AD probability of validation AD by at least half (floor)",
          "share of mask energy in true atrophy", "energy_in_atrophy", "energy_3x_share",
          floors={**_LEARNED, "ad_probability_drop": 0.5}),
    Claim("stable_neighbours",
          "3.2.3, Tables 2-3: masks of neighbouring beta1 / lambda values are more similar "
          "than masks of different subjects (0.9 vs 0.80); here: above the inter-subject "
          "similarity, and at least 0.9 in every seed (floor)",
          "ROI similarity", "neighbour_similarity", "inter_subject_similarity",
          floors={**_LEARNED, "neighbour_similarity": 0.9}),
    Claim("intra_gt_inter",
          "3.2.2: session masks of one subject are more similar than those of different "
          "subjects (ROI similarity 0.94 vs 0.80)",
          "ROI similarity", "intra_subject_similarity", "inter_subject_similarity",
          floors=_LEARNED),
))


def recorded_claims(stem: str = "05_mri_masks") -> object:
    """The claims table of the last ``wslbench reproduce 05_mri_masks --record``: one row per
    claim with its verdict, paired effect, 95 % interval, threshold and per-seed arms (an
    empty table with a ``note`` column when nothing was recorded yet)."""
    import pandas as pd

    from wslbench.runner.reproduce import RECORD_DIR

    path = RECORD_DIR / f"{stem}.json"
    if not path.exists():
        return pd.DataFrame({"note": [f"no recorded reproduction yet: run `wslbench reproduce "
                                      f"{stem} --seeds 3 --record`"]})
    document = json.loads(path.read_text())
    return pd.DataFrame([{
        "claim": c["id"], "reproduced": c["reproduced"], "effect": round(c["effect"], 4),
        "ci95": [round(v, 4) for v in c["ci95"]], "threshold": c["threshold"],
        "arms": {k: [round(v, 3) for v in vs] for k, vs in c["arms"].items()},
        "below floor": "; ".join(c["below_floor"]),
    } for c in document["claims"]]).set_index("claim")
