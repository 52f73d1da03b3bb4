"""DR screening with hue-constrained, sparsity-enhanced heatmaps (Quellec et al. 2017).

What notebook ``01_dr_heatmaps`` calls. The pipeline:

1. data (:func:`make_dr_data`): synthetic fundus cases with lesion masks
   (:mod:`wslbench.data.synthetic_fundus`), Graham-preprocessed as in 5.1.1;
2. training (:func:`train_dr`): net A / net B / AlexNet (Table 1) regress the
   grade with MSE, L2 weight decay 5e-4 on conv/dense weights and Adam (5.1.3),
   with the sparsity term L0 = ν‖∂L_L/∂m‖₁ (eq. 6) trained by double
   backpropagation (4.3) when ν > 0; the 5.1.1 augmentation; a checkpoint every
   ``checkpoint_every`` iterations, scored on the validation split;
3. heatmaps (:func:`dr_heatmaps`): ω (eq. 2), π (eq. 3), LRP and Grad-CAM through
   :mod:`wslbench.attribution`;
4. evaluation (:func:`evaluate_dr`): image-level ROC area with a DeLong 95 % CI
   (referable = grade ≥ 2), lesion-level FROC per lesion type with the area for
   0 ≤ FP/image ≤ μ divided by μ (5.5) and its average Ā_z;
5. the ν table (:func:`nu_table`, Table 2) and the checkpoint ensemble
   (:mod:`wslbench.experiments.dr.ensemble`, 5.6).

Choices where the paper is silent (documented and tested): lesion candidates are
the local maxima of the heatmap inside the field of view, at least
``candidate_distance`` pixels apart, scored by the heatmap value; the model kept
after training is the checkpoint with the best validation lesion FROC area (5.3
selects checkpoint and ν on held-out DiaretDB1 images; ``select="image_auc"`` is the
alternative). The paper's headline findings are claims
(:data:`~wslbench.experiments.dr.claims.CLAIMS`) for ``wslbench reproduce 01_dr_heatmaps``."""

from __future__ import annotations

from wslbench.experiments.dr.claims import CLAIMS
from wslbench.experiments.dr.config import (
    DR_PRESETS,
    DRConfig,
    dr_config,
    input_reference,
    nu_area,
)
from wslbench.experiments.dr.data import (
    DRData,
    DRSplit,
    contralateral_index,
    fit_input_size,
    fov_statistics,
    make_dr_data,
    preprocess_images,
    preprocess_real_image,
    shortcut_probe,
)
from wslbench.experiments.dr.evaluate import (
    HEATMAP_METHODS,
    DREvaluation,
    compare_heatmaps,
    dr_heatmaps,
    evaluate_dr,
    grad_cam_layer,
    lesion_candidates,
    predict_scores,
)
from wslbench.experiments.dr.export import (
    model_metrics,
    referable_calibration,
    save_model,
)
from wslbench.experiments.dr.train import (
    DRCheckpoint,
    DRTraining,
    nu_table,
    save_dr_checkpoints,
    train_dr,
    train_dr_cached,
)

__all__ = ["CLAIMS", "DRConfig", "DR_PRESETS", "HEATMAP_METHODS", "DRSplit", "DRData", "DRCheckpoint", "DRTraining", "DREvaluation", "dr_config", "input_reference", "nu_area", "grad_cam_layer", "make_dr_data", "fov_statistics", "shortcut_probe", "contralateral_index", "preprocess_images", "preprocess_real_image", "fit_input_size", "predict_scores", "train_dr", "train_dr_cached", "save_dr_checkpoints", "dr_heatmaps", "lesion_candidates", "evaluate_dr", "nu_table", "compare_heatmaps", "referable_calibration", "model_metrics", "save_model"]
