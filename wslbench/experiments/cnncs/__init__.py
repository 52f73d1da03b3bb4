"""Cell detection by CNN + compressed sensing, end to end (Xue et al.): what notebook 04 calls.

Pipeline (3.1–3.2, 4.1–4.3): synthetic microscopy images with mitosis-like
targets among look-alike nuclei → non-overlapping patches and their three 90°
rotations (4.3) → the label ``{x, β·c}`` of each patch by random projections →
a ResNet regressing it → sparse recovery (LISTA / any solver with the custom
backward) → per-line peaks, back-projection and mean-shift → cell centres →
precision, recall and F1 at distance ρ (4.2), pooled over the test patches.
Baselines: the FCRN-style density-map network (Gaussian dots of 100, σ = 1,
peaks as detections) and local maxima of a smoothed darkness map.

Hyper-parameters of 4.3 (ICPR 2012): m = 112, L = 27, β = 0.20, λ = 0.39,
α = 1.3, mean-shift bandwidth 40 on 260 px patches; they are the ``paper``
preset. The synthetic images are at most 512 px, so the ``paper`` preset cuts
256 px patches (4 per image) from 560 training images: 8,960 patches with the
rotations, as in 4.3. The ``smoke``/``demo`` presets shrink patches, codes and
the ResNet so that the three variants train in minutes on a CPU."""

from __future__ import annotations

from wslbench.experiments.cnncs.claims import (
    CLAIMS,
    claims_table,
)
from wslbench.experiments.cnncs.config import (
    CNNCS_PRESETS,
    CNNCSConfig,
    cnncs_config,
)
from wslbench.experiments.cnncs.data import (
    CellData,
    make_cell_data,
)
from wslbench.experiments.cnncs.evaluate import (
    ImageCodes,
    ImageDetections,
    RealDetection,
    detect_cells,
    evaluate_density_baseline,
    evaluate_detections,
    evaluate_local_maxima,
    predict_codes,
    solver_comparison,
    train_density_baseline,
)
from wslbench.experiments.cnncs.export import (
    save_model,
)
from wslbench.experiments.cnncs.train import (
    CNNCSTraining,
    build_cnncs,
    build_codec,
    compare_variants,
    decode_image_codes,
    detect_in_image,
    evaluate_cnncs,
    evaluate_cnncs_images,
    image_codes,
    load_backbone,
    real_image_detections,
    train_cnncs,
    train_cnncs_cached,
)

__all__ = ["CLAIMS", "claims_table", "CNNCSConfig", "CNNCS_PRESETS", "cnncs_config", "CellData", "make_cell_data", "build_codec", "build_cnncs", "load_backbone", "CNNCSTraining", "train_cnncs", "train_cnncs_cached", "predict_codes", "detect_cells", "evaluate_detections", "evaluate_cnncs", "evaluate_cnncs_images", "compare_variants", "train_density_baseline", "evaluate_density_baseline", "evaluate_local_maxima", "solver_comparison", "detect_in_image", "RealDetection", "real_image_detections", "save_model", "ImageCodes", "ImageDetections", "image_codes", "decode_image_codes"]
