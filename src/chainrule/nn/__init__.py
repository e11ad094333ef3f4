"""Layers, the Module base, initialisation and losses."""

from chainrule.nn import functional, init
from chainrule.nn.activation import GELU, LeakyReLU, ReLU, Sigmoid, SiLU, Tanh
from chainrule.nn.container import Sequential
from chainrule.nn.conv import AvgPool2d, Conv2d, Flatten, GlobalAvgPool2d, MaxPool2d
from chainrule.nn.dropout import Dropout
from chainrule.nn.fused import BatchNormMaxPool2d, Fused, LinearReLU, fuse, unfuse
from chainrule.nn.linear import Linear
from chainrule.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from chainrule.nn.module import Module, Parameter
from chainrule.nn.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from chainrule.nn.residual import ResidualBlock
from chainrule.ops.loss import mse

__all__ = [
    "AvgPool2d", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "BatchNormMaxPool2d",
    "Conv2d", "CrossEntropyLoss", "Dropout", "Flatten", "Fused", "GELU", "GlobalAvgPool2d",
    "LayerNorm", "LeakyReLU", "Linear", "LinearReLU", "MSELoss", "MaxPool2d", "Module",
    "NLLLoss", "Parameter", "ReLU", "ResidualBlock", "SiLU", "Sequential", "Sigmoid", "Tanh",
    "functional", "fuse", "init", "mse", "unfuse",
]

# Issue 13's names by area (merged into the lists above when the areas land).
# >>> area A: scans, sorting, reductions, linear algebra
# <<< area A
# >>> area B: shape and selection
# <<< area B
# >>> area C: elementwise maths and activations
# <<< area C
# >>> area D: convolution, pooling, padding, resizing
# <<< area D
# >>> area E: losses, normalisation, embedding and other layers
# <<< area E
