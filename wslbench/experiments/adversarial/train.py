"""Adversarial fine-tuning with DDN examples (Rony 2020, eq. A V-9)."""

from __future__ import annotations

import copy

from torch import nn

from wslbench.attacks import train_adversarial
from wslbench.experiments.adversarial.config import AdversarialConfig
from wslbench.experiments.adversarial.data import AttackTarget
from wslbench.progress import ProgressCallback
from wslbench.seeding import seed_everything

__all__ = ["adversarially_trained"]


def adversarially_trained(
    target: AttackTarget,
    config: AdversarialConfig,
    *,
    progress: ProgressCallback | None = None,
) -> nn.Module:
    """A copy of ``target.model`` fine-tuned with DDN adversarial examples (eq. A V-9).

    As the thesis's CIFAR-10 model (Appendix V, 7): the undefended model, trained on
    clean images, continues training on its training batches with DDN examples
    projected on the ball of the target's radius (:meth:`AdversarialConfig.adv_radius`),
    with SGD (momentum 0.9, ``adv_weight_decay``) at ``adv_lr`` divided by 10 after
    ``adv_decay_epoch`` epochs.
    """
    seed_everything(config.seed)
    robust = copy.deepcopy(target.model)
    train_adversarial(robust, list(target.train_batches), epochs=config.adv_epochs,
                      max_norm=config.adv_radius(target.name), attack_steps=config.adv_attack_steps,
                      lr=config.adv_lr, weight_decay=config.adv_weight_decay,
                      decay_epoch=config.adv_decay_epoch, clean_weight=config.clean_weight,
                      progress=progress)
    return robust.eval()
