"""Optimizers (SGD, Adam, AdamW) and learning-rate schedules, with PyTorch's update rules."""

from chainrule.optim.adam import Adam, AdamW
from chainrule.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, OneCycleLR, StepLR
from chainrule.optim.optimizer import Optimizer
from chainrule.optim.sgd import SGD

__all__ = [
    "SGD", "Adam", "AdamW", "CosineAnnealingLR", "LRScheduler", "OneCycleLR", "Optimizer",
    "StepLR",
]
