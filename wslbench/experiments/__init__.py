"""High-level, per-paper functions that the notebooks call."""

from __future__ import annotations

from wslbench.experiments.cache import ExperimentCache, clear_caches, list_caches

__all__ = ["ExperimentCache", "clear_caches", "list_caches"]
