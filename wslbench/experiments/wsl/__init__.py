"""Weakly supervised histology: pooling heads, CAMs and size supervision (Rony 2020, ch. 1–4).

What notebook ``02_wsl_histology`` calls. A ResNet backbone (4.4.2: total stride
32 or 16) feeds any pooling head of :mod:`wslbench.pooling`; the model is trained
from image labels only (chapters 2–3) or from image labels plus the size of the
positive region (chapter 4: KL, L2, adaptive robust loss, Jia et al.), with SGD
Nesterov 0.9, weight decay 1e-4, a step (2.1.3.1: lr ÷ 10 at half the epochs) or
cosine (4.4.2) schedule and the 2.1.3.1 augmentations, on k folds with a fixed
test set (mean ± std over folds).

Localisation (the Dice of 2.1.2.1 and 4.4.1):

- image-label models: the CAM of the true class, upsampled, binarised with the
  head's threshold (zero-score rule, 1/(HW) for Deep MIL attention);
- size-supervised models have one more CAM channel, the background (4.3): the
  segmentation is the arg max over the upsampled softmax CAMs and the predicted
  foreground is the true class's region.

Dice is computed over all pixels of the test set with the foreground classes
pooled (eq. 4.14); accuracy from the image-level scores (the background channel
excluded); AP is the mean over classes of the one-vs-rest average precision."""

from __future__ import annotations

from wslbench.experiments.wsl.claims import (
    CLAIMS,
    recorded_claims,
)
from wslbench.experiments.wsl.config import (
    SIZE_LOSSES,
    WSL_PRESETS,
    WSLConfig,
    wsl_config,
)
from wslbench.experiments.wsl.data import (
    WSLData,
    make_wsl_data,
)
from wslbench.experiments.wsl.evaluate import (
    TABLE_4_1,
    evaluate_wsl,
    predict_wsl,
    real_image_tensor,
    train_unet,
)
from wslbench.experiments.wsl.export import (
    save_models,
)
from wslbench.experiments.wsl.train import (
    WSLTraining,
    build_wsl_model,
    cam_gallery,
    compare_methods,
    cross_validate,
    real_image_cams,
    sweep_parameter,
    train_wsl,
    train_wsl_cached,
)

__all__ = ["CLAIMS", "recorded_claims", "WSLConfig", "WSL_PRESETS", "SIZE_LOSSES", "WSLData", "WSLTraining", "wsl_config", "make_wsl_data", "build_wsl_model", "train_wsl", "train_wsl_cached", "predict_wsl", "evaluate_wsl", "cross_validate", "compare_methods", "train_unet", "sweep_parameter", "real_image_tensor", "real_image_cams", "TABLE_4_1", "cam_gallery", "save_models"]
