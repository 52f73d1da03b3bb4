"""Adversarial robustness of the histology and DR models (Rony 2020, Appendix V).

What notebook ``02b_adversarial`` calls: the Table A V-1 comparison of DDN
budgets against C&W settings on one model and one batch, accuracy-vs-ε curves
for a clean and a DDN adversarially trained model (eq. A V-9), and the
original / amplified perturbation / adversarial images with their heatmaps
before and after the attack. Inputs are in [0, 1]; the DR nets (one regression
score) are attacked through :class:`~wslbench.attacks.ThresholdClassifier` at the
referable threshold 1.5 (grades ≥ 2, Quellec 2017, 5.3.1)."""

from __future__ import annotations

from wslbench.experiments.adversarial.config import (
    ADVERSARIAL_PRESETS,
    REFERABLE_THRESHOLD,
    AdversarialConfig,
    adversarial_config,
)
from wslbench.experiments.adversarial.data import (
    correctly_classified,
)
from wslbench.experiments.adversarial.evaluate import (
    attack_table,
    perturbation_views,
    referable_classifier,
    robustness_curves,
    without_timing,
)
from wslbench.experiments.adversarial.train import (
    adversarially_trained,
)

__all__ = ["AdversarialConfig", "ADVERSARIAL_PRESETS", "REFERABLE_THRESHOLD", "adversarial_config", "referable_classifier", "correctly_classified", "attack_table", "without_timing", "robustness_curves", "adversarially_trained", "perturbation_views"]
