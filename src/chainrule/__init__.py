"""chainrule: deep learning on NumPy, built from the chain rule up."""

# _startup first: it sets up the environment before NumPy loads its BLAS.
from chainrule import (
    _startup,  # noqa: F401
    check,
    data,
    io,
    models,
    nn,
    ops,
    optim,
    parallel,
    profiler,
    train,
)
from chainrule.backend import (
    default_generator,
    get_default_dtype,
    manual_seed,
    set_default_dtype,
    unbroadcast,
)
from chainrule.factory import (
    arange,
    eye,
    from_numpy,
    full,
    linspace,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from chainrule.function import Context, Function, registry
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
from chainrule.tensor import Tensor, enable_grad, is_grad_enabled, no_grad

__version__ = "0.1.0"

__all__ = [
    "Context", "Function", "Tensor", "abs", "add", "arange", "batch_norm", "cat", "check",
    "clamp", "clone", "concatenate", "data", "io", "models", "optim", "parallel", "profiler",
    "train",
    "default_generator", "div", "dropout", "enable_grad", "exp", "expand", "eye", "flatten",
    "from_numpy", "full", "gelu", "get_default_dtype", "is_grad_enabled", "layer_norm",
    "leaky_relu", "linear", "linspace", "log", "log_softmax", "logsumexp", "manual_seed",
    "matmul", "max", "maximum", "mean", "min", "minimum", "mse", "mul", "neg", "nn", "no_grad",
    "ones", "ones_like", "ops", "permute", "pow", "rand", "randint", "randn", "registry", "relu",
    "reshape", "set_default_dtype", "sigmoid", "silu", "softmax", "sqrt", "squeeze", "stack",
    "std", "sub", "sum", "tanh", "tensor", "transpose", "unbroadcast", "unsqueeze", "var",
    "where", "zeros", "zeros_like",
]

parallel.keep_freed_memory()
