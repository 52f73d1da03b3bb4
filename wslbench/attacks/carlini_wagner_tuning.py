"""Grid search of C&W's learning rate and first constant (Rony 2020, Appendix V, 5 and Table A V-9).

"Since the hyperparameters proposed in (Carlini & Wagner, 2017) were tuned for a
larger number of iterations and search steps, we performed a grid search for
each dataset, using learning rates in [0.01, 0.05, 0.1, 0.5, 1], and C in
[0.001, 0.01, 0.1, 1, 10, 100, 1 000]. We report the results for C&W with the
hyperparameters that achieve best Median L2." The search runs on a held-out
batch (never the images the table reports). Among the settings that fool the
model on every image, the lowest median L2 wins; when none does, the highest
success rate, then the lowest median L2 with failures counted at the distance
to a grey image (:func:`~wslbench.attacks.worst_case_norms`), so a setting that
fails cannot win on a small median.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from wslbench.attacks.base import check_attack_input
from wslbench.attacks.carlini_wagner import CarliniWagnerL2
from wslbench.errors import ConfigError

__all__ = ["CW_INITIAL_CONSTS", "CW_LEARNING_RATES", "CWTuning", "tune_carlini_wagner"]

#: Learning rates of the thesis's grid (Appendix V, 5).
CW_LEARNING_RATES: tuple[float, ...] = (0.01, 0.05, 0.1, 0.5, 1.0)
#: First constants C of the thesis's grid (Appendix V, 5).
CW_INITIAL_CONSTS: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass(frozen=True)
class CWTuning:
    """The chosen setting of one C&W budget and the whole grid it was chosen from.

    Attributes:
        search_steps, steps: the budget (``4×25`` is ``search_steps=4, steps=25``).
        learning_rate, initial_const: the chosen values.
        grid: one row per setting: ``learning_rate``, ``initial_const``,
            ``success_rate`` (%), ``median_l2`` (failures at the grey-image distance),
            ``n_grads``.
    """

    search_steps: int
    steps: int
    learning_rate: float
    initial_const: float
    grid: list[dict[str, float]] = field(default_factory=list)

    @property
    def budget(self) -> str:
        return f"{self.search_steps}x{self.steps}"

    def attack(self, model: nn.Module, *, abort_early: bool = True) -> CarliniWagnerL2:
        """The tuned attack on ``model``."""
        return CarliniWagnerL2(model, steps=self.steps, search_steps=self.search_steps,
                               learning_rate=self.learning_rate, initial_const=self.initial_const,
                               abort_early=abort_early)


def tune_carlini_wagner(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    search_steps: int,
    steps: int,
    learning_rates: Sequence[float] = CW_LEARNING_RATES,
    initial_consts: Sequence[float] = CW_INITIAL_CONSTS,
    abort_early: bool = True,
) -> CWTuning:
    """Run C&W ``search_steps × steps`` on the held-out batch ``(x, y)`` for every grid setting.

    Every setting is an independent attack on its own copy of the batch (with its own early
    abort), all run as one batch through :meth:`CarliniWagnerL2.run_groups`.

    Raises:
        ConfigError: an empty grid.
    """
    if not learning_rates or not initial_consts:
        raise ConfigError("the C&W grid needs at least one learning rate and one initial constant")
    y = check_attack_input(x, y, 0.0, 1.0)
    settings = [(float(lr), float(c)) for lr in learning_rates for c in initial_consts]
    b, k = x.shape[0], len(settings)
    attack = CarliniWagnerL2(model, steps=steps, search_steps=search_steps, abort_early=abort_early)
    groups = torch.arange(k, device=x.device).repeat_interleave(b)
    lrs = torch.tensor([lr for lr, _ in settings], dtype=x.dtype, device=x.device)[groups]
    consts = torch.tensor([c for _, c in settings], dtype=x.dtype, device=x.device)[groups]
    norms, _, n_grads = attack.run_groups(x.repeat(k, *(1,) * (x.ndim - 1)), y.repeat(k), lrs, consts, groups)
    worst = (x - 0.5).flatten(1).norm(dim=1)
    grid = []
    for g, (lr, const) in enumerate(settings):
        part = norms[g * b:(g + 1) * b]
        success = torch.isfinite(part)
        grid.append({"learning_rate": lr, "initial_const": const,
                     "success_rate": 100.0 * success.float().mean().item(),
                     "median_l2": torch.where(success, part, worst).median().item(),
                     "n_grads": float(n_grads[g])})
    best = min(grid, key=lambda row: (-row["success_rate"], row["median_l2"]))
    return CWTuning(search_steps, steps, best["learning_rate"], best["initial_const"], grid)
