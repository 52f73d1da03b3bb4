"""Attribution maps: ``Method(model).attribute(x, target=None) -> (B, 1, H, W)`` or ``(B, 1, D, H, W)``."""

from __future__ import annotations

from wslbench.attribution.base import (
    ATTRIBUTION,
    Attribution,
    check_input,
    create_attribution,
    list_attribution,
    preserved_model_state,
    register_attribution,
    select_target,
)

__all__ = [
    "ATTRIBUTION",
    "Attribution",
    "check_input",
    "create_attribution",
    "list_attribution",
    "preserved_model_state",
    "register_attribution",
    "select_target",
]
