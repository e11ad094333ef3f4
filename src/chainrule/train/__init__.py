"""Training: the Learner, its callbacks, metrics and plots."""

from chainrule.train.callbacks import (
    EVENTS,
    Callback,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelTrainException,
    CancelValidateException,
    CheckpointCallback,
    DivergenceGuard,
    ProgressBar,
    Recorder,
    SchedulerCallback,
    TrainingDiverged,
)
from chainrule.train.layer_stats import LayerStats, dead_fraction
from chainrule.train.learner import (
    IncompatibleDataError,
    Learner,
    check_fits,
    default_metrics,
    suggest_lr,
)
from chainrule.train.metrics import accuracy
from chainrule.train.plots import (
    plot_layer_histograms,
    plot_layer_stats,
    plot_loss_curves,
    plot_lr_find,
    plot_step_curves,
)

__all__ = [
    "EVENTS", "Callback", "CancelBatchException", "CancelEpochException", "CancelFitException",
    "CancelTrainException", "CancelValidateException", "CheckpointCallback", "DivergenceGuard",
    "IncompatibleDataError", "LayerStats", "Learner", "ProgressBar", "Recorder",
    "SchedulerCallback", "TrainingDiverged", "accuracy", "check_fits", "dead_fraction",
    "default_metrics", "plot_layer_histograms", "plot_layer_stats", "plot_loss_curves",
    "plot_lr_find", "plot_step_curves", "suggest_lr"
]
