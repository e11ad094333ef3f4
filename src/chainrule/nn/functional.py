"""The functional forms of activations and losses, in one place: ``from chainrule.nn import
functional as F``. Each is a registered op whose backward sits in chainrule.ops."""

from chainrule.ops.conv import avg_pool2d, conv2d, max_pool2d
from chainrule.ops.elementwise import relu, sigmoid, tanh
from chainrule.ops.linalg import linear
from chainrule.ops.nn import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    log_softmax,
    mse,
    nll_loss,
    softmax,
)

mse_loss = mse

__all__ = [
    "avg_pool2d", "binary_cross_entropy_with_logits", "conv2d", "cross_entropy", "linear",
    "log_softmax", "max_pool2d", "mse", "mse_loss", "nll_loss", "relu", "sigmoid", "softmax",
    "tanh"
]
