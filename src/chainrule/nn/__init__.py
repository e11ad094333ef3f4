"""Layers, the Module base, initialisation and losses."""

from chainrule.nn import functional, init
from chainrule.nn.activation import ReLU
from chainrule.nn.container import Sequential
from chainrule.nn.conv import AvgPool2d, Conv2d, Flatten, MaxPool2d
from chainrule.nn.linear import Linear
from chainrule.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from chainrule.nn.module import Module, Parameter
from chainrule.ops.nn import mse

__all__ = [
    "AvgPool2d", "BCEWithLogitsLoss", "Conv2d", "CrossEntropyLoss", "Flatten", "Linear",
    "MaxPool2d", "MSELoss", "Module", "NLLLoss",
    "Parameter", "ReLU", "Sequential", "functional", "init", "mse",
]
