"""Compressed sensing: codec, batched solvers, recovery layer, decoding (Xue et al.)."""

from __future__ import annotations
