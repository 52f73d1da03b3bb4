"""Attacks on the histology and DR models (Rony 2020, Appendix V) through the experiment module."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from wslbench.errors import ConfigError, InvalidInputError
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


def _tunings(model, x, y, config):
    return adversarial.tune_cw_settings(model, x[:4], y[:4], config)


def test_attack_table_rows_and_closed_form_norms():
    model, x, y = _batch()
    config = adversarial.adversarial_config("smoke", ddn_budgets=(50,), cw_settings=((2, 20),))
    tunings = _tunings(model, x, y, config)
    assert list(tunings) == ["C&W 2x20"]
    assert adversarial.tuning_rows(tunings)[0]["learning_rate"] in config.cw_learning_rates
    rows, results = adversarial.attack_table(model, x, y, config, tunings)
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
    rows, results = adversarial.attack_table(model, far, model(far).argmax(1), config, {})
    assert not results["DDN 1"].success.any(), "one step cannot cross a hyperplane this far"
    assert rows[0]["mean_l2"] is None and rows[0]["success_rate"] == 0.0


def test_curves_selection_training_and_views():
    model, x, y = _batch()
    config = adversarial.adversarial_config("smoke", ddn_budgets=(30,), epsilons=(0.0, 0.05, 10.0))
    curves = adversarial.robustness_curves({"undefended": model}, x, y, config,
                                           _tunings(model, x, y, config))["undefended"]
    assert set(curves) == {"DDN 30", "C&W 2x5", "C&W 1x10", "All"}
    assert curves["All"][0] == 1.0 and curves["All"][-1] == 0.0, "every sample breaks at ε = 10"
    for name, curve in curves.items():  # the per-image minimum is at least as strong as each attack
        assert (curves["All"] <= curve).all(), name
    tunings = _tunings(model, x, y, config)
    _, table = adversarial.attack_table(model, x, y, config, tunings)  # every image is correct here
    reused = adversarial.robustness_curves({"undefended": model}, x, y, config, tunings,
                                           attacked={"undefended": table})["undefended"]
    for name in curves:
        assert reused[name].tolist() == curves[name].tolist(), name
    wrong = adversarial.robustness_curves({"undefended": model}, x, 1 - y, config, tunings)["undefended"]
    assert wrong["All"].tolist() == [0.0, 0.0, 0.0], "a model wrong on every image has accuracy 0"
    xs, ys = adversarial.correctly_classified(model, x, y, n=3)
    assert len(xs) == 3 and torch.equal(model(xs).argmax(1), ys)
    with pytest.raises(InvalidInputError, match="none of the images"):
        adversarial.correctly_classified(model, x, 1 - y, n=3)
    target = adversarial.AttackTarget("DR", model, [(x, y)], (x[:2], y[:2]), (x, y))
    robust = adversarial.adversarially_trained(target, config)
    assert robust is not model and not torch.equal(robust.w, model.w)
    _, results = adversarial.attack_table(model, x, y, config, {})
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


def test_attack_count_is_capped_with_a_message():
    with pytest.warns(UserWarning, match="only 80 held-out patches exist; attacking 80"):
        assert adversarial.cap_attack_count(1000, 80, "held-out patches") == 80
    assert adversarial.cap_attack_count(10, 80, "patches") == 10
    with pytest.raises(InvalidInputError, match="no patches"):
        adversarial.cap_attack_count(10, 0, "patches")


def test_paper_preset_is_appendix_v():
    """Every field the thesis states (Appendix V, 5–7 and Table A V-9)."""
    paper = adversarial.adversarial_config("paper")
    assert paper.n_attack == 1000 and paper.ddn_budgets == (100, 300, 1000)
    assert paper.ddn_gamma == 0.05
    assert paper.cw_settings == ((4, 25), (1, 100)) and paper.cw_reference == (9, 10_000)
    assert paper.cw_learning_rates == (0.01, 0.05, 0.1, 0.5, 1.0)
    assert paper.cw_initial_consts == (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
    assert paper.adv_attack_steps == 100 and paper.clean_weight == 0.0
    assert paper.adv_radius("histology") == paper.adv_radius("DR") == 1.0  # CIFAR-10's ε, 7
    assert (paper.adv_epochs, paper.adv_decay_epoch, paper.adv_lr) == (50, 30, 0.01)  # MNIST, 7
    assert {0.5, 1.0} <= set(paper.epsilons) and paper.model_preset == "paper"
    demo = adversarial.adversarial_config("demo")
    assert demo.cw_reference == (9, 1000) and demo.adv_radius("DR") == 0.25  # measured: 1.0 collapses it
    with pytest.raises(ConfigError, match="unknown attack target 'CT'"):
        demo.adv_radius("CT")


def test_measure_target_yields_every_claim_arm():
    """One target through the whole claim experiment, on the linear model (seconds)."""
    model, x, y = _batch()
    config = adversarial.adversarial_config(
        "smoke", n_attack=8, n_tune=2, epsilons=(0.25, 0.5, 1.0), adv_epochs=2, adv_decay_epoch=1)
    target = adversarial.AttackTarget("histology", model, [(x, y)], (x[:2], y[:2]), (x, y))
    values = adversarial.measure_target(target, config)
    needed = {k for c in adversarial.ADVERSARIAL_CLAIMS.claims if ".histology" in c.id
              for k in (c.treatment, c.baseline, *c.floors)}
    assert needed <= set(values)
    assert values["histology.ddn_success"] == 100.0 and values["histology.undefended_clean_accuracy"] == 1.0
    robust = [c for c in adversarial.ADVERSARIAL_CLAIMS.claims if c.id.startswith("adv_training_robust")]
    assert all({"histology.defended_clean_accuracy", "histology.undefended_clean_accuracy"} <= set(c.floors)
               for c in robust if ".histology" in c.id), "a defended model at chance must void the claim"
    assert values["histology.reference_cw_mean_l2_plus_5pct"] == pytest.approx(
        1.05 * values["histology.reference_cw_mean_l2"])
    for model in ("undefended", "defended"):  # accuracy under attack can only fall as the radius grows
        assert (values[f"histology.{model}_accuracy_half_radius"]
                >= values[f"histology.{model}_accuracy_radius"]), model
    wider = adversarial.measure_target(target, replace(config, histology_adv_max_norm=10.0))
    assert wider["histology.undefended_accuracy_radius"] == 0.0, "every image breaks within ε = 10"


def test_notebook_declares_the_claims():
    from pathlib import Path

    from wslbench.runner.reproduce import notebook_claims

    path = Path(__file__).resolve().parents[1] / "notebooks" / "02b_adversarial.ipynb"
    assert notebook_claims(path) is adversarial.ADVERSARIAL_CLAIMS
    ids = [c.id for c in adversarial.ADVERSARIAL_CLAIMS.claims]
    for target in ("histology", "DR"):
        assert {f"ddn_smaller_than_cw.{target}", f"ddn_fewer_gradients.{target}",
                f"adv_training_robust.{target}.half_radius", f"adv_training_robust.{target}.radius"} <= set(ids)
