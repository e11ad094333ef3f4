"""Bad arguments to layer constructors and axis-taking ops fail at once, naming the owner, the
argument and what is expected; good ones (NumPy ints, tuples, dtype names) still work, and
where PyTorch accepts an axis the values and gradients match PyTorch's."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import nn, validate
from chainrule.nn import functional as F
from chainrule.ops.conv import pair

NAN, INF = math.nan, math.inf

# ----------------------------------------------------------------------------- argument kinds
# For each kind of argument: values that must be refused (with the error type) and values that
# must still build. Floats are refused for ints even when whole (3.0), bools everywhere.
COUNT_BAD = [(3.5, TypeError), (3.0, TypeError), (True, TypeError), ("3", TypeError),
             (None, TypeError), (NAN, TypeError), (INF, TypeError), (0, ValueError),
             (-2, ValueError), (np.float64(2.0), TypeError)]
PAIR_BAD = COUNT_BAD + [((3, 3, 3), ValueError), ((3,), ValueError), ((3, 2.5), TypeError),
                        ((3, 0), ValueError), ((True, 2), TypeError), ({3: 3}, TypeError)]
PAIR0_BAD = [(1.5, TypeError), (True, TypeError), ("1", TypeError), (None, TypeError),
             (-1, ValueError), ((1, -1), ValueError), ((1,), ValueError),
             ((0, 0.5), TypeError)]
AXIS_ARG_BAD = [(1.5, TypeError), (True, TypeError), ("1", TypeError), (None, TypeError)]
PROB_BAD = [(-0.1, ValueError), (1.5, ValueError), (NAN, ValueError), (INF, ValueError),
            (True, TypeError), ("0.5", TypeError), (None, TypeError), ([0.5], TypeError)]
MOMENTUM_BAD = [b for b in PROB_BAD if b[0] is not None]
EPS_BAD = [(0, ValueError), (0.0, ValueError), (-1e-5, ValueError), (NAN, ValueError),
           (INF, ValueError), (True, TypeError), ("1e-5", TypeError), (None, TypeError)]
REAL_BAD = [(NAN, ValueError), (INF, ValueError), (-INF, ValueError), (True, TypeError),
            ("0.1", TypeError), (None, TypeError), (1j, TypeError)]
BOOL_BAD = [(1, TypeError), (0, TypeError), ("False", TypeError), (None, TypeError),
            (1.0, TypeError), (np.int64(1), TypeError)]
DTYPE_BAD = [("int32", TypeError), (np.int64, TypeError), (np.float16, TypeError),
             ("foo", TypeError), (3, TypeError), (bool, TypeError), ("complex64", TypeError)]
GENERATOR_BAD = [(0, TypeError), ("seed", TypeError), (np.random.RandomState(0), TypeError),
                 (True, TypeError)]
REDUCTION_BAD = [("avg", ValueError), ("MEAN", ValueError), ("", ValueError),
                 (None, TypeError), (1, TypeError), (True, TypeError)]
SHAPE_BAD = [(3.5, TypeError), (0, ValueError), ((3, 0), ValueError), ((), ValueError),
             ((3, True), TypeError), ("3", TypeError), (None, TypeError), ((3, 2.0), TypeError)]

COUNT_GOOD = [1, 3, np.int64(2), np.int32(4)]
PAIR_GOOD = [1, np.int64(2), (2, 3), [2, 2], (np.int64(1), 2), np.array([2, 1])]
PAIR0_GOOD = [0, 1, (0, 1), [1, 0], np.int64(1)]
PROB_GOOD = [0, 1, 0.5, np.float32(0.25), np.float64(0.5)]
EPS_GOOD = [1e-5, 1, np.float32(1e-3)]
REAL_GOOD = [0, -0.2, 0.3, np.float64(0.1), 2]
BOOL_GOOD = [True, False, np.bool_(True)]
DTYPE_GOOD = [None, "float32", "float64", np.float32, np.float64, np.dtype("float32")]
GENERATOR_GOOD = [None, np.random.default_rng(0)]
AXIS_ARG_GOOD = [0, 1, -1, np.int64(1)]


class Spec:
    """A layer, the arguments it is built with, and for each argument its bad and good values."""

    def __init__(self, layer: Callable, base: dict[str, Any],
                 args: dict[str, tuple[list, list]]) -> None:
        self.layer, self.base, self.args = layer, base, args

    @property
    def name(self) -> str:
        return self.layer.__name__


def _bn(layer: Callable) -> Spec:
    return Spec(layer, {"num_features": 3}, {
        "num_features": (COUNT_BAD, COUNT_GOOD), "eps": (EPS_BAD, EPS_GOOD),
        "momentum": (MOMENTUM_BAD, PROB_GOOD + [None]),
        "affine": (BOOL_BAD, BOOL_GOOD), "track_running_stats": (BOOL_BAD, BOOL_GOOD),
        "dtype": (DTYPE_BAD, DTYPE_GOOD)})


def _pool(layer: Callable) -> Spec:
    return Spec(layer, {"kernel_size": 2}, {
        "kernel_size": (PAIR_BAD, PAIR_GOOD), "stride": (PAIR_BAD[:4] + PAIR_BAD[5:],
                                                         PAIR_GOOD + [None]),
        "padding": (PAIR0_BAD + [(2, ValueError)], PAIR0_GOOD)})  # padding <= kernel / 2


def _loss(layer: Callable, reductions: tuple[str, ...]) -> Spec:
    bad = REDUCTION_BAD + ([("none", ValueError)] if "none" not in reductions else [])
    return Spec(layer, {}, {"reduction": (bad, list(reductions))})


SPECS = [
    Spec(nn.Linear, {"in_features": 3, "out_features": 2}, {
        "in_features": (COUNT_BAD, COUNT_GOOD), "out_features": (COUNT_BAD, COUNT_GOOD),
        "bias": (BOOL_BAD, BOOL_GOOD), "dtype": (DTYPE_BAD, DTYPE_GOOD),
        "generator": (GENERATOR_BAD, GENERATOR_GOOD)}),
    Spec(nn.Conv2d, {"in_channels": 2, "out_channels": 4, "kernel_size": 3}, {
        "in_channels": (COUNT_BAD, COUNT_GOOD), "out_channels": (COUNT_BAD, COUNT_GOOD),
        "kernel_size": (PAIR_BAD, PAIR_GOOD), "stride": (PAIR_BAD, PAIR_GOOD),
        "padding": (PAIR0_BAD, PAIR0_GOOD), "dilation": (PAIR_BAD, PAIR_GOOD),
        "groups": (COUNT_BAD + [(3, ValueError)], [1, 2, np.int64(2)]),
        "bias": (BOOL_BAD, BOOL_GOOD), "dtype": (DTYPE_BAD, DTYPE_GOOD),
        "generator": (GENERATOR_BAD, GENERATOR_GOOD)}),
    _pool(nn.MaxPool2d),
    _pool(nn.AvgPool2d),
    Spec(nn.Flatten, {}, {"start_axis": (AXIS_ARG_BAD, AXIS_ARG_GOOD[:2]),
                          "end_axis": (AXIS_ARG_BAD, [-1, 1, np.int64(2)])}),
    _bn(nn.BatchNorm1d),
    _bn(nn.BatchNorm2d),
    Spec(nn.LayerNorm, {"normalized_shape": 3}, {
        "normalized_shape": (SHAPE_BAD, [3, np.int64(3), (2, 3), [4], np.array([2, 3])]),
        "eps": (EPS_BAD, EPS_GOOD), "elementwise_affine": (BOOL_BAD, BOOL_GOOD),
        "bias": (BOOL_BAD, BOOL_GOOD), "dtype": (DTYPE_BAD, DTYPE_GOOD)}),
    Spec(nn.Dropout, {}, {"p": (PROB_BAD, PROB_GOOD),
                          "generator": (GENERATOR_BAD, GENERATOR_GOOD)}),
    Spec(nn.LeakyReLU, {}, {"negative_slope": (REAL_BAD, REAL_GOOD)}),
    Spec(nn.GELU, {}, {"approximate": ([("fast", ValueError), ("erf", ValueError),
                                        (None, TypeError), (True, TypeError)],
                                       ["none", "tanh"])}),
    Spec(nn.ResidualBlock, {"in_channels": 2, "out_channels": 2}, {
        "in_channels": (COUNT_BAD, COUNT_GOOD), "out_channels": (COUNT_BAD, COUNT_GOOD),
        "stride": (COUNT_BAD, [1, 2, np.int64(2)]), "dtype": (DTYPE_BAD, DTYPE_GOOD),
        "generator": (GENERATOR_BAD, GENERATOR_GOOD)}),
    _loss(nn.MSELoss, ("mean", "sum", "none")),
    _loss(nn.CrossEntropyLoss, ("mean", "sum", "none")),
    _loss(nn.NLLLoss, ("mean", "sum", "none")),
    _loss(nn.BCEWithLogitsLoss, ("mean", "sum", "none")),
]

BAD_CASES = [pytest.param(spec, arg, value, error, id=f"{spec.name}-{arg}={value!r}")
             for spec in SPECS for arg, (bad, _) in spec.args.items() for value, error in bad]
GOOD_CASES = [pytest.param(spec, arg, value, id=f"{spec.name}-{arg}={value!r}")
              for spec in SPECS for arg, (_, good) in spec.args.items() for value in good]


@pytest.mark.parametrize("spec, arg, value, error", BAD_CASES)
def test_a_bad_constructor_argument_names_the_layer_and_the_argument(
        spec: Spec, arg: str, value: Any, error: type) -> None:
    with pytest.raises(error) as info:
        spec.layer(**{**spec.base, arg: value})
    message = str(info.value)
    assert message.startswith(f"{spec.name}: {arg}"), message
    assert "must" in message, message


@pytest.mark.parametrize("spec, arg, value", GOOD_CASES)
def test_a_good_constructor_argument_still_builds(spec: Spec, arg: str, value: Any) -> None:
    layer = spec.layer(**{**spec.base, arg: value})
    assert isinstance(layer, nn.Module)
    for param in layer.parameters():
        assert param.dtype in (np.float32, np.float64)
    if arg == "dtype" and value is not None:
        assert all(p.dtype == np.dtype(value) for p in layer.parameters())
    stored = getattr(layer, arg, None)
    if arg in ("in_features", "out_features", "in_channels", "out_channels", "num_features"):
        assert type(stored) is int and stored == value  # NumPy ints come out as Python ints


def test_the_campaign_examples_and_their_messages() -> None:
    with pytest.raises(TypeError, match=r"^Linear: in_features must be an int, got 3\.5 "
                                        r"\(float\)$"):
        nn.Linear(3.5, 2)
    with pytest.raises(ValueError, match=r"^MSELoss: reduction must be 'mean', 'sum' or 'none', "
                                         r"got 'avg'$"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match=r"BatchNorm1d: momentum must be in \[0, 1\] or None, "
                                         r"got nan"):
        nn.BatchNorm1d(3, momentum=NAN)
    with pytest.raises(TypeError, match="Linear: dtype must be float32 or float64, got int32"):
        nn.Linear(3, 2, dtype="int32")
    with pytest.raises(ValueError, match=r"Conv2d: groups=3 must divide in_channels=2"):
        nn.Conv2d(2, 4, 3, groups=3)
    with pytest.raises(ValueError, match="Flatten: start_axis 2 comes after end_axis 1"):
        nn.Flatten(2, 1)


def test_layers_keep_their_checked_settings_and_work() -> None:
    conv = nn.Conv2d(np.int64(1), 2, [3, 3], stride=np.int64(1), padding=(1, 1))
    assert conv.kernel_size == (3, 3) and conv.padding == (1, 1)
    assert conv(cr.ones(1, 1, 4, 4)).shape == (1, 2, 4, 4)
    pool = nn.MaxPool2d(np.int64(2), stride=None)
    assert pool(cr.ones(1, 1, 4, 4)).shape == (1, 1, 2, 2)
    norm = nn.BatchNorm1d(np.int64(3), eps=np.float32(1e-3), momentum=None)
    assert norm.eps == pytest.approx(1e-3) and norm.momentum is None
    assert norm(cr.randn(4, 3)).shape == (4, 3)
    assert nn.LayerNorm([2, np.int64(3)]).normalized_shape == (2, 3)
    assert nn.Dropout(np.float32(0.25)).p == 0.25
    assert nn.LeakyReLU(np.float64(0.2))(cr.tensor([-1.0])).data[0] == pytest.approx(-0.2)


@pytest.mark.parametrize("item, hint", [
    (3, "item 1 is an int, not a Module"),
    (nn.ReLU, "item 1 is a type, not a Module; build it first: ReLU(...)"),
    ([nn.ReLU()], "item 1 is a list, not a Module; pass the layers one by one"),
    (None, "item 1 is a NoneType, not a Module"),
    (torch.nn.ReLU(), "item 1 is a ReLU, not a Module"),
])
def test_sequential_refuses_what_is_not_a_layer(item: Any, hint: str) -> None:
    with pytest.raises(TypeError, match=f"^Sequential: {hint}".replace("(", r"\(")
                       .replace(")", r"\)")):
        nn.Sequential(nn.ReLU(), item)
    with pytest.raises(TypeError, match="Sequential.append: the layer is"):
        nn.Sequential(nn.ReLU()).append(item)


# ----------------------------------------------------------------------------- the helpers
def test_the_shared_checks_return_canonical_values() -> None:
    assert type(validate.integer("X", "n", np.int64(3), low=1)) is int
    assert validate.integer("X", "n", None, optional=True) is None
    assert validate.real("X", "p", np.float32(0.5), 0, 1) == 0.5
    assert validate.real("X", "lr", INF, low=0, finite=False) == INF
    assert validate.boolean("X", "flag", np.bool_(False)) is False
    assert validate.choice("X", "mode", np.str_("sum"), ("mean", "sum")) == "sum"
    assert validate.float_dtype("X", "dtype", None) == cr.get_default_dtype()
    with pytest.raises(ValueError, match=r"^X: p must be in \[0, 1\), got 1$"):
        validate.real("X", "p", 1, 0, 1, high_open=True)
    with pytest.raises(ValueError, match=r"^X: eps must be > 0, got 0$"):
        validate.real("X", "eps", 0, low=0, low_open=True)
    with pytest.raises(ValueError, match=r"^X: slope must be finite, got nan$"):
        validate.real("X", "slope", NAN)
    with pytest.raises(TypeError, match=r"^X: n must be an int or None, got 2\.0 \(float\)$"):
        validate.integer("X", "n", 2.0, optional=True)
    with pytest.raises(ValueError, match=r"^X: n must be in \[1, 4\], got 5$"):
        validate.integer("X", "n", 5, 1, 4)
    with pytest.raises(ValueError, match=r"^X: mode must be 'a', 'b' or 'c', got 'd'$"):
        validate.choice("X", "mode", "d", ("a", "b", "c"))
    with pytest.raises(ValueError):  # True is not the choice 1
        validate.choice("X", "mode", True, (1, 2))


def test_an_axis_error_is_a_value_error_and_an_index_error() -> None:
    with pytest.raises(validate.AxisError) as info:
        validate.axis("stack", "axis", 77, 3, result=True)
    assert isinstance(info.value, ValueError) and isinstance(info.value, IndexError)
    assert str(info.value) == ("stack: axis 77 is out of range for the result's 3 dims "
                               "(valid: -3 to 2)")
    assert validate.axes("sum", "axis", (-1, 0), 3, empty=False) == (0, 2)
    assert validate.axes("sum", "axis", -1, 0, empty=False) == ()  # 0-d: no axis NumPy has
    assert validate.axes("squeeze", "axis", (), 3) == ()


def test_pair_accepts_ints_and_pairs_and_explains_the_rest() -> None:
    assert pair(np.int64(2), "stride", "conv2d", 1) == (2, 2)
    assert pair([1, 2], "stride", "conv2d", 1) == (1, 2)
    with pytest.raises(TypeError, match=r"^conv2d: stride must be an int or a pair of ints, "
                                        r"got 1\.5 \(float\)$"):
        pair(1.5, "stride", "conv2d", 1)
    with pytest.raises(ValueError, match=r"^conv2d: padding must be >= 0, got \(1, -1\)$"):
        pair((1, -1), "padding", "conv2d", 0)


@pytest.mark.parametrize("call, error, text", [
    (lambda x: F.conv2d(x, cr.ones(2, 1, 3, 3), stride=1.5), TypeError, "conv2d: stride"),
    (lambda x: F.conv2d(x, cr.ones(2, 1, 3, 3), groups=1.5), TypeError, "conv2d: groups"),
    (lambda x: F.conv2d(x, cr.ones(2, 1, 3, 3), padding=-1), ValueError, "conv2d: padding"),
    (lambda x: F.max_pool2d(x, 2.5), TypeError, "max_pool2d: kernel_size"),
    (lambda x: F.avg_pool2d(x, 2, stride=True), TypeError, "avg_pool2d: stride"),
    (lambda x: F.max_pool2d(x, 2, padding=2), ValueError, "max_pool2d: padding"),
])
def test_functional_conv_and_pool_arguments_are_checked(call: Callable, error: type,
                                                        text: str) -> None:
    with pytest.raises(error, match=text):
        call(cr.ones(1, 1, 6, 6))


# ----------------------------------------------------------------------------- axis-taking ops
SHAPES = {0: (), 1: (3,), 3: (2, 1, 3)}


def _array(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    # Distinct values: max/min have one winner, std is not zero where torch's slope differs.
    n = math.prod(shape)
    return (np.random.default_rng(seed).permutation(n) * 0.7 - 0.3 * n).reshape(shape) + 0.1


AXIS_OPS: dict[str, tuple[Callable, Callable, int]] = {
    # name: (chainrule call, torch call, how many dims the axis's range has beyond the input's)
    "sum": (lambda x, y, a: cr.sum(x, a), lambda x, y, a: torch.sum(x, a), 0),
    "mean": (lambda x, y, a: cr.mean(x, a), lambda x, y, a: torch.mean(x, a), 0),
    "max": (lambda x, y, a: cr.max(x, a), lambda x, y, a: torch.amax(x, a), 0),
    "min": (lambda x, y, a: cr.min(x, a, keepdims=True),
            lambda x, y, a: torch.amin(x, a, keepdim=True), 0),
    "var": (lambda x, y, a: cr.var(x, a, correction=0),
            lambda x, y, a: torch.var(x, a, correction=0), 0),
    "std": (lambda x, y, a: cr.std(x, a, correction=0),
            lambda x, y, a: torch.std(x, a, correction=0), 0),
    "logsumexp": (lambda x, y, a: cr.logsumexp(x, a), lambda x, y, a: torch.logsumexp(x, a),
                  0),
    "squeeze": (lambda x, y, a: cr.squeeze(x, a), lambda x, y, a: x.squeeze(a), 0),
    "unsqueeze": (lambda x, y, a: cr.unsqueeze(x, a), lambda x, y, a: x.unsqueeze(a), 1),
    "transpose": (lambda x, y, a: cr.transpose(x, a, 0), lambda x, y, a: x.transpose(a, 0), 0),
    "flatten": (lambda x, y, a: cr.flatten(x, a, -1), lambda x, y, a: x.flatten(a, -1), 0),
    "flatten_end": (lambda x, y, a: cr.flatten(x, 0, a), lambda x, y, a: x.flatten(0, a), 0),
    "concatenate": (lambda x, y, a: cr.concatenate([x, y], a),
                    lambda x, y, a: torch.cat([x, y], a), 0),
    "stack": (lambda x, y, a: cr.stack([x, y], a), lambda x, y, a: torch.stack([x, y], a), 1),
}
OP_NAME = {"flatten_end": "flatten"}


def _run_ours(call: Callable, shape: tuple[int, ...], axis: Any) -> tuple:
    x = cr.tensor(_array(shape), dtype="float64", requires_grad=True)
    y = cr.tensor(_array(shape, 1), dtype="float64", requires_grad=True)
    out = call(x, y, axis)
    weights = _array(out.shape, 2)
    (out * cr.tensor(weights, dtype="float64")).sum().backward()
    return out.data, x.grad, y.grad


def _run_torch(call: Callable, shape: tuple[int, ...], axis: Any) -> tuple:
    x = torch.tensor(_array(shape), dtype=torch.float64, requires_grad=True)
    y = torch.tensor(_array(shape, 1), dtype=torch.float64, requires_grad=True)
    out = call(x, y, axis)
    (out * torch.tensor(_array(tuple(out.shape), 2))).sum().backward()
    grad = [None if t.grad is None else t.grad.numpy() for t in (x, y)]
    return out.detach().numpy(), grad[0], grad[1]


@pytest.mark.parametrize("rank", sorted(SHAPES))
@pytest.mark.parametrize("name", sorted(AXIS_OPS))
def test_every_axis_matches_torch_or_both_refuse(name: str, rank: int) -> None:
    ours, theirs, extra = AXIS_OPS[name]
    shape = SHAPES[rank]
    span = max(rank + extra, 1)
    for axis in [*range(-span - 2, span + 2), 77, -77, np.int64(-1)]:
        try:
            expected = _run_torch(theirs, shape, int(axis))
        except (IndexError, RuntimeError) as error:
            with pytest.raises((ValueError, IndexError)) as info:
                _run_ours(ours, shape, axis)
            message = str(info.value)
            assert message.startswith(OP_NAME.get(name, name) + ":"), message
            if "out of range" in str(error):  # the same axis refused for the same reason
                assert isinstance(info.value, validate.AxisError), message
                assert f"{axis} is out of range" in message, message
                assert f"(valid: {-span} to {span - 1})" in message, message
            continue
        got = _run_ours(ours, shape, axis)
        for quantity, mine, want in zip(("value", "x grad", "y grad"), got, expected):
            if name not in ("concatenate", "stack") and quantity == "y grad":
                continue
            np.testing.assert_allclose(mine, want, rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name} axis {axis} on {shape}: {quantity}")


@pytest.mark.parametrize("rank", sorted(SHAPES))
@pytest.mark.parametrize("name", sorted(AXIS_OPS))
@pytest.mark.parametrize("axis", [1.5, "0", True, b"0", [0.5], cr.tensor(0), 1j])
def test_a_non_integer_axis_is_a_type_error_naming_the_op(name: str, rank: int,
                                                         axis: Any) -> None:
    ours = AXIS_OPS[name][0]
    if rank == 0 and name == "concatenate":
        pytest.skip("0-d tensors cannot be concatenated at all (tested below)")
    if axis is True and name in ("var", "std"):
        pytest.skip("a bool in the dim's place is torch.var(x, unbiased): test_semantics.py")
    if isinstance(axis, list) and name not in ("sum", "mean", "max", "min", "var", "std",
                                               "logsumexp", "squeeze", "unsqueeze"):
        axis = 0.5  # the ops taking one axis see a float; the list case is theirs alone
    with pytest.raises(TypeError) as info:
        _run_ours(ours, SHAPES[rank], axis)
    message = str(info.value)
    assert message.startswith(OP_NAME.get(name, name) + ":") and "must be an int" in message


def test_none_is_no_axis_for_ops_that_need_one() -> None:
    x = cr.ones(2, 3)
    for call in (lambda: cr.unsqueeze(x, None), lambda: cr.stack([x, x], None),
                 lambda: cr.concatenate([x, x], None), lambda: cr.transpose(x, None, 0),
                 lambda: cr.flatten(x, None)):
        with pytest.raises(TypeError, match="must be an int"):
            call()


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "var", "std", "logsumexp"])
def test_reductions_take_axis_tuples_and_refuse_repeats_and_the_empty_tuple(name: str) -> None:
    x = _array((2, 3, 4))
    ours, theirs = getattr(cr, name), {"max": torch.amax, "min": torch.amin}.get(
        name, getattr(torch, name))
    got = ours(cr.tensor(x), [-1, 0]).data
    np.testing.assert_allclose(got, theirs(torch.tensor(x), (-1, 0)).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match=rf"^{name}: axis \(0, -3\) names axis 0 more than "
                                         r"once$"):
        ours(cr.tensor(x), (0, -3))
    with pytest.raises(RuntimeError):
        theirs(torch.tensor(x), (0, -3))
    # NumPy reads () as "no axis", PyTorch as "every axis": refused rather than guessed.
    with pytest.raises(ValueError, match=rf"^{name}: axis=\(\) names no axis.*axis=None"):
        ours(cr.tensor(x), ())
    assert ours(cr.tensor(2.0), ()).shape == ()  # on a 0-d tensor both agree
    with pytest.raises(TypeError, match=rf"^{name}: keepdims must be True or False, got 'no'"):
        ours(cr.tensor(x), 0, keepdims="no")


def test_squeeze_takes_the_empty_tuple_and_a_list_as_torch_does() -> None:
    x = _array((2, 1, 3, 1))
    assert cr.squeeze(cr.tensor(x), ()).shape == torch.tensor(x).squeeze(()).shape
    assert cr.squeeze(cr.tensor(x), [1, -1]).shape == torch.tensor(x).squeeze((1, -1)).shape
    assert cr.unsqueeze(cr.tensor(x), (0, -1)).shape == (1, 2, 1, 3, 1, 1)


@pytest.mark.parametrize("axes", [(0, 1, 2), (-1, 0, 1), (2, 0, -2), (0, 1), (0, 1, 5),
                                  (0, 0, 1), (0, 1, -4), (0, 1, 2, 3), ()])
def test_permute_matches_torch_or_both_refuse(axes: tuple) -> None:
    x = _array((2, 1, 3))
    try:
        want = torch.tensor(x).permute(axes).numpy()
    except (IndexError, RuntimeError):
        with pytest.raises(ValueError, match="^permute:"):
            cr.permute(cr.tensor(x), axes)
        return
    np.testing.assert_array_equal(cr.permute(cr.tensor(x), axes).data, want)


def test_permute_of_0d_and_1d_tensors_and_bad_axis_types() -> None:
    assert cr.permute(cr.tensor(2.0)).shape == ()
    assert cr.permute(cr.ones(3), -1).shape == (3,)
    with pytest.raises(ValueError, match="not a permutation of the 0 axes"):
        cr.permute(cr.tensor(2.0), 0)
    with pytest.raises(TypeError, match="^permute: axis must be an int, got 2.0"):
        cr.permute(cr.ones(2, 3, 4), 0, 1, 2.0)


def test_a_join_relabels_only_real_shape_mismatches() -> None:
    a, b = cr.ones(2, 3), cr.ones(2, 4)
    # The campaign's case: an out-of-range axis was reported as a shape mismatch.
    with pytest.raises(validate.AxisError, match=r"^stack: axis 77 is out of range for the "
                                                 r"result's 3 dims \(valid: -3 to 2\)$"):
        cr.stack([a, a], 77)
    with pytest.raises(ValueError, match=r"^stack: all shapes must match, got \(2, 3\), "
                                         r"\(2, 4\)$"):
        cr.stack([a, b])
    with pytest.raises(validate.AxisError, match="^concatenate: axis 2 is out of range"):
        cr.concatenate([a, b], 2)
    with pytest.raises(ValueError, match=r"^concatenate: shapes \(2, 3\), \(2, 4\) differ "
                                         r"outside axis 0$"):
        cr.concatenate([a, b], 0)
    with pytest.raises(ValueError, match="^concatenate: all tensors need the same number"):
        cr.concatenate([a, cr.ones(3)], 0)
    with pytest.raises(ValueError, match="^concatenate: cannot join 0-d tensors.*use stack"):
        cr.concatenate([cr.tensor(1.0), cr.tensor(2.0)])
    with pytest.raises(RuntimeError):
        torch.cat([torch.tensor(1.0), torch.tensor(2.0)])
    assert cr.concatenate([a, b], -1).shape == (2, 7)


@pytest.mark.parametrize("op", [cr.stack, cr.concatenate])
def test_a_join_wants_a_list_of_tensors(op: Callable) -> None:
    x = cr.ones(2, 3)
    name = op.__name__
    with pytest.raises(TypeError, match=rf"^{name}: tensors must be a list or tuple of tensors, "
                                        rf"got a Tensor; pass them as one list"):
        op(x, 0)
    with pytest.raises(TypeError, match=rf"^{name}: tensors must be a list"):
        op(x.data)
    with pytest.raises(ValueError, match=rf"^{name}: needs at least one tensor"):
        op([])
    assert op(t for t in (x, x)).shape[0] in (2, 4)  # any other iterable still works
    assert op([np.ones((2, 3)), x]).shape[0] in (2, 4)


@pytest.mark.parametrize("shape, target", [
    ((), (3,)), ((), ()), ((3,), (2, -1)), ((1, 3), (4, -1)), ((3,), (0, 3)),
    ((3,), (-1, 3)), ((3,), (2, -2)), ((3,), (4,)), ((2, 3), (3,)),
])
def test_expand_matches_torch_or_both_refuse(shape: tuple, target: tuple) -> None:
    x = _array(shape)
    try:
        want = torch.tensor(x).expand(target).numpy()
    except RuntimeError:
        with pytest.raises(ValueError, match="^expand:"):
            cr.expand(cr.tensor(x), target)
        return
    np.testing.assert_array_equal(cr.expand(cr.tensor(x), target).data, want)


@pytest.mark.parametrize("op", ["reshape", "expand"])
@pytest.mark.parametrize("target, error, text", [
    ((2.5, 3), TypeError, r"size 0 of shape \(2\.5, 3\) must be an int, got 2\.5 \(float\)"),
    ((True, 3), TypeError, r"size 0 of shape \(True, 3\) must be an int, got True \(bool\)"),
    ((3, "1"), TypeError, r"size 1 of shape \(3, '1'\) must be an int"),
    ((-2, 3), ValueError, r"size 0 of shape \(-2, 3\) must be >= -1, got -2"),
])
def test_shape_entries_are_ints_of_at_least_minus_one(op: str, target: tuple, error: type,
                                                     text: str) -> None:
    with pytest.raises(error, match=rf"^{op}: {text}"):
        getattr(cr, op)(cr.ones(1, 3), target)
    with pytest.raises((TypeError, RuntimeError)):
        getattr(torch.ones(1, 3), op)(target)


def test_reshape_and_expand_still_take_their_usual_forms() -> None:
    x = cr.ones(2, 3)
    assert x.reshape(3, 2).shape == x.reshape((3, 2)).shape == x.reshape([3, -1]).shape
    assert x.reshape(np.int64(6)).shape == (6,) and x.reshape(np.array([3, 2])).shape == (3, 2)
    assert x.reshape(torch.Size([6])).shape == (6,)
    with pytest.raises(ValueError, match="^reshape: only one dimension can be -1"):
        x.reshape(-1, -1)
    with pytest.raises(ValueError, match="^expand: -1 keeps an existing axis's size"):
        cr.ones(3).expand(-1, 3)


def test_layers_with_axes_report_them_at_the_first_batch() -> None:
    with pytest.raises(validate.AxisError, match="^flatten: start_axis 1 is out of range for "
                                                 "a tensor with 1 dim"):
        nn.Flatten()(cr.ones(3))
    assert nn.Flatten(0, -1)(cr.tensor(2.0)).shape == (1,)
    assert torch.nn.Flatten(0, -1)(torch.tensor(2.0)).shape == (1,)
