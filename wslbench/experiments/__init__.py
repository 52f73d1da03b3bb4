"""High-level, per-paper functions that the notebooks call."""

from __future__ import annotations
