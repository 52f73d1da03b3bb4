"""Attacks on the histology and DR models (Rony 2020, Appendix V) through the experiment module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wslbench.errors import InvalidInputError
from wslbench.experiments import adversarial


class _Linear2(nn.Module):
    """Two-class linear model on 2×4×4 inputs: logit difference w·x, known minimal L2 attack."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.w = nn.Parameter(torch.randn(2 * 4 * 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1) @ self.w
        return torch.stack([-s, s], dim=1)


def _batch():
    model = _Linear2().eval()
    x = torch.rand(8, 2, 4, 4) * 0.5 + 0.25
    y = model(x).argmax(1)
    return model, x, y


def test_attack_table_rows_and_closed_form_norms():
    model, x, y = _batch()
    config = adversarial.adversarial_config("smoke", ddn_budgets=(50,), cw_settings=((2, 20),))
    rows, results = adversarial.attack_table(model, x, y, config)
    assert [r["attack"] for r in rows] == ["DDN 50", "C&W 2x20"]
    minimal = (x.flatten(1) @ model.w).abs() / model.w.norm()  # distance to the hyperplane
    ddn = results["DDN 50"]
    ok = ddn.success
    assert ok.all() and (ddn.norms[ok] <= 1.25 * minimal[ok] + 2e-2).all()
    assert "runtime_s" not in adversarial.without_timing(rows)[0]


def test_failed_attacks_report_no_mean_norm():
    model, x, y = _batch()
    config = adversarial.adversarial_config("smoke", ddn_budgets=(1,), cw_settings=())
    far = torch.full_like(x, 0.5) + 0.4 * torch.sign(model.w.reshape(2, 4, 4))  # deep in class 1
    rows, results = adversarial.attack_table(model, far, model(far).argmax(1), config)
    assert not results["DDN 1"].success.any(), "one step cannot cross a hyperplane this far"
    assert rows[0]["mean_l2"] is None and rows[0]["success_rate"] == 0.0


def test_curves_selection_training_and_views():
    model, x, y = _batch()
    config = adversarial.adversarial_config("smoke", ddn_budgets=(30,), epsilons=(0.0, 10.0))
    curves = adversarial.robustness_curves({"clean": model}, x, y, config)
    assert curves["clean"][0] == 1.0 and curves["clean"][1] == 0.0, "every sample breaks at ε = 10"
    xs, ys = adversarial.correctly_classified(model, x, y, n=3)
    assert len(xs) == 3 and torch.equal(model(xs).argmax(1), ys)
    with pytest.raises(InvalidInputError, match="none of the images"):
        adversarial.correctly_classified(model, x, 1 - y, n=3)
    robust = adversarial.adversarially_trained(model, [(x, y)], config)
    assert robust is not model and not torch.equal(robust.w, model.w)
    _, results = adversarial.attack_table(model, x, y, config)
    views = adversarial.perturbation_views(x, results["DDN 30"], 0, config)
    assert [v[0].split()[0] for v in views] == ["original", "perturbation", "adversarial"]
    assert ((views[1][1] >= 0) & (views[1][1] <= 1)).all()


def test_referable_classifier_thresholds_the_grade_score():
    class Score(nn.Module):
        def forward(self, x):
            return x.flatten(1).mean(1) * 4  # grade-like score in [0, 4]

    clf = adversarial.referable_classifier(Score())
    x = torch.stack([torch.full((3, 2, 2), 0.25), torch.full((3, 2, 2), 0.5)])  # scores 1.0, 2.0
    assert clf(x).argmax(1).tolist() == [0, 1]
