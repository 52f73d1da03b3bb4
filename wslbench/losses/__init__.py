"""Loss functions of the five papers."""

from __future__ import annotations

from wslbench.losses.cs import cnncs_loss
from wslbench.losses.entropy import entropy_loss
from wslbench.losses.robust import (
    ALPHA_MAX,
    AdaptiveRobustLoss,
    general_robust_loss,
    log_partition,
    robust_nll,
)
from wslbench.losses.size import (
    SIZE_LOSSES,
    SizeSupervisedLoss,
    apply_size_noise,
    create_size_loss,
    draw_size_noise,
    generalized_mean,
    jia_size_loss,
    kl_size_loss,
    l2_size_loss,
    list_size_losses,
    perturb_sizes,
    predicted_sizes,
)
from wslbench.losses.sparsity import CRITERIA, SparsityEnhancedLoss, sparsity_enhanced_loss
from wslbench.losses.ssl import (
    PAPER_LAMBDAS,
    CombinedLoss,
    adaptive_lambda,
    autoencoder_loss,
    weighted_bce_loss,
)

__all__ = [
    "cnncs_loss",
    "CRITERIA",
    "SparsityEnhancedLoss",
    "sparsity_enhanced_loss",
    "ALPHA_MAX",
    "AdaptiveRobustLoss",
    "general_robust_loss",
    "log_partition",
    "robust_nll",
    "entropy_loss",
    "SIZE_LOSSES",
    "SizeSupervisedLoss",
    "create_size_loss",
    "list_size_losses",
    "generalized_mean",
    "predicted_sizes",
    "kl_size_loss",
    "l2_size_loss",
    "jia_size_loss",
    "draw_size_noise",
    "apply_size_noise",
    "perturb_sizes",
    "PAPER_LAMBDAS",
    "CombinedLoss",
    "adaptive_lambda",
    "autoencoder_loss",
    "weighted_bce_loss",
]
