"""Per-layer statistics of activations and gradients during training, and their pictures.

``LayerStats`` hooks every leaf layer (Linear, ReLU, ...) of a model. On recorded training steps
it keeps, per layer, the mean and standard deviation of the layer's output, the fraction of
dead units and a histogram of the values — and the same for the gradient of the loss with
respect to that output. The pictures show what the lesson explains with Kaiming init: whether
signals keep their scale through depth, or explode, or fade away.

Definitions:
- a unit is a feature (last axis of an (N, F) output) or a channel (axis 1 of (N, C, H, W));
  it is *dead* on a batch when it is <= 0 for every sample (and every pixel) of the batch;
- histograms use ``bins`` equal bins over [-r, r], where r is fixed per layer on the first
  recorded batch (1.5 x its largest |value|, so later growth shows up piled in the edge bins).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.engine.tensor import HookHandle, Tensor
from chainrule.nn.module import Module
from chainrule.train.callbacks import Callback


@dataclass
class Series:
    """The statistics of one quantity (a layer's output or its gradient) over steps."""

    steps: list[int] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    dead: list[float] = field(default_factory=list)
    histograms: list[np.ndarray] = field(default_factory=list)
    limit: float | None = None

    def add(self, step: int, values: np.ndarray, bins: int, dead: float) -> None:
        """Record one batch of values."""
        finite = values[np.isfinite(values)] if not np.isfinite(values).all() else values
        self.steps.append(step)
        self.mean.append(float(finite.mean()) if finite.size else float("nan"))
        self.std.append(float(finite.std()) if finite.size else float("nan"))
        self.dead.append(dead)
        if self.limit is None:
            largest = float(np.abs(finite).max()) if finite.size else 1.0
            self.limit = 1.5 * largest if largest > 0 else 1.0
        # Bin in float64 and clip the bin index, not the value: a float32 value at the top
        # edge could otherwise round into bin number `bins` and be dropped. Values beyond the
        # range land in the edge bins, so growth stays visible.
        position = (finite.astype(np.float64) + self.limit) * (bins / (2 * self.limit))
        index = np.clip(np.floor(position), 0, bins - 1).astype(np.int64)
        self.histograms.append(np.bincount(index.ravel(), minlength=bins))


def dead_fraction(values: np.ndarray) -> float:
    """Fraction of units (features, or channels of images) that are <= 0 for the whole batch."""
    if values.ndim < 2:
        return float(np.all(values <= 0))
    axes = tuple(i for i in range(values.ndim) if i != (1 if values.ndim > 2 else values.ndim - 1))
    return float(np.mean(np.all(values <= 0, axis=axes)))


class LayerStats(Callback):
    """Record activation and gradient statistics of a model's leaf layers while it trains.

    Use it as a Learner callback, or on its own: ``stats.attach(model)``, train, then
    ``stats.remove()``. Records every ``every``-th training step. ``layers`` picks modules:
    module objects, or layer classes (``layers=nn.ReLU`` or a tuple of classes) to take every
    module of that type; the default is every module without children. ``hist_range`` fixes
    the histogram range to [-r, r] for every layer instead of taking it from the first batch.
    """

    order = 40

    def __init__(self, layers: Iterable[Module] | type | tuple[type, ...] | None = None,
                 every: int = 1, bins: int = 40, hist_range: float | None = None) -> None:
        if every < 1 or bins < 2:
            raise ValueError(f"LayerStats: every must be >= 1 and bins >= 2, got every={every}, "
                             f"bins={bins}")
        if hist_range is not None and not hist_range > 0:
            raise ValueError(f"LayerStats: hist_range must be a positive number, got "
                             f"{hist_range!r}")
        if isinstance(layers, type) or (isinstance(layers, tuple) and layers
                                        and all(isinstance(t, type) for t in layers)):
            self.kinds, self.chosen = layers, None
        else:
            self.kinds, self.chosen = None, list(layers) if layers is not None else None
        self.every, self.bins, self.hist_range = every, bins, hist_range
        self.activations: dict[str, Series] = {}
        self.gradients: dict[str, Series] = {}
        self.step = 0
        self._handles: list[HookHandle] = []
        self._first: Module | None = None
        self._in_learner = False

    # ------------------------------------------------------------------ hooks
    def attach(self, model: Module) -> LayerStats:
        """Hook the layers of ``model``; recording happens in training mode only."""
        self.remove()
        named = [(name, m) for name, m in model.named_modules() if name]
        leaves = [(name, m) for name, m in named if not list(m.children())]
        if self.chosen is not None:
            wanted = {id(m) for m in self.chosen}
            leaves = [(name, m) for name, m in named if id(m) in wanted]
        if self.kinds is not None:
            leaves = [(name, m) for name, m in named if isinstance(m, self.kinds)]
            if not leaves:
                raise ValueError(f"LayerStats: the model has no layer of type {self.kinds}")
        if not leaves:
            leaves = [(type(model).__name__, model)]
        self._first = leaves[0][1]
        for name, module in leaves:
            label = f"{name} {type(module).__name__}"
            self.activations.setdefault(label, Series(limit=self.hist_range))
            self.gradients.setdefault(label, Series(limit=self.hist_range))
            self._handles.append(module.register_forward_hook(self._hook(label)))
        return self

    def remove(self) -> None:
        """Take every hook off the model."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, label: str) -> Any:
        def record(module: Module, args: tuple, out: Any) -> None:
            if not module.training or not isinstance(out, Tensor):
                return
            if module is self._first and not self._in_learner:
                self.step += 1
            if self.step % self.every:
                return
            step = self.step
            self.activations[label].add(step, out.data, self.bins, dead_fraction(out.data))
            if out.requires_grad:
                def gradient(grad: np.ndarray) -> None:
                    self.gradients[label].add(step, grad, self.bins, float("nan"))
                out.register_hook(gradient)
        return record

    # ------------------------------------------------------------------ as a callback
    def before_fit(self, learner: Any) -> None:
        self._in_learner = True
        self.attach(learner.model)

    def before_batch(self, learner: Any) -> None:
        self.step = learner.step

    def cleanup_fit(self, learner: Any) -> None:
        self.remove()
        self._in_learner = False

    # ------------------------------------------------------------------ reading
    def summary(self) -> str:
        """A table of the last recorded step: per layer, activation and gradient scale."""
        lines = [f"{'layer':<16} {'act mean':>10} {'act std':>10} {'dead':>6} {'grad std':>10}"]
        for label, series in self.activations.items():
            if not series.steps:
                continue
            grads = self.gradients[label]
            grad_std = f"{grads.std[-1]:10.3g}" if grads.std else f"{'-':>10}"
            lines.append(f"{label:<16} {series.mean[-1]:10.3g} {series.std[-1]:10.3g} "
                         f"{series.dead[-1]:6.2f} {grad_std}")
        return "\n".join(lines)

    def save_plots(self, folder: str | os.PathLike) -> list[Path]:
        """Write layer_stats.png (curves) and layer_histograms.png (histograms over time)."""
        from chainrule.train.plots import plot_layer_histograms, plot_layer_stats

        folder = Path(folder)
        return [plot_layer_stats(self, folder / "layer_stats.png"),
                plot_layer_histograms(self, folder / "layer_histograms.png")]
