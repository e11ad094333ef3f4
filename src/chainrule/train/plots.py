"""PNG plots of training: loss curves and the learning-rate finder's sweep."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chainrule.io import atomic_write


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: str | os.PathLike) -> Path:
    plt = _pyplot()
    try:
        return atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=110))
    finally:
        plt.close(figure)


def plot_loss_curves(recorder: Any, history: Sequence[dict[str, Any]],
                     path: str | os.PathLike) -> Path:
    """Training loss per step (raw and smoothed) with validation loss and metrics per epoch."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps, losses = recorder.steps, recorder.losses
    left.plot(steps, losses, color="tab:blue", alpha=0.3, linewidth=0.8, label="train (batch)")
    if losses:
        smooth, values = 0.0, []
        for i, loss in enumerate(losses):
            smooth = 0.98 * smooth + 0.02 * loss
            values.append(smooth / (1 - 0.98 ** (i + 1)))
        left.plot(steps, values, color="tab:blue", label="train (smoothed)")
    if history and steps:
        per_epoch = max(len(steps) // max(len(history), 1), 1)
        ends = [steps[min((i + 1) * per_epoch, len(steps)) - 1] for i in range(len(history))]
        if "valid_loss" in history[0]:
            left.plot(ends, [row["valid_loss"] for row in history], "o-", color="tab:orange",
                      label="validation")
    left.set_xlabel("optimizer step")
    left.set_ylabel("loss")
    left.set_yscale("log")
    left.legend()
    left.set_title("loss")
    metric_names = [k for k in (history[0] if history else {}) if k not in
                    ("epoch", "train_loss", "valid_loss", "seconds")]
    for name in metric_names:
        right.plot([row["epoch"] + 1 for row in history], [row[name] for row in history],
                   "o-", label=name)
    right.set_xlabel("epoch")
    right.set_title("validation metrics")
    if metric_names:
        right.legend()
    figure.tight_layout()
    return _save(figure, path)


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
