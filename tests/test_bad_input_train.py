"""Bad input to training: empty or one-shot data, data the model cannot take, a Learner put
together wrong, metrics that mean nothing, and evaluation from inside a training run."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_train import make_learner, toy_data

import chainrule as cr
from chainrule import nn, optim
from chainrule.data import ArrayDataset, DataLoader
from chainrule.nn import functional as F
from chainrule.train import (
    Callback,
    CancelBatchException,
    IncompatibleDataError,
    Learner,
    accuracy,
    default_metrics,
)


def empty_loader() -> DataLoader:
    return DataLoader(ArrayDataset(np.zeros((0, 8), np.float32), np.zeros(0, np.int64)))


def fewer_than_a_batch() -> DataLoader:
    return DataLoader(toy_data(5), batch_size=16, drop_last=True)


@pytest.mark.parametrize("make", [empty_loader, fewer_than_a_batch, lambda: []],
                         ids=["empty dataset", "drop_last leaves none", "empty list"])
def test_empty_data_is_an_error_that_names_the_split(make) -> None:
    learner = make_learner()
    learner.train_data = make()
    with pytest.raises(ValueError, match="fit: the training data is empty"):
        learner.fit(1)
    learner = make_learner()
    learner.valid_data = make()
    with pytest.raises(ValueError, match="fit: the valid data is empty"):
        learner.fit(1)
    with pytest.raises(ValueError, match="evaluate: the held-out data is empty"):
        learner.evaluate(make(), name="held-out")
    learner.train_data = make()
    with pytest.raises(ValueError, match="lr_find: the training data is empty"):
        learner.lr_find(steps=5)


def test_evaluate_counts_samples_when_the_data_has_no_len() -> None:
    learner = make_learner()
    with pytest.raises(ValueError, match="the test data has no samples"):
        learner.evaluate(iter([]), name="test")


def test_a_one_shot_iterator_is_refused_once_it_is_used_up() -> None:
    learner = make_learner(with_scheduler=False)
    batches = [(cr.tensor(toy_data(16).x), cr.tensor(toy_data(16).y))] * 2
    learner.train_data = iter(batches)  # a generator-like source: one epoch's worth
    with pytest.raises(ValueError, match="epoch 2 got no training batches.*used up"):
        learner.fit(2)


def test_lr_find_on_an_exhausted_iterator_stops_instead_of_spinning() -> None:
    learner = make_learner(with_scheduler=False)
    learner.train_data = iter([])
    with pytest.raises(ValueError, match="lr_find: the training data gave no batches"):
        learner.lr_find(steps=5)


def test_empty_batch_losses_follow_pytorch() -> None:
    import torch

    logits, targets = np.zeros((0, 3), np.float32), np.zeros(0, np.int64)
    for reduction in ("mean", "sum"):
        ours = F.cross_entropy(cr.tensor(logits, requires_grad=True), targets,
                               reduction=reduction)
        theirs = torch.nn.functional.cross_entropy(torch.from_numpy(logits),
                                                   torch.from_numpy(targets),
                                                   reduction=reduction)
        assert math.isnan(ours.item()) == math.isnan(theirs.item())
        ours.backward()
        ours = F.nll_loss(cr.tensor(logits, requires_grad=True), targets, reduction=reduction)
        assert math.isnan(ours.item()) == (reduction == "mean")
    empty = cr.zeros(0, requires_grad=True)
    loss = cr.mse(empty, cr.zeros(0))
    assert math.isnan(loss.item())
    loss.backward()
    assert empty.grad.shape == (0,)
    assert cr.mse(empty, cr.zeros(0), reduction="sum").item() == 0.0


@pytest.mark.parametrize("images, message", [
    (np.zeros((32, 1024), np.float32), r"\(inputs \(16, 1024\) float32.*linear"),
    (np.zeros((32, 8), np.float64), r"\(inputs \(16, 8\) float64.* input 0 is float64"),
    (np.zeros((32, 8, 1), np.float32), r"\(inputs \(16, 8, 1\)"),
], ids=["32x32 images into a 784 model", "float64 batch", "extra axis"])
def test_data_the_model_cannot_take_fails_before_the_first_step(images, message) -> None:
    learner = make_learner()
    before = learner.model.state_dict()
    learner.train_data = DataLoader(ArrayDataset(images, np.zeros(len(images), np.int64)),
                                    batch_size=16)
    with pytest.raises(IncompatibleDataError, match="the model and loss cannot run on the "
                                                    "training data: on its first batch "
                                                    + message):
        learner.fit(1)
    assert learner.step == 0 and learner.history == []
    for key, value in learner.model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_targets_the_loss_cannot_take_fail_before_the_first_step() -> None:
    learner = make_learner()
    learner.valid_data = DataLoader(ArrayDataset(toy_data(16).x, np.full(16, 9)),
                                    batch_size=16)
    with pytest.raises(IncompatibleDataError, match="cannot run on the valid data.*class "
                                                    "indices must lie in"):
        learner.fit(1)


def test_the_check_does_not_disturb_the_loaders_epochs() -> None:
    straight = make_learner()
    straight.fit(2)
    again = make_learner()
    again.train_data.set_epoch(0)
    again.fit(2)
    assert again.recorder.losses == straight.recorder.losses


@pytest.mark.parametrize("kwargs, message", [
    ({"model": lambda x: x}, "model must be a chainrule nn.Module"),
    ({"loss_func": "mse"}, "loss_func must be a function, not the string 'mse'"),
    ({"loss_func": 3}, "loss_func must be callable"),
    ({"loss_func": nn.CrossEntropyLoss}, r"the class CrossEntropyLoss; pass an instance"),
    ({"optimizer": "adam"}, "optimizer must have step"),
    ({"train_data": None}, "train_data must be an iterable"),
    ({"train_data": "batches"}, "train_data must be an iterable"),
    ({"valid_data": 5}, "valid_data must be an iterable"),
    ({"metrics": [accuracy]}, "metrics must be a dict"),
    ({"metrics": {"acc": "accuracy"}}, r"metrics\['acc'\] must be a function"),
    ({"scheduler": 1}, "scheduler must have step"),
    ({"valid_name": "my split"}, "valid_name must be a short name"),
])
def test_a_learner_put_together_wrong_fails_at_construction(kwargs, message) -> None:
    model = nn.Linear(8, 3)
    parts = {"model": model, "train_data": [], "optimizer": optim.SGD(model.parameters(), 0.1),
             **kwargs}
    with pytest.raises((TypeError, ValueError), match=message):
        Learner(**parts)


def test_fit_without_an_optimizer_or_with_a_bad_epoch_count_is_refused() -> None:
    learner = Learner(nn.Linear(8, 3), [], optimizer=None)
    with pytest.raises(ValueError, match="no optimizer"):
        learner.fit(1)
    with pytest.raises(TypeError, match="fit: epochs must be an int"):
        make_learner().fit(1.5)
    with pytest.raises(ValueError, match="fit: epochs must be >= 0"):
        make_learner().fit(-1)


def test_metrics_default_by_task() -> None:
    assert set(default_metrics(F.cross_entropy)) == {"accuracy"}
    assert set(default_metrics(nn.CrossEntropyLoss())) == {"accuracy"}
    assert set(default_metrics(F.nll_loss)) == {"accuracy"}
    assert default_metrics(cr.mse) == {} and default_metrics(nn.MSELoss()) == {}
    import functools

    assert set(default_metrics(functools.partial(F.cross_entropy, reduction="mean"))) == {
        "accuracy"}


def test_a_regression_reports_no_accuracy() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    data = DataLoader(ArrayDataset(x, (x @ np.ones((4, 1), np.float32))), batch_size=16)
    model = nn.Linear(4, 1)
    learner = Learner(model, data, optim.SGD(model.parameters(), 0.05), valid_data=data,
                      loss_func=cr.mse)
    history = learner.fit(2)
    assert set(history[-1]) == {"epoch", "train_loss", "valid_loss", "seconds"}
    assert history[-1]["valid_loss"] < history[0]["valid_loss"]


@pytest.mark.parametrize("scores, targets, error", [
    (np.zeros((4, 1)), np.zeros(4), TypeError),
    (np.zeros((4, 3)), np.zeros(4, np.float32), TypeError),
    (np.zeros((4, 1)), np.zeros(4, np.int64), ValueError),
    (np.zeros((4, 3)), np.zeros(5, np.int64), ValueError),
    (np.zeros((0, 3)), np.zeros(0, np.int64), ValueError),
], ids=["regression", "float labels", "one column", "counts differ", "empty"])
def test_accuracy_refuses_what_it_cannot_measure(scores, targets, error) -> None:
    with pytest.raises(error, match="accuracy"):
        accuracy(scores, targets)


class EvaluatesMidway(Callback):
    """Evaluates from inside the training loop, as a user's callback might."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def after_batch(self, learner: Learner) -> None:
        if learner.training and learner.batch_index == 2:
            batch, loss = learner.batch, learner.loss
            learner.evaluate(learner.valid_data)
            self.seen.append((learner.training, learner.batch is batch, learner.loss is loss,
                              learner.model.training))


def test_evaluate_inside_training_leaves_the_learner_as_it_was() -> None:
    probe = EvaluatesMidway()
    learner = make_learner(callbacks=[probe])
    learner.fit(2)
    assert probe.seen == [(True, True, True, True)] * 2
    # Every training batch's loss was recorded (16 samples a batch, 96 samples: 6 per epoch).
    assert len(learner.recorder.losses) == 12


def test_a_cancelled_epoch_reports_nan_not_zero() -> None:
    class SkipAll(Callback):
        def before_batch(self, learner: Learner) -> None:
            if learner.training:
                raise CancelBatchException

    learner = make_learner(callbacks=[SkipAll()])
    history = learner.fit(1)
    assert math.isnan(history[0]["train_loss"])


@pytest.mark.parametrize("change", [
    lambda info: info["optimizer"]["param_groups"][0].update(lr="fast"),
    lambda info: info["optimizer"]["param_groups"].append({"params": []}),
    lambda info: info["scheduler"].update(total_steps="many"),
], ids=["lr not a number", "an extra group", "schedule not a number"])
def test_a_checkpoint_the_learner_cannot_take_changes_nothing(tmp_path, change) -> None:
    from chainrule import io

    source = make_learner()
    source.fit(1)
    path = tmp_path / "c.safetensors"
    source.save_checkpoint(path)
    state, arrays, info = io.load_checkpoint(path)
    change(info)
    io.save_checkpoint(path, state, arrays, info)
    target = make_learner(seed=5)
    before = target.model.state_dict()
    with pytest.raises(io.CheckpointError, match="this learner cannot take it, nothing was "
                                                 "changed"):
        target.load_checkpoint(path)
    for key, value in target.model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    assert target.optimizer.state == {} and target.next_epoch == 0


def test_an_empty_batch_inside_the_data_is_named_not_called_divergence() -> None:
    learner = make_learner(with_scheduler=False)
    x, y = toy_data(16).x, toy_data(16).y
    learner.train_data = [(cr.tensor(x), cr.tensor(y)), (cr.tensor(x[:0]), cr.tensor(y[:0]))]
    with pytest.raises(ValueError, match="fit: batch 2 of epoch 1 has no samples"):
        learner.fit(1)


def test_lr_find_refuses_to_suggest_from_nothing() -> None:
    learner = make_learner(with_scheduler=False)
    x, y = toy_data(16).x.copy(), toy_data(16).y
    x[0, 0] = np.nan
    learner.train_data = [(cr.tensor(x), cr.tensor(y))]
    with pytest.raises(ValueError, match="lr_find: the loss was nan at the first step"):
        learner.lr_find(steps=5)
    learner = make_learner(with_scheduler=False)
    for bad in ({"steps": 1}, {"start": 0.0}, {"end": 1e-9}, {"stop_factor": 0.5}):
        with pytest.raises(ValueError, match="lr_find"):
            learner.lr_find(**bad)


def test_accuracy_of_scores_that_are_not_finite_is_nan() -> None:
    scores = np.array([[np.nan, 1.0], [0.0, 1.0]])
    assert math.isnan(accuracy(scores, np.array([0, 1])))


@pytest.mark.parametrize("step", [-3, 2.5])
def test_an_optimizer_state_with_an_impossible_step_count_is_refused(step) -> None:
    model = nn.Linear(2, 2)
    opt = optim.Adam(model.parameters())
    model(cr.randn(3, 2)).sum().backward()
    opt.step()
    state = opt.state_dict()
    state["state"][0]["step"] = step
    with pytest.raises((TypeError, ValueError), match="state step of parameter 0"):
        opt.load_state_dict(state)
