"""wslbench: a workbench for weakly supervised and explainable deep learning in medical imaging.

Subpackages (see README, "Architecture"): ``nn`` layers and backbones,
``models`` per paper, ``pooling`` WSL heads, ``attribution`` heatmaps,
``losses``, ``cs`` compressed sensing, ``attacks``, ``data``, ``metrics``,
``training``, ``experiments`` (what notebooks call), ``runner`` (papermill,
grids, run folders), ``viz`` and ``widgets``.
"""

from __future__ import annotations

from wslbench.errors import (
    ConfigError,
    DataFormatError,
    DataNotFoundError,
    InvalidInputError,
    RunError,
    UnsafeFileError,
    WslbenchError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "WslbenchError",
    "InvalidInputError",
    "ConfigError",
    "DataNotFoundError",
    "DataFormatError",
    "RunError",
    "UnsafeFileError",
]
