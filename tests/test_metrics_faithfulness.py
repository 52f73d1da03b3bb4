from __future__ import annotations

import pytest
import torch
from torch import nn

from wslbench.errors import InvalidInputError
from wslbench.metrics import (
    deletion_curve,
    energy_in_mask,
    impute_neighbours,
    insertion_curve,
    pointing_game,
    road_score,
)


class LinearScore(nn.Module):
    """f(x) = sum(w * x) (+ optional second class -f), so w * x is the exact contribution."""

    def __init__(self, w: torch.Tensor, two_classes: bool = False) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.two_classes = two_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * self.w).flatten(1).sum(1)
        return torch.stack([s, -s], dim=1) if self.two_classes else s


def _case(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    w = torch.randn(shape[1:], generator=g)
    model = LinearScore(w)
    contribution = (model.w.detach() * x).sum(1, keepdim=True)
    random_map = torch.rand(contribution.shape, generator=g)
    return model, x, contribution, random_map


# ---------------------------------------------------------------------------------- localisation


def test_pointing_game_hand_worked():
    maps = torch.zeros(1, 1, 5, 5)
    maps[0, 0, 1, 1] = 1.0
    inside = torch.zeros(1, 1, 5, 5, dtype=torch.bool)
    inside[0, 0, 1, 1] = True
    far = torch.zeros(1, 5, 5)  # channel axis optional
    far[0, 3, 3] = 1  # distance sqrt(8) ≈ 2.83 from the arg-max
    assert pointing_game(maps, inside).tolist() == [True]
    assert pointing_game(maps, far).tolist() == [False]
    assert pointing_game(maps, far, tolerance=2).tolist() == [False]
    assert pointing_game(maps, far, tolerance=3).tolist() == [True]
    with pytest.raises(InvalidInputError, match="empty"):
        pointing_game(maps, torch.zeros(1, 1, 5, 5))


def test_energy_in_mask_hand_worked():
    maps = torch.tensor([[1.0, -2.0], [3.0, 0.0]]).view(1, 1, 2, 2)
    mask = torch.tensor([[1, 1], [0, 0]]).view(1, 1, 2, 2)
    # positive energy 1 + 3 = 4, inside 1
    assert energy_in_mask(maps, mask).tolist() == pytest.approx([0.25])
    assert energy_in_mask(-maps.abs(), mask).tolist() == [0.0]
    with pytest.raises(InvalidInputError, match="shape"):
        energy_in_mask(maps, mask[..., :1])


def test_localisation_3d():
    maps = torch.zeros(2, 1, 4, 5, 6)
    maps[0, 0, 1, 2, 3] = 5.0
    maps[1, 0, 3, 4, 5] = 5.0
    maps[1, 0, 0, 0, 0] = 1.0
    masks = torch.zeros(2, 1, 4, 5, 6, dtype=torch.bool)
    masks[:, 0, 1, 2, 3] = True
    assert pointing_game(maps, masks).tolist() == [True, False]
    assert energy_in_mask(maps, masks).tolist() == pytest.approx([1.0, 0.0])


# ---------------------------------------------------------------------------------- deletion/insertion


def test_deletion_insertion_hand_worked():
    x = torch.ones(1, 1, 1, 4)
    model = LinearScore(torch.tensor([[[4.0, 3.0, 2.0, 1.0]]]))
    maps = torch.tensor([4.0, 3.0, 2.0, 1.0]).view(1, 1, 1, 4)
    d = deletion_curve(model, x, maps, steps=4, baseline="zero")
    assert d.fractions.tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    assert d.scores[0].tolist() == pytest.approx([10, 6, 3, 1, 0])
    assert d.auc.tolist() == pytest.approx([0.25 * (5 + 6 + 3 + 1)])
    i = insertion_curve(model, x, maps, steps=4, baseline="zero")
    assert i.scores[0].tolist() == pytest.approx([0, 4, 7, 9, 10])
    assert i.auc.tolist() == pytest.approx([0.25 * (4 + 7 + 9 + 5)])
    # "mean" baseline: every location filled by 1, nothing changes
    m = deletion_curve(model, x, maps, steps=4, baseline="mean")
    assert m.scores[0].tolist() == pytest.approx([10] * 5)


@pytest.mark.parametrize("shape", [(3, 2, 8, 8), (2, 1, 4, 5, 6)])
def test_contribution_map_beats_random_map(shape):
    model, x, contribution, random_map = _case(shape)
    d_best = deletion_curve(model, x, contribution, steps=10, baseline="zero")
    d_rand = deletion_curve(model, x, random_map, steps=10, baseline="zero")
    assert d_best.scores.shape == (shape[0], 11)
    assert (d_best.auc < d_rand.auc).all()
    i_best = insertion_curve(model, x, contribution, steps=10, baseline="zero")
    i_rand = insertion_curve(model, x, random_map, steps=10, baseline="zero")
    assert (i_best.auc > i_rand.auc).all()
    # with a zero baseline the removal in contribution order is optimal at every step
    assert (d_best.scores <= d_rand.scores + 1e-5).all()
    full = model(x).detach()
    assert d_best.scores[:, 0] == pytest.approx(full.tolist(), abs=1e-5)
    assert d_best.scores[:, -1] == pytest.approx([0.0] * shape[0], abs=1e-6)
    assert i_best.scores[:, -1] == pytest.approx(full.tolist(), abs=1e-5)


def test_batching_blur_and_target():
    model, x, contribution, _ = _case((3, 2, 8, 8), seed=1)
    a = insertion_curve(model, x, contribution, steps=7, batch_size=1)  # blur baseline
    b = insertion_curve(model, x, contribution, steps=7, batch_size=64)
    torch.testing.assert_close(a.scores, b.scores)
    two = LinearScore(model.w.detach(), two_classes=True)
    c = deletion_curve(two, x, contribution, steps=5, baseline="zero")
    # target None follows the clean arg-max class along the curve
    clean = two(x).detach()
    assert c.scores[:, 0].tolist() == pytest.approx(clean.max(1).values.tolist(), abs=1e-5)
    assert c.scores[:, -1].tolist() == pytest.approx([0.0] * 3, abs=1e-6)
    t0 = deletion_curve(two, x, contribution, steps=5, baseline="zero", target=0)
    t1 = deletion_curve(two, x, contribution, steps=5, baseline="zero", target=torch.ones(3))
    torch.testing.assert_close(t0.scores, -t1.scores)
    two.train()
    deletion_curve(two, x, contribution, steps=2)
    assert two.training and two.w.requires_grad


def test_invalid_inputs():
    model, x, contribution, _ = _case((2, 1, 6, 6))
    with pytest.raises(InvalidInputError, match="maps must have shape"):
        deletion_curve(model, x, contribution[:, :, :3])
    with pytest.raises(InvalidInputError, match="unknown baseline"):
        deletion_curve(model, x, contribution, baseline="noise")
    with pytest.raises(InvalidInputError, match="steps"):
        insertion_curve(model, x, contribution, steps=0)
    with pytest.raises(InvalidInputError, match="fractions"):
        road_score(model, x, contribution, fractions=(0.5, 1.0))


# ---------------------------------------------------------------------------------- ROAD


def test_impute_neighbours_recovers_a_linear_ramp():
    r, c = torch.meshgrid(torch.arange(9.0), torch.arange(9.0), indexing="ij")
    x = (r + 2 * c).view(1, 1, 9, 9)
    removed = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    removed[..., 3:6, 3:6] = True
    out = impute_neighbours(x, removed, smooth_iterations=300)
    torch.testing.assert_close(out, x, atol=1e-3, rtol=0)
    rough = impute_neighbours(x, removed, smooth_iterations=0, noise_std=0.1)
    assert torch.equal(rough[~removed.expand_as(x)], x[~removed.expand_as(x)])
    with pytest.raises(InvalidInputError, match="every location"):
        impute_neighbours(x, torch.ones_like(removed))


@pytest.mark.parametrize("shape", [(2, 1, 12, 12), (2, 1, 6, 6, 6)])
def test_road_ranks_informative_map_above_random(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(shape)
    w = torch.zeros(shape[1:])
    flat_x, flat_w = x.view(shape[0], -1), w.view(-1)
    spots = torch.randperm(flat_w.numel(), generator=g)[:6]
    flat_x[:, spots] = 5.0  # a few bright spots on a dark background
    flat_w[spots] = 1.0 + torch.rand(6, generator=g)
    model = LinearScore(w)
    good = (model.w.detach() * x).sum(1, keepdim=True)
    rand = torch.rand(good.shape, generator=g)
    fr = (0.05, 0.1, 0.2, 0.4)
    best = road_score(model, x, good, fractions=fr, batch_size=5)
    worse = road_score(model, x, rand, fractions=fr, batch_size=5)
    assert best.morf.shape == (shape[0], len(fr))
    assert (best.score > worse.score).all()
    again = road_score(model, x, good, fractions=fr, batch_size=3)
    torch.testing.assert_close(best.score, again.score, atol=1e-4, rtol=0)
