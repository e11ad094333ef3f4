"""The functional forms of activations, normalisation, dropout and losses, in one place:
``from chainrule.nn import functional as F``. Each is a registered op whose backward sits in
chainrule.ops."""

from chainrule.ops.conv import avg_pool2d, conv2d, max_pool2d
from chainrule.ops.elementwise import dropout, gelu, leaky_relu, relu, sigmoid, silu, tanh
from chainrule.ops.linalg import linear
from chainrule.ops.loss import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    log_softmax,
    mse,
    nll_loss,
    softmax,
)
from chainrule.ops.norm import batch_norm, layer_norm

mse_loss = mse

__all__ = [
    "avg_pool2d", "batch_norm", "binary_cross_entropy_with_logits", "conv2d", "cross_entropy",
    "dropout", "gelu", "layer_norm", "leaky_relu", "linear", "log_softmax", "max_pool2d", "mse",
    "mse_loss", "nll_loss", "relu", "sigmoid", "silu", "softmax", "tanh"
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
