"""Training utilities: loops, early stopping, schedulers, mixed sampling, augmentation."""

from __future__ import annotations

from wslbench.training.early_stopping import EarlyStopping
from wslbench.training.histology_augment import (
    HistologyAugmentRecord,
    RandomHistologyAugment,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    augment_images,
    augment_masks,
)
from wslbench.training.mixed_sampler import (
    LABELLED,
    UNLABELLED,
    MixedBatch,
    MixedBatchSampler,
    MixedEpochPlan,
    draw_mixed_plan,
    num_batches,
)
from wslbench.training.mri_training import (
    MRITrainingResult,
    SubjectSplits,
    predict_proba,
    standardized_mean_difference,
    subject_level_cv,
    train_mri_cnn,
)
from wslbench.training.schedules import CosineSchedule, StepSchedule, lambda_lr, sgd_nesterov

__all__ = [
    "HistologyAugmentRecord",
    "RandomHistologyAugment",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "augment_images",
    "augment_masks",
    "CosineSchedule",
    "StepSchedule",
    "lambda_lr",
    "sgd_nesterov",
    "LABELLED",
    "UNLABELLED",
    "MixedBatch",
    "MixedBatchSampler",
    "MixedEpochPlan",
    "draw_mixed_plan",
    "num_batches",
]
__all__ += [
    "EarlyStopping",
    "MRITrainingResult",
    "SubjectSplits",
    "predict_proba",
    "standardized_mean_difference",
    "subject_level_cv",
    "train_mri_cnn",
]
