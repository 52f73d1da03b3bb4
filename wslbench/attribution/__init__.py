"""Attribution maps: ``Method(model).attribute(x, target=None) -> (B, 1, H, W)`` or ``(B, 1, D, H, W)``.

Registered methods (``create_attribution(name, model, **kwargs)``,
``list_attribution()``): ``"sensitivity"`` (ω, Quellec 2017 eq. 2),
``"hue-constrained"`` (π, eq. 3), ``"gradient-x-input"``, ``"lrp"``,
``"grad-cam"``, ``"cam"``, ``"occlusion"`` and ``"meaningful-perturbation"``
(Thibeau-Sutre 2020, eq. 1–2; group- and session-level masks). Maps are raw (their natural
scale and sign); :func:`normalize` rescales them for display.
"""

from __future__ import annotations

from wslbench.attribution.base import (
    ATTRIBUTION,
    Attribution,
    check_input,
    create_attribution,
    list_attribution,
    register_attribution,
    select_target,
)
from wslbench.attribution.cam import CAM
from wslbench.attribution.grad_cam import GradCAM
from wslbench.attribution.gradient_x_input import GradientXInput
from wslbench.attribution.hue_constrained import HueConstrainedSensitivity
from wslbench.attribution.lrp import LRP, LRP_RULES
from wslbench.attribution.meaningful_perturbation import (
    MeaningfulPerturbation,
    PerturbationResult,
    apply_threshold,
    mask_sparsity_term,
    mask_tv_term,
    perturb,
)
from wslbench.attribution.normalize import NORMALIZE_POLICIES, normalize
from wslbench.attribution.occlusion import Occlusion
from wslbench.attribution.sensitivity import Sensitivity

__all__ = [
    "ATTRIBUTION",
    "Attribution",
    "check_input",
    "create_attribution",
    "list_attribution",
    "register_attribution",
    "select_target",
    "CAM",
    "GradCAM",
    "GradientXInput",
    "HueConstrainedSensitivity",
    "LRP",
    "LRP_RULES",
    "MeaningfulPerturbation",
    "PerturbationResult",
    "apply_threshold",
    "mask_sparsity_term",
    "mask_tv_term",
    "perturb",
    "NORMALIZE_POLICIES",
    "normalize",
    "Occlusion",
    "Sensitivity",
]
