"""PyTorch's semantics where users rely on them: factory dtypes, integer ranges, PyTorch's
keyword names, 0-d tensors and the errors for shapes and axes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule.validate import AxisError


# ----------------------------------------------------------------------------- factories
@pytest.mark.parametrize("value, dtype", [(4, torch.int64), (True, torch.bool),
                                          (4.0, torch.float32), (np.int32(4), torch.int64)])
def test_full_takes_its_dtype_from_the_value(value, dtype) -> None:
    ours = cr.full((2, 3), value)
    assert str(ours.dtype) == str(torch.full((2, 3), value).dtype).removeprefix("torch.")
    assert str(ours.dtype) == str(dtype).removeprefix("torch.")
    assert cr.full((2,), 4, dtype=np.float64).dtype == np.float64


def test_like_factories_keep_shape_and_dtype_unless_told() -> None:
    x = cr.tensor([[1, 2, 3]], dtype=np.int32)
    for make in (cr.zeros_like, cr.ones_like, cr.empty_like):
        assert make(x).shape == (1, 3) and make(x).dtype == np.int32
        assert make(x, dtype=np.float64).dtype == np.float64
    assert np.array_equal(cr.full_like(x, 7).numpy(), [[7, 7, 7]])
    assert cr.randn_like(x, dtype=np.float32).dtype == np.float32
    with pytest.raises(TypeError, match="randn_like: random values need a float dtype"):
        cr.randn_like(x)
    assert sorted(cr.randperm(6).tolist()) == list(range(6))


def _grid(seed: int, count: int) -> list[tuple[float, float, float, int]]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        start, end = np.round(rng.uniform(-300, 300, 2), int(rng.integers(0, 3)))
        step = float(np.round(rng.uniform(-5, 5), int(rng.integers(0, 2))))
        rows.append((float(start), float(end), step, int(rng.integers(0, 60))))
    return rows


@pytest.mark.parametrize("dtype", ["int64", "int32", "int16"])
def test_integer_linspace_truncates_as_torch_does(dtype) -> None:
    for start, end, _, steps in _grid(0, 400):
        ours = cr.linspace(start, end, steps, dtype=dtype).numpy()
        theirs = torch.linspace(start, end, steps, dtype=getattr(torch, dtype)).numpy()
        assert ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs, err_msg=f"linspace({start}, {end}, {steps})")


@pytest.mark.parametrize("dtype", ["int64", "int32", "float32", "float64"])
def test_arange_matches_torch(dtype) -> None:
    compared = 0
    for start, end, step, _ in _grid(1, 400):
        if dtype.startswith("int") and int(step) == 0 and step != 0:
            # torch.arange(0., 3., 0.5, dtype=torch.int32) repeats 0 six times; a step that
            # truncates to 0 is refused here instead (int64 refuses it in PyTorch too).
            with pytest.raises(ValueError, match="step must be nonzero as an integer"):
                cr.arange(start, end, step, dtype=dtype)
            continue
        try:
            theirs = torch.arange(start, end, step, dtype=getattr(torch, dtype)).numpy()
        except (RuntimeError, ValueError):
            with pytest.raises(ValueError, match="arange: "):
                cr.arange(start, end, step, dtype=dtype)
            continue
        ours = cr.arange(start, end, step, dtype=dtype).numpy()
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, (start, end, step)
        if dtype.startswith("int"):
            np.testing.assert_array_equal(ours, theirs)
        else:  # both compute start + i * step; they may round the last place differently
            np.testing.assert_allclose(ours, theirs, rtol=2e-7 if dtype == "float32" else 1e-15,
                                       atol=1e-5 if dtype == "float32" else 1e-13)
        compared += 1
    assert compared > 100  # most rows give a range, not an error


def test_arange_dtypes_follow_the_arguments() -> None:
    assert cr.arange(5).dtype == np.int64
    assert cr.arange(5.0).dtype == np.float32 and cr.arange(0, 2, 0.5).dtype == np.float32
    assert cr.arange(2**62, 2**62 + 3).tolist() == [2**62, 2**62 + 1, 2**62 + 2]


def test_ranges_that_cannot_be_made_are_refused_before_any_memory_is_asked_for() -> None:
    with pytest.raises(ValueError, match=r"do not fit in int32 .* use a wider dtype"):
        cr.arange(2**33, dtype=np.int32)
    with pytest.raises(ValueError, match="step must be nonzero"):
        cr.arange(0, 10, 0)
    with pytest.raises(ValueError, match="step must be nonzero as an integer"):
        cr.arange(1, 3, 0.5, dtype=np.int64)
    with pytest.raises(ValueError, match="never goes from 10 to 0"):
        cr.arange(10, 0)
    with pytest.raises(ValueError, match="must be finite"):
        cr.arange(float("inf"))
    with pytest.raises(ValueError, match="linspace: steps must be >= 0"):
        cr.linspace(0, 1, -1)
    with pytest.raises(ValueError, match="do not fit in uint8"):
        cr.linspace(0, 300, 4, dtype=np.uint8)


# ----------------------------------------------------------------------------- PyTorch's names
def test_dim_and_keepdim_are_accepted_beside_axis_and_keepdims() -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    ours, theirs = cr.tensor(x), torch.from_numpy(x)
    pairs = [
        (ours.sum(dim=1, keepdim=True), theirs.sum(dim=1, keepdim=True)),
        (cr.mean(ours, dim=(0, 2)), torch.mean(theirs, dim=(0, 2))),
        (ours.max(dim=-1), theirs.amax(dim=-1)),
        (cr.logsumexp(ours, dim=0), torch.logsumexp(theirs, dim=0)),
        (cr.softmax(ours, dim=1), torch.softmax(theirs, dim=1)),
        (cr.log_softmax(ours, dim=1), torch.log_softmax(theirs, dim=1)),
        (cr.cat([ours, ours], dim=2), torch.cat([theirs, theirs], dim=2)),
        (cr.stack([ours, ours], dim=1), torch.stack([theirs, theirs], dim=1)),
        (ours.transpose(dim0=0, dim1=2), theirs.transpose(dim0=0, dim1=2)),
        (ours.flatten(start_dim=1), theirs.flatten(start_dim=1)),
        (ours.unsqueeze(dim=0), theirs.unsqueeze(dim=0)),
        (ours.argmax(dim=1), theirs.argmax(dim=1)),
        (ours.var(dim=1), theirs.var(dim=1)),
    ]
    for mine, reference in pairs:
        assert mine.shape == tuple(reference.shape)
        np.testing.assert_allclose(mine.numpy(), reference.numpy(), rtol=1e-12)
    with pytest.raises(TypeError, match=r"sum: got both axis= and dim= .* pass one"):
        ours.sum(axis=1, dim=1)


def test_size_is_the_count_and_called_the_shape() -> None:
    x = cr.zeros(2, 3)
    assert x.size == 6 and x.numel() == 6 and x.dim() == 2
    assert x.size() == (2, 3) and x.size(0) == 2 and x.size(-1) == 3 and x.size(dim=1) == 3
    with pytest.raises(IndexError, match="size: dim 2 is out of range"):
        x.size(2)
    with pytest.raises(IndexError, match="0-d tensor has no dimension"):
        cr.tensor(1.0).size(0)


@pytest.mark.parametrize("name, ours, theirs", [
    ("sum", lambda x: x.sum(0), lambda t: t.sum(0)),
    ("sum keepdim", lambda x: x.sum(dim=-1, keepdim=True), lambda t: t.sum(-1, keepdim=True)),
    ("mean", lambda x: x.mean(-1), lambda t: t.mean(-1)),
    ("max", lambda x: x.max(0), lambda t: t.amax(0)),
    ("logsumexp", lambda x: x.logsumexp(0), lambda t: t.logsumexp(0)),
    ("squeeze", lambda x: x.squeeze(0), lambda t: t.squeeze(0)),
    ("unsqueeze", lambda x: x.unsqueeze(-1), lambda t: t.unsqueeze(-1)),
    ("softmax", lambda x: x.softmax(0), lambda t: t.softmax(0)),
    ("log_softmax", lambda x: x.log_softmax(-1), lambda t: t.log_softmax(-1)),
    ("argmax", lambda x: x.argmax(0), lambda t: t.argmax(0)),
    ("transpose", lambda x: x.transpose(0, -1), lambda t: t.transpose(0, -1)),
    ("flatten", lambda x: x.flatten(), lambda t: t.flatten()),
    ("stack", lambda x: cr.stack([x, x], 0), lambda t: torch.stack([t, t], 0)),
])
def test_zero_d_tensors_take_dim_0_and_minus_1(name, ours, theirs) -> None:
    mine, reference = ours(cr.tensor(2.5, dtype=np.float64)), theirs(torch.tensor(2.5).double())
    assert mine.shape == tuple(reference.shape), name
    np.testing.assert_allclose(mine.numpy(), reference.numpy())


# ----------------------------------------------------------------------------- errors
def test_a_failed_broadcast_names_both_shapes_and_the_dimension() -> None:
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) do not broadcast: at "
                                         r"dimension -1 the sizes are 3 and 4"):
        cr.randn(2, 3) + cr.randn(4)
    with pytest.raises(ValueError, match=r"mul: shapes \(5, 1, 3\) and \(2, 7, 3\) .* dimension "
                                         r"-3 the sizes are 2 and 5"):
        cr.randn(5, 1, 3) * cr.randn(2, 7, 3)


def test_an_axis_out_of_range_is_an_index_error() -> None:
    x = cr.randn(2, 3)
    for call in (lambda: x.sum(2), lambda: x.softmax(dim=-3), lambda: x.unsqueeze(4),
                 lambda: cr.cat([x, x], 2), lambda: x.argmax(5)):
        with pytest.raises(IndexError, match="out of range"):
            call()
        with pytest.raises(AxisError):
            call()


def test_reshape_with_two_unknown_sizes_says_so() -> None:
    with pytest.raises(ValueError, match="only one dimension can be -1"):
        cr.randn(2, 3).reshape(-1, -1)


# ----------------------------------------------------------------------------- tensor protocol
def test_conversions_and_questions_as_in_torch() -> None:
    x = cr.tensor([[1.0, 2.0], [3.0, 4.0]])
    t = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.to(np.float64).dtype == np.float64 and x.to("float64").dtype == np.float64
    assert x.to("cpu") is x and x.cpu() is x and x.to(cr.tensor([1])).dtype == np.int64
    assert x.type() == "float32" and x.type(np.int64).dtype == np.int64
    assert x.int().dtype == np.int32 and x.bool().dtype == np.bool_
    assert x.type_as(cr.tensor([1.0], dtype=np.float64)).dtype == np.float64
    assert x.is_floating_point() and not x.int().is_floating_point()
    assert x.stride() == t.stride() and x.T.stride() == t.T.stride() and x.stride(1) == 1
    assert x.is_contiguous() and not x.T.is_contiguous() and x.T.contiguous().is_contiguous()
    assert x.element_size() == t.element_size() and x.nelement() == 4 and x.ndimension() == 2
    assert x.new_zeros(2, 3).shape == (2, 3) and x.new_ones((1,)).dtype == np.float32
    assert x.new_full((2,), 7).tolist() == [7.0, 7.0] and x.new_tensor([1, 2]).dtype == np.float32
    assert x.expand_as(cr.zeros(3, 2, 2)).shape == (3, 2, 2)
    assert x.view_as(cr.zeros(4)).shape == (4,) and x.reshape_as(cr.zeros(1, 4)).shape == (1, 4)
    assert x.equal(x.clone()) and not x.equal(x[:1]) and x.allclose(x + 1e-9)
    with pytest.raises(TypeError, match="to: chainrule runs on the CPU only"):
        x.to("cuda")


def test_in_place_ops_change_the_array_and_its_version() -> None:
    y = cr.zeros(3)
    assert y.add_(1).mul_(3).sub_(cr.tensor([1.0, 2.0, 3.0]), alpha=2) is y
    assert y.tolist() == [1.0, -1.0, -3.0]
    y.clamp_(0, 0.5)
    assert y.tolist() == [0.5, 0.0, 0.0]
    y.copy_(cr.tensor([5.0, 6.0, 7.0]))
    y.div_(2).pow_(2).neg_()
    assert y.tolist() == [-6.25, -9.0, -12.25]
    assert y.fill_(2).tolist() == [2.0] * 3 and y.zero_().tolist() == [0.0] * 3
    assert -1 <= y.uniform_(-1, 1).numpy().min() and y.normal_().numpy().std() > 0
    x = cr.zeros(2, 3)
    x[0] = 1
    x[:, 2] = cr.tensor([5.0, 6.0])
    x[x > 5] = -1
    assert x.tolist() == [[1.0, 1.0, 5.0], [0.0, 0.0, -1.0]]


def test_in_place_ops_refuse_what_would_be_wrong() -> None:
    w = cr.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"add_: this tensor requires a gradient.* "
                                           r"x = x.add\(...\) instead"):
        w.add_(1)
    with pytest.raises(RuntimeError, match=r"__setitem__: .*\(cr.where"):
        w[0] = 3.0
    with cr.no_grad():  # an optimizer's step
        w.add_(1)
    assert w.tolist() == [2.0, 2.0] and w.requires_grad
    with pytest.raises(TypeError, match="add_: the result is float32, which cannot be written"):
        cr.tensor([1, 2]).add_(0.5)
    with pytest.raises(TypeError, match="float64 value cannot be written into this int64"):
        cr.tensor([1, 2])[0] = np.float64(0.5)
    with pytest.raises(ValueError, match=r"add_: the result has shape \(2, 3\)"):
        cr.zeros(3).add_(cr.zeros(2, 3))
    a, b = cr.ones(2, requires_grad=True), cr.ones(2)
    c = (a * b).sum()
    b.mul_(2)  # b was saved for the gradient of a: backward must refuse
    with pytest.raises(RuntimeError, match="modified in place"):
        c.backward()


def test_norm_has_torch_values_and_slope_zero_at_zero() -> None:
    x = np.random.default_rng(0).standard_normal((3, 4))
    for p in (2, 1, 3, np.inf, -np.inf, 0, "fro"):
        ours = cr.norm(cr.tensor(x), p=p, dim=1, keepdim=True) if p != "fro" else cr.norm(
            cr.tensor(x))
        theirs = torch.norm(torch.from_numpy(x), p=p, dim=1, keepdim=True) if p != "fro" \
            else torch.norm(torch.from_numpy(x))
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)
    zero = cr.zeros(3, requires_grad=True)
    zero.norm().backward()
    assert zero.grad.tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="matrix norm"):
        cr.norm(cr.tensor(x), p="nuc")
    with pytest.raises(TypeError, match="norm: expects a floating tensor"):
        cr.norm(cr.tensor([1, 2]))


def test_torchs_other_names_and_logical_ops_agree_with_torch() -> None:
    x = np.array([[1.0, -2.0, 0.0], [0.5, 4.0, -0.25]])
    ours, theirs = cr.tensor(x), torch.from_numpy(x)
    pairs = [
        (ours.neg(), theirs.neg()), (ours.negative(), theirs.negative()),
        (ours.clip(-1, 1), theirs.clip(-1, 1)), (ours.where(ours > 0, 0.0),
                                                 theirs.where(theirs > 0, 0.0)),
        (ours.mm(ours.T), theirs.mm(theirs.T)), (ours.mT, theirs.mT),
        (ours.count_nonzero(dim=1), theirs.count_nonzero(dim=1)),
        (ours.addcmul(ours, ours, value=2), theirs.addcmul(theirs, theirs, value=2)),
        (ours.addcdiv(ours, ours + 5, value=0.5), theirs.addcdiv(theirs, theirs + 5, value=0.5)),
        (cr.logical_and(ours > 0, ours < 3), torch.logical_and(theirs > 0, theirs < 3)),
        (cr.logical_or(ours, 0), torch.logical_or(theirs, torch.tensor(0))),
        (cr.logical_xor(ours > 0, ours > 1), torch.logical_xor(theirs > 0, theirs > 1)),
        (ours.logical_not(), theirs.logical_not()),
    ]
    for op in ("eq", "ne", "lt", "le", "gt", "ge"):
        pairs.append((getattr(ours, op)(0.5), getattr(theirs, op)(0.5)))
        pairs.append((getattr(cr, op)(ours, 0.5), getattr(torch, op)(theirs, 0.5)))
    for mine, reference in pairs:
        assert mine.shape == tuple(reference.shape)
        assert str(mine.dtype) == str(reference.dtype).removeprefix("torch.")
        np.testing.assert_allclose(mine.numpy(), reference.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="mm: expects two 2-D tensors"):
        ours.mm(cr.ones(3))


def test_in_place_unary_ops_as_torch() -> None:
    x = np.array([[1.0, -2.0], [0.0, 4.0]], np.float32)
    for op in ("relu_", "abs_", "exp_", "sigmoid_", "tanh_"):
        ours, theirs = cr.tensor(x), torch.from_numpy(x.copy())
        assert getattr(ours, op)() is ours
        getattr(theirs, op)()
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    ours = cr.tensor(np.abs(x) + 0.5)
    ours.sqrt_().log_().clamp_min_(-1).clamp_max_(0.5).masked_fill_(ours > 0.4, 9.0)
    theirs = torch.from_numpy(np.abs(x) + 0.5)
    theirs.sqrt_().log_().clamp_min_(-1).clamp_max_(0.5).masked_fill_(theirs > 0.4, 9.0)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    with pytest.raises(TypeError, match="sqrt_: the result is float32"):
        cr.tensor([1, 2]).sqrt_()


@pytest.mark.parametrize("args", [(), (1,), (1, False), (1, True, True), (False,), (True,),
                                  ((0, 1), False, True)])
def test_var_and_std_take_torchs_positional_forms(args) -> None:
    x = np.random.default_rng(0).standard_normal((3, 4))
    for op in ("var", "std"):
        ours = getattr(cr, op)(cr.tensor(x), *args)
        theirs = getattr(torch, op)(torch.from_numpy(x), *args)
        assert ours.shape == tuple(theirs.shape), (op, args)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)
        method = getattr(cr.tensor(x), op)(*args)
        np.testing.assert_allclose(method.numpy(), theirs.numpy(), rtol=1e-12)
    with pytest.raises(TypeError, match="got unbiased twice"):
        cr.var(cr.tensor(x), True, False)
