"""Attribution maps: Method(model).attribute(x, target=None) -> (B, 1, H, W) or (B, 1, D, H, W)."""

from __future__ import annotations
