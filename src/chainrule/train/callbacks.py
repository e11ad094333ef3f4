"""Callbacks: small objects the Learner calls at named events, in order of their ``order``.

Events, in the order a fit meets them::

    before_fit
      before_epoch
        before_train
          before_batch  after_loss  after_backward  after_step  after_batch   (each batch)
        after_train
        before_validate  (before_batch after_loss after_batch per batch)  after_validate
      after_epoch
    after_fit

Raise a Cancel*Exception from a callback to skip the rest of that stage; its ``after_`` event
still runs. ``cleanup_fit`` runs last of all, even when an error ends training.

With ``fit(eval_every=k)`` there is no validation after the epoch; instead, every ``k`` steps,
the validation stage (before_validate, its batches, after_validate) runs inside that step's
``after_batch``, between the callbacks of order below 40 and those above (the progress bar and
checkpoints see its result). ``fit(steps=n)`` ending inside an epoch still runs after_train and
after_epoch for it, but the Recorder adds no row for the unfinished epoch.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from chainrule.train.learner import Learner

EVENTS = (
    "before_fit", "before_epoch", "before_train", "before_batch", "after_loss",
    "after_backward", "after_step", "after_batch", "after_train", "before_validate",
    "after_validate", "after_epoch", "after_fit",
)


class CancelFitException(Exception):
    """Stop training now; after_fit still runs."""


class CancelEpochException(Exception):
    """Skip the rest of this epoch."""


class CancelTrainException(Exception):
    """Skip the rest of this epoch's training batches (validation still runs)."""


class CancelValidateException(Exception):
    """Skip the rest of this epoch's validation."""


class CancelBatchException(Exception):
    """Skip the rest of this batch (e.g. its optimizer step)."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message says where and what to try."""


class Callback:
    """Base class: override any event method; lower ``order`` runs first."""

    order: int = 0

    def before_fit(self, learner: Learner) -> None:
        """Called once before the first epoch."""

    def before_epoch(self, learner: Learner) -> None:
        """Called at the start of every epoch."""

    def before_train(self, learner: Learner) -> None:
        """Called before the epoch's training batches."""

    def before_batch(self, learner: Learner) -> None:
        """Called before each batch's forward pass (training and validation)."""

    def after_loss(self, learner: Learner) -> None:
        """Called once ``learner.loss`` is computed."""

    def after_backward(self, learner: Learner) -> None:
        """Called after ``loss.backward()``, before the optimizer step."""

    def after_step(self, learner: Learner) -> None:
        """Called after the optimizer step."""

    def after_batch(self, learner: Learner) -> None:
        """Called at the end of each batch (training and validation)."""

    def after_train(self, learner: Learner) -> None:
        """Called after the epoch's training batches."""

    def before_validate(self, learner: Learner) -> None:
        """Called before the epoch's validation batches."""

    def after_validate(self, learner: Learner) -> None:
        """Called after the epoch's validation batches."""

    def after_epoch(self, learner: Learner) -> None:
        """Called at the end of every epoch."""

    def after_fit(self, learner: Learner) -> None:
        """Called once when training ends normally or is cancelled."""

    def cleanup_fit(self, learner: Learner) -> None:
        """Called after every fit, even one an error ended: release hooks and resources."""


class Recorder(Callback):
    """Keeps every batch's training loss and the learning rate its step used, and a row per
    epoch.

    ``learner.history`` gets one dict per epoch: epoch, train_loss, the validation figures
    (``valid_loss``, ``valid_accuracy``, ...; ``test_...`` when the test split is watched) and
    seconds. Always present in a Learner (order -20: it sees the raw values first).
    """

    order = -20

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.lrs: list[float] = []
        self.steps: list[int] = []
        self._train_sum, self._train_count = 0.0, 0

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps, so a resumed run's curves continue the old ones (and the
        running sums of an epoch a checkpoint interrupts)."""
        return {"losses": self.losses, "lrs": self.lrs, "steps": self.steps,
                "epoch_sum": self._train_sum, "epoch_count": self._train_count}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what ``state`` returned."""
        self.losses, self.lrs = list(state["losses"]), list(state["lrs"])
        self.steps = list(state["steps"])
        self._train_sum = float(state.get("epoch_sum", 0.0))
        self._train_count = int(state.get("epoch_count", 0))

    def before_epoch(self, learner: Learner) -> None:
        self._start = time.perf_counter()
        # An epoch resumed in its middle keeps the sums of its batches before the checkpoint.
        if getattr(learner, "next_batch", 0) == 0:
            self._train_sum, self._train_count = 0.0, 0

    def after_step(self, learner: Learner) -> None:
        self._lr = learner.lr  # the rate this step used: the scheduler moves it after this

    def after_batch(self, learner: Learner) -> None:
        if not learner.training or learner.loss is None:
            return
        loss = float(learner.loss.item())
        self.losses.append(loss)
        self.lrs.append(self.__dict__.pop("_lr", learner.lr))
        self.steps.append(learner.step)
        # a data-parallel Learner's loss is the whole batch's: it says that batch's size
        size = getattr(learner, "global_batch_size", None) or len(learner.batch[1])
        self._train_sum += loss * size
        self._train_count += size

    def after_epoch(self, learner: Learner) -> None:
        if getattr(learner, "_partial", False):
            return  # fit's steps ended inside the epoch: its row comes when it is finished
        row: dict[str, Any] = {"epoch": learner.epoch}
        # No sample seen (every batch cancelled): NaN, not a mean of nothing called 0.
        row["train_loss"] = (self._train_sum / self._train_count if self._train_count
                             else math.nan)
        row.update(learner.last_validation)
        row["seconds"] = round(time.perf_counter() - self._start, 3)
        learner.history.append(row)


def _row_text(head: str, row: dict[str, Any], skip: tuple[str, ...]) -> str:
    parts = [head]
    for key, value in row.items():
        if key == "seconds":
            parts.append(f"{value:.1f} s")
        elif key not in skip:
            parts.append(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)


def _watched(file: Any) -> bool:
    """Whether a bar on ``file`` is seen as it redraws: a terminal, or a Jupyter kernel's
    output (where tqdm.auto draws a widget instead of carriage returns)."""
    try:
        if file.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False
    if file not in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        return False  # a file of the user's: a log, even inside Jupyter
    shell = sys.modules.get("IPython")
    ipython = getattr(shell, "get_ipython", lambda: None)() if shell else None
    return ipython is not None and "IPKernelApp" in getattr(ipython, "config", {})


class ProgressBar(Callback):
    """A tqdm bar with the running loss: over each epoch's batches, or with ``fit(steps=n)``
    over all n steps; a line per epoch, and one per evaluation of ``eval_every``.

    The bar is drawn where someone watches: on a terminal, or as a widget in Jupyter
    (tqdm.auto). Into a file or a pipe, and with ``bar=False``, only the lines are printed, so
    a log holds no carriage-return redraws.
    """

    order = 50

    def __init__(self, file: Any = None, leave: bool = False, bar: bool | None = None) -> None:
        self.file = file if file is not None else sys.stderr
        self.leave = leave
        self.bar = _watched(self.file) if bar is None else bar
        self._bar: Any = None
        self._shown = 0  # evaluations printed so far

    def _open(self, total: int, initial: int, desc: str, unit: str) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, initial=initial, file=self.file, leave=self.leave,
                         desc=desc, unit=unit, dynamic_ncols=True, mininterval=0.25)

    def _print(self, line: str) -> None:
        if self._bar is not None:  # above the bar, which is drawn again below
            self._bar.write(line, file=self.file)
        else:
            print(line, file=self.file, flush=True)

    def before_fit(self, learner: Learner) -> None:
        self._shown = len(getattr(learner, "evaluations", []))
        steps = getattr(learner, "max_steps", None)
        if self.bar and steps is not None:
            self._open(steps, learner.step, "steps", "step")

    def before_train(self, learner: Learner) -> None:
        if self.bar and getattr(learner, "max_steps", None) is None:
            self._open(len(learner.train_data), 0,
                       f"epoch {learner.epoch + 1}/{learner.epochs}", "batch")

    def after_batch(self, learner: Learner) -> None:
        if not learner.training:
            return
        if self._bar is not None:
            self._bar.update(1)
            if learner.batch_index % 20 == 0 and learner.loss is not None:
                self._bar.set_postfix(loss=f"{learner.loss.item():.4f}", refresh=False)
        evaluations = getattr(learner, "evaluations", [])
        for row in evaluations[self._shown:]:
            steps = getattr(learner, "max_steps", None)
            self._print(_row_text(f"step {row['step']}" + (f"/{steps}" if steps else ""),
                                  row, ("step", "epoch")))
        self._shown = len(evaluations)

    def after_train(self, learner: Learner) -> None:
        if getattr(learner, "max_steps", None) is None:
            self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def after_epoch(self, learner: Learner) -> None:
        row = learner.history[-1] if learner.history else {}
        if getattr(learner, "max_steps", None) is not None and row.get("epoch") != learner.epoch:
            return  # an epoch that fit's steps cut short has no row to show
        self._print(_row_text(f"epoch {learner.epoch + 1}/{learner.epochs}", row, ("epoch",)))

    def after_fit(self, learner: Learner) -> None:
        self._close()

    def cleanup_fit(self, learner: Learner) -> None:
        self._close()


class SchedulerCallback(Callback):
    """Steps a learning-rate scheduler after every optimizer step, for a schedule the Learner
    should not own (one it does own, ``Learner(scheduler=...)``, it steps and saves itself)."""

    order = 10

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def after_step(self, learner: Learner) -> None:
        self.scheduler.step()


class DivergenceGuard(Callback):
    """Stops training at the first NaN or infinite loss, saying where and what to try."""

    order = -10

    def after_loss(self, learner: Learner) -> None:
        loss = float(learner.loss.item())
        if math.isfinite(loss):
            return
        inputs = learner.batch[0]
        data = inputs.data if hasattr(inputs, "data") else np.asarray(inputs)
        where = "training" if learner.training else "validation"
        raise TrainingDiverged(
            f"the loss became {loss} during {where} at epoch {learner.epoch + 1}, step "
            f"{learner.step} (batch {learner.batch_index + 1} of the epoch) with learning rate "
            f"{learner.lr:.3g}. Try: a learning rate 3-10x lower (or `chainrule train --lr`), "
            f"a learning-rate finder (Learner.lr_find), normalised inputs (this batch: mean "
            f"{np.mean(data):.3g}, std {np.std(data):.3g}, "
            f"{'finite' if np.all(np.isfinite(data)) else 'NOT finite'}), or a warm-up."
        )


class CheckpointCallback(Callback):
    """Saves a checkpoint after every epoch (atomically), so a crash loses one epoch at most;
    with ``every_steps=k``, after every ``k`` optimizer steps and at the end of fit instead.

    A checkpoint saved between steps resumes exactly (the learner keeps its place inside the
    epoch); the one of a step that evaluates holds that evaluation.
    """

    order = 60

    def __init__(self, path: Any, every_steps: int | None = None) -> None:
        if every_steps is not None and (isinstance(every_steps, bool)
                                        or not isinstance(every_steps, int) or every_steps < 1):
            raise ValueError(f"CheckpointCallback: every_steps must be a whole number >= 1 or "
                             f"None (after every epoch), got {every_steps!r}")
        self.path, self.every_steps = path, every_steps
        self._saved_step: int | None = None

    def after_batch(self, learner: Learner) -> None:
        if (self.every_steps is not None and learner.training and learner.step > 0
                and learner.step % self.every_steps == 0 and learner.step != self._saved_step):
            self._save(learner)

    def after_epoch(self, learner: Learner) -> None:
        if self.every_steps is None:
            learner.save_checkpoint(self.path)

    def after_fit(self, learner: Learner) -> None:
        if self.every_steps is not None and learner.step != self._saved_step:
            self._save(learner)

    def _save(self, learner: Learner) -> None:
        learner.save_checkpoint(self.path)
        self._saved_step = learner.step
