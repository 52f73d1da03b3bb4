"""Adversarial attacks (DDN, C&W L2), adversarial training and robustness evaluation.

Every attack: ``Attack(model, ...).run(x, y, targeted=False) -> AttackResult``.
"""

from __future__ import annotations

from wslbench.attacks.adversarial_training import adversarial_loss, train_adversarial
from wslbench.attacks.base import ATTACKS, AttackResult, ThresholdClassifier, is_adversarial
from wslbench.attacks.carlini_wagner import CarliniWagnerL2
from wslbench.attacks.carlini_wagner_tuning import (
    CW_INITIAL_CONSTS,
    CW_LEARNING_RATES,
    CWTuning,
    tune_carlini_wagner,
)
from wslbench.attacks.ddn import DDN, cosine_step_size
from wslbench.attacks.robustness import (
    attack_report,
    minimum_over_attacks,
    robust_accuracy_curve,
    worst_case_norms,
)

__all__ = [
    "ATTACKS",
    "AttackResult",
    "CW_INITIAL_CONSTS",
    "CW_LEARNING_RATES",
    "CWTuning",
    "CarliniWagnerL2",
    "DDN",
    "ThresholdClassifier",
    "adversarial_loss",
    "attack_report",
    "cosine_step_size",
    "is_adversarial",
    "minimum_over_attacks",
    "robust_accuracy_curve",
    "train_adversarial",
    "tune_carlini_wagner",
    "worst_case_norms",
]
