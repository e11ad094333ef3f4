"""PNG plots of training: loss curves, the learning-rate finder, per-layer statistics."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.io import atomic_write


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


class ImageFile(type(Path())):  # the platform's concrete Path class, so it is a Path
    """The path of a PNG written by a plot function; Jupyter shows it inline."""

    def _repr_png_(self) -> bytes:
        return self.read_bytes()


def _save(figure: Any, path: str | os.PathLike) -> ImageFile:
    plt = _pyplot()
    try:
        written = atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=110))
    finally:
        plt.close(figure)
    return ImageFile(written)


def _training_losses(axes: Any, recorder: Any) -> None:
    """The training loss of every step, raw and smoothed (debiased, as Adam's moments)."""
    steps, losses = recorder.steps, recorder.losses
    axes.plot(steps, losses, color="tab:blue", alpha=0.3, linewidth=0.8, label="train (batch)")
    if losses:
        smooth, values = 0.0, []
        for i, loss in enumerate(losses):
            smooth = 0.98 * smooth + 0.02 * loss
            values.append(smooth / (1 - 0.98 ** (i + 1)))
        axes.plot(steps, values, color="tab:blue", label="train (smoothed)")


def plot_step_curves(recorder: Any, evaluations: Sequence[dict[str, Any]],
                     path: str | os.PathLike) -> Path:
    """A run by steps: training loss per step (raw and smoothed) with the validation loss of
    each evaluation, and the learning rate each step used."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    _training_losses(left, recorder)
    rows = [row for row in evaluations if "valid_loss" in row]
    if rows:
        left.plot([row["step"] for row in rows], [row["valid_loss"] for row in rows], "o-",
                  color="tab:orange", label="validation")
    left.set_xlabel("optimizer step")
    left.set_ylabel("loss (nats per token)")
    left.legend()
    left.set_title("loss")
    right.plot(recorder.steps, recorder.lrs, color="tab:green")
    right.set_xlabel("optimizer step")
    right.set_title("learning rate")
    figure.tight_layout()
    return _save(figure, path)


def plot_loss_curves(recorder: Any, history: Sequence[dict[str, Any]],
                     path: str | os.PathLike) -> Path:
    """Training loss per step (raw and smoothed) with validation loss and metrics per epoch."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps = recorder.steps
    _training_losses(left, recorder)
    if history and steps:
        per_epoch = max(len(steps) // max(len(history), 1), 1)
        ends = [steps[min((i + 1) * per_epoch, len(steps)) - 1] for i in range(len(history))]
        for key in _per_epoch_losses(history):
            left.plot(ends, [row.get(key, math.nan) for row in history], "o-",
                      label=_split_label(key[:-len("_loss")]))
    left.set_xlabel("optimizer step")
    left.set_ylabel("loss")
    left.set_yscale("log")
    left.legend()
    left.set_title("loss")
    keys = _keys(history)  # of every row: a resumed run's rows need not all have the same
    losses = _per_epoch_losses(history)
    metric_names = [k for k in keys if k not in ("epoch", "train_loss", "seconds", *losses)]
    for name in metric_names:
        right.plot([row["epoch"] + 1 for row in history],
                   [row.get(name, math.nan) for row in history], "o-", label=name)
    right.set_xlabel("epoch")
    splits = sorted({_split_label(key[:-len("_loss")]) for key in losses})
    right.set_title(f"{' and '.join(splits) or 'per-epoch'} metrics")
    if metric_names:
        right.legend()
    figure.tight_layout()
    return _save(figure, path)


def _keys(history: Sequence[dict[str, Any]]) -> list[str]:
    """Every key of the history's rows, in order of first appearance."""
    return list(dict.fromkeys(key for row in history for key in row))


def _per_epoch_losses(history: Sequence[dict[str, Any]]) -> list[str]:
    """The history keys of losses measured once an epoch on held-out data (valid_, test_)."""
    return [key for key in _keys(history) if key.endswith("_loss") and key != "train_loss"]


def _split_label(prefix: str) -> str:
    return {"valid": "validation"}.get(prefix, prefix)


def plot_lr_find(lrs: Sequence[float], losses: Sequence[float], suggestion: float,
                 path: str | os.PathLike) -> Path:
    """Loss against learning rate (log scale), with the suggested rate marked."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(lrs, losses)
    axes.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested {suggestion:.2g}")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("loss (smoothed)")
    axes.legend()
    figure.tight_layout()
    return _save(figure, path)


def plot_layer_stats(stats: Any, path: str | os.PathLike) -> Path:
    """Activation mean and std, dead fraction, and gradient std per layer over steps."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 4, figsize=(17, 4))
    panels = [(axes[0], stats.activations, "mean", "activation mean", False),
              (axes[1], stats.activations, "std", "activation std", True),
              (axes[2], stats.activations, "dead", "dead units (fraction)", False),
              (axes[3], stats.gradients, "std", "gradient std (w.r.t. output)", True)]
    for ax, table, key, title, log in panels:
        for label, series in table.items():
            values = getattr(series, key)
            if series.steps and not np.all(np.isnan(values)):
                ax.plot(series.steps, values, label=label, linewidth=1)
        ax.set_title(title)
        ax.set_xlabel("step")
        if log:
            ax.set_yscale("log")
    axes[0].legend(fontsize=7, loc="best")
    figure.tight_layout()
    return _save(figure, path)


def plot_layer_histograms(stats: Any, path: str | os.PathLike) -> Path:
    """For each layer, its activation histogram over time (colour: log(1 + count))."""
    plt = _pyplot()
    layers = [(label, s) for label, s in stats.activations.items() if s.histograms]
    rows = max(len(layers), 1)
    figure, axes = plt.subplots(rows, 1, figsize=(9, 1.3 * rows + 0.6), squeeze=False)
    for ax, (label, series) in zip(axes[:, 0], layers):
        image = np.log1p(np.stack(series.histograms, axis=1))
        ax.imshow(image, origin="lower", aspect="auto", cmap="viridis",
                  extent=(series.steps[0], series.steps[-1], -series.limit, series.limit))
        ax.set_ylabel(label, rotation=0, ha="right", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("step")
    figure.suptitle("activation histograms over training (colour: log(1 + count))", fontsize=10)
    figure.tight_layout()
    return _save(figure, path)
