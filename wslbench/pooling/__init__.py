"""WSL pooling heads behind one interface: features (B, K, H, W) -> scores (B, C), maps (B, C, H, W)."""

from __future__ import annotations
