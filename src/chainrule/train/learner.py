"""Learner: the training loop, with callbacks at every step and checkpoints that resume exactly."""

from __future__ import annotations

import copy
import functools
import itertools
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from chainrule import io, validate
from chainrule.engine import backend
from chainrule.engine.tensor import Tensor, no_grad
from chainrule.nn.loss import CrossEntropyLoss, NLLLoss
from chainrule.nn.module import Module
from chainrule.ops.loss import cross_entropy, nll_loss
from chainrule.optim.clip import clip_grad_norm_
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

    ``train_data``/``valid_data`` are re-iterable collections of (inputs, targets) batches with
    ``len()`` (a DataLoader or a list; a one-shot generator would be empty from the second epoch
    on, which fit refuses); a ``set_epoch(e)`` method, if present, is called each epoch
    (chainrule's DataLoader uses it to make shuffling reproducible and resumable). After each
    epoch ``history`` gains a row: epoch, train_loss, then ``<valid_name>_loss`` and
    ``<valid_name>_<metric>`` for each metric when there is ``valid_data``, and seconds.
    ``valid_name`` says what ``valid_data`` is: "valid" for data held out from training, "test"
    when the test split is looked at every epoch (then say so, as the history keys do).

    ``scheduler`` (a learning-rate schedule) is stepped after every optimizer step, once the
    ``after_step`` callbacks have seen the rate that step used, and saved in checkpoints.
    ``grad_clip`` (a max norm) clips the gradients by their global norm before every step, as
    ``clip_grad_norm_(model.parameters(), grad_clip)``; the norm before clipping is in
    ``grad_norm`` (the ``after_backward`` callbacks run before it is clipped).
    ``metrics`` default by task: accuracy for the classification losses (cross_entropy,
    nll_loss and their layers), none otherwise (a regression's "accuracy" would be a
    meaningless 0). The Learner changes no process setting; call
    ``chainrule.kernels.tune_process()`` for what ``chainrule train`` applies.

    ``fit(epochs)`` trains by epochs, ``fit(steps=n)`` until ``n`` optimizer steps are done
    (walking the training data epoch after epoch, stopping in the middle of one if need be);
    ``eval_every=k`` evaluates every ``k`` steps instead of after every epoch, each time on
    ``eval_batches`` batches of ``valid_data`` (all by default), and adds a row to
    ``evaluations``: step, epoch, train_loss (the mean batch loss since the last row), the
    validation figures and seconds. Evaluating in the middle of training changes nothing of it:
    model mode, random streams, data order and optimizer state are as they were, so the
    weights end bit for bit as without the evaluations. Checkpoints keep the position inside
    an epoch, so a run stopped between any two steps resumes exactly.

    Attributes callbacks read: model, optimizer, epoch, epochs, step (optimizer steps so far),
    max_steps (fit's steps, or None), batch_index, batch, preds, loss, grad_norm, training, lr,
    history, evaluations, last_validation.
    """

    def __init__(self, model: Module, train_data: Iterable, optimizer: Any,
                 valid_data: Iterable | None = None,
                 loss_func: Callable[[Any, Any], Tensor] = cross_entropy,
                 callbacks: Sequence[Callback] = (),
                 metrics: Mapping[str, Metric] | None = None,
                 scheduler: Any = None, config: Mapping[str, Any] | None = None,
                 valid_name: str = "valid", grad_clip: float | None = None) -> None:
        _check_parts(model, train_data, optimizer, valid_data, loss_func, metrics, scheduler,
                     valid_name)
        self.grad_clip = validate.real("Learner", "grad_clip", grad_clip, low=0.0,
                                       low_open=True, optional=True)
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_data, self.valid_data = train_data, valid_data
        self.loss_func = loss_func
        self.valid_name = valid_name
        self.metrics = dict(metrics) if metrics is not None else default_metrics(loss_func)
        self.config = dict(config or {})  # JSON-able: how to rebuild model and data
        self.recorder = Recorder()
        self.callbacks: list[Callback] = [self.recorder, DivergenceGuard()]
        for callback in callbacks:
            self.add_callback(callback)
        self.history: list[dict[str, Any]] = []
        self.evaluations: list[dict[str, Any]] = []
        self.last_validation: dict[str, float] = {}
        self.epoch, self.epochs, self.step, self.batch_index = 0, 0, 0, 0
        # Where fit() starts: batch next_batch of epoch next_epoch. Moved on by fit as it goes,
        # restored by checkpoints.
        self.next_epoch, self.next_batch = 0, 0
        self.max_steps: int | None = None
        self.eval_every: int | None = None
        self.eval_batches: int | None = None
        self.grad_norm: float | None = None
        self._partial = False  # the epoch running stops before its end (fit's steps reached)
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
        if self.scheduler is not None and getattr(callback, "scheduler", None) is self.scheduler:
            raise ValueError("Learner: the scheduler is given twice, as scheduler= and in a "
                             f"{type(callback).__name__}, so it would step twice a batch: pass "
                             "it once, as scheduler= (the Learner steps it and saves it in "
                             "checkpoints)")
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

    def fit(self, epochs: int | None = None, *, steps: int | None = None,
            eval_every: int | None = None, eval_batches: int | None = None
            ) -> list[dict[str, Any]]:
        """Train until ``epochs`` epochs, or ``steps`` optimizer steps, are done in all (a
        resumed learner continues); ``eval_every`` steps, evaluate on ``eval_batches``.

        Before the first epoch the model is tried on two samples of the first training (and
        validation) batch, so data the model cannot take fails at once, with both shapes.
        Returns ``history`` (a row per completed epoch); ``evaluations`` has the rows of
        ``eval_every``.
        """
        if (epochs is None) == (steps is None):
            raise TypeError("fit: give either epochs (fit(3)) or steps (fit(steps=2000)), "
                            f"not {'both' if steps is not None else 'neither'}")
        eval_every = validate.integer("fit", "eval_every", eval_every, low=1, optional=True)
        eval_batches = validate.integer("fit", "eval_batches", eval_batches, low=1,
                                        optional=True)
        if eval_every is not None and self.valid_data is None:
            raise ValueError("fit: eval_every needs data to evaluate on; pass valid_data to "
                             "the Learner")
        if steps is not None:
            steps = validate.integer("fit", "steps", steps, low=0)
            if steps < self.step:
                raise ValueError(f"fit(steps={steps}): this learner has already done "
                                 f"{self.step} steps; ask for more")
            epochs = self.next_epoch + math.ceil((steps - self.step) / _batch_count(
                self.train_data))
        else:
            epochs = validate.integer("fit", "epochs", epochs, low=0)
            # Resuming in the middle of an epoch, fit(next_epoch) would stop before its end.
            if epochs < self.next_epoch + (self.next_batch > 0):
                raise ValueError(f"fit({epochs}): this learner has already done "
                                 f"{self.next_epoch} epochs"
                                 + (f" and {self.next_batch} batches of the next"
                                    if self.next_batch else "") + "; ask for more")
        if self.optimizer is None:
            raise ValueError("fit: this Learner has no optimizer (it was made for evaluate "
                             "only); pass one, e.g. optim.AdamW(model.parameters())")
        _require_batches(self.train_data, "training", "fit")
        self._check_fits(self.train_data, "training")
        if self.valid_data is not None:
            _require_batches(self.valid_data, self.valid_name, "fit")
            self._check_fits(self.valid_data, self.valid_name)
        self.epochs = int(epochs)
        self.max_steps, self.eval_every, self.eval_batches = steps, eval_every, eval_batches
        evaluator = _StepEvaluation() if eval_every is not None else None
        if evaluator is not None:
            self.callbacks.append(evaluator)
            self.callbacks.sort(key=lambda cb: cb.order)
        try:
            self._stage("fit", self._fit_body, CancelFitException)
        finally:
            self.training = False
            if evaluator is not None:
                self.callbacks.remove(evaluator)
            self._event("cleanup_fit")
        return self.history

    def _steps_left(self) -> bool:
        return self.max_steps is None or self.step < self.max_steps

    def _fit_body(self) -> None:
        epoch = self.next_epoch
        while (epoch < self.epochs) if self.max_steps is None else self._steps_left():
            self.epoch = epoch
            steps_before = self.step
            self._partial = False
            # The epoch stage, written out: where the next fit starts must be settled after a
            # CancelEpochException and before after_epoch, where checkpoints are saved.
            try:
                self._event("before_epoch")
                self._epoch_body()
            except CancelEpochException:
                pass
            self._epoch_done()
            self._event("after_epoch")
            if self._partial:
                break
            if self.max_steps is not None and self.step == steps_before:
                raise ValueError(f"fit(steps={self.max_steps}): epoch {epoch + 1} made no "
                                 f"optimizer step (every batch cancelled?), so the steps would "
                                 f"never be reached; stopped at step {self.step}")
            epoch += 1

    def _epoch_done(self) -> None:
        """Move where the next fit starts past this epoch, unless it stopped half way."""
        if not self._partial:
            self.next_epoch, self.next_batch = self.epoch + 1, 0

    def _epoch_body(self) -> None:
        self._stage("train", self._train_body, CancelTrainException)
        self._epoch_done()  # a checkpoint saved while validating resumes with the next epoch
        self.last_validation = {}
        if self.valid_data is not None and self.eval_every is None and not self._partial:
            self._stage("validate", self._validate_body, CancelValidateException)

    def _train_body(self) -> None:
        self.model.train()
        self.training = True
        _set_epoch(self.train_data, self.epoch)
        # Resuming inside an epoch: its first batches are drawn again (the data gives them in
        # the same order) and skipped, so the next one is the one the saved run would take.
        start = self.next_batch
        index = -1
        for index, batch in enumerate(self.train_data):
            if index < start:
                continue
            if not self._steps_left():
                self._partial = True
                break
            self.batch_index, self.batch = index, batch
            # A checkpoint saved during this batch resumes with the next one.
            self.next_epoch, self.next_batch = self.epoch, index + 1
            self.preds = self.loss = None  # a cancelled batch must not show the last one's
            self._stage("batch", self._train_batch, CancelBatchException)
        if index < 0:
            raise ValueError(
                f"fit: epoch {self.epoch + 1} got no training batches: train_data gave nothing "
                "this time (a generator or iterator is used up after one pass; pass a "
                "DataLoader or a list)")
        if index + 1 < start:
            raise ValueError(
                f"fit: epoch {self.epoch + 1} gave {index + 1} training batches, but the "
                f"checkpoint resumes after batch {start} of it: is it the same training data?")

    def _train_batch(self) -> None:
        inputs, targets = self.batch
        _require_samples(targets, "fit", f"batch {self.batch_index + 1} of epoch "
                                          f"{self.epoch + 1}")
        self.preds = self.model(inputs)
        self.loss = self.loss_func(self.preds, targets)
        self._event("after_loss")
        self.loss.backward()
        self._event("after_backward")
        if self.grad_clip is not None:
            self.grad_norm = clip_grad_norm_(self.model.parameters(), self.grad_clip).item()
        self.optimizer.step()
        self.step += 1
        self._event("after_step")  # callbacks see the learning rate this step used
        if self.scheduler is not None:  # stepped here, as it is saved here: once per step
            self.scheduler.step()
        self.optimizer.zero_grad()

    def _validate_body(self) -> None:
        data = self.valid_data
        if self.eval_batches is not None:
            data = _FirstBatches(data, self.eval_batches)
        result = self.evaluate(data, events=True, name=self.valid_name)
        self.last_validation = {f"{self.valid_name}_{key}": value for key, value in
                                result.items()}

    def _evaluate_mid_training(self) -> None:
        """The validation stage in the middle of an epoch, leaving the training state as it
        was, and a row in ``evaluations``."""
        saved = (self.training, self.batch_index, self.batch, self.preds, self.loss)
        modes = [(module, module.training) for module in self.model.modules()]  # each its own
        # Nothing in an evaluation should draw from chainrule's generator (dropout is off in
        # eval mode), but a layer of the user's might: the stream is put back regardless.
        generator = backend.default_generator().bit_generator
        stream = generator.state
        started = time.perf_counter()
        try:
            self.last_validation = {}
            self._stage("validate", self._validate_body, CancelValidateException)
        finally:
            generator.state = stream
            for module, mode in modes:
                module.training = mode
            (self.training, self.batch_index, self.batch, self.preds, self.loss) = saved
        previous = self.evaluations[-1]["step"] if self.evaluations else 0
        losses = [loss for loss, step in zip(self.recorder.losses, self.recorder.steps)
                  if previous < step <= self.step]
        row: dict[str, Any] = {"step": self.step, "epoch": self.epoch,
                               "train_loss": float(np.mean(losses)) if losses else math.nan}
        row.update(self.last_validation)
        row["seconds"] = round(time.perf_counter() - started, 3)
        self.evaluations.append(row)

    def evaluate(self, data: Iterable, events: bool = False, name: str = "evaluation"
                 ) -> dict[str, float]:
        """Mean loss and metrics over ``data`` ({"loss": ..., metric: ...}), without
        recording gradients. The learner's state (training flag, current batch, loss) is as it
        was afterwards, so a callback may evaluate in the middle of training. Empty data is an
        error naming ``name``: a mean over no samples has no value."""
        _require_batches(data, name, "evaluate")
        saved = (self.training, self.batch_index, self.batch, self.preds, self.loss)
        # Each module's own mode: a layer the user froze in eval mode stays frozen afterwards.
        modes = [(module, module.training) for module in self.model.modules()]
        self.model.eval()
        self.training = False
        totals: dict[str, float] = {"loss": 0.0, **{k: 0.0 for k in self.metrics}}
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
                    totals["loss"] += float(self.loss.item()) * size
                    for metric_name, metric in self.metrics.items():
                        totals[metric_name] += metric(self.preds, targets) * size
                    count += size
                    if events:
                        self._event("after_batch")
        finally:
            for module, mode in modes:
                module.training = mode
            if not events:  # validation inside fit leaves the state to the next stage
                (self.training, self.batch_index, self.batch, self.preds,
                 self.loss) = saved
        if count == 0:
            raise ValueError(f"evaluate: the {name} data has no samples; a loss or metric "
                             "over nothing has no value. Check that split (its size, or "
                             "drop_last with fewer samples than one batch)")
        return {key: total / count for key, total in totals.items()}

    def _check_fits(self, data: Iterable, name: str) -> None:
        check_fits(self.model, data, self.loss_func, name)

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
        _require_batches(self.train_data, "training", "lr_find")
        validate.real("lr_find", "start", start, low=0.0, low_open=True)
        validate.real("lr_find", "end", end, low=start, low_open=True)
        validate.integer("lr_find", "steps", steps, low=2)
        validate.real("lr_find", "stop_factor", stop_factor, low=1.0, low_open=True)
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
                _require_samples(targets, "lr_find", f"batch {i + 1} of the sweep")
                loss = self.loss_func(self.model(inputs), targets)
                value = float(loss.item())
                if not math.isfinite(value):
                    if not lrs:  # nothing to suggest from: say why rather than return nan
                        raise ValueError(
                            f"lr_find: the loss was {value} at the first step (learning rate "
                            f"{lr:.3g}), before the sweep began: the model's outputs are not "
                            "finite on this data (NaN in the inputs, or inputs far from unit "
                            "scale?)")
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
            "next_batch": self.next_batch,
            "history": self.history,
            "evaluations": self.evaluations,
            "recorder": self.recorder.state(),
            "optimizer": self.optimizer.hyperparameters(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            # Dropout masks come from chainrule's generator: resuming must continue its stream.
            "generator": backend.default_generator().bit_generator.state,
        }
        io.save_checkpoint(path, self.model.state_dict(), self.optimizer.state_arrays(), info)

    def load_checkpoint(self, path: str | os.PathLike) -> dict[str, Any]:
        """Restore a checkpoint saved by ``save_checkpoint``; returns its info.

        The file is verified (checksum, structure) before anything changes, and if this
        learner cannot take it (another architecture, optimizer or schedule) everything is put
        back as it was and a CheckpointError says why.
        """
        model_state, optimizer_arrays, info = io.load_checkpoint(path, require=io.RESUME_KEYS)
        _check_position_info(path, info)
        before = (self.model.state_dict(), copy.deepcopy(self.optimizer.state_dict()),
                  None if self.scheduler is None else copy.deepcopy(self.scheduler.state_dict()))
        try:
            self.model.load_state_dict(model_state)
            self.optimizer.load_flat_state(info["optimizer"], optimizer_arrays)
            if self.scheduler is not None and info.get("scheduler") is not None:
                self.scheduler.load_state_dict(info["scheduler"])
        except (TypeError, ValueError, KeyError) as error:
            self.model.load_state_dict(before[0])
            self.optimizer.load_state_dict(before[1])
            if before[2] is not None:
                self.scheduler.load_state_dict(before[2])
            raise io.CheckpointError(f"{path}: this learner cannot take it, nothing was "
                                     f"changed: {error}") from error
        self.next_epoch, self.step = info["next_epoch"], info["step"]
        self.next_batch = info.get("next_batch", 0)  # checkpoints before steps: epoch ends
        self.history = list(info["history"])
        self.evaluations = [dict(row) for row in info.get("evaluations", [])]
        self.recorder.load_state(info["recorder"])
        if info.get("generator") is not None:
            backend.default_generator().bit_generator.state = info["generator"]
        return info


def _check_position_info(path: Any, info: dict[str, Any]) -> None:
    """The keys a checkpoint of training by steps adds, checked before anything changes."""
    def bad(key: str, expected: str) -> io.CheckpointError:
        return io.CheckpointError(f"{path}: checkpoint info {key}: expected {expected}, got "
                                  f"{str(info[key])[:60]}; the file was changed or not "
                                  "written by chainrule")

    batch = info.get("next_batch", 0)
    if not validate.is_int(batch) or batch < 0:
        raise bad("next_batch", "a whole number >= 0")
    rows = info.get("evaluations", [])
    if not isinstance(rows, list) or not all(
            isinstance(row, dict) and validate.is_int(row.get("step"))
            and all(value is None or isinstance(value, (int, float)) for value in row.values())
            for row in rows):
        raise bad("evaluations", "a list of rows of numbers, each with its step")


class _StepEvaluation(Callback):
    """Evaluates every ``eval_every`` steps, in ``after_batch`` (fit adds it for eval_every).

    Its order puts it after the Recorder and the callbacks of order 0, and before the progress
    bar and checkpoints, which therefore see (and save) the evaluation of this step.
    """

    order = 40

    def after_batch(self, learner: Learner) -> None:
        if (learner.training and learner.loss is not None and learner.step > 0
                and learner.step % learner.eval_every == 0
                and not (learner.evaluations and learner.evaluations[-1]["step"]
                         == learner.step)):
            learner._evaluate_mid_training()


class _FirstBatches:
    """The first ``count`` batches of ``data`` (all of them if it has fewer), re-iterable."""

    def __init__(self, data: Iterable, count: int) -> None:
        self.data, self.count = data, count

    def __len__(self) -> int:
        try:
            return min(len(self.data), self.count)
        except TypeError:
            return self.count

    def __iter__(self) -> Any:
        return itertools.islice(iter(self.data), self.count)


def _batch_count(data: Any) -> int:
    """Batches in one epoch of ``data``; an error when it cannot say (fit by steps needs it)."""
    try:
        count = len(data)
    except TypeError:
        raise TypeError(f"fit(steps=...): the training data ({type(data).__name__}) has no "
                        "len(), so the epochs a number of steps takes are unknown; pass a "
                        "DataLoader, RandomBlocks or a list") from None
    if count == 0:
        _require_batches(data, "training", "fit")
    return count


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
        empty = True
        for batch in data:
            empty = False
            yield batch
        if empty:  # else an exhausted iterator would spin here for ever
            raise ValueError("lr_find: the training data gave no batches (an exhausted "
                             "iterator?); pass a DataLoader or a list")


class IncompatibleDataError(ValueError):
    """The model and loss cannot run on the data given (shapes or dtypes), found before training."""


def check_fits(model: Module, data: Iterable,
               loss_func: Callable[[Any, Any], Any] = cross_entropy,
               name: str = "training") -> None:
    """Run ``model`` and ``loss_func`` on two samples of ``data``'s first batch, in eval mode
    and without recording, so that data the model cannot take fails now, with both shapes, and
    not in the middle of an epoch. One-shot iterators are left alone (peeking would use up a
    batch)."""
    batch = _peek(data)
    if batch is None:
        return
    try:
        inputs, targets = batch
    except (TypeError, ValueError):
        raise TypeError(f"the {name} data must give (inputs, targets) pairs, got a "
                        f"{type(batch).__name__}") from None
    few = _first_rows(inputs), _first_rows(targets)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            loss_func(model(few[0]), few[1])
    except Exception as error:
        raise IncompatibleDataError(
            f"the model and loss cannot run on the {name} data: on its first batch (inputs "
            f"{_shape_of(inputs)} {_dtype_of(inputs)}, targets {_shape_of(targets)} "
            f"{_dtype_of(targets)}) they fail with {type(error).__name__}: {error}"
        ) from error
    finally:
        model.train(was_training)


_CLASSIFICATION_LOSSES = (cross_entropy, nll_loss)


def default_metrics(loss_func: Any) -> dict[str, Metric]:
    """The metrics a Learner reports when given none: accuracy for classification losses
    (cross_entropy, nll_loss, their layers, or a functools.partial of one); none otherwise,
    so pass ``metrics=`` for a loss of your own."""
    while isinstance(loss_func, functools.partial):
        loss_func = loss_func.func
    classifying = loss_func in _CLASSIFICATION_LOSSES or isinstance(
        loss_func, (CrossEntropyLoss, NLLLoss))
    return {"accuracy": accuracy} if classifying else {}


def _check_parts(model: Any, train_data: Any, optimizer: Any, valid_data: Any, loss_func: Any,
                 metrics: Any, scheduler: Any, valid_name: Any) -> None:
    """Refuse, at construction, what would otherwise fail at the first batch."""
    if not isinstance(model, Module):
        raise TypeError(f"Learner: model must be a chainrule nn.Module, got "
                        f"{type(model).__name__}")
    for label, data in (("train_data", train_data), ("valid_data", valid_data)):
        if data is None and label == "valid_data":
            continue
        if not isinstance(data, Iterable) or isinstance(data, (str, bytes, Mapping)):
            raise TypeError(f"Learner: {label} must be an iterable of (inputs, targets) "
                            f"batches such as a DataLoader, got {type(data).__name__}")
    if optimizer is not None and not (callable(getattr(optimizer, "step", None))
                                      and callable(getattr(optimizer, "zero_grad", None))):
        raise TypeError(f"Learner: optimizer must have step() and zero_grad() (e.g. "
                        f"optim.AdamW(model.parameters())), got {type(optimizer).__name__}")
    if isinstance(loss_func, str):
        raise TypeError(f"Learner: loss_func must be a function, not the string "
                        f"{loss_func!r}; e.g. loss_func=chainrule.nn.functional.mse or "
                        "nn.functional.cross_entropy")
    if isinstance(loss_func, type):
        raise TypeError(f"Learner: loss_func is the class {loss_func.__name__}; pass an "
                        f"instance, {loss_func.__name__}(), or a function such as "
                        "nn.functional.cross_entropy")
    if not callable(loss_func):
        raise TypeError(f"Learner: loss_func must be callable as loss_func(preds, targets), "
                        f"got {type(loss_func).__name__}")
    if metrics is not None:
        if not isinstance(metrics, Mapping):
            raise TypeError(f"Learner: metrics must be a dict of name -> function(preds, "
                            f"targets), got {type(metrics).__name__}")
        for name, metric in metrics.items():
            if not isinstance(name, str) or not callable(metric):
                raise TypeError(f"Learner: metrics[{name!r}] must be a function(preds, "
                                f"targets) under a string name")
    if scheduler is not None and not callable(getattr(scheduler, "step", None)):
        raise TypeError(f"Learner: scheduler must have step(), got {type(scheduler).__name__}")
    if not isinstance(valid_name, str) or not valid_name.isidentifier():
        raise ValueError(f"Learner: valid_name must be a short name such as 'valid' or "
                         f"'test', got {valid_name!r}")


def _require_batches(data: Any, name: str, where: str) -> None:
    """An error naming the split when ``data`` says it has no batches."""
    try:
        size = len(data)
    except TypeError:
        return  # no len(): counted while iterating instead
    if size == 0:
        raise ValueError(f"{where}: the {name} data is empty (0 batches); a loss or metric over "
                         "no samples has no value. Check that split (its size, or drop_last "
                         "with fewer samples than one batch)")


def _require_samples(targets: Any, where: str, which: str) -> None:
    """An error naming the batch when it holds no samples (its loss would be NaN)."""
    shape = np.shape(targets.data if isinstance(targets, Tensor) else targets)
    if shape and shape[0] == 0:
        raise ValueError(f"{where}: {which} has no samples; a batch needs at least one (does "
                         "the data give empty batches?)")


def _peek(data: Any) -> Any:
    """The first batch of a re-iterable collection, without consuming a one-shot iterator."""
    epoch = getattr(data, "epoch", None)
    try:
        iterator = iter(data)
        return None if iterator is data else next(iterator, None)
    finally:
        if epoch is not None and hasattr(data, "set_epoch"):
            data.set_epoch(epoch)  # a DataLoader counts the epochs it was iterated


def _first_rows(value: Any) -> Any:
    try:
        return value[:2]
    except (TypeError, IndexError, KeyError, ValueError):
        return value


def _shape_of(value: Any) -> str:
    return str(tuple(np.shape(value.data if isinstance(value, Tensor) else value)))


def _dtype_of(value: Any) -> str:
    data = value.data if isinstance(value, Tensor) else value
    return str(getattr(data, "dtype", type(data).__name__))
