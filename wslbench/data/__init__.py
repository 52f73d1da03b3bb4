"""Synthetic generators, real-dataset loaders, preprocessing, augmentation, NIfTI I/O."""

from __future__ import annotations
