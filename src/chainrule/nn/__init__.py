"""Layers, the Module base, initialisation and losses."""

from chainrule.nn import init
from chainrule.nn.activation import ReLU
from chainrule.nn.container import Sequential
from chainrule.nn.linear import Linear
from chainrule.nn.loss import MSELoss
from chainrule.nn.module import Module, Parameter
from chainrule.ops.nn import mse

__all__ = ["Linear", "MSELoss", "Module", "Parameter", "ReLU", "Sequential", "init", "mse"]
