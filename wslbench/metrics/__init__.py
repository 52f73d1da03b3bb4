"""Metrics as ``compute_*`` functions plus ``*Metric`` accumulators (MONAI style).

* :mod:`~wslbench.metrics.roc` — image-level ROC AUC, DeLong CI and test (Quellec 2017, 5.5).
* :mod:`~wslbench.metrics.froc` — lesion candidates, matching, FROC curve and limited area
  (Quellec 2017, 5.5, Tables 2–3).
* :mod:`~wslbench.metrics.localisation` — pointing game and energy in mask.
* :mod:`~wslbench.metrics.faithfulness` — deletion/insertion curves and a ROAD-style score.
"""

from __future__ import annotations

from wslbench.metrics.faithfulness import (
    PerturbationCurve,
    RoadResult,
    deletion_curve,
    impute_neighbours,
    insertion_curve,
    road_score,
)
from wslbench.metrics.froc import (
    CandidateMatch,
    FROCMetric,
    MultiLesionFROCMetric,
    compute_froc,
    compute_froc_area,
    compute_froc_areas,
    extract_candidates,
    extract_candidates_batch,
    label_lesions,
    match_candidates,
)
from wslbench.metrics.localisation import check_maps_and_masks, energy_in_mask, pointing_game
from wslbench.metrics.roc import (
    ROCAUCMetric,
    compute_roc_auc,
    compute_roc_curve,
    delong_ci,
    delong_test,
)

__all__ = [
    "CandidateMatch",
    "FROCMetric",
    "MultiLesionFROCMetric",
    "PerturbationCurve",
    "ROCAUCMetric",
    "RoadResult",
    "check_maps_and_masks",
    "compute_froc",
    "compute_froc_area",
    "compute_froc_areas",
    "compute_roc_auc",
    "compute_roc_curve",
    "delong_ci",
    "delong_test",
    "deletion_curve",
    "energy_in_mask",
    "extract_candidates",
    "extract_candidates_batch",
    "impute_neighbours",
    "insertion_curve",
    "label_lesions",
    "match_candidates",
    "pointing_game",
    "road_score",
]
