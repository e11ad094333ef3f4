"""Primitive ops: each a registered Function with its forward and hand-derived backward."""

from chainrule.ops.conv import avg_pool2d, conv2d, max_pool2d
from chainrule.ops.elementwise import (
    abs,
    add,
    clamp,
    clone,
    div,
    dropout,
    eq,
    exp,
    ge,
    gelu,
    gt,
    le,
    leaky_relu,
    log,
    lt,
    maximum,
    minimum,
    mul,
    ne,
    neg,
    pow,
    relu,
    sigmoid,
    silu,
    sqrt,
    sub,
    tanh,
    where,
)
from chainrule.ops.linalg import linear, linear_relu, matmul
from chainrule.ops.loss import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    log_softmax,
    mse,
    nll_loss,
    softmax,
)
from chainrule.ops.norm import batch_norm, batch_norm_max_pool2d, layer_norm
from chainrule.ops.reduce import logsumexp, max, mean, min, std, sum, var
from chainrule.ops.shape import (
    cat,
    concatenate,
    expand,
    flatten,
    getitem,
    permute,
    reshape,
    squeeze,
    stack,
    transpose,
    unsqueeze,
)

__all__ = [
    "abs", "add", "avg_pool2d", "batch_norm", "batch_norm_max_pool2d",
    "binary_cross_entropy_with_logits", "cat", "clamp", "clone", "concatenate", "conv2d",
    "cross_entropy", "div", "dropout", "eq", "exp", "expand", "flatten", "ge", "gelu", "getitem",
    "gt", "layer_norm", "le", "leaky_relu", "linear", "linear_relu", "log", "log_softmax",
    "logsumexp", "lt", "matmul", "max", "max_pool2d", "maximum", "mean", "min", "minimum", "mse",
    "mul", "ne", "neg", "nll_loss", "permute", "pow", "relu", "reshape", "sigmoid", "silu",
    "softmax", "sqrt", "squeeze", "stack", "std", "sub", "sum", "tanh", "transpose", "unsqueeze",
    "var", "where"
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
