"""Weakly supervised histology: pooling heads, CAMs and size supervision (Rony 2020, ch. 1–4).

What notebook ``02_wsl_histology`` calls. A ResNet backbone (4.4.2: total stride
32 or 16) feeds any pooling head of :mod:`wslbench.pooling`; the model is trained
from image labels only (chapters 2–3) or from image labels plus the size of the
positive region (chapter 4: KL, L2, adaptive robust loss, Jia et al.), with SGD
Nesterov 0.9, weight decay 1e-4, a step (2.1.3.1: lr ÷ 10 at half the epochs) or
cosine (4.4.2) schedule and the 2.1.3.1 augmentations, on k folds with a fixed
test set (mean ± std over folds).

Localisation (the Dice of 2.1.2.1 and 4.4.1), as pixel labels (0 background, c + 1 class c):

- image-label models: the CAM of the *predicted* class, upsampled, binarised with the
  head's threshold (zero-score rule, 1/(HW) for Deep MIL attention);
- the proposed size losses have one more CAM channel, the background (4.3): the
  segmentation is the arg max over the upsampled softmax CAMs (eq. 4.6);
- Jia et al. (eq. 4.1-4.3): sigmoid class maps, the class of the largest σ above 1/2;
- CAMELYON: the metastatic map only, whatever the class (Table 2.8).

Dice is eq. 4.14 over all pixels of the test set on one-hot masks, the foreground
classes pooled (a gland given the other class is an error of both); ``dice_image`` is
its per-image mean (metastatic images only for CAMELYON); accuracy from the image-level
scores (background excluded; Jia: the generalised means); AP of the positive class for
binary tasks, the mean over classes otherwise. Models are selected on the validation
fold by the size error of eq. 4.6 (size-supervised) or the accuracy (image labels).
Claims for ``wslbench reproduce``: :mod:`wslbench.experiments.wsl.claims`."""

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
    image_scores,
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

__all__ = ["CLAIMS", "recorded_claims", "WSLConfig", "WSL_PRESETS", "SIZE_LOSSES", "WSLData", "WSLTraining", "wsl_config", "make_wsl_data", "build_wsl_model", "train_wsl", "train_wsl_cached", "image_scores", "predict_wsl", "evaluate_wsl", "cross_validate", "compare_methods", "train_unet", "sweep_parameter", "real_image_tensor", "real_image_cams", "TABLE_4_1", "cam_gallery", "save_models"]
