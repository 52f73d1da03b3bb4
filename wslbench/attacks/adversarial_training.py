"""Adversarial training with DDN (Rony 2020, Appendix V, section 6, eq. A V-9).

For each batch, DDN (with ``max_norm`` = ε) finds a close adversarial x̃ and
the model is trained on ``J(x̃, y)``. ``clean_weight`` mixes in the clean loss
(``clean_weight · J(x, y) + (1 − clean_weight) · J(x̃, y)``, eq. A V-6 style);
0 is eq. A V-9 exactly.

The optimiser is the thesis's (Appendix V, 7): SGD with momentum 0.9 and weight
decay, the learning rate divided by 10 after ``decay_epoch`` epochs (MNIST: 30
epochs at 0.01, then 20 at 0.001). The thesis states no weight decay for the
adversarial phase; 5e-4 is the value of the Wide-ResNet recipe it continues from
(Zagoruyko & Komodakis 2016), the default here.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from wslbench.attacks.ddn import DDN
from wslbench.errors import ConfigError
from wslbench.progress import ProgressCallback
from wslbench.training.loop import fit

__all__ = ["adversarial_loss", "train_adversarial"]


def adversarial_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: DDN, clean_weight: float = 0.0
) -> torch.Tensor:
    """Loss of eq. A V-9 (mixed with the clean loss by ``clean_weight``)."""
    if not 0.0 <= clean_weight <= 1.0:
        raise ConfigError(f"clean_weight must be in [0, 1], got {clean_weight}")
    was_training = model.training
    x_adv = attack.run(x, y).adversarial  # the attack runs the model in eval mode
    model.train(was_training)
    loss = F.cross_entropy(model(x_adv), y)
    if clean_weight > 0:
        loss = clean_weight * F.cross_entropy(model(x), y) + (1 - clean_weight) * loss
    return loss


def train_adversarial(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    epochs: int,
    max_norm: float,
    attack_steps: int = 100,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    decay_epoch: int | None = None,
    clean_weight: float = 0.0,
    quantize: bool = True,
    progress: ProgressCallback | None = None,
) -> list[float]:
    """Train ``model`` with DDN adversarial examples of norm ≤ ``max_norm``; returns epoch losses.

    ``batches`` is re-iterated every epoch (a list or a DataLoader); the loop is
    :func:`wslbench.training.fit` (a cancel keeps the epochs done so far).
    ``decay_epoch``: epochs at ``lr`` before it is divided by 10 (``None``: never).
    """
    if not hasattr(batches, "__len__"):
        raise ConfigError("batches must have a length (a list of (x, y) pairs or a DataLoader)")
    if decay_epoch is not None and not 0 < decay_epoch < epochs:
        raise ConfigError(f"decay_epoch must lie in (0, epochs={epochs}), got {decay_epoch}")
    attack = DDN(model, steps=attack_steps, max_norm=max_norm, quantize=quantize)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                                weight_decay=weight_decay)
    milestones = [] if decay_epoch is None else [decay_epoch * len(batches)]  # type: ignore[arg-type]
    fitted = fit(model, lambda batch: adversarial_loss(model, *batch, attack, clean_weight),
                 lambda epoch: batches, epochs=epochs, optimiser=optimiser,
                 schedule=torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones, gamma=0.1),
                 progress=progress, steps_per_epoch=len(batches))  # type: ignore[arg-type]
    return [row["train_loss"] for row in fitted.history]
