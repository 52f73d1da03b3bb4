"""Adversarial robustness of the histology and DR models (Rony 2020, Appendix V).

What notebook ``02b_adversarial`` calls: the two models under attack with their
held-out images (:func:`attack_targets`), the C&W grid search of Table A V-9, the
Table A V-1 comparison of DDN budgets against the tuned C&W settings, accuracy-vs-ε
curves of the undefended and the DDN adversarially trained model (eq. A V-9) under
each attack and their per-image minimum ("All", Tables A V-5/6), the original /
amplified perturbation / adversarial images, and the claims of ``wslbench
reproduce 02b``. Inputs are in [0, 1]; the DR net (one regression score) is
attacked through :class:`~wslbench.attacks.ThresholdClassifier` at the referable
threshold 1.5 (grades ≥ 2, Quellec 2017, 5.3.1)."""

from __future__ import annotations

from wslbench.experiments.adversarial.claims import (
    ADVERSARIAL_CLAIMS,
    CLAIM_RADII,
    measure,
    measure_target,
)
from wslbench.experiments.adversarial.config import (
    ADVERSARIAL_PRESETS,
    REFERABLE_THRESHOLD,
    AdversarialConfig,
    adversarial_config,
)
from wslbench.experiments.adversarial.data import (
    AttackTarget,
    attack_targets,
    cap_attack_count,
    correctly_classified,
    referable_classifier,
)
from wslbench.experiments.adversarial.evaluate import (
    attack_table,
    cw_reference,
    perturbation_views,
    robustness_curves,
    tune_cw_settings,
    tuning_rows,
    without_timing,
)
from wslbench.experiments.adversarial.train import adversarially_trained

__all__ = [
    "ADVERSARIAL_CLAIMS", "ADVERSARIAL_PRESETS", "AdversarialConfig", "AttackTarget",
    "CLAIM_RADII", "REFERABLE_THRESHOLD", "adversarial_config", "adversarially_trained",
    "attack_table", "attack_targets", "cap_attack_count", "correctly_classified", "cw_reference",
    "measure", "measure_target", "perturbation_views", "referable_classifier",
    "robustness_curves", "tune_cw_settings", "tuning_rows", "without_timing",
]
