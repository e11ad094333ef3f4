"""Shape and selection ops (issue 13, area B) beyond the matrix: the composites (split, chunk,
movedim, meshgrid, ...), options and defaults against PyTorch, integer dtypes, PyTorch's
keyword spellings, Tensor methods, views, and the errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule.check import gradcheck
from chainrule.nn import functional as F
from chainrule.validate import AxisError

RNG = np.random.default_rng(0)


def _outputs(out: Any) -> list:
    return list(out) if isinstance(out, tuple) else [out]


def same_as_torch(ours: Callable, theirs: Callable, *arrays: np.ndarray) -> None:
    """Values, shapes and dtypes of every output, and the gradient of every float input
    through a weighted sum of the float outputs, equal PyTorch's."""
    xs = [cr.Tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    ts = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    outs, expected = _outputs(ours(*xs)), _outputs(theirs(*ts))
    assert len(outs) == len(expected)
    total, reference = None, None
    for i, (o, e) in enumerate(zip(outs, expected)):
        e_data = e.detach().numpy()
        assert o.shape == e_data.shape and o.dtype == e_data.dtype, (i, o.shape, e_data.shape)
        np.testing.assert_allclose(o.data, e_data, rtol=1e-12)
        if o.dtype.kind == "f" and o.requires_grad:
            w = np.random.default_rng(i).standard_normal(o.shape)
            term, t_term = (o * cr.Tensor(w)).sum(), (e * torch.from_numpy(w)).sum()
            total = term if total is None else total + term
            reference = t_term if reference is None else reference + t_term
    if total is None:
        return
    total.backward()
    reference.backward()
    for x, t in zip(xs, ts):
        if x.requires_grad:
            expected_grad = np.zeros(x.shape) if t.grad is None else t.grad.numpy()
            np.testing.assert_allclose(x.grad, expected_grad, rtol=1e-10, atol=1e-12)


def normal(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape)


X = normal(3, 4, 5)


# ----------------------------------------------------------------------------- composites
@pytest.mark.parametrize("ours, theirs", [
    (lambda x: cr.split(x, 2, 1), lambda x: torch.split(x, 2, 1)),
    (lambda x: cr.split(x, [1, 3], dim=1), lambda x: torch.split(x, [1, 3], dim=1)),
    (lambda x: x.split(3, dim=-1), lambda x: x.split(3, dim=-1)),
    (lambda x: cr.chunk(x, 3, 2), lambda x: torch.chunk(x, 3, 2)),
    (lambda x: x.chunk(2), lambda x: x.chunk(2)),
    (lambda x: cr.unbind(x, 1), lambda x: torch.unbind(x, 1)),
    (lambda x: x.unbind(dim=-1), lambda x: x.unbind(dim=-1)),
    (lambda x: cr.tensor_split(x, 3, 2), lambda x: torch.tensor_split(x, 3, 2)),
    (lambda x: x.tensor_split([1, 4, 9], dim=2), lambda x: x.tensor_split([1, 4, 9], dim=2)),
    (lambda x: cr.tensor_split(x, [3, 1], 1), lambda x: torch.tensor_split(x, [3, 1], 1)),
    (lambda x: cr.movedim(x, 0, -1), lambda x: torch.movedim(x, 0, -1)),
    (lambda x: x.movedim((0, 2), (2, 0)), lambda x: x.movedim((0, 2), (2, 0))),
    (lambda x: x.moveaxis((1,), (0,)), lambda x: x.moveaxis((1,), (0,))),
    (lambda x: cr.narrow(x, 1, -3, 2), lambda x: torch.narrow(x, 1, -3, 2)),
    (lambda x: x.narrow(dim=2, start=1, length=3), lambda x: x.narrow(2, 1, 3)),
    (lambda x: cr.swapaxes(x, 0, 2), lambda x: torch.swapaxes(x, 0, 2)),
    (lambda x: x.swapdims(dim0=0, dim1=1), lambda x: x.swapdims(0, 1)),
    (lambda x: cr.unflatten(x, 2, (5, 1)), lambda x: torch.unflatten(x, 2, (5, 1))),
    (lambda x: x.unflatten(dim=1, sizes=(2, -1)), lambda x: x.unflatten(1, (2, -1))),
    (lambda x: cr.tile(x, (2,)), lambda x: torch.tile(x, (2,))),
    (lambda x: x.tile(2, 1, 1, 2), lambda x: x.tile(2, 1, 1, 2)),
    (lambda x: x.repeat(1, 2, 1), lambda x: x.repeat(1, 2, 1)),
    (lambda x: cr.fliplr(x), lambda x: torch.fliplr(x)),
    (lambda x: x.flipud(), lambda x: x.flipud()),
    (lambda x: x.flip(0, 2), lambda x: x.flip(0, 2)),
    (lambda x: x.flip(dims=(1,)), lambda x: x.flip(dims=(1,))),
    (lambda x: x.roll(2, 1), lambda x: x.roll(2, 1)),
    (lambda x: cr.roll(x, (1, -2), dims=(0, 2)), lambda x: torch.roll(x, (1, -2), dims=(0, 2))),
    (lambda x: x.tril(-1), lambda x: x.tril(-1)),
    (lambda x: cr.triu(x, diagonal=2), lambda x: torch.triu(x, diagonal=2)),
    (lambda x: x.diagonal(1, dim1=2, dim2=0), lambda x: x.diagonal(1, dim1=2, dim2=0)),
    (lambda x: cr.diagonal(x, -1, dim2=1, dim1=2), lambda x: torch.diagonal(x, -1, 2, 1)),
    (lambda x: x.diag_embed(1, dim1=0, dim2=2), lambda x: x.diag_embed(1, dim1=0, dim2=2)),
    (lambda x: x[0].diag(1), lambda x: x[0].diag(1)),
    (lambda x: cr.diag(x[0, 0], -2), lambda x: torch.diag(x[0, 0], -2)),
    (lambda x: x.unfold(2, 3, 1), lambda x: x.unfold(2, 3, 1)),
    (lambda x: cr.ops.unfold(x, dimension=1, size=2, step=2), lambda x: x.unfold(1, 2, 2)),
    (lambda x: x.reshape(1, 3, 1, 20).squeeze((0, 2)), lambda x: x.reshape(1, 3, 1, 20).squeeze(
        (0, 2))),
    (lambda x: x.reshape(1, 3, 1, 20).squeeze(0, 2, 3), lambda x: x.reshape(1, 3, 1, 20).squeeze(
        (0, 2, 3))),
    (lambda x: x.expand_as(cr.zeros(2, 3, 4, 5)), lambda x: x.expand_as(torch.zeros(2, 3, 4, 5))),
    (lambda x: x.reshape_as(cr.zeros(12, 5)), lambda x: x.reshape_as(torch.zeros(12, 5))),
    (lambda x: x.view_as(cr.zeros(60)), lambda x: x.view_as(torch.zeros(60))),
    (lambda x: x.masked_select(x.data > 0), lambda x: x.masked_select(x > 0)),
    (lambda x: cr.masked_select(x[0], cr.tensor([True, False, True, True, False])),
     lambda x: torch.masked_select(x[0], torch.tensor([True, False, True, True, False]))),
    (lambda x: x.masked_fill(x.data > 0.5, -1.0), lambda x: x.masked_fill(x > 0.5, -1.0)),
])
def test_shape_ops_match_torch(ours: Callable, theirs: Callable) -> None:
    same_as_torch(ours, theirs, X)


IDX = np.array([[[2, 0, 4, 4, 1]], [[0, 0, 3, 1, 2]]])


@pytest.mark.parametrize("ours, theirs", [
    (lambda x, i: x.gather(2, i), lambda x, i: x.gather(2, i)),
    (lambda x, i: cr.gather(x, dim=-1, index=i), lambda x, i: torch.gather(x, -1, i)),
    (lambda x, i: x.take_along_dim(i[:1], 2), lambda x, i: x.take_along_dim(i[:1], 2)),
    (lambda x, i: cr.take_along_dim(x, i[1:] - 5, dim=2),
     lambda x, i: torch.take_along_dim(x, i[1:] - 5, dim=2)),
    (lambda x, i: cr.take_along_dim(x, i), lambda x, i: torch.take_along_dim(x, i)),
    (lambda x, i: x[:, :1].take_along_dim(i[:1], 2), lambda x, i: x[:, :1].take_along_dim(
        i[:1], 2)),
    (lambda x, i: x.scatter_add(2, i, x[:2, :1]), lambda x, i: x.scatter_add(2, i, x[:2, :1])),
    (lambda x, i: x.scatter(2, i[:, :, :1], 3.0), lambda x, i: x.scatter(2, i[:, :, :1], 3.0)),
    (lambda x, i: cr.scatter(x, 2, i[:, :, :1], value=3.0),
     lambda x, i: torch.scatter(x, 2, i[:, :, :1], value=3.0)),
    (lambda x, i: x.index_select(2, i[1, 0]), lambda x, i: x.index_select(2, i[1, 0])),
    (lambda x, i: cr.index_select(x, dim=0, index=i[0, 0, 1:2]),
     lambda x, i: torch.index_select(x, 0, i[0, 0, 1:2])),
    (lambda x, i: x.index_add(2, i[1, 0], x * 2, alpha=0.5),
     lambda x, i: x.index_add(2, i[1, 0], x * 2, alpha=0.5)),
])
def test_index_ops_match_torch(ours: Callable, theirs: Callable) -> None:
    same_as_torch(ours, theirs, X, IDX)


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_ties_and_zeros_match_torch(reduce: str, include_self: bool) -> None:
    # Ties (several 2s, self equal to src) and zeros (one or two at a target): PyTorch shares
    # max/min gradients among ties and gives prod the product of the others, exactly.
    a = np.array([1.0, 2.5, 3.0, 0.0, 7.0])
    src = np.array([2.0, 0.0, 2.0, 2.0, 0.0, 0.0, 5.0])
    index = np.array([0, 0, 1, 1, 2, 2, 3])
    if include_self:  # a src value tying with the tensor's own (left out otherwise: see below)
        src, index = np.append(src, 7.0), np.append(index, 4)
    same_as_torch(lambda a, s, i: a.scatter_reduce(0, i, s, reduce, include_self=include_self),
                  lambda a, s, i: a.scatter_reduce(0, i, s, reduce, include_self=include_self),
                  a, src, index)


def test_meshgrid_matches_torch_and_gradients_sum_back() -> None:
    a, b, c = normal(3), normal(4), normal(2)
    for indexing in ("ij", "xy"):
        same_as_torch(lambda a, b, c: cr.meshgrid(a, b, c, indexing=indexing),
                      lambda a, b, c: torch.meshgrid(a, b, c, indexing=indexing), a, b, c)
    same_as_torch(lambda a, b: cr.meshgrid([a, b]), lambda a, b: torch.meshgrid(
        [a, b], indexing="ij"), a, np.asarray(2.0))


def test_split_pieces_are_views_whose_gradients_add_up() -> None:
    x = cr.Tensor(normal(6, 2), requires_grad=True)
    first, second = x.split(3)
    (first * 2 + second[:1] * 3).sum().backward()
    expected = np.zeros((6, 2))
    expected[:3] = 2
    expected[3] += 9  # second[:1] is broadcast over first's three rows
    np.testing.assert_array_equal(x.grad, expected)
    assert np.shares_memory(first.data, x.data)


def test_views_share_memory_and_version_as_torch() -> None:
    x = cr.Tensor(np.arange(12.0).reshape(3, 4))
    for view in (x.diagonal(), x.unfold(1, 2, 1), x.narrow(0, 1, 2), x.movedim(0, 1),
                 x.unflatten(1, (2, 2)), x.swapaxes(0, 1), x.chunk(2)[1], x.unbind(1)[2]):
        assert np.shares_memory(view.data, x.data)
        assert view._counter is x._counter
    diagonal = x.diagonal()
    diagonal.data[0] = 100.0  # PyTorch's diagonal is a view one can write through
    assert x.data[0, 0] == 100.0
    for copy in (x.flip(0), x.roll(1, 0), x.repeat(1, 1), x.tril(), x.diag(), x.gather(
            0, np.zeros((1, 4), np.int64)), x.masked_fill(x.data > 3, 0.0)):
        assert not np.shares_memory(copy.data, x.data)


def test_unfold_overlapping_windows_gradients_add_up() -> None:
    gradcheck(lambda x: cr.ops.unfold(x, 1, 3, 1) ** 2, [normal(2, 6)])
    gradcheck(lambda x: x.unfold(0, 2, 3), [normal(7)])


def test_scatter_repeated_targets_last_write_lands_and_gets_the_gradient() -> None:
    # PyTorch leaves open which repeated write lands; here the last one does, and only it
    # takes the gradient, so finite differences agree.
    a = cr.Tensor(np.zeros(3), requires_grad=True)
    src = cr.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    out = a.scatter(0, np.array([1, 1, 0]), src)
    np.testing.assert_array_equal(out.data, [3.0, 2.0, 0.0])
    out.backward(np.array([10.0, 20.0, 30.0]))
    np.testing.assert_array_equal(src.grad, [0.0, 20.0, 10.0])
    np.testing.assert_array_equal(a.grad, [0.0, 0.0, 30.0])
    gradcheck(lambda a, s: cr.scatter(a, 0, np.array([1, 1, 0, 1]), s),
              [normal(3), normal(4)])


def test_masked_fill_value_tensor_takes_the_gradient() -> None:
    value = normal()
    same_as_torch(lambda x, v: x.masked_fill(x.data > 0, v),
                  lambda x, v: x.masked_fill(x > 0, v), X, np.asarray(value))
    # The mask broadcasts the result beyond the tensor's shape, as in PyTorch.
    same_as_torch(lambda x: x.masked_fill(np.array([[True], [False]]), 1.0),
                  lambda x: x.masked_fill(torch.tensor([[True], [False]]), 1.0), normal(3))


# ----------------------------------------------------------------------------- integer dtypes
@pytest.mark.parametrize("ours, theirs", [
    (lambda x: x.repeat(2, 1), lambda x: x.repeat(2, 1)),
    (lambda x: x.roll(1, 1), lambda x: x.roll(1, 1)),
    (lambda x: x.flip(1), lambda x: x.flip(1)),
    (lambda x: x.tril(), lambda x: x.tril()),
    (lambda x: x.diagonal(), lambda x: x.diagonal()),
    (lambda x: x.diag_embed(), lambda x: x.diag_embed()),
    (lambda x: x.unfold(1, 2, 1), lambda x: x.unfold(1, 2, 1)),
    (lambda x: x.masked_fill(x.data > 3, 2.7), lambda x: x.masked_fill(x > 3, 2.7)),
    (lambda x: x.masked_fill(x.data > 3, -2.7), lambda x: x.masked_fill(x > 3, -2.7)),
    (lambda x: x.gather(1, np.array([[0, 0], [2, 1]])),
     lambda x: x.gather(1, torch.tensor([[0, 0], [2, 1]]))),
    (lambda x: x.scatter_add(1, np.array([[0, 0]]), x[:1, :2]),
     lambda x: x.scatter_add(1, torch.tensor([[0, 0]]), x[:1, :2])),
    (lambda x: x.scatter_reduce(1, np.array([[0, 0, 1]]), x[:1] - 7, "mean"),
     lambda x: x.scatter_reduce(1, torch.tensor([[0, 0, 1]]), x[:1] - 7, "mean")),
    (lambda x: x.scatter_reduce(1, np.array([[0, 0, 1]]), x[:1], "amax", include_self=False),
     lambda x: x.scatter_reduce(1, torch.tensor([[0, 0, 1]]), x[:1], "amax",
                                include_self=False)),
    (lambda x: x.index_add(0, np.array([1, 1]), x, alpha=3),
     lambda x: x.index_add(0, torch.tensor([1, 1]), x, alpha=3)),
    (lambda x: x.split(2, 1), lambda x: x.split(2, 1)),
    (lambda x: x.nonzero(), lambda x: x.nonzero()),
    (lambda x: x.nonzero(as_tuple=True), lambda x: x.nonzero(as_tuple=True)),
    (lambda x: cr.nonzero(x[0, 0]), lambda x: torch.nonzero(x[0, 0])),
    (lambda x: cr.nonzero(x[0, 0], as_tuple=True), lambda x: torch.nonzero(x[0, 0],
                                                                          as_tuple=True)),
    (lambda x: F.one_hot(x), lambda x: torch.nn.functional.one_hot(x)),
    (lambda x: F.one_hot(x, num_classes=8), lambda x: torch.nn.functional.one_hot(x, 8)),
])
def test_integer_tensors_keep_their_dtype(ours: Callable, theirs: Callable) -> None:
    same_as_torch(ours, theirs, np.array([[0, 1, 2], [3, 4, 5]]))


def test_bool_and_int32_tensors() -> None:
    mask = np.array([[True, False, True], [False, False, True]])
    same_as_torch(lambda m: m.flip(0).roll(1), lambda m: m.flip(0).roll(1), mask)
    same_as_torch(lambda m: m.nonzero(), lambda m: m.nonzero(), mask)
    small = np.arange(6, dtype=np.int32).reshape(2, 3)
    same_as_torch(lambda x: x.repeat(1, 2).triu(1), lambda x: x.repeat(1, 2).triu(1), small)


def test_zero_dim_tensors_take_dim_0_and_minus_1() -> None:
    x = np.asarray(1.5)
    same_as_torch(lambda x: x.flip(0), lambda x: x.flip(0), x)
    same_as_torch(lambda x: x.flip(-1), lambda x: x.flip(-1), x)
    same_as_torch(lambda x: x.unfold(0, 1, 1), lambda x: x.unfold(0, 1, 1), x)
    same_as_torch(lambda x: x.gather(0, np.array(0)), lambda x: x.gather(0, torch.tensor(0)), x)
    same_as_torch(lambda x: x.gather(-1, np.array([0, 0])),
                  lambda x: x.gather(-1, torch.tensor([0, 0])), x)
    same_as_torch(lambda x: x.index_select(0, np.array([0])),
                  lambda x: x.index_select(0, torch.tensor([0])), x)
    same_as_torch(lambda x: x.scatter_add(0, np.array(0), x * 2),
                  lambda x: x.scatter_add(0, torch.tensor(0), x * 2), x)
    same_as_torch(lambda x: x.index_add(-1, np.array([0]), x),
                  lambda x: x.index_add(-1, torch.tensor([0]), x), x)
    same_as_torch(lambda x: x.repeat(2, 3), lambda x: x.repeat(2, 3), x)
    same_as_torch(lambda x: x.masked_select(np.array(True)),
                  lambda x: x.masked_select(torch.tensor(True)), x)
    same_as_torch(lambda x: x.movedim(0, -1), lambda x: x.movedim(0, -1), x)
    y = cr.Tensor(x, requires_grad=True)
    y.roll(3, 0).backward()  # torch refuses; a 0-d tensor's one element stays in place
    assert y.grad == 1.0


def test_one_hot_num_classes_inferred_and_given() -> None:
    labels = cr.tensor([[0, 3], [1, 1]])
    out = F.one_hot(labels)
    assert out.dtype == np.int64 and out.shape == (2, 2, 4)
    assert F.one_hot(cr.tensor(np.zeros(0, np.int64)), 3).shape == (0, 3)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, error, match", [
    (lambda x: x.reshape(-1, -1, 3), ValueError, "only one dimension can be -1"),
    (lambda x: x.reshape(7, 9), ValueError, r"shape \(3, 4, 5\) \(60 elements\).*\(7, 9\).*63"),
    (lambda x: x.repeat(2, 2), ValueError, "repeat: got 2 repeat counts"),
    (lambda x: x.repeat(1, -1, 1), ValueError, "repeat: repeat count 1 must be >= 0"),
    (lambda x: x.roll((1, 2), 0), ValueError, "roll: shifts .* must have the same length"),
    (lambda x: x.roll((1, 2)), ValueError, "roll: without dims"),
    (lambda x: x.roll(1, 3), AxisError, "roll: dims 3 is out of range"),
    (lambda x: x.flip(0, 0), ValueError, "flip: dims .* more than once"),
    (lambda x: x.flip(3), AxisError, "flip"),
    (lambda x: x[0, 0].tril(), ValueError, "tril: needs a tensor with at least 2 dims"),
    (lambda x: x.triu(1.5), TypeError, "triu: diagonal must be an int"),
    (lambda x: x.diagonal(0, 1, -2), ValueError, "diagonal: axis1 and axis2 both name axis 1"),
    (lambda x: x.diagonal(0, 0, 3), AxisError, "diagonal: axis2 3 is out of range"),
    (lambda x: x.diag(), ValueError, "diag: takes a 1-D or 2-D tensor"),
    (lambda x: x.unfold(2, 6, 1), ValueError, "unfold: size 6 is larger"),
    (lambda x: x.unfold(2, 2, 0), ValueError, "unfold: step must be >= 1"),
    (lambda x: x.masked_fill(x.data > 0, [1.0]), TypeError, "masked_fill: value must be"),
    (lambda x: x.masked_fill(np.ones((3, 4, 5)), 1.0), TypeError,
     "masked_fill: mask must be a bool tensor"),
    (lambda x: x.masked_fill(np.ones(4, bool), 1.0), ValueError, "does not broadcast"),
    (lambda x: x.masked_fill(x.data > 0, cr.ones(2)), ValueError, "0-d tensor"),
    (lambda x: x.masked_select(x.data), TypeError, "masked_select: mask must be a bool"),
    (lambda x: x.gather(0, np.zeros((1, 1), np.int64)), ValueError,
     "gather: index must have as many dims as the tensor"),
    (lambda x: x.gather(0, np.zeros((1, 5, 1), np.int64)), ValueError, "larger than the tensor"),
    (lambda x: x.gather(0, np.full((1, 1, 1), 3)), IndexError, "gather: index 3 is out of range"),
    (lambda x: x.gather(0, np.full((1, 1, 1), -1)), IndexError, "index -1 is out of range"),
    (lambda x: x.gather(0, np.zeros((1, 1, 1))), TypeError, "gather: index must be an integer"),
    (lambda x: x.gather(3, np.zeros((1, 1, 1), np.int64)), AxisError, "gather: axis 3"),
    (lambda x: x.scatter(0, np.zeros((1, 1, 1), np.int64), x.astype(np.float32)), TypeError,
     "scatter: src is float32 but the tensor is float64"),
    (lambda x: x.scatter(0, np.zeros((1, 1, 1), np.int64)), TypeError, "scatter: give src"),
    (lambda x: x.scatter(0, np.zeros((2, 1, 1), np.int64), x[:1]), ValueError,
     "no larger than src"),
    (lambda x: x.scatter_reduce(0, np.zeros((1, 1, 1), np.int64), x, "max"), ValueError,
     "scatter_reduce: reduce must be 'sum', 'prod', 'mean', 'amax' or 'amin'"),
    (lambda x: x.index_add(0, np.array([0]), x), ValueError, "index_add: source must have shape"),
    (lambda x: x.index_add(0, np.array([5]), x[:1]), IndexError, "index_add: index 5"),
    (lambda x: x.long().index_add(0, np.array([0]), x[:1].long(), alpha=0.5), TypeError,
     "alpha must be an int"),
    (lambda x: x.index_select(0, np.zeros((1, 1), np.int64)), ValueError, "must be 1-D"),
    (lambda x: x.index_select(0, np.array([True])), TypeError, "integer tensor"),
    (lambda x: x.take_along_dim(np.zeros((1, 1), np.int64), 0), ValueError, "as many dims"),
    (lambda x: x.take_along_dim(np.zeros((2, 2, 1), np.int64), 2), ValueError,
     "do not broadcast"),
    (lambda x: x.split(0), ValueError, "split: split_size 0"),
    (lambda x: x.split([1, 1]), ValueError, r"split: sizes \[1, 1\] add up to 2"),
    (lambda x: x[0, 0, 0].split(1), ValueError, "split: needs a tensor with at least 1 dim"),
    (lambda x: x.chunk(0), ValueError, "chunk: chunks must be >= 1"),
    (lambda x: x.tensor_split(0), ValueError, "sections must be >= 1"),
    (lambda x: x.unbind(3), AxisError, "unbind"),
    (lambda x: x.movedim((0, 1), 2), ValueError, "movedim: source .* same number of axes"),
    (lambda x: x.movedim((0, 0), (1, 2)), ValueError, "movedim: source .* more than once"),
    (lambda x: x.narrow(0, 2, 2), ValueError, "narrow: start 2 \\+ length 2 runs past"),
    (lambda x: x.narrow(0, -4, 1), ValueError, "narrow: start must be in"),
    (lambda x: x[0, 0, 0].narrow(0, 0, 1), ValueError, "narrow: needs a tensor"),
    (lambda x: x.unflatten(1, (3, 2)), ValueError, r"unflatten: sizes \(3, 2\) hold 6"),
    (lambda x: x.unflatten(1, (-1, -1)), ValueError, "only one dimension can be -1"),
    (lambda x: x.unflatten(1, ()), ValueError, "must not be empty"),
    (lambda x: cr.meshgrid(x), ValueError, "meshgrid: tensor 0 has shape"),
    (lambda x: cr.meshgrid(x[0, 0], x[0, 0], indexing="yx"), ValueError, "indexing must be"),
    (lambda x: cr.meshgrid(x[0, 0], cr.arange(3)), TypeError, "one dtype"),
    (lambda x: F.one_hot(x), TypeError, "one_hot: needs an integer tensor"),
    (lambda x: F.one_hot(cr.tensor([0, -1])), ValueError, "must be non-negative"),
    (lambda x: F.one_hot(cr.tensor([0, 3]), 3), ValueError, "not smaller than num_classes=3"),
    (lambda x: F.one_hot(cr.tensor(np.zeros(0, np.int64))), ValueError, "cannot infer"),
    (lambda x: x.view(np.float32), TypeError, "view\\(dtype\\)"),
    (lambda x: x.reshape(60, shape=(60,)), TypeError, "both positionally"),
    (lambda x: cr.diagonal(x, axis2=1, dim2=1), TypeError, "got both axis2= and dim2="),
])
def test_bad_input_is_refused_with_a_clear_error(call: Callable, error: type, match: str
                                                 ) -> None:
    with pytest.raises(error, match=match):
        call(cr.Tensor(X))


def test_masked_fill_refuses_values_an_integer_tensor_cannot_hold() -> None:
    x = cr.tensor([1, 2, 3])
    with pytest.raises(ValueError, match="value nan cannot be stored in a int64 tensor"):
        x.masked_fill(x.data > 1, float("nan"))
    with pytest.raises(ValueError, match="cannot be stored"):
        x.scatter(0, np.array([0]), 1e30)


@pytest.mark.parametrize("reduce", ["amax", "amin"])
def test_scatter_reduce_ties_exclude_a_left_out_self(reduce: str) -> None:
    # With include_self=False the tensor's own value takes no part, so it shares no gradient
    # even where it equals the result. (PyTorch 2.13 still counts it among the ties, and the
    # src gradients then add up to 2/3 of the upstream one: finite differences side with us.)
    a = cr.Tensor(np.array([2.0, 5.0]), requires_grad=True)
    src = cr.Tensor(np.array([2.0, 2.0]), requires_grad=True)
    a.scatter_reduce(0, np.array([0, 0]), src, reduce, include_self=False).backward(
        np.array([6.0, 1.0]))
    np.testing.assert_array_equal(src.grad, [3.0, 3.0])
    np.testing.assert_array_equal(a.grad, [0.0, 1.0])
    gradcheck(lambda a, s: cr.scatter_reduce(a, 0, np.array([0, 0, 1]), s, reduce,
                                             include_self=False),
              [np.array([2.0, 5.0]), np.array([2.0, 3.0, 4.0])])


# ----------------------------------------------------------------------------- review fixes
@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")
def test_scatter_takes_torchs_reduce_add_and_multiply() -> None:
    a = RNG.standard_normal((3, 4))
    index = np.array([[0, 1, 2, 0], [0, 0, 0, 1]])
    src = RNG.standard_normal((2, 4))
    for reduce in ("add", "multiply"):
        out = cr.scatter(cr.Tensor(a), 0, cr.Tensor(index), cr.Tensor(src), reduce=reduce)
        expected = torch.scatter(torch.tensor(a), 0, torch.tensor(index), torch.tensor(src),
                                 reduce=reduce)
        np.testing.assert_allclose(out.data, expected.numpy(), rtol=1e-12)
        out = cr.Tensor(a).scatter(1, cr.Tensor(index), 2.0, reduce=reduce)
        expected = torch.tensor(a).scatter(1, torch.tensor(index), 2.0, reduce=reduce)
        np.testing.assert_allclose(out.data, expected.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="scatter: reduce must be 'add' or 'multiply'"):
        cr.scatter(cr.Tensor(a), 0, cr.Tensor(index), cr.Tensor(src), reduce="sum")


def test_cat_and_stack_promote_as_torch() -> None:
    same_as_torch(lambda a, b: cr.cat([a, b]), lambda a, b: torch.cat([a, b]),
                  np.array([1, 2]), np.array([0.5], np.float32))
    same_as_torch(lambda a, b: cr.stack([a, b], 1), lambda a, b: torch.stack([a, b], 1),
                  np.array([1.0, 2.0], np.float32), np.array([0.5, 3.0]))
    same_as_torch(lambda a, b: cr.cat([a, b], dim=1), lambda a, b: torch.cat([a, b], dim=1),
                  np.array([[True], [False]]), np.array([[3], [4]], np.int32))


def test_cat_leaves_out_1d_empty_tensors_as_torch() -> None:
    same_as_torch(lambda a, b: cr.cat([a, b]), lambda a, b: torch.cat([a, b]),
                  np.zeros(0), RNG.standard_normal((2, 3)))
    same_as_torch(lambda a, b: cr.cat([a, b], 1), lambda a, b: torch.cat([a, b], 1),
                  RNG.standard_normal((2, 3)), np.zeros(0))
