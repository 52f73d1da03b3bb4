"""Metrics as compute_* functions plus *Metric accumulators."""

from __future__ import annotations
