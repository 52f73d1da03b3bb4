from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.losses import (
    PAPER_LAMBDAS,
    CombinedLoss,
    adaptive_lambda,
    autoencoder_loss,
    weighted_bce_loss,
)
from wslbench.models import AECL1


class _Tiny(nn.Module):
    """Encoder params w1 (2,), w2 (1,); decoder v and classifier u must not count."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.w1 = nn.Parameter(torch.tensor([0.5, -1.0]))
        self.encoder.w2 = nn.Parameter(torch.tensor([2.0]))
        self.decoder = nn.Module()
        self.decoder.v = nn.Parameter(torch.tensor([1.0, 1.0]))
        self.classifier = nn.Module()
        self.classifier.u = nn.Parameter(torch.tensor([3.0]))

    def losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        e, v, u = self.encoder, self.decoder.v, self.classifier.u
        # dL_ae/dE = ((3, 0), (4,)) -> norm 5;   dL_ae/dv = (10, 10) (excluded)
        loss_ae = 3 * e.w1[0] + 4 * e.w2[0] + 10 * v.sum()
        # dL_cl/dE = ((0, 2·w1[1]), (u,)) = ((0, -2), (3,)) -> norm sqrt(13); du excluded
        loss_cl = e.w1[1] ** 2 + u[0] * e.w2[0]
        return loss_ae, loss_cl


def test_autoencoder_loss_is_eq1_mean_over_elements() -> None:
    x = torch.zeros(2, 1, 2, 2)
    x_hat = torch.zeros(2, 1, 2, 2)
    x_hat[0, 0, 0, 0] = 2.0
    x_hat[1, 0, 1, 1] = -1.0
    torch.testing.assert_close(autoencoder_loss(x_hat, x), torch.tensor((4.0 + 1.0) / 8))
    with pytest.raises(InvalidInputError, match="reconstruction shape"):
        autoencoder_loss(x_hat[:, :, :1], x)


def test_weighted_bce_hand_computation() -> None:
    logits = torch.tensor([0.0, math.log(3.0), -math.log(3.0)])
    targets = torch.tensor([1.0, 1.0, 0.0])
    # sigmoid: 0.5, 0.75, 0.25. alpha = 2 weighs the two positives only:
    # (2·(−log 0.5) + 2·(−log 0.75) + (−log(1 − 0.25))) / 3
    expected = (2 * math.log(2) + 2 * math.log(4 / 3) + math.log(4 / 3)) / 3
    torch.testing.assert_close(
        weighted_bce_loss(logits, targets, alpha=2.0), torch.tensor(expected)
    )
    plain = (math.log(2) + 2 * math.log(4 / 3)) / 3
    torch.testing.assert_close(weighted_bce_loss(logits, targets), torch.tensor(plain))


def test_weighted_bce_is_stable_for_huge_logits() -> None:
    logits = torch.tensor([1000.0, -1000.0, 1000.0], requires_grad=True)
    targets = torch.tensor([1.0, 1.0, 0.0])
    loss = weighted_bce_loss(logits, targets, alpha=0.5)
    torch.testing.assert_close(loss, torch.tensor((0 + 0.5 * 1000 + 1000) / 3))
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_weighted_bce_validation() -> None:
    with pytest.raises(ConfigError, match="alpha"):
        weighted_bce_loss(torch.zeros(2), torch.zeros(2), alpha=0.0)
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        weighted_bce_loss(torch.zeros(2), torch.tensor([0.0, 2.0]))
    with pytest.raises(InvalidInputError, match="shape"):
        weighted_bce_loss(torch.zeros(2), torch.zeros(2, 1))


def test_adaptive_lambda_matches_eq4_hand_gradients() -> None:
    model = _Tiny()
    loss_ae, loss_cl = model.losses()
    lam = adaptive_lambda(model, loss_ae, loss_cl)
    torch.testing.assert_close(lam, torch.tensor(5.0 / math.sqrt(13.0)))
    # Same value from the encoder module or its parameter list.
    torch.testing.assert_close(adaptive_lambda(model.encoder, loss_ae, loss_cl), lam)
    params = list(model.encoder.parameters())
    torch.testing.assert_close(adaptive_lambda(params, loss_ae, loss_cl), lam)
    # autograd.grad wrote no .grad and kept the graph for the real backward.
    assert all(p.grad is None for p in model.parameters())
    (loss_ae + lam * loss_cl).backward()
    torch.testing.assert_close(model.encoder.w2.grad, torch.tensor([4.0 + lam.item() * 3.0]))


def test_adaptive_lambda_zero_norm_returns_fallback() -> None:
    model = _Tiny()
    loss_ae, _ = model.losses()
    loss_cl = 2 * model.classifier.u.sum()  # never reaches the encoder
    torch.testing.assert_close(
        adaptive_lambda(model, loss_ae, loss_cl, fallback=7.0), torch.tensor(7.0)
    )
    with pytest.raises(InvalidInputError, match="does not require a gradient"):
        adaptive_lambda(model, loss_ae, torch.tensor(1.0))


def test_adaptive_lambda_on_aecl1_equals_independent_backward() -> None:
    torch.manual_seed(0)
    model = AECL1(base_width=2, num_pools=3, tie_weights=True)
    x = torch.randn(2, 3, 16, 16)
    y = torch.tensor([1.0, 0.0])

    def norm_of(loss_name: str) -> float:
        model.zero_grad()
        recon, logits = model(x)
        loss = autoencoder_loss(recon, x) if loss_name == "ae" else weighted_bce_loss(logits, y)
        loss.backward()
        grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
        return torch.cat([g.flatten() for g in grads]).norm().item()

    expected = norm_of("ae") / norm_of("cl")
    model.zero_grad()
    recon, logits = model(x)
    lam = adaptive_lambda(model, autoencoder_loss(recon, x), weighted_bce_loss(logits, y))
    assert lam.item() == pytest.approx(expected, rel=1e-4)


def test_combined_loss_fixed_lambda() -> None:
    x = torch.zeros(1, 1, 2, 2)
    x_hat = torch.full((1, 1, 2, 2), 0.5)  # L_ae = 0.25
    logits = torch.tensor([0.0, 0.0])
    targets = torch.tensor([1.0, 0.0])  # L_cl = log 2 with alpha = 1; (3 log2 + log2)/2 with 3
    loss_fn = CombinedLoss(lam=2.0, alpha=3.0)
    total, parts = loss_fn(x_hat, x, logits, targets)
    l_cl = (3 * math.log(2) + math.log(2)) / 2
    torch.testing.assert_close(total, torch.tensor(0.25 + 2.0 * l_cl))
    torch.testing.assert_close(parts["L_ae"], torch.tensor(0.25))
    torch.testing.assert_close(parts["L_cl"], torch.tensor(l_cl))
    torch.testing.assert_close(parts["lambda"], torch.tensor(2.0))
    # Unlabelled minibatch: L_ae alone.
    total_u, parts_u = loss_fn(x_hat, x)
    torch.testing.assert_close(total_u, torch.tensor(0.25))
    assert set(parts_u) == {"L_ae"}
    with pytest.raises(InvalidInputError, match="both logits and targets"):
        loss_fn(x_hat, x, logits)


def test_combined_loss_adaptive_uses_eq4() -> None:
    model = _Tiny()
    loss_ae, loss_cl = model.losses()
    # One-pixel reconstruction a = loss_ae against 0 (MSE = a²) and one logit c = loss_cl
    # with label 0 (BCE = softplus(c)), so both encoder gradients are known in closed form.
    x = torch.zeros(1, 1, 1, 1)
    x_hat = loss_ae.reshape(1, 1, 1, 1)
    logits = loss_cl.reshape(1)
    total, parts = CombinedLoss(lam=1.0, adaptive=True)(
        x_hat, x, logits, torch.zeros(1), encoder=model
    )
    # Chain rule: dL_ae/dE = 2·loss_ae·(3, 0, 4); dL_cl/dE = sigmoid(loss_cl)·(0, −2, 3).
    a, c = loss_ae.item(), loss_cl.item()
    expected = (2 * abs(a) * 5.0) / (torch.sigmoid(torch.tensor(c)).item() * math.sqrt(13.0))
    assert parts["lambda"].item() == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(total, parts["L_ae"] + parts["lambda"] * parts["L_cl"])
    with pytest.raises(InvalidInputError, match="encoder=model"):
        CombinedLoss(adaptive=True)(x_hat, x, logits, torch.zeros(1))


def test_combined_loss_config_and_paper_values() -> None:
    assert PAPER_LAMBDAS == {"aecl1": 400.0, "aeres18": 3.0}
    with pytest.raises(ConfigError, match="lam"):
        CombinedLoss(lam=-1.0)
    with pytest.raises(ConfigError, match="alpha"):
        CombinedLoss(alpha=float("nan"))
    loss = CombinedLoss(lam=3.0, adaptive=True, alpha=2.0)
    assert (loss.lam, loss.adaptive, loss.alpha) == (3.0, True, 2.0)
