"""Learner: the training loop, with callbacks at every step and checkpoints that resume exactly."""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from chainrule import backend, io
from chainrule.nn.module import Module
from chainrule.ops.nn import cross_entropy
from chainrule.tensor import Tensor, no_grad
from chainrule.train.callbacks import (
    Callback,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelTrainException,
    CancelValidateException,
    DivergenceGuard,
    Recorder,
)
from chainrule.train.metrics import accuracy

Metric = Callable[[Any, Any], float]


class Learner:
    """Trains ``model`` on ``train_data`` with ``optimizer``, calling ``callbacks`` on the way.

    ``train_data``/``valid_data`` are iterables of (inputs, targets) batches with ``len()``;
    a ``set_epoch(e)`` method, if present, is called each epoch (chainrule's DataLoader uses it
    to make shuffling reproducible and resumable). After each epoch ``history`` gains a row:
    epoch, train_loss, valid_loss, the ``metrics`` and seconds.

    Attributes callbacks read: model, optimizer, epoch, epochs, step (optimizer steps so far),
    batch_index, batch, preds, loss, training, lr, history, last_validation.
    """

    def __init__(self, model: Module, train_data: Iterable, optimizer: Any,
                 valid_data: Iterable | None = None,
                 loss_func: Callable[[Any, Any], Tensor] = cross_entropy,
                 callbacks: Sequence[Callback] = (),
                 metrics: Mapping[str, Metric] | None = None,
                 scheduler: Any = None, config: Mapping[str, Any] | None = None) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_data, self.valid_data = train_data, valid_data
        self.loss_func = loss_func
        self.metrics = dict(metrics) if metrics is not None else {"accuracy": accuracy}
        self.config = dict(config or {})  # JSON-able: how to rebuild model and data
        self.recorder = Recorder()
        self.callbacks: list[Callback] = [self.recorder, DivergenceGuard()]
        for callback in callbacks:
            self.add_callback(callback)
        self.history: list[dict[str, Any]] = []
        self.last_validation: dict[str, float] = {}
        self.epoch, self.epochs, self.step, self.batch_index = 0, 0, 0, 0
        self.next_epoch = 0  # where fit() starts: moved on by fit, restored by checkpoints
        self.training = False
        self.batch: Any = None
        self.preds: Any = None
        self.loss: Any = None

    # ------------------------------------------------------------------ callbacks
    def add_callback(self, callback: Callback) -> None:
        """Add a callback (kept sorted by ``order``)."""
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks must be Callback instances, got "
                            f"{type(callback).__name__}")
        self.callbacks.append(callback)
        self.callbacks.sort(key=lambda cb: cb.order)

    def _event(self, name: str) -> None:
        for callback in self.callbacks:
            getattr(callback, name)(self)

    def _stage(self, name: str, body: Callable[[], None],
               cancel: type[Exception]) -> None:
        try:
            self._event(f"before_{name}")
            body()
        except cancel:
            pass
        self._event(f"after_{name}")

    # ------------------------------------------------------------------ the loop
    @property
    def lr(self) -> float:
        """The current learning rate (of the first parameter group)."""
        groups = getattr(self.optimizer, "param_groups", None)
        return float(groups[0]["lr"]) if groups else float("nan")

    def fit(self, epochs: int) -> list[dict[str, Any]]:
        """Train until ``epochs`` epochs are done in all (a resumed learner continues)."""
        if epochs < self.next_epoch:
            raise ValueError(f"fit({epochs}): this learner has already done {self.next_epoch} "
                             "epochs; ask for more")
        self.epochs = epochs
        try:
            self._stage("fit", self._fit_body, CancelFitException)
        finally:
            self.training = False
            self._event("cleanup_fit")
        return self.history

    def _fit_body(self) -> None:
        for epoch in range(self.next_epoch, self.epochs):
            self.epoch = epoch
            # Moved on before the epoch's callbacks run, so that a checkpoint saved in
            # after_epoch resumes with the next epoch.
            self.next_epoch = epoch + 1
            self._stage("epoch", self._epoch_body, CancelEpochException)

    def _epoch_body(self) -> None:
        self._stage("train", self._train_body, CancelTrainException)
        self.last_validation = {}
        if self.valid_data is not None:
            self._stage("validate", self._validate_body, CancelValidateException)

    def _train_body(self) -> None:
        self.model.train()
        self.training = True
        _set_epoch(self.train_data, self.epoch)
        for index, batch in enumerate(self.train_data):
            self.batch_index, self.batch = index, batch
            self.preds = self.loss = None  # a cancelled batch must not show the last one's
            self._stage("batch", self._train_batch, CancelBatchException)

    def _train_batch(self) -> None:
        inputs, targets = self.batch
        self.preds = self.model(inputs)
        self.loss = self.loss_func(self.preds, targets)
        self._event("after_loss")
        self.loss.backward()
        self._event("after_backward")
        self.optimizer.step()
        self.step += 1
        self._event("after_step")
        self.optimizer.zero_grad()

    def _validate_body(self) -> None:
        self.last_validation = self.evaluate(self.valid_data, events=True)

    def evaluate(self, data: Iterable, events: bool = False) -> dict[str, float]:
        """Mean loss and metrics over ``data``, without recording gradients."""
        was_training = self.model.training
        self.model.eval()
        self.training = False
        totals: dict[str, float] = {"valid_loss": 0.0, **{k: 0.0 for k in self.metrics}}
        count = 0
        try:
            with no_grad():
                for index, batch in enumerate(data):
                    self.batch_index, self.batch = index, batch
                    if events:
                        self._event("before_batch")
                    inputs, targets = self.batch
                    self.preds = self.model(inputs)
                    self.loss = self.loss_func(self.preds, targets)
                    if events:
                        self._event("after_loss")
                    size = len(targets)
                    totals["valid_loss"] += float(self.loss.item()) * size
                    for name, metric in self.metrics.items():
                        totals[name] += metric(self.preds, targets) * size
                    count += size
                    if events:
                        self._event("after_batch")
        finally:
            self.model.train(was_training)
        return {name: total / max(count, 1) for name, total in totals.items()}

    def predict(self, inputs: Any) -> Tensor:
        """The model's output for ``inputs`` in eval mode, without recording gradients."""
        was_training = self.model.training
        self.model.eval()
        try:
            with no_grad():
                return self.model(inputs)
        finally:
            self.model.train(was_training)

    # ------------------------------------------------------------------ learning-rate finder
    def lr_find(self, start: float = 1e-7, end: float = 10.0, steps: int = 100,
                stop_factor: float = 4.0) -> tuple[list[float], list[float], float]:
        """Sweep the learning rate up exponentially for up to ``steps`` batches.

        Returns (lrs, smoothed losses, suggested lr). The sweep stops when the loss passes
        ``stop_factor`` times its minimum. Model, optimizer and learner state are restored
        afterwards, so the sweep leaves no trace.
        """
        saved_model = self.model.state_dict()
        saved_optimizer = copy.deepcopy(self.optimizer.state_dict())
        saved_lrs = [group["lr"] for group in self.optimizer.param_groups]
        lrs: list[float] = []
        losses: list[float] = []
        smooth, best = 0.0, math.inf
        factor = (end / start) ** (1 / max(steps - 1, 1))
        self.model.train()
        try:
            batches = _cycle(self.train_data)
            for i in range(steps):
                lr = start * factor**i
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                inputs, targets = next(batches)
                loss = self.loss_func(self.model(inputs), targets)
                value = float(loss.item())
                if not math.isfinite(value):
                    break
                loss.backward()
                self.optimizer.step()
                self.optimizer.zero_grad()
                smooth = 0.9 * smooth + 0.1 * value
                debiased = smooth / (1 - 0.9 ** (i + 1))
                lrs.append(lr)
                losses.append(debiased)
                best = min(best, debiased)
                if debiased > stop_factor * best:
                    break
        finally:
            self.model.load_state_dict(saved_model)
            self.optimizer.load_state_dict(saved_optimizer)
            for group, lr in zip(self.optimizer.param_groups, saved_lrs):
                group["lr"] = lr
            self.optimizer.zero_grad()
        return lrs, losses, suggest_lr(lrs, losses)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Save everything needed to resume exactly: weights, optimizer, schedule, counters."""
        info = {
            "config": self.config,
            "next_epoch": self.next_epoch,
            "step": self.step,
            "history": self.history,
            "recorder": self.recorder.state(),
            "optimizer": self.optimizer.hyperparameters(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            # Dropout masks come from chainrule's generator: resuming must continue its stream.
            "generator": backend.default_generator().bit_generator.state,
        }
        io.save_checkpoint(path, self.model.state_dict(), self.optimizer.state_arrays(), info)

    def load_checkpoint(self, path: str | os.PathLike) -> dict[str, Any]:
        """Restore a checkpoint saved by ``save_checkpoint``; returns its info."""
        model_state, optimizer_arrays, info = io.load_checkpoint(path)
        self.model.load_state_dict(model_state)
        self.optimizer.load_flat_state(info["optimizer"], optimizer_arrays)
        if self.scheduler is not None and info.get("scheduler") is not None:
            self.scheduler.load_state_dict(info["scheduler"])
        self.next_epoch, self.step = info["next_epoch"], info["step"]
        self.history = list(info["history"])
        self.recorder.load_state(info["recorder"])
        if info.get("generator") is not None:
            backend.default_generator().bit_generator.state = info["generator"]
        return info


def suggest_lr(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """A learning rate a bit below where the loss is lowest: a tenth of that lr."""
    if not lrs:
        return float("nan")
    return float(lrs[int(np.argmin(losses))] / 10)


def _set_epoch(data: Any, epoch: int) -> None:
    set_epoch = getattr(data, "set_epoch", None)
    if set_epoch is not None:
        set_epoch(epoch)


def _cycle(data: Iterable) -> Any:
    while True:
        yield from data
