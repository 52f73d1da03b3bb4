"""WSL pooling heads behind one interface: features (B, K, H, W) -> scores (B, C), maps (B, C, H, W).

Every head is an ``nn.Module`` whose call returns
``PoolingOutput(scores, maps)`` (a named tuple): per-class logits ``(B, C)``
and maps at feature resolution ``(B, C, H, W)`` — CAMs, or attention weights
for the Deep MIL heads (Rony 2020, 1.3.2.1, chapter 3).

Registered heads (``create_pooling(name, in_channels=K, num_classes=C, **hyper)``,
``list_pooling()``): ``"gap"`` (CAM, eq. 3.4), ``"max"``, ``"lse"`` (eq. 3.7, ``q``),
``"wildcat"`` (eq. 3.8, ``modalities``, ``k_pos``, ``k_neg``, ``alpha``),
``"deepmil"`` (eq. 1.4–1.6, ``hidden_channels``, ``gated``), ``"deepmil-multi"``
(1.3.4) and ``"mcattention"`` (eq. 3.10–3.11, ``dropout``).
:class:`WSLModel` puts any head on any backbone; :mod:`~wslbench.pooling.postprocess`
turns maps into pixel decisions (upsampling, background, binarisation, TTA).
"""

from __future__ import annotations

from wslbench.pooling.base import (
    POOLING,
    PoolingHead,
    PoolingOutput,
    create_pooling,
    linear_maps,
    list_pooling,
    register_pooling,
)
from wslbench.pooling.deepmil import DeepMIL
from wslbench.pooling.deepmil_multi import DeepMILMulti
from wslbench.pooling.gap import GlobalAveragePooling
from wslbench.pooling.lse import LSEPooling, lse_pool
from wslbench.pooling.max_pool import MaxPooling
from wslbench.pooling.mc_attention import (
    MultiClassAttentionPooling,
    draw_score_dropout,
    mc_attention_pool,
)
from wslbench.pooling.model import WSLModel
from wslbench.pooling.postprocess import (
    TTA_SCALES,
    binarize_maps,
    localisation_masks,
    tta_predict,
    upsample_maps,
    zero_score_labels,
)
from wslbench.pooling.wildcat import WildcatPooling, resolve_k, wildcat_pool

__all__ = [
    "POOLING",
    "PoolingHead",
    "PoolingOutput",
    "create_pooling",
    "linear_maps",
    "list_pooling",
    "register_pooling",
    "DeepMIL",
    "DeepMILMulti",
    "GlobalAveragePooling",
    "LSEPooling",
    "lse_pool",
    "MaxPooling",
    "MultiClassAttentionPooling",
    "draw_score_dropout",
    "mc_attention_pool",
    "WSLModel",
    "TTA_SCALES",
    "binarize_maps",
    "localisation_masks",
    "tta_predict",
    "upsample_maps",
    "zero_score_labels",
    "WildcatPooling",
    "resolve_k",
    "wildcat_pool",
]
