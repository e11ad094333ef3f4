"""The sentinel: stop at the first op or layer whose output (or gradient) is NaN or infinite.

    with cr.check.sentinel(model):
        loss = cr.nn.functional.cross_entropy(model(x), y)
        loss.backward()

raises ``NonFiniteError`` naming the op (``exp``), the layer it ran in (``3 (Linear)``), the
statistics of its inputs and, inside a Learner (``SentinelCallback``), the training step.
Outside the block nothing is checked, so training pays nothing for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.engine.tensor import STATE
from chainrule.train.callbacks import Callback


class NonFiniteError(FloatingPointError):
    """An op produced NaN or inf; the message names the op, the layer, the step and inputs."""


def _stats(array: Any) -> str:
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiub":
        return repr(array) if np.isscalar(array) else type(array).__name__
    if array.size == 0:
        return f"shape {array.shape}, empty"
    finite = np.isfinite(array) if array.dtype.kind == "f" else np.ones(array.shape, bool)
    values = array[finite] if not finite.all() else array
    text = f"shape {array.shape}"
    if values.size:
        text += (f", min {values.min():.4g}, max {values.max():.4g}, "
                 f"mean {values.mean():.4g}, max |x| {np.abs(values).max():.4g}")
    if not finite.all():
        text += f", {int((~finite).sum())} non-finite"
    return text


class Sentinel:
    """While active, checks every op's output and every gradient for NaN/inf."""

    def __init__(self, model: Any = None) -> None:
        self.names = {id(m): name or type(m).__name__
                      for name, m in model.named_modules()} if model is not None else {}
        self.layers: list[Any] = []  # modules being called, outermost first
        self.step: int | None = None
        self._previous: Sentinel | None = None

    def __enter__(self) -> Sentinel:
        self._previous = STATE.sentinel
        STATE.sentinel = self
        return self

    def __exit__(self, *exc: object) -> None:
        STATE.sentinel = self._previous
        self.layers.clear()

    def _where(self) -> str:
        parts = []
        if self.layers:
            layer = self.layers[-1]
            name = self.names.get(id(layer))
            label = f"{name} ({type(layer).__name__})" if name else type(layer).__name__
            parts.append(f" in layer {label}")
        if self.step is not None:
            parts.append(f" at step {self.step}")
        return "".join(parts)

    def check_forward(self, fn: type, inputs: tuple, out: np.ndarray) -> None:
        """Raise if an op's output holds NaN or inf."""
        if out.dtype.kind == "f" and not np.isfinite(out).all():
            described = "; ".join(f"input {i}: {_stats(x)}" for i, x in enumerate(inputs))
            bad = "nan" if np.isnan(out).any() else "inf"
            raise NonFiniteError(
                f"{fn.name} produced {bad}{self._where()} (output {_stats(out)}). Its inputs: "
                f"{described}. Common causes: exp/log of large or non-positive values, a "
                "learning rate too high, division by a value near zero."
            )

    def check_backward(self, fn: type, index: int, grad: np.ndarray) -> None:
        """Raise if the gradient an op's backward hands to one of its inputs is not finite."""
        if grad.dtype.kind == "f" and not np.isfinite(grad).all():
            raise NonFiniteError(
                f"the backward of {fn.name} gave a non-finite gradient for its input {index}"
                f"{' at step ' + str(self.step) if self.step is not None else ''} "
                f"(gradient {_stats(grad)}). The forward was finite, so the derivative "
                "itself blew up: e.g. sqrt or log at 0, or a huge upstream gradient."
            )


def sentinel(model: Any = None) -> Sentinel:
    """A context manager that stops at the first NaN/inf, naming layers of ``model``."""
    return Sentinel(model)


class SentinelCallback(Callback):
    """Runs training under a Sentinel and tells it the current step."""

    order = -30

    def before_fit(self, learner: Any) -> None:
        self.guard = Sentinel(learner.model).__enter__()

    def before_batch(self, learner: Any) -> None:
        self.guard.step = learner.step

    def cleanup_fit(self, learner: Any) -> None:
        self.guard.__exit__()
