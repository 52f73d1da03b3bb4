"""Compressed sensing: codec, batched solvers, recovery layer, decoding (Xue et al.)."""

from __future__ import annotations

from wslbench.cs.codec import LineGeometry, ProjectionCodec
from wslbench.cs.decode import Decoded, decode, find_peaks, mean_shift
from wslbench.cs.recovery import RecoveryLayer, sparse_recovery
from wslbench.cs.solvers import (
    FISTA,
    ISTA,
    LISTA,
    OMP,
    SOLVERS,
    Solver,
    create_solver,
    list_solvers,
)

__all__ = [
    "LineGeometry",
    "ProjectionCodec",
    "Decoded",
    "decode",
    "find_peaks",
    "mean_shift",
    "RecoveryLayer",
    "sparse_recovery",
    "SOLVERS",
    "Solver",
    "ISTA",
    "FISTA",
    "LISTA",
    "OMP",
    "create_solver",
    "list_solvers",
]
