"""The shared training loop (issue 18): selection, schedules, plateau, early stopping, cancel."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wslbench.errors import ConfigError
from wslbench.progress import StopRequested
from wslbench.training import EarlyStopping
from wslbench.training.loop import StepOutput, fit, index_batches


def _setup(scores):
    """A 1-parameter model, 2 batches per epoch, validation scores read from ``scores``."""
    torch.manual_seed(0)
    model = nn.Linear(1, 1, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.ones(4, 1), torch.full((4, 1), 3.0)
    it = iter(scores)
    weights = []

    def step(idx):
        return nn.functional.mse_loss(model(x[idx]), y[idx])

    def validate():
        weights.append(float(model.weight))
        return {"score": next(it), "loss_val": 1.0}

    return model, opt, step, validate, weights, lambda epoch: [torch.tensor([0, 1]), torch.tensor([2, 3])]


@pytest.mark.parametrize("mode, ties, expected", [("max", "latest", 4), ("max", "earliest", 2),
                                                   ("min", "latest", 3)])
def test_the_selected_checkpoint_is_restored(mode, ties, expected):
    model, opt, step, validate, weights, batches = _setup([0.5, 0.9, 0.1, 0.9])
    result = fit(model, step, batches, epochs=4, optimiser=opt, validate=validate, select="score",
                 mode=mode, ties=ties, keep_checkpoints=True)
    assert result.best.epoch == expected and len(result.checkpoints) == 4
    assert float(model.weight) == pytest.approx(weights[expected - 1]) and not model.training
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4] and result.n_steps == 8


def test_validation_every_n_steps_and_at_the_end_with_per_step_records():
    model, opt, step, validate, _, batches = _setup([0.1, 0.2, 0.3])
    result = fit(model, step, batches, epochs=3, optimiser=opt, validate=validate,
                 validate_every=4, record_steps=True)
    assert [r["step"] for r in result.history] == [4, 6]  # every 4 steps, then the last step
    assert [r["step"] for r in result.steps] == list(range(1, 7))
    assert result.history[0]["train_loss"] == pytest.approx(
        sum(r["loss"] for r in result.steps[:4]) / 4)


def test_weighted_epoch_loss_logs_and_step_schedule():
    model, opt, _, _, _, batches = _setup([])
    x, y = torch.ones(4, 1), torch.zeros(4, 1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

    def step(idx):
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        return StepOutput(loss, {"half": float(loss) / 2}, weight=len(idx))

    result = fit(model, step, lambda e: [torch.tensor([0]), torch.tensor([1, 2, 3])], epochs=1,
                 optimiser=opt, schedule=sched, record_steps=True)
    losses = [r["loss"] for r in result.steps]
    assert result.history[0]["train_loss"] == pytest.approx((losses[0] + 3 * losses[1]) / 4)
    assert result.history[0]["half"] == pytest.approx(result.history[0]["train_loss"] / 2)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.25)


def test_plateau_divides_the_learning_rate_by_ten():
    model, opt, step, validate, _, batches = _setup([0.5, 0.5, 0.5, 0.5])
    fit(model, step, batches, epochs=4, optimiser=opt, validate=validate, select="score",
        plateau_patience=1)
    # no gain at epochs 2 and 3: the third flat validation exceeds patience 1 -> lr / 10
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)


def test_early_stopping_watches_the_monitored_metric():
    model, opt, step, validate, _, batches = _setup([0.1] * 10)
    seen = []
    result = fit(model, step, batches, epochs=10, optimiser=opt, validate=validate,
                 early_stopping=EarlyStopping(patience=2), monitor="loss_val",
                 progress=lambda d, t, logs: seen.append((d, t, sorted(logs))), report_every="epoch")
    assert result.early_stopped and len(result.history) == 3
    assert seen[-1][:2] == (3, 3) and seen[0][2] == ["loss_val", "score", "train_loss"]


def test_cancel_returns_an_interrupted_result_with_the_best_state_so_far():
    model, opt, step, validate, weights, batches = _setup([0.9, 0.1, 0.1])
    reports = []

    def progress(done, total, logs):
        reports.append((done, total))
        if done == 15:  # 5th step of this call, placed after 10 steps of an earlier phase
            raise StopRequested

    result = fit(model, step, batches, epochs=3, optimiser=opt, validate=validate, select="score",
                 progress=progress, step_offset=10, total_steps=30)
    assert result.interrupted and not result.early_stopped and result.n_steps == 5
    assert reports[0] == (11, 30) and len(result.history) == 2
    assert result.best.epoch == 1 and float(model.weight) == pytest.approx(weights[0])


def test_bad_arguments_are_refused():
    model, opt, step, validate, _, batches = _setup([0.5])
    with pytest.raises(ConfigError, match="select and monitor need a validate"):
        fit(model, step, batches, epochs=1, optimiser=opt, select="score")
    with pytest.raises(ConfigError, match="early_stopping needs monitor"):
        fit(model, step, batches, epochs=1, optimiser=opt, validate=validate,
            early_stopping=EarlyStopping(patience=1))
    with pytest.raises(ConfigError, match="'acc' is not among the validation metrics"):
        fit(model, step, batches, epochs=1, optimiser=opt, validate=validate, select="acc")
    with pytest.raises(ConfigError, match="epochs must be an integer >= 1"):
        fit(model, step, batches, epochs=0, optimiser=opt)


def test_index_batches_merge_a_trailing_single_item():
    assert [b.tolist() for b in index_batches(torch.arange(5), 2)] == [[0, 1], [2, 3, 4]]
    assert [b.tolist() for b in index_batches(torch.arange(4), 2)] == [[0, 1], [2, 3]]
