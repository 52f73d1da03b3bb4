"""Rony 2020's chapter 4 findings as claims for ``wslbench reproduce 02_wsl_histology`` (issue 20).

One "seed" ``s`` of ``wslbench reproduce`` is one (fold, seed) pair: fold ``s mod 3`` of
the synthetic GlaS-like data set drawn with seed ``s // 3`` (so 6 seeds = 3 folds × 2
seeds, paired: every arm of one pair shares data, split and initialisation seed).
:func:`measure` trains four arms on it and scores each on the fixed test set with the
thesis's evaluation (accuracy, eq. 4.14 Dice):

- ``cam``: CAM with average pooling (image labels, Table 4.1 row 1);
- ``deepmil``: Deep MIL (adapted, multi-class attention, Table 4.1 row 2);
- ``adaptive``: image labels + sizes with the adaptive robust loss (λ_s = 10,
  λ_e = 0.1, σ_s = 0, Table 4.1 last row);
- ``adaptive_noisy``: the same with size noise σ_s = 0.01 (Fig. 4.3).

Every comparison needs both arms above :data:`LEARNT` accuracy on every pair (a
classifier at chance, 0.5 on these balanced classes, voids it).
"""

from __future__ import annotations

from dataclasses import replace

from wslbench.claims import Claim, ClaimSet
from wslbench.experiments.wsl.config import wsl_config
from wslbench.experiments.wsl.data import make_wsl_data
from wslbench.experiments.wsl.evaluate import evaluate_wsl
from wslbench.experiments.wsl.train import train_wsl

__all__ = ["CLAIMS", "measure", "recorded_claims", "ARMS", "FOLDS", "LEARNT", "NOISE"]

#: Folds a run of seeds cycles through (seed ``s`` → fold ``s mod FOLDS``).
FOLDS = 3
#: Size-noise σ_s of the noisy arm (Fig. 4.3: "negligible" impact).
NOISE = 0.01
#: Lowest test accuracy of an arm whose comparison counts (chance is 0.5).
LEARNT = 0.6
#: Arm name → configuration changes.
ARMS: dict[str, dict[str, object]] = {
    "cam": {"head": "gap", "size_loss": "none"},
    "deepmil": {"head": "deepmil-multi", "size_loss": "none"},
    "adaptive": {"head": "gap", "size_loss": "adaptive", "sigma_s": 0.0},
    "adaptive_noisy": {"head": "gap", "size_loss": "adaptive", "sigma_s": NOISE},
}


def measure(preset: str, seed: int) -> dict[str, float]:
    """Accuracy and Dice of every arm of pair ``seed`` (fold ``seed mod 3``, data seed ``seed // 3``).

    Returns:
        ``accuracy_<arm>``, ``dice_<arm>`` and ``dice_image_<arm>`` for each of :data:`ARMS`,
        plus the ``fold`` and ``data_seed`` of the pair.
    """
    fold, data_seed = seed % FOLDS, seed // FOLDS
    config = wsl_config(preset, seed=data_seed, n_folds=max(FOLDS, wsl_config(preset).n_folds))
    data = make_wsl_data(config)
    out: dict[str, float] = {"fold": float(fold), "data_seed": float(data_seed)}
    for name, changes in ARMS.items():
        arm = replace(config, **changes)
        metrics = evaluate_wsl(train_wsl(arm, data, fold=fold).model, data, arm)
        out[f"accuracy_{name}"] = metrics["accuracy"]
        out[f"dice_{name}"] = metrics["dice"]
        out[f"dice_image_{name}"] = metrics["dice_image"]
    return out


def _floors(*arms: str) -> dict[str, float]:
    return {f"accuracy_{a}": LEARNT for a in arms}


CLAIMS = ClaimSet(
    measure=measure,
    claims=(
        Claim("adaptive_beats_cam", "Image labels + sizes with the adaptive loss segment better "
              "than CAM: Dice 79.1 vs 68.4 % on GlaS (4.4.5, Table 4.1)", "Dice (eq. 4.14)",
              "dice_adaptive", "dice_cam", floors=_floors("adaptive", "cam")),
        Claim("accuracy_kept", "The adaptive size loss keeps the accuracy of CAM within 5 "
              "points: 98.25 vs 99.75 % (Table 4.1)", "test accuracy",
              "accuracy_adaptive", "accuracy_cam", threshold=-0.05,
              floors=_floors("adaptive", "cam")),
        Claim("deepmil_beats_cam", "Deep MIL (adapted) segments better than CAM: Dice 72.1 vs "
              "68.4 % (Table 4.1)", "Dice (eq. 4.14)", "dice_deepmil", "dice_cam",
              floors=_floors("deepmil", "cam")),
        Claim("noise_tolerated", f"Size noise σ_s = {NOISE} costs less than 3 Dice points "
              "(Fig. 4.3: the impact of noise is negligible)", "Dice (eq. 4.14)",
              "dice_adaptive_noisy", "dice_adaptive", threshold=-0.03,
              floors=_floors("adaptive", "adaptive_noisy")),
    ),
)


def recorded_claims() -> list[dict[str, object]]:
    """The claims recorded by ``wslbench reproduce 02_wsl_histology --record`` as table rows
    (:func:`wslbench.runner.reproduce.claims_table`: verdict, each arm's mean, paired effect
    and 95 % interval, floors missed) with the preset and number of pairs; ``[]`` when
    nothing is recorded yet."""
    from wslbench.runner.reproduce import claims_table, recorded_reproduction

    document = recorded_reproduction("02_wsl_histology")
    if document is None:
        return []
    return [{**row, "pairs": len(document["seeds"]), "preset": document["preset"]}
            for row in claims_table(document)]
