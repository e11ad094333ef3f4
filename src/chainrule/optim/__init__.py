"""Optimizers (SGD, Adam, AdamW), learning-rate schedules and gradient clipping, with PyTorch's
rules."""

from chainrule.optim.adam import Adam, AdamW
from chainrule.optim.clip import clip_grad_norm_, clip_grad_value_
from chainrule.optim.lr_scheduler import (
    CosineAnnealingLR,
    LRScheduler,
    OneCycleLR,
    StepLR,
    WarmupCosineLR,
)
from chainrule.optim.optimizer import Optimizer
from chainrule.optim.sgd import SGD

__all__ = [
    "SGD", "Adam", "AdamW", "CosineAnnealingLR", "LRScheduler", "OneCycleLR", "Optimizer",
    "StepLR", "WarmupCosineLR", "clip_grad_norm_", "clip_grad_value_",
]
