"""The Learner: callback order, cancelling, divergence, exact resume, the lr finder, plots."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn, optim
from chainrule.data import ArrayDataset, DataLoader
from chainrule.train import (
    Callback,
    CancelBatchException,
    CancelFitException,
    CheckpointCallback,
    Learner,
    SchedulerCallback,
    TrainingDiverged,
    plot_loss_curves,
)


def toy_data(n: int = 96, seed: int = 0) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    return ArrayDataset(x, y)


def make_learner(seed: int = 0, lr: float = 0.05, callbacks=(), epochs: int = 3,
                 with_scheduler: bool = True) -> Learner:
    cr.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    train = DataLoader(toy_data(), batch_size=16, shuffle=True, seed=7)
    valid = DataLoader(toy_data(48, seed=1), batch_size=16)
    scheduler = optim.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * len(train)) \
        if with_scheduler else None
    return Learner(model, train, optimizer, valid_data=valid, scheduler=scheduler,
                   callbacks=list(callbacks))


class EventLog(Callback):
    def __init__(self) -> None:
        self.events: list[str] = []

    def __getattribute__(self, name: str):
        if name in cr.train.EVENTS:
            return lambda learner: self.events.append(name)
        return object.__getattribute__(self, name)


def test_events_arrive_in_order() -> None:
    log = EventLog()
    learner = make_learner(callbacks=[log])
    learner.train_data = DataLoader(toy_data(32), batch_size=16)
    learner.valid_data = DataLoader(toy_data(16), batch_size=16)
    learner.fit(1)
    train_batch = ["before_batch", "after_loss", "after_backward", "after_step", "after_batch"]
    valid_batch = ["before_batch", "after_loss", "after_batch"]
    assert log.events == ["before_fit", "before_epoch", "before_train", *train_batch,
                          *train_batch, "after_train", "before_validate", *valid_batch,
                          "after_validate", "after_epoch", "after_fit"]


def test_callbacks_run_by_order() -> None:
    seen: list[str] = []

    class Tagged(Callback):
        def __init__(self, tag: str, order: int) -> None:
            self.tag, self.order = tag, order

        def before_fit(self, learner: Learner) -> None:
            seen.append(self.tag)

    learner = make_learner(callbacks=[Tagged("late", 5), Tagged("early", -5), Tagged("mid", 0)])
    learner.fit(1)
    assert seen == ["early", "mid", "late"]


def test_cancel_batch_skips_the_step_but_after_batch_runs() -> None:
    class SkipAll(Callback):
        after = 0

        def before_batch(self, learner: Learner) -> None:
            if learner.training:
                raise CancelBatchException

        def after_batch(self, learner: Learner) -> None:
            SkipAll.after += 1

    learner = make_learner(callbacks=[SkipAll()], with_scheduler=False)
    before = learner.model.state_dict()
    learner.fit(1)
    assert learner.step == 0 and SkipAll.after > 0
    for key, value in learner.model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_cancel_fit_stops_after_the_epoch_and_after_fit_runs() -> None:
    class StopAfterOne(Callback):
        finished = False

        def after_epoch(self, learner: Learner) -> None:
            raise CancelFitException

        def after_fit(self, learner: Learner) -> None:
            StopAfterOne.finished = True

    learner = make_learner(callbacks=[StopAfterOne()])
    learner.fit(3)
    assert StopAfterOne.finished and learner.epoch == 0


def test_history_has_a_row_per_epoch_and_the_model_learns() -> None:
    learner = make_learner()
    history = learner.fit(3)
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert set(history[0]) == {"epoch", "train_loss", "valid_loss", "valid_accuracy", "seconds"}
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["valid_accuracy"] > 0.6


def test_a_nan_loss_stops_training_and_says_what_to_try() -> None:
    learner = make_learner(lr=1e12, with_scheduler=False)
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf) during training at "
                                               r"epoch 1, step \d+ .*learning rate 1e\+12.*Try"):
        learner.fit(2)


def test_resuming_from_a_checkpoint_repeats_the_uninterrupted_run_bit_for_bit(tmp_path) -> None:
    straight = make_learner()
    straight.fit(3)

    first = make_learner(callbacks=[CheckpointCallback(tmp_path / "c.safetensors")])
    first.fit(1)
    resumed = make_learner(seed=99)  # a different init: everything must come from the file
    resumed.load_checkpoint(tmp_path / "c.safetensors")
    resumed.fit(3)

    assert resumed.recorder.losses == straight.recorder.losses
    assert resumed.recorder.lrs == straight.recorder.lrs
    assert [r["valid_loss"] for r in resumed.history] == [r["valid_loss"]
                                                          for r in straight.history]
    for key, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[key], value)


def test_fit_refuses_to_go_backwards() -> None:
    learner = make_learner()
    learner.fit(2)
    with pytest.raises(ValueError, match="already done 2 epochs"):
        learner.fit(1)


def test_lr_find_sweeps_suggests_and_leaves_no_trace() -> None:
    learner = make_learner(with_scheduler=False)
    before = learner.model.state_dict()
    lrs, losses, suggestion = learner.lr_find(steps=60)
    assert len(lrs) == len(losses) >= 10 and lrs == sorted(lrs)
    assert 1e-7 <= suggestion <= 10
    assert learner.optimizer.param_groups[0]["lr"] == 0.05
    for key, value in learner.model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_loss_curves_are_written_as_png(tmp_path) -> None:
    learner = make_learner()
    learner.fit(2)
    path = plot_loss_curves(learner.recorder, learner.history, tmp_path / "loss.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_and_predict_record_nothing() -> None:
    learner = make_learner()
    out = learner.predict(cr.tensor(toy_data(4).x))
    assert out.shape == (4, 3) and not out.requires_grad
    assert learner.model.training
    result = learner.evaluate(learner.valid_data)
    assert set(result) == {"loss", "accuracy"}


def test_the_learner_steps_its_scheduler_once_a_batch_and_refuses_it_twice() -> None:
    learner = make_learner(epochs=1)
    learner.fit(1)
    assert learner.scheduler.last_epoch == len(learner.train_data)
    twice = make_learner()
    with pytest.raises(ValueError, match="given twice"):
        Learner(twice.model, twice.train_data, twice.optimizer, scheduler=twice.scheduler,
                callbacks=[SchedulerCallback(twice.scheduler)])
    with pytest.raises(ValueError, match="given twice"):  # added later, as well
        twice.add_callback(SchedulerCallback(twice.scheduler))
    assert not any(isinstance(cb, SchedulerCallback) for cb in twice.callbacks)


def test_after_step_callbacks_see_the_learning_rate_the_step_used() -> None:
    class Rates(Callback):
        def __init__(self) -> None:
            self.seen: list[float] = []

        def after_step(self, learner: Learner) -> None:
            self.seen.append(learner.lr)

    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    optimizer = optim.SGD(model.parameters(), lr=1.0)
    rates = Rates()
    learner = Learner(model, [(cr.randn(8, 4), np.arange(8) % 3)] * 3, optimizer,
                      scheduler=optim.StepLR(optimizer, step_size=1, gamma=0.5),
                      callbacks=[rates])
    learner.fit(1)
    assert rates.seen == [1.0, 0.5, 0.25] and optimizer.param_groups[0]["lr"] == 0.125
    assert learner.recorder.lrs == rates.seen  # each batch's loss beside the rate it used



def test_a_plot_shows_itself_inline_in_jupyter(tmp_path) -> None:
    from pathlib import Path

    learner = make_learner()
    learner.fit(1)
    path = plot_loss_curves(learner.recorder, learner.history, tmp_path / "curve.png")
    assert isinstance(path, Path) and path == tmp_path / "curve.png"
    assert path._repr_png_() == (tmp_path / "curve.png").read_bytes()
    assert path._repr_png_()[:4] == b"\x89PNG"
