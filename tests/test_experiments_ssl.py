"""The SSL DR experiment (Arora et al.) on the smoke preset: pools, regimes, logs, sweeps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from wslbench.errors import ConfigError, InvalidInputError
from wslbench.experiments import ssl


@pytest.fixture(scope="module")
def smoke():
    config = ssl.ssl_config("smoke")
    return config, ssl.make_ssl_data(config)


def test_paper_preset_and_bad_overrides():
    paper = ssl.ssl_config("paper")
    assert (paper.architecture, paper.image_size, paper.batch_size, paper.lam) == (
        "aeres18", 512, 48, 3.0)
    assert (paper.lr, paper.momentum, paper.nesterov, paper.weight_decay) == (0.004, 0.9, False, 1e-5)
    with pytest.raises(ConfigError, match="label_fraction"):
        ssl.ssl_config("smoke", label_fraction=0.0)
    with pytest.raises(ConfigError, match="expected one of"):
        ssl.ssl_config("smoke", regime="semi")


def test_pools_are_disjoint_and_the_test_set_is_fixed(smoke):
    config, data = smoke
    parts = [set(data.labelled), set(data.unlabelled), set(data.val), set(data.test)]
    assert sum(len(p) for p in parts) == len(set().union(*parts)) == config.n_images + config.n_unlabelled
    assert (data.labels[data.labelled] >= 0).all() and (data.labels[config.n_images:] == -1).all()
    other = ssl.make_ssl_data(replace(config, seed=1))
    assert np.array_equal(np.sort(other.test), np.sort(data.test)), "test_seed fixes the test set"


@pytest.mark.parametrize("architecture", ["aecl1", "aeres18"])
@pytest.mark.parametrize("regime", ssl.REGIMES)
def test_each_regime_trains_and_logs_its_minibatch_kinds(smoke, architecture, regime):
    config, data = smoke
    run = ssl.train_ssl(replace(config, architecture=architecture, regime=regime), data)
    kinds = {s["kind"] for s in run.steps}
    expected = {"cl": {"labelled"}, "ae_then_cl": {"labelled", "unlabelled"},
                "combined": {"labelled", "unlabelled"}}[regime]
    assert kinds == expected
    assert 0.0 <= run.max_test_accuracy <= 1.0
    if regime == "combined":  # whole minibatches of each kind, in proportion to the pools
        labelled_steps = sum(s["kind"] == "labelled" for s in run.steps)
        per_epoch = -(-len(data.labelled) // config.batch_size)
        assert labelled_steps == per_epoch * config.epochs
        assert all("L_cl" in s and "lambda" in s for s in run.steps if s["kind"] == "labelled")


def test_ae_phase_lowers_the_reconstruction_loss(smoke):
    config, data = smoke
    run = ssl.train_ssl(replace(config, regime="ae_then_cl", ae_epochs=6, augment=False), data)
    ae = [h["loss"] for h in run.history if h["phase"] == "ae"]
    assert ae[-1] < ae[0]


def test_seeded_training_and_adaptive_lambda(smoke):
    config, data = smoke
    a = ssl.train_ssl(config, data)
    b = ssl.train_ssl(config, data)
    assert [s["L_ae"] for s in a.steps] == [s["L_ae"] for s in b.steps]
    adaptive = ssl.train_ssl(replace(config, adaptive_lambda=True), data)
    lambdas = [s["lambda"] for s in adaptive.steps if s["kind"] == "labelled"]
    assert lambdas and all(v > 0 for v in lambdas) and len(set(lambdas)) > 1


def test_tables_reconstructions_and_errors(smoke):
    config, data = smoke
    rows = ssl.compare_regimes(config, data)
    assert [r["regime"] for r in rows] == list(ssl.REGIMES)
    sweep = ssl.label_fraction_sweep(config, [0.5], regimes=("cl",))
    assert sweep[0]["label_fraction"] == 0.5
    run = ssl.train_ssl_cached(config, data)
    recon = ssl.reconstructions(run.model, data.images[:2])
    assert recon.shape == (2, 3, 64, 64) and 0 <= float(recon.min()) and float(recon.max()) <= 1
    with pytest.raises(InvalidInputError, match="labelled cases"):
        ssl.evaluate_ssl(run.model, data, data.unlabelled[-2:])


@pytest.mark.parametrize(("preset", "architecture", "expected"), [
    ("paper", "aecl1", ("adam", 5e-6, 6, 400.0, 0.0)),  # CL1 in 5.2 and Table 2
    ("paper", "aeres18", ("sgd", 0.004, 48, 3.0, 1e-5)),  # Res18 in 5.2 and Table 2
    ("demo", "aecl1", ("adam", 3e-3, 16, 400.0, 0.0)),
    ("demo", "aeres18", ("sgd", 0.01, 8, 3.0, 1e-5)),
])
def test_presets_follow_the_architecture(preset, architecture, expected):
    config = ssl.ssl_config(preset, architecture=architecture)
    assert (config.optimizer, config.lr, config.batch_size, config.lam, config.weight_decay) == expected
    assert ssl.ssl_config(preset, architecture=architecture, lr=0.01).lr == 0.01  # overrides win
    assert ssl.ssl_config("paper").n_unlabelled == 690  # the Messidor Extension (4.1)
    assert round(0.2 * ssl.ssl_config("demo").n_images) >= 200  # test set of the demo (20 %)


def test_labelled_hospitals_unlabel_rest_and_retrain(smoke):
    config = replace(smoke[0], label_fraction=0.25)
    data = ssl.make_ssl_data(replace(config, labelled_hospitals=1))
    assert set(data.hospital[data.labelled].tolist()) == {0}
    assert {1, 2} <= set(data.hospital[data.unlabelled].tolist())
    full = ssl.make_ssl_data(config)
    assert len(data.labelled) == len(full.labelled)  # the pool size is kept
    only_extra = ssl.make_ssl_data(replace(config, unlabel_rest=False))
    assert (only_extra.labels[only_extra.unlabelled] == -1).all()
    assert len(only_extra.unlabelled) == config.n_unlabelled
    retrained = ssl.make_ssl_data(replace(config, retrain=True))
    assert len(retrained.val) == 0 and np.array_equal(retrained.test, full.test)
    assert len(retrained.labelled) > len(full.labelled)  # the pool is a share of train + val
    with pytest.raises(ConfigError, match="labelled hospital"):
        ssl.make_ssl_data(replace(config, labelled_hospitals=1, label_fraction=0.9))
    with pytest.raises(ConfigError, match="labelled_hospitals"):
        ssl.ssl_config("smoke", labelled_hospitals=4)


def test_balanced_accuracy_of_a_constant_classifier(smoke):
    _, data = smoke

    class Constant(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = torch.nn.Parameter(torch.ones(()))

        def classify(self, x: torch.Tensor) -> torch.Tensor:
            return self.bias.expand(x.shape[0])

    out = ssl.evaluate_ssl(Constant(), data, data.test)
    assert out["balanced_accuracy"] == 0.5
    assert out["accuracy"] == pytest.approx(float(data.labels[data.test].float().mean()))


def test_evaluation_every_few_epochs_keeps_the_last(smoke):
    config, data = smoke
    run = ssl.train_ssl(replace(config, regime="cl", epochs=5, eval_every=2), data)
    evaluated = [h["epoch"] for h in run.history if "test_balanced_accuracy" in h]
    assert evaluated == [2, 4, 5]
    assert run.final_test_balanced_accuracy == run.history[-1]["test_balanced_accuracy"]
    with pytest.raises(ConfigError, match="eval_every"):
        ssl.ssl_config("smoke", eval_every=0)


def test_cosine_schedule_ends_near_zero(smoke, monkeypatch):
    config, data = smoke
    rates: list[float] = []
    original = torch.optim.SGD.step

    def spy(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    ssl.train_ssl(replace(config, regime="cl", schedule="cosine", epochs=3), data)
    assert rates[0] == config.lr and rates[-1] < 0.1 * config.lr
    rates.clear()
    ssl.train_ssl(replace(config, regime="cl", schedule="constant", epochs=3), data)
    assert set(rates) == {config.lr}


def test_claims_pair_the_arms_of_a_seed(monkeypatch):
    from wslbench.claims import judge
    from wslbench.experiments.ssl import claims

    seen: dict[int, set[int]] = {}

    class Run:
        def __init__(self, config, data):
            seen.setdefault(id(data), set()).add(config.label_fraction)
            gain = {"cl": 0.0, "ae_then_cl": 0.05 if config.label_fraction < 0.2 else 0.02,
                    "combined": 0.01}[config.regime]
            self.final_test_balanced_accuracy = 0.7 + gain + 0.001 * config.seed

    made: list[object] = []  # kept alive, so their ids stay distinct
    monkeypatch.setattr(claims, "make_ssl_data", lambda config: made.append(object()) or made[-1])
    monkeypatch.setattr(claims, "train_ssl_cached", Run)
    per_seed = [claims.measure("smoke", seed) for seed in range(3)]
    assert len(seen) == 2 * 3 and all(len(f) == 1 for f in seen.values())  # one data set per fraction
    assert per_seed[0]["cl_worst"] == pytest.approx(0.7)
    verdicts = {c.id: judge(c, per_seed)["reproduced"] for c in claims.CLAIMS.claims}
    assert verdicts["baseline_learns"] and verdicts["ae_then_cl_helps"]
    assert verdicts["gain_grows_with_fewer_labels"] and not verdicts["combined_below_cl_aecl1"]


def test_pretrained_weights_load_into_the_aeres18_encoder(tmp_path):
    from wslbench.checkpoint import save_checkpoint
    from wslbench.errors import DataFormatError
    from wslbench.models.ssl import create_ssl_model

    config = ssl.ssl_config("smoke", architecture="aeres18")
    donor = create_ssl_model("aeres18", base_width=config.base_width).encoder
    torch.nn.init.constant_(donor.stem[0].weight, 0.25)
    path = save_checkpoint(donor.state_dict(), tmp_path / "encoder.pt")
    model = ssl.build_ssl_model(replace(config, pretrained_weights=str(path)))
    assert model.imagenet_normalize
    assert all(torch.equal(a, b) for a, b in zip(model.encoder.state_dict().values(),
                                                 donor.state_dict().values(), strict=True))
    assert not ssl.build_ssl_model(config).imagenet_normalize
    wrong = save_checkpoint(create_ssl_model("aeres18", base_width=8).encoder.state_dict(),
                            tmp_path / "wide.pt")
    with pytest.raises(DataFormatError, match="does not hold weights"):
        ssl.build_ssl_model(replace(config, pretrained_weights=str(wrong)))
    with pytest.raises(ConfigError, match="aeres18"):
        ssl.ssl_config("smoke", architecture="aecl1", pretrained_weights=str(path))


def test_recorded_claims_table(tmp_path):
    import json

    from wslbench.claims import judge
    from wslbench.experiments.ssl import claims

    assert claims.recorded_claims(tmp_path / "none.json") == []
    per_seed = [{"cl_worst": 0.7 + 0.01 * s, "chance": 0.5} for s in range(3)]
    entry = judge(claims.CLAIMS.claims[0], per_seed)
    path = tmp_path / "03.json"
    path.write_text(json.dumps({"claims": [entry], "seeds": [0, 1, 2], "preset": "demo"}))
    (row,) = claims.recorded_claims(path)
    assert (row["claim"], row["reproduced"], row["seeds"], row["preset"]) == (
        "baseline_learns", True, 3, "demo")
    assert row["treatment"] == pytest.approx(0.71)
