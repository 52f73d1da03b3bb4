from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from wslbench.attacks import (
    DDN,
    CarliniWagnerL2,
    ThresholdClassifier,
    attack_report,
    cosine_step_size,
    minimum_over_attacks,
    robust_accuracy_curve,
    train_adversarial,
    tune_carlini_wagner,
)
from wslbench.attacks.base import AttackResult
from wslbench.errors import ConfigError, InvalidInputError


class Linear(nn.Module):
    def __init__(self, shape: tuple[int, ...], classes: int = 2, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        n = math.prod(shape)
        self.fc = nn.Linear(n, classes)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(classes, n, generator=g) * 0.5)
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(x.flatten(1))


def _minimal_l2(model: Linear, x: torch.Tensor) -> torch.Tensor:
    """Closed form for a linear classifier: min over j ≠ y of (z_y − z_j)/‖w_y − w_j‖."""
    w = model.fc.weight
    z = model(x)
    y = z.argmax(1)
    out = torch.full((x.shape[0],), math.inf)
    for j in range(w.shape[0]):
        dist = (z.gather(1, y[:, None])[:, 0] - z[:, j]) / (w[y] - w[j]).norm(dim=1)
        out = torch.where(y == j, out, torch.minimum(out, dist))
    return out


def _batch(shape, b, seed=1):
    g = torch.Generator().manual_seed(seed)
    return 0.5 + 0.05 * torch.randn(b, *shape, generator=g)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 4, 4), (1, 4, 4, 4)])
@pytest.mark.parametrize("b", [1, 3, 8])
def test_ddn_reaches_closed_form_minimum_on_linear_model(shape, b):
    model = Linear(shape, classes=3)
    x = _batch(shape, b).clamp(0, 1)
    y = model(x).argmax(1)
    res = DDN(model, steps=200, quantize=False).run(x, y)
    assert res.success.all()
    ref = _minimal_l2(model, x)
    assert (res.norms >= ref - 1e-4).all(), "no adversarial can be closer than the closed form"
    assert (res.norms <= 1.05 * ref).all(), (res.norms / ref)
    # reported success means the returned input really fools the model, and stays in range
    assert (model(res.adversarial).argmax(1) != y).all()
    assert res.adversarial.min() >= 0 and res.adversarial.max() <= 1
    assert torch.allclose((res.adversarial - x).flatten(1).norm(dim=1), res.norms, atol=1e-5)


def test_ddn_quantised_outputs_on_grid_and_targeted_reaches_target():
    model = Linear((1, 6, 6), classes=4, seed=3)
    x = torch.round(_batch((1, 6, 6), 5, seed=2).clamp(0, 1) * 255) / 255
    target = (model(x).argmax(1) + 1) % 4
    res = DDN(model, steps=100, quantize=True).run(x, target, targeted=True)
    assert res.success.all()
    assert (model(res.adversarial).argmax(1) == target).all()
    scaled = res.adversarial * 255
    assert torch.allclose(scaled, scaled.round(), atol=1e-4)


def test_ddn_is_deterministic_and_leaves_model_untouched():
    model = Linear((1, 5, 5), classes=3).train()
    x = _batch((1, 5, 5), 4).clamp(0, 1)
    y = model(x).argmax(1)
    a = DDN(model, steps=30).run(x, y)
    b = DDN(model, steps=30).run(x, y)
    assert torch.equal(a.adversarial, b.adversarial)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert a.n_grads == 30


def test_ddn_max_norm_bounds_every_returned_perturbation():
    model = Linear((1, 8, 8), classes=2)
    x = _batch((1, 8, 8), 6).clamp(0, 1)
    y = model(x).argmax(1)
    res = DDN(model, steps=50, max_norm=0.05, quantize=False).run(x, y)
    norms = (res.adversarial - x).flatten(1).norm(dim=1)
    assert (norms <= 0.05 + 1e-5).all()


def test_carlini_wagner_finds_adversarials_no_closer_than_optimum():
    model = Linear((1, 6, 6), classes=3)
    x = _batch((1, 6, 6), 4).clamp(0.01, 0.99)
    y = model(x).argmax(1)
    res = CarliniWagnerL2(model, steps=100, search_steps=4, learning_rate=0.05, initial_const=1.0,
                          abort_early=False).run(x, y)
    assert res.success.all() and res.n_grads == 400
    ref = _minimal_l2(model, x)
    assert (res.norms >= ref - 1e-4).all() and (res.norms <= 1.5 * ref).all()
    assert (model(res.adversarial).argmax(1) != y).all()


def test_threshold_classifier_and_report_and_curve():
    score = nn.Sequential(nn.Flatten(), nn.Linear(16, 1))
    clf = ThresholdClassifier(score, threshold=1.5)
    x = torch.rand(3, 1, 4, 4)
    logits = clf(x)
    s = score(x)[:, 0]
    assert torch.allclose(logits[:, 1] - logits[:, 0], 2 * (s - 1.5))
    model = Linear((1, 4, 4), classes=2)
    x = _batch((1, 4, 4), 6).clamp(0, 1)
    y = model(x).argmax(1)
    res = DDN(model, steps=50, quantize=False).run(x, y)
    rep = attack_report(res, x)
    assert rep["success_rate"] == 100.0 and rep["n_grads"] == 50
    assert rep["mean_l2"] == pytest.approx(res.norms.mean().item())
    curve = robust_accuracy_curve(model, x, y, res, [0.0, res.norms.max().item() + 1e-6])
    assert curve.tolist() == [1.0, 0.0]


def test_worst_case_median_counts_failures():
    model = Linear((1, 4, 4), classes=2)
    x = _batch((1, 4, 4), 4).clamp(0, 1)
    y = model(x).argmax(1)
    res = DDN(model, steps=1, init_norm=1e-4, quantize=False).run(x, y)  # too weak to succeed
    rep = attack_report(res, x)
    assert rep["success_rate"] == 0.0 and math.isnan(rep["mean_l2"])
    assert rep["median_l2"] == pytest.approx((x - 0.5).flatten(1).norm(dim=1).median().item())


def test_adversarial_training_increases_median_norm():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n = 64
    y = torch.randint(0, 2, (n,), generator=g)
    x = (0.5 + 0.15 * (2 * y.float() - 1)[:, None, None, None] * torch.ones(n, 1, 4, 4)
         + 0.1 * torch.randn(n, 1, 4, 4, generator=g)).clamp(0, 1)
    base = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(base.parameters(), lr=0.5)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(base(x), y).backward()
        opt.step()
    before = DDN(base, steps=50, quantize=False).run(x, y)
    robust = train_adversarial(
        base, [(x[i:i + 16], y[i:i + 16]) for i in range(0, n, 16)],
        epochs=8, max_norm=0.5, attack_steps=10, lr=0.1, quantize=False,
    )
    after = DDN(base, steps=50, quantize=False).run(x, y)
    assert len(robust) == 8
    assert attack_report(after, x)["median_l2"] > attack_report(before, x)["median_l2"]


def test_cosine_schedule_and_errors():
    assert cosine_step_size(0, 100) == pytest.approx(1.0)
    assert cosine_step_size(99, 100) == pytest.approx(0.01)
    model = Linear((1, 4, 4))
    with pytest.raises(ConfigError):
        DDN(model, gamma=1.5)
    with pytest.raises(InvalidInputError, match=r"\[0.0, 1.0\]"):
        DDN(model).run(torch.full((1, 1, 4, 4), 2.0), torch.tensor([0]))
    with pytest.raises(InvalidInputError, match="labels"):
        DDN(model).run(torch.rand(2, 1, 4, 4), torch.tensor([0]))


def test_cw_early_abort_stops_a_stalled_search():
    """Appendix V, 5 ("with early stopping"): a stalled loss ends the search step early."""
    model = Linear((1, 4, 4), classes=3)
    x = _batch((1, 4, 4), 4).clamp(0, 1)
    y = model(x).argmax(1)
    kwargs = dict(steps=1000, search_steps=2, learning_rate=0.1, initial_const=10.0)
    full = CarliniWagnerL2(model, abort_early=False, **kwargs).run(x, y)
    early = CarliniWagnerL2(model, **kwargs).run(x, y)
    assert full.n_grads == 2000
    assert early.n_grads < 1000, "a converged linear problem stalls long before 1000 iterations"
    assert early.success.all()
    assert torch.allclose(early.norms, full.norms, rtol=0.05)


def test_cw_grid_search_picks_lowest_median_at_full_success():
    model = Linear((1, 4, 4), classes=3)
    x = _batch((1, 4, 4), 4).clamp(0, 1)
    y = model(x).argmax(1)
    tuning = tune_carlini_wagner(model, x, y, search_steps=1, steps=20,
                                 learning_rates=(1e-4, 0.05, 0.5), initial_consts=(1e-3, 1.0, 100.0))
    assert len(tuning.grid) == 9 and tuning.budget == "1x20"
    full = [r for r in tuning.grid if r["success_rate"] == 100.0]
    assert full and any(r["success_rate"] < 100.0 for r in tuning.grid), "the grid must discriminate"
    best = min(full, key=lambda r: r["median_l2"])
    assert (tuning.learning_rate, tuning.initial_const) == (best["learning_rate"], best["initial_const"])
    attack = tuning.attack(model)
    assert (attack.learning_rate, attack.initial_const, attack.steps) == (best["learning_rate"],
                                                                         best["initial_const"], 20)
    with pytest.raises(ConfigError, match="grid"):
        tune_carlini_wagner(model, x, y, search_steps=1, steps=2, learning_rates=())


def test_minimum_over_attacks_keeps_each_images_smallest_success():
    """The "All" row of Tables A V-5/6, hand-worked on three images."""
    inf = math.inf
    x = torch.zeros(3, 1, 2, 2)

    def result(norms, tag):
        norms = torch.tensor(norms)
        return AttackResult(torch.full_like(x, tag), torch.isfinite(norms), norms, 10, 1.0)

    a, b = result([1.0, inf, 3.0], 1.0), result([2.0, 5.0, 0.5], 2.0)
    best = minimum_over_attacks([a, b])
    assert best.norms.tolist() == [1.0, 5.0, 0.5] and best.success.all()
    assert best.adversarial[:, 0, 0, 0].tolist() == [1.0, 2.0, 2.0]
    assert best.n_grads == 20 and best.runtime_s == 2.0
    neither = minimum_over_attacks([result([inf, 1.0, inf], 1.0), result([inf, 2.0, inf], 2.0)])
    assert neither.success.tolist() == [False, True, False]
    with pytest.raises(InvalidInputError):
        minimum_over_attacks([])
    with pytest.raises(InvalidInputError, match="different batches"):
        minimum_over_attacks([a, AttackResult(torch.zeros(2, 1, 2, 2), torch.ones(2, dtype=torch.bool),
                                              torch.ones(2), 1, 0.0)])


def test_adversarial_training_decay_epoch_must_lie_inside_training():
    model = Linear((1, 4, 4))
    batches = [(torch.rand(2, 1, 4, 4), torch.tensor([0, 1]))]
    with pytest.raises(ConfigError, match="decay_epoch"):
        train_adversarial(model, batches, epochs=3, max_norm=0.5, decay_epoch=3)


def test_cw_grid_rows_equal_separate_attacks_and_torch_adam():
    """The batched grid (one group per setting, own early abort) equals one attack per setting,
    and the written-out Adam equals ``torch.optim.Adam`` on the same objective."""
    model = Linear((1, 4, 4), classes=3)
    x = _batch((1, 4, 4), 3).clamp(0, 1)
    y = model(x).argmax(1)
    tuning = tune_carlini_wagner(model, x, y, search_steps=2, steps=30,
                                 learning_rates=(0.01, 0.1), initial_consts=(0.1, 10.0))
    for row in tuning.grid:
        alone = CarliniWagnerL2(model, steps=30, search_steps=2, learning_rate=row["learning_rate"],
                                initial_const=row["initial_const"]).run(x, y)
        report = attack_report(alone, x)
        assert row["n_grads"] == report["n_grads"]
        assert row["success_rate"] == report["success_rate"]
        assert row["median_l2"] == pytest.approx(report["median_l2"], rel=1e-5)
    # one search step, no abort: the same objective with torch's Adam
    const, lr = 10.0, 0.1
    w = torch.atanh(2 * x.clamp(1e-6, 1 - 1e-6) - 1).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    best = torch.full((3,), math.inf)
    for p in model.parameters():
        p.requires_grad_(False)
    for _ in range(30):
        adv = (torch.tanh(w) + 1) / 2
        z = model(adv)
        own = z.gather(1, y[:, None])[:, 0]
        other = z.scatter(1, y[:, None], -math.inf).amax(1)
        sq = (adv - x).flatten(1).pow(2).sum(1)
        opt.zero_grad()
        (sq + const * (own - other).clamp_min(0)).sum().backward()
        opt.step()
        with torch.no_grad():
            best = torch.where((z.argmax(1) != y) & (sq.sqrt() < best), sq.sqrt(), best)
    ours = CarliniWagnerL2(model, steps=30, search_steps=1, learning_rate=lr, initial_const=const,
                           abort_early=False).run(x, y)
    assert torch.allclose(ours.norms, best, rtol=1e-4)
