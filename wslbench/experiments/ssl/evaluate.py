"""Classifier accuracy and ROC area, and reconstructions (Arora et al., Table 2, Fig. 4)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from wslbench.errors import InvalidInputError
from wslbench.experiments.ssl.data import SSLData
from wslbench.metrics.roc import compute_roc_auc
from wslbench.models.ssl import SSLAutoencoderClassifier

__all__ = ["evaluate_ssl", "reconstructions"]


@torch.no_grad()
def evaluate_ssl(
    model: SSLAutoencoderClassifier, data: SSLData, index: Sequence[int] | np.ndarray
) -> dict[str, float]:
    """Accuracy and balanced accuracy (logit > 0) and ROC area on ``index`` (labelled cases).

    Balanced accuracy (mean recall of the two classes) sits next to accuracy: the test
    set is 54 % positive, so a constant classifier scores 0.54 accuracy but 0.5 balanced.

    Non-finite logits (a diverged training, e.g. a too large λ) count as errors and the
    ROC area is then left out.
    """
    idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
    labels = data.labels[idx]
    if idx.numel() == 0 or (labels < 0).any():
        raise InvalidInputError("evaluation needs a non-empty set of labelled cases")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        logits = torch.cat([model.classify(data.images[idx[i:i + 64]].to(device)).cpu()
                            for i in range(0, len(idx), 64)])
    finally:
        model.train(was_training)
    finite = torch.isfinite(logits)
    correct = ((logits > 0).long() == labels) & finite  # a diverged output is an error
    recalls = [float(correct[labels == c].float().mean()) for c in (0, 1) if (labels == c).any()]
    out = {"accuracy": float(correct.float().mean()),
           "balanced_accuracy": sum(recalls) / len(recalls)}
    if finite.all() and 0 < int(labels.sum()) < len(labels):
        out["auc"] = compute_roc_auc(logits.numpy(), labels.numpy())
    return out


@torch.no_grad()
def reconstructions(model: SSLAutoencoderClassifier, images: torch.Tensor) -> torch.Tensor:
    """``D(E(x))`` clamped to [0, 1], in eval mode (Fig. 4)."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        return model.reconstruct(images.to(device)).cpu().clamp(0, 1)
    finally:
        model.train(was_training)
