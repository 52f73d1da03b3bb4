"""Metrics as ``compute_*`` functions plus ``*Metric`` accumulators (MONAI style).

* :mod:`~wslbench.metrics.roc` — image-level ROC AUC, DeLong CI and test (Quellec 2017, 5.5).
* :mod:`~wslbench.metrics.froc` — lesion candidates, matching, FROC curve and limited area
  (Quellec 2017, 5.5, Tables 2–3).
* :mod:`~wslbench.metrics.localisation` — pointing game and energy in mask.
* :mod:`~wslbench.metrics.faithfulness` — deletion/insertion curves and a ROAD-style score.
* :mod:`~wslbench.metrics.classification` — accuracy, AP and mAP (Rony 2020, eqs. 2.1–2.2).
* :mod:`~wslbench.metrics.segmentation` — Dice and IoU per image, over all pixels, mIoU
  (Rony 2020, eqs. 2.3, 3.12–3.13, 4.14).
* :mod:`~wslbench.metrics.balanced_accuracy` — mean per-class recall (Thibeau-Sutre 2020, 2.2).
* :mod:`~wslbench.metrics.mask_similarity` — ROI vectors, cosine similarity, intra/inter-subject
  similarity, prob_CNN and overlap with a true atrophy map (Thibeau-Sutre 2020, 2.4).
"""

from __future__ import annotations

from wslbench.metrics.balanced_accuracy import BalancedAccuracyMetric, compute_balanced_accuracy
from wslbench.metrics.classification import (
    AccuracyMetric,
    APMetric,
    compute_accuracy,
    compute_average_precision,
    compute_map,
    compute_per_class_ap,
)
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
from wslbench.metrics.mask_similarity import (
    MaskOverlap,
    cosine_similarity,
    intra_inter_similarity,
    mask_overlap,
    mean_offdiagonal,
    prob_cnn,
    roi_vector,
    similarity_matrix,
    similarity_table,
)
from wslbench.metrics.roc import (
    ROCAUCMetric,
    compute_roc_auc,
    compute_roc_curve,
    delong_ci,
    delong_test,
)
from wslbench.metrics.segmentation import (
    SEGMENTATION_REDUCTIONS,
    DiceMetric,
    IoUMetric,
    compute_dice,
    compute_dice_per_image,
    compute_iou,
    compute_iou_per_image,
    dice_from_counts,
    iou_from_counts,
    segmentation_counts,
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
    "AccuracyMetric",
    "APMetric",
    "compute_accuracy",
    "compute_average_precision",
    "compute_map",
    "compute_per_class_ap",
    "SEGMENTATION_REDUCTIONS",
    "DiceMetric",
    "IoUMetric",
    "compute_dice",
    "compute_dice_per_image",
    "compute_iou",
    "compute_iou_per_image",
    "dice_from_counts",
    "iou_from_counts",
    "segmentation_counts",
]
__all__ += [
    "BalancedAccuracyMetric",
    "compute_balanced_accuracy",
    "MaskOverlap",
    "cosine_similarity",
    "intra_inter_similarity",
    "mask_overlap",
    "mean_offdiagonal",
    "prob_cnn",
    "roi_vector",
    "similarity_matrix",
    "similarity_table",
]

from wslbench.metrics.detection import (  # noqa: E402
    MATCHING_METHODS,
    DetectionMetric,
    DetectionScores,
    Matching,
    best_f1_threshold,
    compute_detection_scores,
    match_detections,
)

__all__ += [
    "MATCHING_METHODS",
    "DetectionMetric",
    "DetectionScores",
    "Matching",
    "best_f1_threshold",
    "compute_detection_scores",
    "match_detections",
]
