"""Per-paper model architectures (dr, wsl, ssl, cnncs, mri)."""

from __future__ import annotations

from wslbench.models.dr import (
    DR_NETS,
    DR_THRESHOLDS,
    AlexNetDR,
    DRNet,
    NetA,
    NetB,
    build_dr_net,
    create_dr_net,
    dr_weight_decay_params,
    grades_from_score,
    list_dr_nets,
    min_input_size,
)
from wslbench.models.mri import (
    MRI_CNN_CONFIGS,
    MRI_GRID,
    MRICNN,
    MRICNNConfig,
    build_mri_cnn,
    mri_block_shapes,
)
from wslbench.models.ssl import (
    AECL1,
    AECL1_UPSAMPLING,
    SSL_MODELS,
    AERes18,
    SSLAutoencoderClassifier,
    SSLClassifierHead,
    create_ssl_model,
    list_ssl_models,
)

__all__ = [
    "DR_NETS",
    "DR_THRESHOLDS",
    "AlexNetDR",
    "DRNet",
    "NetA",
    "NetB",
    "build_dr_net",
    "create_dr_net",
    "dr_weight_decay_params",
    "grades_from_score",
    "list_dr_nets",
    "min_input_size",
    "MRI_CNN_CONFIGS",
    "MRI_GRID",
    "MRICNN",
    "MRICNNConfig",
    "build_mri_cnn",
    "mri_block_shapes",
    "SSL_MODELS",
    "AECL1_UPSAMPLING",
    "SSLAutoencoderClassifier",
    "SSLClassifierHead",
    "AECL1",
    "AERes18",
    "create_ssl_model",
    "list_ssl_models",
]

from wslbench.models.cnncs import CNNCS, CNNCS_VARIANTS, CNNCSOutput, CodeRegressor  # noqa: E402
from wslbench.models.density import (  # noqa: E402
    DensityNet,
    count_from_density,
    density_target,
    detect_peaks,
)
from wslbench.models.local_maxima import DARKNESS_MAPS, LocalMaximaDetector  # noqa: E402

__all__ += [
    "CNNCS",
    "CNNCS_VARIANTS",
    "CNNCSOutput",
    "CodeRegressor",
    "DensityNet",
    "count_from_density",
    "density_target",
    "detect_peaks",
    "DARKNESS_MAPS",
    "LocalMaximaDetector",
]

from wslbench.models.catalogue import MODELS, create_model, list_models, wsl_model  # noqa: E402

__all__ += ["MODELS", "create_model", "list_models", "wsl_model"]
