"""Loss functions of the five papers."""

from __future__ import annotations

from wslbench.losses.sparsity import CRITERIA, SparsityEnhancedLoss, sparsity_enhanced_loss

__all__ = ["CRITERIA", "SparsityEnhancedLoss", "sparsity_enhanced_loss"]
