"""Presets of the adversarial experiment (Rony 2020, Appendix V, Table A V-1 settings)."""

from __future__ import annotations

from dataclasses import dataclass

from wslbench.presets import PresetTable

__all__ = ["AdversarialConfig", "ADVERSARIAL_PRESETS", "REFERABLE_THRESHOLD", "adversarial_config"]


#: Score threshold between grade 1 and grade 2: referable DR (Quellec 2017, 5.3.1; DESIGN §8).
REFERABLE_THRESHOLD = 1.5


@dataclass(frozen=True)
class AdversarialConfig:
    """Attack budgets and adversarial training (Rony 2020, Appendix V, sections 5–7).

    Attributes:
        n_attack: correctly classified test images attacked per model.
        ddn_budgets: DDN iteration budgets (100, 300, 1000 in Table A V-1).
        cw_settings: C&W (search steps, iterations) pairs (4×25, 1×100, 9×10 000).
        ddn_gamma: DDN norm update factor γ (0.05).
        epsilons: L2 radii of the accuracy-vs-ε curves.
        adv_epochs, adv_max_norm, adv_attack_steps, adv_lr, clean_weight: DDN adversarial
            training (eq. A V-9: DDN 100 projected on the ε-ball; ε = 1 for CIFAR-10).
        amplify: factor of the displayed perturbation.
        seed: seed of the selection and the adversarial training.
    """

    n_attack: int = 24
    ddn_budgets: tuple[int, ...] = (100, 300, 1000)
    cw_settings: tuple[tuple[int, int], ...] = ((4, 25), (1, 100))
    ddn_gamma: float = 0.05
    epsilons: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
    adv_epochs: int = 3
    adv_max_norm: float = 0.5
    adv_attack_steps: int = 20
    adv_lr: float = 0.01
    clean_weight: float = 0.0
    amplify: float = 10.0
    seed: int = 0


ADVERSARIAL_PRESETS = PresetTable(
    AdversarialConfig,
    smoke=AdversarialConfig(n_attack=6, ddn_budgets=(10, 30), cw_settings=((2, 5), (1, 10)),
                            adv_epochs=1, adv_attack_steps=5),
    demo=AdversarialConfig(),
    paper=AdversarialConfig(n_attack=1000, cw_settings=((4, 25), (1, 100), (9, 10_000)),
                            adv_epochs=30, adv_max_norm=1.0, adv_attack_steps=100),
)


def adversarial_config(preset: str = "demo", /, **overrides: object) -> AdversarialConfig:
    """The ``preset`` configuration with ``overrides`` (``None`` keeps the preset's value)."""
    return ADVERSARIAL_PRESETS.build(preset, **overrides)
