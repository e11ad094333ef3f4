"""ONNX export: trace a model on an example input, then write each recorded op as ONNX nodes.

    cr.export.to_onnx(model, example, "model.onnx")

Each op of the registry that can be exported has one mapping function below, which reads the
call's arguments and adds the nodes that compute the same thing (a fused op becomes the nodes
of its parts). Parameters and buffers become initializers under their ``state_dict`` names;
node names carry the layer they ran in. The first axis of the input is the batch axis and
stays free in the file. An op with no mapping is an error that names it and its layer.

Needs the ``onnx`` package (``pip install "chainrule[onnx]"``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.engine.tensor import Tensor
from chainrule.export.trace import Call, array_of, trace
from chainrule.nn.module import Module
from chainrule.ops.elementwise import _operand_data

#: The ONNX opset written by default: 20 is the first with Gelu (its tanh form included), so
#: the oldest every mapping here can use, and the one the most runtimes read.
OPSET = 20


class ExportError(ValueError):
    """A model, or one op of it, that cannot be written as ONNX."""


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install \"chainrule[onnx]\" "
                          "(or pip install onnx)") from None
    return onnx


class _Graph:
    """The nodes, initializers and value names of the graph being built."""

    def __init__(self, onnx: Any, names: dict[int, str]) -> None:
        self.onnx, self.helper = onnx, onnx.helper
        self.names = names  # id(tensor) -> ONNX value name
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.taken: set[str] = set(names.values())
        self.layer = ""
        self.keep: list[Any] = []  # tensors named by id must stay alive while ids are used
        # id(array) -> name, for the input's and every traced output's array (a forward may
        # unwrap a tensor with .data and hand the array to the next op)
        self.arrays: dict[int, str] = {}
        # parameters and buffers by id of the tensor and of its array: (state_dict key, tensor)
        self.state: dict[int, tuple[str, Tensor]] = {}
        self.state_arrays: dict[int, tuple[str, Tensor]] = {}
        self.used: set[str] = set()
        self.batch = 0  # the example's batch size

    def fresh(self, hint: str) -> str:
        """A value or node name not used yet, built from ``hint``."""
        base = hint.strip(".") or "value"
        name, n = base, 1
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name

    def constant(self, array: Any, hint: str = "constant", dtype: Any = None) -> str:
        """An initializer holding ``array``."""
        array = np.asarray(array, dtype=dtype)
        name = self.fresh(f"{self.layer}.{hint}" if self.layer else hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def ints(self, values: Any, hint: str) -> str:
        """An int64 initializer (shapes, axes, split sizes)."""
        return self.constant(np.asarray(values, dtype=np.int64), hint)

    def value(self, item: Any, like: Tensor | None = None) -> str:
        """The name of a call's argument: a traced value, a parameter, or a new constant."""
        if isinstance(item, Tensor):
            if id(item) in self.state:
                return self._use(*self.state[id(item)])
            name = self.names.get(id(item), self.arrays.get(id(item._data)))
            if name is None:  # made outside any op: a constant of the trace
                self._refuse_batched(item._data)
                name = self.constant(item._data, "constant")
                self.names[id(item)] = name
                self.keep.append(item)
            return name
        if isinstance(item, np.ndarray):  # a tensor's array, unwrapped by the model
            if id(item) in self.arrays:
                return self.arrays[id(item)]
            if id(item) in self.state_arrays:
                return self._use(*self.state_arrays[id(item)])
            self._refuse_batched(item)
        dtype = like._data.dtype if like is not None and np.ndim(item) == 0 else None
        return self.constant(item, "constant", dtype)

    def _refuse_batched(self, data: np.ndarray) -> None:
        """A constant of two or more axes, one the size of the example's batch, is almost
        surely made from the input outside the ops: the file would hold this batch's."""
        if self.batch > 1 and data.ndim >= 2 and self.batch in data.shape:
            raise ExportError(
                f"to_onnx: the forward uses a {data.shape} {data.dtype} value that no op made "
                f"(in layer {self.layer!r}), with an axis the size of the example's batch "
                f"({self.batch}): the file would keep this batch's values. Make it with "
                "chainrule ops from the input (not NumPy on .data), or, if it does not depend "
                "on the batch, give an example of another batch size")

    def known(self, item: Any) -> bool:
        """Whether ``item`` is the input, a parameter, a buffer or a traced op's output."""
        data = item._data if isinstance(item, Tensor) else item
        return any(key in table for key, table in (
            (id(item), self.names), (id(item), self.state), (id(data), self.arrays),
            (id(data), self.state_arrays)))

    def _use(self, key: str, tensor: Tensor) -> str:
        """A parameter's or buffer's name, its initializer added on first use."""
        if key not in self.used:
            self.used.add(key)
            self.initializers.append(self.onnx.numpy_helper.from_array(tensor._data, key))
        return key

    def add(self, op_type: str, inputs: list[str], hint: str = "", outputs: int = 1,
            **attributes: Any) -> Any:
        """Append one node; return its output name (or names, for ``outputs`` > 1)."""
        label = hint or op_type.lower()
        names = [self.fresh(f"{self.layer}.{label}" if self.layer else label)
                 for _ in range(outputs)]
        node_name = self.fresh(f"{self.layer}/{op_type}" if self.layer else op_type)
        self.nodes.append(self.helper.make_node(op_type, inputs, names, name=node_name,
                                                **attributes))
        return names[0] if outputs == 1 else names


Mapping_ = Callable[[_Graph, Call], str]
MAPPINGS: dict[str, Mapping_] = {}


def maps(*names: str) -> Callable[[Mapping_], Mapping_]:
    """Register a mapping function for the ops ``names``."""
    def register(fn: Mapping_) -> Mapping_:
        for name in names:
            MAPPINGS[name] = fn
        return fn
    return register


def supported_ops() -> list[str]:
    """The names of the registry's ops that export to ONNX."""
    return sorted(MAPPINGS)


# ------------------------------------------------------------------ elementwise
_UNARY = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "exp": "Exp", "log": "Log",
          "sqrt": "Sqrt", "neg": "Neg", "abs": "Abs", "reciprocal": "Reciprocal",
          "erf": "Erf", "sin": "Sin", "cos": "Cos", "floor": "Floor", "ceil": "Ceil",
          "sign": "Sign", "softsign": "Softsign", "clone": "Identity", "tan": "Tan",
          "sinh": "Sinh", "cosh": "Cosh", "asin": "Asin", "acos": "Acos", "atan": "Atan",
          "asinh": "Asinh", "acosh": "Acosh", "atanh": "Atanh", "hardswish": "HardSwish",
          "mish": "Mish", "selu": "Selu"}
_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow",
           "maximum": "Max", "minimum": "Min", "matmul": "MatMul"}


@maps(*_UNARY)
def _unary(g: _Graph, call: Call) -> str:
    return g.add(_UNARY[call.fn.name], [g.value(call.args["a"])], call.fn.name)


@maps(*_BINARY)
def _binary(g: _Graph, call: Call) -> str:
    a, b = call.args["a"], call.args["b"]
    like = a if isinstance(a, Tensor) else b
    return g.add(_BINARY[call.fn.name], [g.value(a, like), g.value(b, like)], call.fn.name)


@maps("gelu")
def _gelu(g: _Graph, call: Call) -> str:
    return g.add("Gelu", [g.value(call.args["a"])], approximate=call.args["approximate"])


@maps("silu")
def _silu(g: _Graph, call: Call) -> str:
    x = g.value(call.args["a"])
    return g.add("Mul", [x, g.add("Sigmoid", [x])], "silu")


@maps("leaky_relu")
def _leaky_relu(g: _Graph, call: Call) -> str:
    return g.add("LeakyRelu", [g.value(call.args["a"])], alpha=call.args["negative_slope"])


@maps("elu")
def _elu(g: _Graph, call: Call) -> str:
    return g.add("Elu", [g.value(call.args["a"])], alpha=call.args["alpha"])


@maps("hardtanh", "clamp")
def _clip(g: _Graph, call: Call) -> str:
    a = call.args["a"]
    low, high = ((call.args["min_val"], call.args["max_val"]) if call.fn.name == "hardtanh"
                 else (call.args["low"], call.args["high"]))
    bounds = ["" if v is None else g.constant(np.asarray(v, a._data.dtype), "bound")
              for v in (low, high)]
    return g.add("Clip", [g.value(a), *bounds], call.fn.name)


@maps("hardsigmoid")
def _hardsigmoid(g: _Graph, call: Call) -> str:
    return g.add("HardSigmoid", [g.value(call.args["a"])], alpha=1 / 6, beta=0.5)


@maps("celu")
def _celu(g: _Graph, call: Call) -> str:
    return g.add("Celu", [g.value(call.args["a"])], alpha=float(call.args["alpha"]))


@maps("square")
def _square(g: _Graph, call: Call) -> str:
    x = g.value(call.args["a"])
    return g.add("Mul", [x, x], "square")


@maps("rsqrt")
def _rsqrt(g: _Graph, call: Call) -> str:
    return g.add("Reciprocal", [g.add("Sqrt", [g.value(call.args["a"])])], "rsqrt")


@maps("logsigmoid")
def _logsigmoid(g: _Graph, call: Call) -> str:
    # log sigmoid(x) = -softplus(-x), which stays finite for large |x|
    negated = g.add("Neg", [g.value(call.args["a"])])
    return g.add("Neg", [g.add("Softplus", [negated])], "logsigmoid")


@maps("softplus")
def _softplus(g: _Graph, call: Call) -> str:
    a = call.args["a"]
    dtype = a._data.dtype
    x = g.value(a)
    beta = g.constant(np.asarray(call.args["beta"], dtype), "beta")
    scaled = g.add("Mul", [x, beta], "scaled")
    smooth = g.add("Div", [g.add("Softplus", [scaled]), beta], "softplus")
    # above the threshold the function is the identity, as PyTorch's softplus
    linear = g.add("Greater", [scaled, g.constant(np.asarray(call.args["threshold"], dtype),
                                                  "threshold")], "linear_part")
    return g.add("Where", [linear, x, smooth], "softplus")


@maps("prelu")
def _prelu(g: _Graph, call: Call) -> str:
    a, weight = call.args["a"], call.args["weight"]
    slope = g.value(weight)
    if a._data.ndim > 2 and array_of(weight).size > 1:  # one slope per channel (axis 1)
        slope = g.add("Reshape", [slope, g.ints([-1] + [1] * (a._data.ndim - 2), "shape")],
                      "slope")
    return g.add("PRelu", [g.value(a), slope], "prelu")


_COMPARE = {"less": "Less", "less_equal": "LessOrEqual", "greater": "Greater",
            "greater_equal": "GreaterOrEqual", "equal": "Equal", "not_equal": "Equal"}


def _promoted(g: _Graph, call: Call, a: Any, b: Any) -> list[str]:
    """The operands of an op that is no Function (comparisons, logical and bitwise ops), in
    the dtype chainrule computed it in (its own rule, ``_operand_data``): cast where needed."""
    converted = _operand_data(a, b, call.fn.name)
    dtype = next(d.dtype for d in converted if isinstance(d, np.ndarray))
    names = []
    for value, data in zip((a, b), converted):
        if isinstance(value, (Tensor, np.ndarray)):
            name = g.value(value)
            if array_of(value).dtype != dtype:
                name = g.add("Cast", [name], "cast", to=g.helper.np_dtype_to_tensor_dtype(dtype))
        else:  # a Python number
            name = g.constant(np.asarray(data, dtype), "constant")
        names.append(name)
    return names


@maps(*_COMPARE)
def _compare(g: _Graph, call: Call) -> str:
    a, b = _promoted(g, call, call.args["a"], call.args["b"])
    out = g.add(_COMPARE[call.fn.name], [a, b], call.fn.name)
    return g.add("Not", [out], "not_equal") if call.fn.name == "not_equal" else out


_LOGICAL = {"logical_and": "And", "logical_or": "Or", "logical_xor": "Xor",
            "bitwise_and": "BitwiseAnd", "bitwise_or": "BitwiseOr", "bitwise_xor": "BitwiseXor"}


@maps(*_LOGICAL)
def _logical(g: _Graph, call: Call) -> str:
    a, b = call.args["a"], call.args["b"]
    if call.fn.name.startswith("logical"):  # nonzero is true
        a, b = (_as_bool(g, v) for v in (a, b))
        return g.add(_LOGICAL[call.fn.name], [a, b], call.fn.name)
    a, b = _promoted(g, call, a, b)
    op = _LOGICAL[call.fn.name]
    if call.output._data.dtype == np.bool_:  # & | ^ on bools are the logical ops
        op = {"BitwiseAnd": "And", "BitwiseOr": "Or", "BitwiseXor": "Xor"}[op]
    return g.add(op, [a, b], call.fn.name)


@maps("logical_not", "bitwise_not")
def _not(g: _Graph, call: Call) -> str:
    a = call.args["a"]
    if call.fn.name == "logical_not" or call.output._data.dtype == np.bool_:
        return g.add("Not", [_as_bool(g, a)], call.fn.name)
    return g.add("BitwiseNot", [g.value(a)], call.fn.name)


def _as_bool(g: _Graph, value: Any) -> str:
    data = array_of(value)
    if data.dtype == np.bool_:
        return g.value(value)
    if not isinstance(value, Tensor):
        return g.constant(data != 0, "constant")
    zero = g.constant(np.zeros((), data.dtype), "zero")
    return g.add("Not", [g.add("Equal", [g.value(value), zero], "is_zero")], "nonzero")


@maps("where")
def _where(g: _Graph, call: Call) -> str:
    dtype = call.output._data.dtype
    a, b = (g.value(v) if isinstance(v, Tensor) else g.constant(np.asarray(v, dtype), "value")
            for v in (call.args["a"], call.args["b"]))
    return g.add("Where", [g.value(call.args["condition"]), a, b], "where")


@maps("softmax", "log_softmax")
def _softmax(g: _Graph, call: Call) -> str:
    op = "Softmax" if call.fn.name == "softmax" else "LogSoftmax"
    return g.add(op, [g.value(call.args["a"])], call.fn.name, axis=call.args["axis"])


# ------------------------------------------------------------------ linear layers
def _linear_nodes(g: _Graph, call: Call) -> str:
    x, weight, bias = call.args["x"], call.args["weight"], call.args["bias"]
    inputs = [g.value(x), g.value(weight)]
    if x._data.ndim == 2:
        if bias is not None:
            inputs.append(g.value(bias))
        return g.add("Gemm", inputs, "linear", transB=1)
    out = g.add("MatMul", [inputs[0], g.add("Transpose", [inputs[1]], "weight_t")], "linear")
    return out if bias is None else g.add("Add", [out, g.value(bias)], "linear")


@maps("linear")
def _linear(g: _Graph, call: Call) -> str:
    return _linear_nodes(g, call)


@maps("linear_relu")
def _linear_relu(g: _Graph, call: Call) -> str:
    return g.add("Relu", [_linear_nodes(g, call)], "relu")


@maps("linear_gelu")
def _linear_gelu(g: _Graph, call: Call) -> str:
    return g.add("Gelu", [_linear_nodes(g, call)], "gelu", approximate="tanh")


# ------------------------------------------------------------------ convolution, pooling
@maps("conv2d", "conv_nd")
def _conv(g: _Graph, call: Call) -> str:
    args = call.args
    if isinstance(args["padding"], str):
        raise ExportError(f"{call.fn.name}{_in_layer(call)}: padding={args['padding']!r} is "
                          "not exported; give the padding as numbers")
    dims = array_of(args["weight"]).ndim - 2
    inputs = [g.value(args["x"]), g.value(args["weight"])]
    if args["bias"] is not None:
        inputs.append(g.value(args["bias"]))
    pad = _tuple(args["padding"], dims)
    return g.add("Conv", inputs, "conv", kernel_shape=list(args["weight"].shape[2:]),
                 strides=_tuple(args["stride"], dims), pads=pad + pad,
                 dilations=_tuple(args["dilation"], dims), group=int(args["groups"]))


def _pool(g: _Graph, op: str, x: str, kernel: Any, stride: Any, padding: Any, dims: int = 2,
          **extra: Any) -> str:
    """A pooling node over ``dims`` axes; the stride defaults to the kernel, as in PyTorch."""
    kernel, pad = _tuple(kernel, dims), _tuple(padding, dims)
    return g.add(op, [x], op.lower(), kernel_shape=kernel,
                 strides=kernel if stride is None else _tuple(stride, dims), pads=pad + pad,
                 **extra)


@maps("max_pool")
def _max_pool(g: _Graph, call: Call) -> str:
    a = call.args
    if a.get("indices_out") is not None:
        raise ExportError(f"max_pool{_in_layer(call)}: return_indices=True is not exported")
    dims = int(a["dims"])
    return _pool(g, "MaxPool", g.value(a["x"]), a["kernel_size"], a["stride"], a["padding"],
                 dims, dilations=_tuple(a.get("dilation", 1), dims),
                 ceil_mode=int(bool(a.get("ceil_mode", False))))


@maps("avg_pool")
def _avg_pool(g: _Graph, call: Call) -> str:
    a = call.args
    if a.get("divisor_override") is not None:
        raise ExportError(f"avg_pool{_in_layer(call)}: divisor_override is not exported")
    return _pool(g, "AveragePool", g.value(a["x"]), a["kernel_size"], a.get("stride"),
                 a.get("padding", 0), int(a["dims"]),
                 ceil_mode=int(bool(a.get("ceil_mode", False))),
                 count_include_pad=int(bool(a.get("count_include_pad", True))))


@maps("adaptive_avg_pool")
def _adaptive_avg_pool(g: _Graph, call: Call) -> str:
    a = call.args
    x = a["x"]
    dims = int(a["dims"])
    sizes = x._data.shape[-dims:]
    wanted = [s if o is None else int(o) for s, o in zip(sizes, _tuple_or_none(
        a["output_size"], dims))]
    if all(w == 1 for w in wanted):
        return g.add("GlobalAveragePool", [g.value(x)], "avgpool")
    if any(s % w for s, w in zip(sizes, wanted)):
        raise ExportError(f"adaptive_avg_pool{_in_layer(call)}: output size {tuple(wanted)} does "
                          f"not divide the input's {tuple(sizes)}; only equal windows export")
    kernel = [s // w for s, w in zip(sizes, wanted)]
    return g.add("AveragePool", [g.value(x)], "avgpool", kernel_shape=kernel, strides=kernel)


def _tuple(value: Any, dims: int) -> list[int]:
    return [int(value)] * dims if np.ndim(value) == 0 else [int(v) for v in value]


def _tuple_or_none(value: Any, dims: int) -> list[Any]:
    return [value] * dims if value is None or np.ndim(value) == 0 else list(value)


@maps("max_pool2d")
def _max_pool2d(g: _Graph, call: Call) -> str:
    a = call.args
    return _pool(g, "MaxPool", g.value(a["x"]), a["kernel_size"], a["stride"], a["padding"])


@maps("avg_pool2d")
def _avg_pool2d(g: _Graph, call: Call) -> str:
    a = call.args
    return _pool(g, "AveragePool", g.value(a["x"]), a["kernel_size"], a["stride"],
                 a["padding"], count_include_pad=1)


# ------------------------------------------------------------------ normalisation
def _ones_or(g: _Graph, tensor: Tensor | None, like: Tensor, fill: float, hint: str) -> str:
    if tensor is not None:
        return g.value(tensor)
    return g.constant(np.full(like._data.shape[1], fill, like._data.dtype), hint)


def _batch_norm_nodes(g: _Graph, call: Call) -> str:
    a = call.args
    x = a["x"]
    scale = _ones_or(g, a["weight"], x, 1.0, "weight")
    shift = _ones_or(g, a["bias"], x, 0.0, "bias")
    if not a["training"]:
        return g.add("BatchNormalization", [g.value(x), scale, shift, g.value(a["running_mean"]),
                                            g.value(a["running_var"])], "batch_norm",
                     epsilon=float(a["eps"]))
    # The batch's own statistics (training mode, or no running statistics), written out:
    # mean and biased variance over every axis but the channels', as the op normalises.
    axes = [i for i in range(x._data.ndim) if i != 1]
    normed = _standardised(g, g.value(x), axes, a["eps"], x._data.dtype)
    return _per_channel(g, normed, scale, shift, x._data.ndim)


def _standardised(g: _Graph, value: str, axes: list[int], eps: float, dtype: Any) -> str:
    """(x - mean) / sqrt(var + eps) over ``axes``, with the biased variance."""
    axes_name = g.ints(axes, "axes")
    mean = g.add("ReduceMean", [value, axes_name], "mean", keepdims=1)
    centred = g.add("Sub", [value, mean], "centred")
    var = g.add("ReduceMean", [g.add("Mul", [centred, centred], "square"), axes_name], "var",
                keepdims=1)
    std = g.add("Sqrt", [g.add("Add", [var, g.constant(np.asarray(eps, dtype), "eps")],
                               "var_eps")], "std")
    return g.add("Div", [centred, std], "normed")


def _per_channel(g: _Graph, out: str, weight: str | None, bias: str | None, ndim: int) -> str:
    """``out * weight + bias`` with both of shape (C,) laid along axis 1 of ``ndim`` axes."""
    if weight is None and bias is None:
        return out
    view = g.ints([-1] + [1] * (ndim - 2), "channel_shape")
    if weight is not None:
        out = g.add("Mul", [out, g.add("Reshape", [weight, view], "weight_view")], "scaled")
    if bias is not None:
        out = g.add("Add", [out, g.add("Reshape", [bias, view], "bias_view")], "shifted")
    return out


@maps("batch_norm")
def _batch_norm(g: _Graph, call: Call) -> str:
    return _batch_norm_nodes(g, call)


@maps("batch_norm_max_pool2d")
def _batch_norm_max_pool2d(g: _Graph, call: Call) -> str:
    a = call.args
    out = _pool(g, "MaxPool", _batch_norm_nodes(g, call), a["kernel_size"], a["stride"],
                a["padding"])
    return g.add("Relu", [out], "relu") if a["relu"] else out


@maps("layer_norm")
def _layer_norm(g: _Graph, call: Call) -> str:
    a = call.args
    x = a["x"]
    shape = (a["normalized_shape"],) if np.ndim(a["normalized_shape"]) == 0 else tuple(
        a["normalized_shape"])
    dtype = x._data.dtype
    scale = g.value(a["weight"]) if a["weight"] is not None else g.constant(
        np.ones(shape, dtype), "weight")
    inputs = [g.value(x), scale]
    if a["bias"] is not None:
        inputs.append(g.value(a["bias"]))
    return g.add("LayerNormalization", inputs, "layer_norm", axis=-len(shape),
                 epsilon=float(a["eps"]))


@maps("rms_norm")
def _rms_norm(g: _Graph, call: Call) -> str:
    a = call.args
    x = a["x"]
    dtype = x._data.dtype
    shape = a["normalized_shape"]
    count = 1 if np.ndim(shape) == 0 else len(shape)
    eps = float(np.finfo(dtype).eps) if a["eps"] is None else float(a["eps"])
    value = g.value(x)
    axes = g.ints(list(range(-count, 0)), "axes")
    mean_square = g.add("ReduceMean", [g.add("Mul", [value, value], "square"), axes],
                        "mean_square", keepdims=1)
    rms = g.add("Sqrt", [g.add("Add", [mean_square, g.constant(np.asarray(eps, dtype), "eps")],
                               "mean_square_eps")], "rms")
    out = g.add("Div", [value, rms], "normed")
    return out if a["weight"] is None else g.add("Mul", [out, g.value(a["weight"])], "rms_norm")


@maps("group_norm")
def _group_norm(g: _Graph, call: Call) -> str:
    a = call.args
    x = a["x"]
    shape = x._data.shape
    grouped = g.add("Reshape", [g.value(x), g.ints([0, int(a["num_groups"]), -1], "groups")],
                    "grouped")
    normed = _standardised(g, grouped, [2], a["eps"], x._data.dtype)
    out = g.add("Reshape", [normed, g.ints([0, *shape[1:]], "shape")], "group_norm")
    weight, bias = (None if v is None else g.value(v) for v in (a["weight"], a["bias"]))
    return _per_channel(g, out, weight, bias, len(shape))


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
              "circular": "wrap"}


@maps("pad")
def _pad(g: _Graph, call: Call) -> str:
    a = call.args
    x = a["x"]
    ndim = x._data.ndim
    pairs = list(a["pad"])
    begin, end = [0] * ndim, [0] * ndim
    for i in range(0, len(pairs), 2):  # PyTorch's order: the last axis first
        axis = ndim - 1 - i // 2
        begin[axis], end[axis] = int(pairs[i]), int(pairs[i + 1])
    if min(begin + end) < 0:
        raise ExportError(f"pad{_in_layer(call)}: negative padding (cropping) is not exported")
    inputs = [g.value(x), g.ints(begin + end, "pads")]
    if a["mode"] == "constant":
        inputs.append(g.constant(np.asarray(a["value"], x._data.dtype), "value"))
    return g.add("Pad", inputs, "pad", mode=_PAD_MODES[a["mode"]])


@maps("dropout")
def _dropout(g: _Graph, call: Call) -> str:
    # A dropout call is recorded only where the forward drew a mask (training mode, or a
    # functional dropout_p): ONNX's Dropout draws its own.
    x = call.args["x"]
    return _dropout_node(g, call, g.value(x), call.args["scale"], x._data.dtype)


def _dropout_node(g: _Graph, call: Call, value: str, scale: float, dtype: Any) -> str:
    """ONNX Dropout in training mode, for a keep mask scaled by ``scale`` = 1 / (1 - p)."""
    if not scale:
        raise ExportError(f"{call.fn.name}{_in_layer(call)}: dropout with p = 1 (everything "
                          "dropped) is not exported; ONNX's Dropout takes p below 1")
    ratio = 1.0 - 1.0 / float(scale)
    return g.add("Dropout", [value, g.constant(np.asarray(ratio, dtype), "ratio"),
                             g.constant(np.asarray(True), "training_mode")], "dropout")


# ------------------------------------------------------------------ shapes, reductions
def _fixed_batch(shape: list[int], source: tuple[int, ...]) -> list[int]:
    """A traced target shape with its batch dimension left free: ONNX Reshape's 0 copies the
    input's first dimension where the first dimension is kept, else -1 infers it."""
    shape = list(shape)
    if shape and source and shape[0] == source[0]:
        shape[0] = 0
    elif shape and -1 not in shape:
        shape[0] = -1
    return shape


@maps("reshape")
def _reshape(g: _Graph, call: Call) -> str:
    a = call.args["a"]
    target = _fixed_batch(list(call.output._data.shape), a._data.shape)
    return g.add("Reshape", [g.value(a), g.ints(target, "shape")], "reshape")


@maps("flatten")
def _flatten(g: _Graph, call: Call) -> str:
    a = call.args["a"]
    ndim = a._data.ndim
    start, end = call.args["start_axis"] % max(ndim, 1), call.args["end_axis"] % max(ndim, 1)
    if start == 1 and end == ndim - 1:
        return g.add("Flatten", [g.value(a)], "flatten", axis=1)
    target = _fixed_batch(list(call.output._data.shape), a._data.shape)
    return g.add("Reshape", [g.value(a), g.ints(target, "shape")], "flatten")


@maps("permute")
def _permute(g: _Graph, call: Call) -> str:
    a = call.args["a"]
    return g.add("Transpose", [g.value(a)], "permute",
                 perm=[int(p) % a._data.ndim for p in call.args["axes"]])


@maps("transpose")
def _transpose(g: _Graph, call: Call) -> str:
    a = call.args["a"]
    perm = list(range(a._data.ndim))
    i, j = call.args["axis0"] % a._data.ndim, call.args["axis1"] % a._data.ndim
    perm[i], perm[j] = perm[j], perm[i]
    return g.add("Transpose", [g.value(a)], "transpose", perm=perm)


@maps("unsqueeze", "squeeze")
def _squeeze(g: _Graph, call: Call) -> str:
    a, axis = call.args["a"], call.args["axis"]
    op = "Unsqueeze" if call.fn.name == "unsqueeze" else "Squeeze"
    if axis is None:
        return g.add(op, [g.value(a)], call.fn.name)
    axes = [axis] if np.ndim(axis) == 0 else list(axis)
    return g.add(op, [g.value(a), g.ints(axes, "axes")], call.fn.name)


@maps("stack")
def _stack(g: _Graph, call: Call) -> str:
    axis = int(call.args["axis"])
    parts = [g.add("Unsqueeze", [g.value(t), g.ints([axis], "axis")], "part")
             for t in call.args["arrays"]]
    return g.add("Concat", parts, "stack", axis=axis)


@maps("getitem")
def _getitem(g: _Graph, call: Call) -> str:
    a, index = call.args["a"], call.args["index"]
    ndim = a._data.ndim
    items = list(index) if isinstance(index, tuple) else [index]
    if sum(item is Ellipsis for item in items) > 1 or not all(
            item is Ellipsis or isinstance(item, slice) or (
                isinstance(item, (int, np.integer)) and not isinstance(item, bool))
            for item in items):
        raise ExportError(f"getitem{_in_layer(call)}: only integers, slices and one ... export "
                          f"(got {index!r:.80})")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items[at:at + 1] = [slice(None)] * (ndim - len(items) + 1)
    out = g.value(a)
    starts, ends, axes, steps, picks = [], [], [], [], []
    for axis, item in enumerate(items):
        if isinstance(item, slice):
            if item == slice(None):
                continue
            if item.step is not None and item.step < 1:
                raise ExportError(f"getitem{_in_layer(call)}: a slice step below 1 is not "
                                  "exported")
            starts.append(0 if item.start is None else item.start)
            ends.append(np.iinfo(np.int64).max if item.stop is None else item.stop)
            axes.append(axis)
            steps.append(1 if item.step is None else item.step)
        else:
            picks.append((axis, int(item)))
    if axes:
        out = g.add("Slice", [out, g.ints(starts, "starts"), g.ints(ends, "ends"),
                              g.ints(axes, "axes"), g.ints(steps, "steps")], "slice")
    for axis, item in reversed(picks):  # the last first, so the earlier axes keep places
        out = g.add("Gather", [out, g.ints(item, "index")], "pick", axis=axis)
    return out if axes or picks else g.add("Identity", [out], "getitem")


@maps("concatenate")
def _concatenate(g: _Graph, call: Call) -> str:
    return g.add("Concat", [g.value(t) for t in call.args["arrays"]], "concat",
                 axis=int(call.args["axis"]))


_REDUCE = {"mean": "ReduceMean", "sum": "ReduceSum", "max": "ReduceMax", "min": "ReduceMin"}


@maps(*_REDUCE)
def _reduce(g: _Graph, call: Call) -> str:
    a, axis = call.args["a"], call.args["axis"]
    inputs = [g.value(a)]
    if a._data.dtype != call.output._data.dtype:  # bools sum as int64, dtype= asks another
        to = g.helper.np_dtype_to_tensor_dtype(call.output._data.dtype)
        inputs = [g.add("Cast", inputs, "cast", to=to)]
    if axis is not None:
        inputs.append(g.ints([axis] if np.ndim(axis) == 0 else list(axis), "axes"))
    return g.add(_REDUCE[call.fn.name], inputs, call.fn.name,
                 keepdims=int(bool(call.args["keepdims"])))


@maps("embedding")
def _embedding(g: _Graph, call: Call) -> str:
    indices = call.args["indices"]
    index = g.value(indices)
    if array_of(indices).dtype != np.int64:
        index = g.add("Cast", [index], "indices", to=g.onnx.TensorProto.INT64)
    return g.add("Gather", [g.value(call.args["weight"]), index], "embedding", axis=0)


@maps("cast")
def _cast(g: _Graph, call: Call) -> str:
    to = g.helper.np_dtype_to_tensor_dtype(np.dtype(call.args["dtype"]))
    return g.add("Cast", [g.value(call.args["a"])], "cast", to=to)


# ------------------------------------------------------------------ attention
@maps("self_attention")
def _self_attention(g: _Graph, call: Call) -> str:
    a = call.args
    qkv = a["qkv"]
    if qkv._data.ndim != 3:
        raise ExportError(f"self_attention{_in_layer(call)}: only (batch, time, 3C) projections "
                          f"are exported, got shape {qkv._data.shape}")
    _, steps, width = qkv._data.shape
    heads = int(a["n_head"])
    channels = width // 3
    head = channels // heads
    q, k, v = g.add("Split", [g.value(qkv), g.ints([channels] * 3, "split")], "qkv", 3, axis=-1)
    split = g.ints([0, 0, heads, head], "heads")  # 0: the batch and time axes stay as they are
    q, k, v = (g.add("Reshape", [t, split], name) for t, name in ((q, "q"), (k, "k"), (v, "v")))
    q = g.add("Transpose", [q], "q_heads", perm=[0, 2, 1, 3])
    k = g.add("Transpose", [k], "k_heads_t", perm=[0, 2, 3, 1])
    v = g.add("Transpose", [v], "v_heads", perm=[0, 2, 1, 3])
    weights = _attention_weights(g, call, q, k, qkv._data.dtype, head, (steps, steps), None)
    out = g.add("Transpose", [g.add("MatMul", [weights, v], "heads_out")], "merged",
                perm=[0, 2, 1, 3])
    return g.add("Reshape", [out, g.ints([0, 0, channels], "merge")], "attention_out")


@maps("scaled_dot_product_attention")
def _attention(g: _Graph, call: Call) -> str:
    a = call.args
    query, key = array_of(a["query"]), array_of(a["key"])
    rank = key.ndim
    key_t = g.add("Transpose", [g.value(a["key"])], "key_t",
                  perm=list(range(rank - 2)) + [rank - 1, rank - 2])
    weights = _attention_weights(g, call, g.value(a["query"]), key_t, query.dtype,
                                 query.shape[-1], (query.shape[-2], key.shape[-2]),
                                 a["attn_mask"])
    return g.add("MatMul", [weights, g.value(a["value"])], "attention_out")


def _attention_weights(g: _Graph, call: Call, query: str, key_t: str, dtype: Any, head: int,
                       scores_shape: tuple[int, int], mask: Any) -> str:
    """softmax(scale q k^T + mask), dropped out where the forward drew a mask: the attention
    ops' shared middle (``call`` gives the scale, is_causal and the dropout)."""
    a = call.args
    scale = a["scale"] if a["scale"] is not None else (1 / math.sqrt(head) if head else 1.0)
    scores = g.add("Mul", [g.add("MatMul", [query, key_t], "scores"),
                           g.constant(np.asarray(scale, dtype), "scale")], "scaled")
    if a["is_causal"]:
        causal = np.triu(np.full(scores_shape, -np.inf, dtype), 1)
        scores = g.add("Add", [scores, g.constant(causal, "causal_mask")], "masked")
    elif mask is not None and array_of(mask).dtype == np.bool_:
        scores = g.add("Where", [g.value(mask), scores,
                                 g.constant(np.asarray(-np.inf, dtype), "masked_out")], "masked")
    elif mask is not None:
        scores = g.add("Add", [scores, g.value(mask)], "masked")
    weights = g.add("Softmax", [scores], "attention", axis=-1)
    if mask is not None:  # a query whose keys are all masked gets 0s, as in chainrule
        top = g.add("ReduceMax", [scores, g.ints([-1], "axes")], "top", keepdims=1)
        dead = g.add("Equal", [top, g.constant(np.asarray(-np.inf, dtype), "masked_out")],
                     "dead")
        weights = g.add("Where", [dead, g.constant(np.zeros((), dtype), "zero"), weights],
                        "attention")
    if a["dropout_mask"] is not None:  # the forward drew a mask: the file draws its own
        weights = _dropout_node(g, call, weights, a["dropout_scale"], dtype)
    return weights


# ------------------------------------------------------------------ recurrent layers
@maps("rnn_cell", "rnn_sequence", "gru_cell", "gru_sequence", "lstm_cell", "lstm_sequence")
def _recurrent(g: _Graph, call: Call) -> str:
    """The steps unrolled (the sequence's length is the example's), in PyTorch's equations
    and gate order, so that every step's h (and an LSTM's c) is there as chainrule gives it."""
    a = call.args
    kind, _, form = call.fn.name.partition("_")
    x = a["input"]
    hidden = array_of(a["w_hh"]).shape[1]
    sequence = form == "sequence"
    steps = x._data.shape[0] if sequence else 1
    if sequence and steps == g.batch and g.batch > 1:
        raise ExportError(
            f"{call.fn.name}{_in_layer(call)}: its {steps} steps look like the input's first "
            "axis, which the file leaves free, but the steps are unrolled over the example's "
            "length. Export a batch_first layer (or give an example whose batch size differs "
            "from its sequence length, if that is what this is)")
    batch_axis = 1 if sequence else 0
    xs = g.value(x) if sequence else g.add("Unsqueeze", [g.value(x), g.ints([0], "axis")])
    # every step's input projection in one product: (T, B, gates * H)
    inputs = g.add("MatMul", [xs, g.add("Transpose", [g.value(a["w_ih"])], "w_ih_t")], "x_proj")
    if a["b_ih"] is not None:
        inputs = g.add("Add", [inputs, g.value(a["b_ih"])], "x_proj")
    w_hh_t = g.add("Transpose", [g.value(a["w_hh"])], "w_hh_t")
    h = _initial_state(g, a["hx"], x, batch_axis, hidden)
    c = _initial_state(g, a["cx"], x, batch_axis, hidden) if kind == "lstm" else None
    hs: dict[int, str] = {}
    cs: dict[int, str] = {}
    order = range(steps - 1, -1, -1) if a.get("reverse") else range(steps)
    for t in order:
        x_t = g.add("Gather", [inputs, g.ints(t, "step")], f"x_{t}", axis=0)
        h_t = g.add("MatMul", [h, w_hh_t], f"h_proj_{t}")
        if a["b_hh"] is not None:
            h_t = g.add("Add", [h_t, g.value(a["b_hh"])], f"h_proj_{t}")
        if kind == "rnn":
            act = "Tanh" if a["nonlinearity"] == "tanh" else "Relu"
            h = g.add(act, [g.add("Add", [x_t, h_t], f"pre_{t}")], f"h_{t}")
        elif kind == "gru":
            split = g.ints([hidden] * 3, "split")
            x_r, x_z, x_n = g.add("Split", [x_t, split], f"x_gates_{t}", 3, axis=-1)
            h_r, h_z, h_n = g.add("Split", [h_t, split], f"h_gates_{t}", 3, axis=-1)
            r = g.add("Sigmoid", [g.add("Add", [x_r, h_r])], f"r_{t}")
            z = g.add("Sigmoid", [g.add("Add", [x_z, h_z])], f"z_{t}")
            n = g.add("Tanh", [g.add("Add", [x_n, g.add("Mul", [r, h_n])])], f"n_{t}")
            h = g.add("Add", [n, g.add("Mul", [z, g.add("Sub", [h, n])])], f"h_{t}")
        else:
            gates = g.add("Split", [g.add("Add", [x_t, h_t], f"pre_{t}"),
                                    g.ints([hidden] * 4, "split")], f"gates_{t}", 4, axis=-1)
            i, f, cell, o = gates
            c = g.add("Add", [g.add("Mul", [g.add("Sigmoid", [f]), c]),
                              g.add("Mul", [g.add("Sigmoid", [i]), g.add("Tanh", [cell])])],
                      f"c_{t}")
            h = g.add("Mul", [g.add("Sigmoid", [o]), g.add("Tanh", [c])], f"h_{t}")
            cs[t] = c
        hs[t] = h
    if not sequence:
        return h if kind != "lstm" else _stacked(g, [h, c], "state")
    out = _stacked(g, [hs[t] for t in range(steps)], "steps")
    if kind != "lstm":
        return out
    return _stacked(g, [out, _stacked(g, [cs[t] for t in range(steps)], "cells")], "states")


def _stacked(g: _Graph, names: list[str], hint: str) -> str:
    axis = g.ints([0], "axis")
    return g.add("Concat", [g.add("Unsqueeze", [n, axis]) for n in names], hint, axis=0)


def _initial_state(g: _Graph, state: Any, x: Tensor, batch_axis: int, hidden: int) -> str:
    """A recurrent layer's starting h (or c). The zeros a layer makes when none is given are
    made for the batch at hand, so the batch axis stays free."""
    if state is None or (not g.known(state) and not array_of(state).any()):
        dtype = x._data.dtype
        batch = g.add("Shape", [g.value(x)], "batch", start=batch_axis, end=batch_axis + 1)
        shape = g.add("Concat", [batch, g.ints([hidden], "hidden")], "state_shape", axis=0)
        return g.add("ConstantOfShape", [shape], "zeros",
                     value=g.onnx.numpy_helper.from_array(np.zeros(1, dtype)))
    return g.value(state)


# ------------------------------------------------------------------ the export
def _in_layer(call: Call) -> str:
    return f" (in layer {call.layer!r})" if call.layer else ""


def build(model: Module, example: Any, training: bool = False,
          metadata: Mapping[str, Any] | None = None, name: str | None = None,
          opset: int = OPSET) -> tuple[Any, Any]:
    """The ONNX ModelProto of ``model`` traced on ``example``, and chainrule's output on it.

    ``training`` traces the training-mode forward (BatchNorm on the batch's statistics,
    Dropout drawing masks); the model's mode is put back afterwards. ``opset`` is any from
    OPSET to the newest the installed onnx package knows (the nodes written are the same).
    """
    onnx = _onnx()
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not (
            OPSET <= opset <= newest):
        raise ExportError(f"to_onnx: opset must be a whole number from {OPSET} (the first "
                          f"with Gelu) to {newest} (the newest this onnx package knows), "
                          f"got {opset!r}")
    if not isinstance(model, Module):
        raise TypeError(f"to_onnx: expected a chainrule Module, got {type(model).__name__}")
    example = example if isinstance(example, Tensor) else Tensor(np.asarray(example))
    if example._data.ndim == 0:
        raise ExportError("to_onnx: the example input needs a batch axis (its first)")
    recorded, output = trace(model, example, training=training)
    if not isinstance(output, Tensor):
        raise ExportError(f"to_onnx: the model returned a {type(output).__name__}; export "
                          "needs a model whose forward returns one tensor")
    graph = _Graph(onnx, {id(example): "input"})
    graph.arrays[id(example._data)] = "input"
    graph.batch = example._data.shape[0]
    for key, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        graph.state.setdefault(id(tensor), (key, tensor))
        graph.state_arrays.setdefault(id(tensor._data), (key, tensor))
        graph.taken.add(key)
    for call in recorded.calls:
        mapping = MAPPINGS.get(call.fn.name)
        if mapping is None:
            raise ExportError(
                f"to_onnx: op {call.fn.name!r}{_in_layer(call)} has no ONNX mapping; the ops "
                f"that export are: {', '.join(supported_ops())}")
        graph.layer = call.layer
        name = graph.names[id(call.output)] = mapping(graph, call)
        graph.arrays[id(call.output._data)] = name  # for a model that unwraps it (.data)
        graph.keep.append(call.output)
    result = graph.names.get(id(output))
    if result == "input":  # a forward that hands its input back (Identity, eval Dropout)
        result = graph.add("Identity", ["input"], "output")
    if result is None:
        raise ExportError("to_onnx: the model's output is not computed by any op from its "
                          "input, so there is nothing to export")
    if not any("input" in node.input for node in graph.nodes):
        raise ExportError("to_onnx: no op of the traced forward reads the input tensor (or its "
                          "array), so the file would hold this example's answer as a "
                          "constant; export a model whose forward passes its input to ops")
    for node in graph.nodes:  # the last value is called "output"
        node.output[:] = ["output" if o == result else o for o in node.output]
        node.input[:] = ["output" if i == result else i for i in node.input]
    batch = ["batch"] + list(example._data.shape[1:])
    out_shape = list(output._data.shape)
    if out_shape and out_shape[0] == example._data.shape[0]:  # it carries the batch axis
        out_shape[0] = "batch"
    proto = onnx.helper.make_model(
        onnx.helper.make_graph(
            graph.nodes, name or type(model).__name__,
            [onnx.helper.make_tensor_value_info("input", _elem(onnx, example), batch)],
            [onnx.helper.make_tensor_value_info("output", _elem(onnx, output), out_shape)],
            graph.initializers),
        opset_imports=[onnx.helper.make_opsetid("", int(opset))],
        producer_name="chainrule", producer_version=_version())
    meta = {"chainrule.training_mode": json.dumps(bool(training))}
    for key, value in (metadata or {}).items():
        meta[str(key)] = value if isinstance(value, str) else json.dumps(value)
    onnx.helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto, full_check=True)  # types and shapes inferred too
    return proto, output


def _elem(onnx: Any, tensor: Tensor) -> int:
    return onnx.helper.np_dtype_to_tensor_dtype(tensor._data.dtype)


def _version() -> str:
    from chainrule import __version__
    return __version__


def check_in_onnxruntime(proto: Any, model: Module, example: Any, training: bool = False,
                         tolerance: float = 1e-4) -> float:
    """Run ``proto`` in onnxruntime on ``example``, on it with one more row, and on a batch
    of new values (drawn like the example's), and compare with ``model``'s outputs; return
    the largest difference relative to the output's largest magnitude, or raise ExportError
    above ``tolerance``. NaN and infinities must sit where chainrule's do."""
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                               providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own errors have no common base class
        raise ExportError(f"to_onnx: onnxruntime cannot load the exported graph "
                          f"({type(error).__name__}: {str(error)[:300]}): this is a bug of "
                          "chainrule's exporter; please report it with the model") from None
    data = example._data if isinstance(example, Tensor) else np.asarray(example)
    worst = 0.0
    for batch in (data, np.concatenate([data, data[:1]]), _fresh(data)):
        _, ours = trace(model, Tensor(batch), training=training)
        try:
            theirs = session.run(None, {"input": batch})[0]
        except Exception as error:  # onnxruntime's own errors have no common base class
            raise ExportError(
                f"to_onnx: onnxruntime cannot run the file on a batch of {len(batch)} "
                f"({type(error).__name__}: {str(error)[:300]}). Most often the forward "
                "computed something from its input outside chainrule's ops (NumPy on "
                ".data, say), which the file holds as this example's constant") from None
        expected = ours._data
        if theirs.shape != expected.shape:
            raise ExportError(f"to_onnx: the file gives shape {theirs.shape} for a batch of "
                              f"{len(batch)}, chainrule {expected.shape}")
        finite = np.isfinite(expected)
        if not np.array_equal(np.isfinite(theirs), finite) or not np.array_equal(
                theirs[~finite].astype(np.float64), expected[~finite].astype(np.float64),
                equal_nan=True):
            worst = math.inf
        else:
            scale = max(float(np.abs(expected[finite]).max(initial=0.0)), 1e-30)
            worst = max(worst, float(np.abs(theirs[finite].astype(np.float64) -
                                            expected[finite]).max(initial=0.0)) / scale)
        if not worst <= tolerance:
            raise ExportError(f"to_onnx: onnxruntime's output differs from chainrule's by "
                              f"{worst:.3g} of its largest value on a batch of {len(batch)} "
                              f"(tolerance {tolerance:g}); the export of one of its ops is "
                              "wrong: please report it")
    return worst


def _fresh(data: np.ndarray) -> np.ndarray:
    """A batch one larger than ``data`` of new values like its own: floats drawn with its
    mean and spread, integers and bools from the values it holds."""
    rng = np.random.default_rng(0)
    shape = (len(data) + 1,) + data.shape[1:]
    if data.dtype.kind == "f" and data.size:
        finite = data[np.isfinite(data)]
        mean, std = (float(finite.mean()), float(finite.std()) or 1.0) if finite.size else (
            0.0, 1.0)
        return (rng.standard_normal(shape) * std + mean).astype(data.dtype)
    return rng.choice(data.ravel(), size=shape) if data.size else np.zeros(shape, data.dtype)


def to_onnx(model: Module, example: Any, path: str | Path, *, training: bool = False,
            metadata: Mapping[str, Any] | None = None, overwrite: bool = False,
            check: bool | None = None, opset: int = OPSET) -> Path:
    """Write ``model``, traced on ``example`` (a batch), as an ONNX file at ``path``.

    The batch axis is free in the file; other sizes are the example's. ``metadata`` goes
    into the file's metadata_props (strings as they are, other values as JSON). ``check``
    runs the file in onnxruntime against chainrule first (by default where onnxruntime is
    installed and the forward draws no random masks) and notes the result in the metadata
    (``chainrule.onnxruntime_check``). An existing file is refused unless
    ``overwrite``; the file appears whole or not at all. ``opset``: as for ``build``.
    """
    from chainrule import io

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    proto, _ = build(model, example, training=training, metadata=metadata, opset=opset)
    random = any(node.op_type == "Dropout" for node in proto.graph.node)
    if check is None:
        check = not random and importlib.util.find_spec("onnxruntime") is not None
        if not random and not check:
            warnings.warn("to_onnx: onnxruntime is not installed, so the file was not run "
                          "against chainrule before it was written (pip install onnxruntime)",
                          stacklevel=2)
    if check:
        if random:
            raise ExportError("to_onnx: check=True cannot compare a forward that draws dropout "
                              "masks (training=True with dropout); pass check=False")
        worst = check_in_onnxruntime(proto, model, example, training)
        entry = proto.metadata_props.add()
        # the largest |onnxruntime - chainrule| over the largest |output|, on the example
        # and on a batch one larger
        entry.key, entry.value = "chainrule.onnxruntime_check", f"{worst:.3g}"
    data = proto.SerializeToString()
    io.atomic_write(path, lambda file: file.write(data))
    return path
