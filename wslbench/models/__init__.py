"""Per-paper model architectures (dr, wsl, ssl, cnncs, mri)."""

from __future__ import annotations
