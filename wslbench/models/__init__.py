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
]
