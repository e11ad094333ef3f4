"""chainrule: deep learning on NumPy, built from the chain rule up."""

# Importing chainrule changes no process setting: see chainrule.kernels.tune_process.
from chainrule import (
    check,
    data,
    engine,
    io,
    kernels,
    models,
    nn,
    ops,
    optim,
    profiler,
    train,
)
from chainrule.engine.backend import (
    default_generator,
    get_default_dtype,
    manual_seed,
    set_default_dtype,
    unbroadcast,
)
from chainrule.engine.factory import (
    arange,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from chainrule.engine.function import Context, Function, registry
from chainrule.engine.tensor import Tensor, enable_grad, is_grad_enabled, no_grad
from chainrule.ops import (
    abs,
    add,
    batch_norm,
    cat,
    clamp,
    clone,
    concatenate,
    div,
    dropout,
    exp,
    expand,
    flatten,
    gelu,
    layer_norm,
    leaky_relu,
    linear,
    log,
    log_softmax,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mse,
    mul,
    neg,
    permute,
    pow,
    relu,
    reshape,
    sigmoid,
    silu,
    softmax,
    sqrt,
    squeeze,
    stack,
    std,
    sub,
    sum,
    tanh,
    transpose,
    unsqueeze,
    var,
    where,
)

__version__ = "0.1.0"

__all__ = [
    "Context", "Function", "Tensor", "abs", "add", "arange", "batch_norm", "cat", "check",
    "clamp", "clone", "concatenate", "data", "engine", "io", "kernels", "models", "optim",
    "profiler", "train",
    "default_generator", "div", "dropout", "empty", "empty_like", "enable_grad", "exp",
    "expand", "eye", "flatten", "full_like", "rand_like", "randn_like", "randperm",
    "from_numpy", "full", "gelu", "get_default_dtype", "is_grad_enabled", "layer_norm",
    "leaky_relu", "linear", "linspace", "log", "log_softmax", "logsumexp", "manual_seed",
    "matmul", "max", "maximum", "mean", "min", "minimum", "mse", "mul", "neg", "nn", "no_grad",
    "ones", "ones_like", "ops", "permute", "pow", "rand", "randint", "randn", "registry", "relu",
    "reshape", "set_default_dtype", "sigmoid", "silu", "softmax", "sqrt", "squeeze", "stack",
    "std", "sub", "sum", "tanh", "tensor", "transpose", "unbroadcast", "unsqueeze", "var",
    "where", "zeros", "zeros_like",
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
