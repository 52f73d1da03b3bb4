"""Presets of the adversarial experiment (Rony 2020, Appendix V, sections 5–7, Tables A V-1, A V-5/6, A V-9)."""

from __future__ import annotations

from dataclasses import dataclass

from wslbench.attacks import CW_INITIAL_CONSTS, CW_LEARNING_RATES
from wslbench.errors import ConfigError
from wslbench.presets import PresetTable

__all__ = ["AdversarialConfig", "ADVERSARIAL_PRESETS", "REFERABLE_THRESHOLD", "adversarial_config"]


#: Score threshold between grade 1 and grade 2: referable DR (Quellec 2017, 5.3.1; DESIGN §8).
REFERABLE_THRESHOLD = 1.5


@dataclass(frozen=True)
class AdversarialConfig:
    """Models under attack, attack budgets and adversarial training (Rony 2020, Appendix V).

    Attributes:
        model_preset: preset of notebooks 01 and 02 the attacked models are trained with.
        histology_size, histology_width, histology_stride: image side, ResNet width and output
            stride of the histology model (notebook 02's ``image_size`` / ``base_width`` /
            ``output_stride``; stride 32 is the chapter-2 classifier, 2.1.3.1; the rest is
            that preset's).
        dr_size: image and input side of the DR model (notebook 01's; the rest is that preset's).
        n_attack: held-out images per model for Table A V-1 and the robustness curves
            (never seen in training; the table attacks the correctly classified ones).
        n_tune: held-out images (distinct from the attacked ones) of the C&W grid search.
        ddn_budgets: DDN iteration budgets (100, 300, 1000 in Table A V-1).
        cw_settings: C&W (search steps, iterations) pairs of the table (4×25, 1×100).
        cw_learning_rates, cw_initial_consts: the grid search of Appendix V, 5 (Table A V-9).
        cw_reference: the long C&W run of ``ddn_fewer_gradients`` (9×10 000 with early abort).
        n_reference: attacked images the long run covers (the first ones of the table).
        ddn_gamma: DDN norm update factor γ (0.05).
        epsilons: L2 radii of the accuracy-vs-ε curves (0.5 and 1 are Tables A V-5/6's).
        histology_adv_max_norm, dr_adv_max_norm: radius ε of the ball DDN's training examples are
            projected on, per target (section 7 sets it per data set: 2.4 for MNIST, 1 for
            CIFAR-10). The claims read accuracy at ε and ε/2 (Table A V-6 reads CIFAR-10's
            ε = 1 model at 0.5). Demo DR: 0.25, about the undefended model's median DDN norm
            (0.26, seed 0); measured on seed 0, ε = 1 collapses the DR model to one class
            (clean accuracy 0.875 → 0.625 = prevalence), ε = 0.5 costs 17 points of clean
            accuracy, ε = 0.25 none while the median DDN norm triples (0.26 → 0.76).
        adv_epochs, adv_attack_steps, adv_lr, adv_weight_decay, adv_decay_epoch:
            DDN adversarial training (eq. A V-9; section 7: DDN 100, SGD momentum 0.9,
            lr 0.01 then ÷10).
        clean_weight: weight of the clean loss (eq. A V-6; 0 is eq. A V-9).
        amplify: factor of the displayed perturbation.
        seed: seed of the models, the images and the adversarial training.
    """

    model_preset: str = "demo"
    histology_size: int = 64
    histology_width: int = 8
    histology_stride: int = 32
    dr_size: int = 64
    n_attack: int = 48
    n_tune: int = 8
    ddn_budgets: tuple[int, ...] = (100, 300)
    cw_settings: tuple[tuple[int, int], ...] = ((4, 25), (1, 100))
    cw_learning_rates: tuple[float, ...] = CW_LEARNING_RATES
    cw_initial_consts: tuple[float, ...] = CW_INITIAL_CONSTS
    cw_reference: tuple[int, int] = (9, 1000)
    n_reference: int = 4
    ddn_gamma: float = 0.05
    epsilons: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 1.5, 2.0)
    adv_epochs: int = 10
    histology_adv_max_norm: float = 1.0
    dr_adv_max_norm: float = 0.25
    adv_attack_steps: int = 20
    adv_lr: float = 0.01
    adv_weight_decay: float = 5e-4
    adv_decay_epoch: int | None = 6
    clean_weight: float = 0.0
    amplify: float = 10.0
    seed: int = 0

    def adv_radius(self, target: str) -> float:
        """The adversarial-training radius ε of ``target`` (``"histology"`` or ``"DR"``)."""
        radii = {"histology": self.histology_adv_max_norm, "DR": self.dr_adv_max_norm}
        if target not in radii:
            raise ConfigError(f"unknown attack target {target!r}; expected one of {sorted(radii)}")
        return radii[target]


ADVERSARIAL_PRESETS = PresetTable(
    AdversarialConfig,
    smoke=AdversarialConfig(model_preset="smoke", n_attack=6, n_tune=2, ddn_budgets=(10, 30),
                            cw_settings=((2, 5), (1, 10)), cw_learning_rates=(0.05, 0.5),
                            cw_initial_consts=(0.1, 10.0), cw_reference=(4, 20), n_reference=2,
                            adv_epochs=1, adv_attack_steps=5, adv_decay_epoch=None),
    demo=AdversarialConfig(),
    paper=AdversarialConfig(model_preset="paper", histology_size=416, histology_width=64, dr_size=448, n_attack=1000,
                            n_tune=100, ddn_budgets=(100, 300, 1000),
                            cw_settings=((4, 25), (1, 100)), cw_reference=(9, 10_000),
                            n_reference=1000, dr_adv_max_norm=1.0, adv_epochs=50, adv_attack_steps=100,
                            adv_decay_epoch=30),
)


def adversarial_config(preset: str = "demo", /, **overrides: object) -> AdversarialConfig:
    """The ``preset`` configuration with ``overrides`` (``None`` keeps the preset's value)."""
    return ADVERSARIAL_PRESETS.build(preset, **overrides)
