"""Scans, sorting, reductions and linear algebra (area A): options, dtypes, methods, errors.

The verification matrix (op_cases_reduce.py) covers values and gradients on drawn inputs;
this file covers what it does not draw: defaults against PyTorch, integer and bool inputs,
ties, zeros, NaN, the ``dim=`` spelling, Tensor methods and the errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule.validate import AxisError

NAN = float("nan")


def both(values: object, dtype: object = np.float64) -> tuple[cr.Tensor, torch.Tensor]:
    """The same values as a chainrule tensor and a torch tensor, both requiring gradients
    when floating."""
    array = np.asarray(values, dtype=dtype)
    floating = array.dtype.kind == "f"
    return (cr.tensor(array, requires_grad=floating),
            torch.tensor(array, requires_grad=floating))


def same(ours: cr.Tensor, theirs: torch.Tensor) -> None:
    """Equal values (NaN where NaN), shape and dtype."""
    expected = theirs.detach().numpy()
    assert ours.shape == expected.shape
    assert ours.dtype == expected.dtype, (ours.dtype, expected.dtype)
    np.testing.assert_allclose(ours.data, expected, rtol=1e-12, atol=0)


def grads_agree(ours: cr.Tensor, out: cr.Tensor, x_torch: torch.Tensor,
                out_torch: torch.Tensor) -> None:
    """Backward of ``out`` with one weight per element against PyTorch's."""
    weights = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(weights)
    out_torch.backward(torch.tensor(weights))
    np.testing.assert_allclose(ours.grad, x_torch.grad.numpy(), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- scans
@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int32, np.int64])
def test_integer_scans_are_int64_as_in_torch(name: str, dtype: type) -> None:
    x, t = both([[1, 0, 2], [3, 1, 1]], dtype)
    same(getattr(cr, name)(x, 1), getattr(torch, name)(t, 1))
    same(getattr(x, name)(dim=0), getattr(t, name)(dim=0))


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_scan_dtype_casts_first(name: str) -> None:
    x, t = both([1.5, 2.5, -3.25])
    same(getattr(cr, name)(x, 0, dtype=np.int64),
         getattr(torch, name)(t.detach(), 0, dtype=torch.int64))
    out = getattr(cr, name)(x.astype(np.float32), 0, dtype="float64")
    assert out.dtype == np.float64
    out.sum().backward()
    assert x.grad is not None and x.grad.dtype == np.float64


def test_scans_take_dim_and_0d() -> None:
    x, t = both(2.5)
    for name in ["cumsum", "cumprod", "logcumsumexp"]:
        same(getattr(cr, name)(x, dim=-1), getattr(torch, name)(t, dim=-1))
    same(cr.cummax(x, 0).indices, torch.cummax(t, 0).indices)


def test_scan_dim_is_required_and_checked() -> None:
    x = cr.ones(2, 3)
    with pytest.raises(TypeError, match="axis"):
        cr.cumsum(x)  # type: ignore[call-arg]
    with pytest.raises(AxisError, match="cumsum: dim 2 is out of range"):
        cr.cumsum(x, 2)
    with pytest.raises(TypeError, match="cumprod: dim must be an int"):
        cr.cumprod(x, 0.5)
    with pytest.raises(TypeError, match="cumsum: dtype must be"):
        cr.cumsum(x, 0, dtype="nonsense")


@pytest.mark.parametrize("values", [
    [[2.0, 0.0, 3.0, 0.0, 5.0], [1.0, 2.0, 0.0, 4.0, 5.0], [0.0, 1.0, 2.0, 3.0, 4.0]],
    [[0.0, 0.0, 0.0, 2.0, 1.0], [3.0, 2.0, 1.0, 0.5, 0.0], [1.5, -2.0, 0.5, 1.0, 3.0]],
])
def test_cumprod_gradient_with_zeros_matches_torch(values: list) -> None:
    x, t = both(values)
    grads_agree(x, cr.cumprod(x, 1), t, torch.cumprod(t, 1))
    x, t = both(values)
    grads_agree(x, x.cumprod(0), t, t.cumprod(0))


def test_cummax_cummin_ties_and_nan_as_torch() -> None:
    for values in ([1.0, 3.0, 3.0, 2.0, NAN, 5.0, NAN], [3.0, 1.0, 1.0, 2.0, 0.5, 0.5]):
        for name in ["cummax", "cummin"]:
            x, t = both(values)
            ours, theirs = getattr(cr, name)(x, 0), getattr(torch, name)(t, 0)
            same(ours.values, theirs.values)
            same(ours.indices, theirs.indices)
            grads_agree(x, ours.values, t, theirs.values)


def test_cummax_returns_a_named_pair_and_takes_integers() -> None:
    x, t = both([[1, 3, 2], [4, 4, 0]], np.int32)
    values, indices = x.cummax(dim=1)
    same(values, torch.cummax(t, 1).values)
    same(indices, torch.cummax(t, 1).indices)
    assert cr.cummin(x, 1).indices.dtype == np.int64


def test_logcumsumexp_is_stable_for_large_values() -> None:
    x, t = both([1000.0, 1000.0, -1000.0, 1e5])
    out = cr.logcumsumexp(x, 0)
    same(out, torch.logcumsumexp(t, 0))
    assert np.isfinite(out.data).all()
    grads_agree(x, out, t, torch.logcumsumexp(t, 0))


def test_logcumsumexp_refuses_integers_as_torch() -> None:
    with pytest.raises(TypeError, match="logcumsumexp: needs a floating tensor"):
        cr.logcumsumexp(cr.tensor([1, 2]), 0)


# ----------------------------------------------------------------------------- reductions
@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int32, np.int64])
def test_sum_and_prod_of_integers_are_int64(dtype: type) -> None:
    x, t = both([[1, 0, 2], [3, 1, 1]], dtype)
    same(cr.sum(x), torch.sum(t))
    same(x.sum(dim=1, keepdim=True), t.sum(dim=1, keepdim=True))
    same(cr.prod(x), torch.prod(t))
    same(x.prod(1), t.prod(1))


def test_sum_mean_prod_dtype() -> None:
    x, t = both([[1.25, -2.5], [3.0, 4.5]])
    same(cr.sum(x, dtype=np.int64), torch.sum(t.detach(), dtype=torch.int64))
    same(x.sum(0, dtype=np.float32), t.sum(0, dtype=torch.float32))
    same(cr.mean(x, 1, dtype=np.float32), torch.mean(t, 1, dtype=torch.float32))
    same(cr.prod(x, 0, dtype=np.float32), torch.prod(t, 0, dtype=torch.float32))
    same(cr.tensor([True, True]).sum(dtype=np.bool_), torch.tensor([True, True]).sum(
        dtype=torch.bool))
    ints, ints_torch = both([1, 2, 4], np.int64)
    same(cr.mean(ints, dtype=np.float64), torch.mean(ints_torch, dtype=torch.float64))


def test_mean_of_integers_is_an_error_as_in_torch() -> None:
    for values in ([1, 2], [True, False]):
        with pytest.raises(TypeError, match="mean: needs a floating tensor.*x.float"):
            cr.mean(cr.tensor(values))
        with pytest.raises(TypeError, match="mean: needs a floating tensor"):
            cr.tensor(values).mean()
    with pytest.raises(TypeError, match="mean: needs a floating"):
        cr.mean(cr.tensor([1.0, 2.0]), dtype=np.int64)


@pytest.mark.parametrize("values", [[[2.0, 0.0, 3.0], [0.0, 0.0, 1.0], [1.5, 2.0, -1.0]],
                                    [[0.0, 4.0, 3.0], [2.0, 1.0, 5.0], [1.0, 1.0, 1.0]]])
def test_prod_gradient_with_zeros_matches_torch(values: list) -> None:
    for axis in [None, 0, 1, -1]:
        x, t = both(values)
        theirs = torch.prod(t) if axis is None else torch.prod(t, axis)
        ours = cr.prod(x) if axis is None else x.prod(dim=axis)
        same(ours, theirs)
        grads_agree(x, ours, t, theirs)


def test_prod_takes_one_axis_as_torch() -> None:
    with pytest.raises(TypeError, match="prod: dim must be an int"):
        cr.prod(cr.ones(2, 3), (0, 1))
    same(cr.prod(cr.tensor(3.0), 0), torch.prod(torch.tensor(3.0), 0))


@pytest.mark.parametrize("values", [[[0.0, 2.0], [0.0, 0.0]], [[1, 0], [1, 1]],
                                    [[True, False], [False, False]], [[NAN, 0.0], [0.0, 0.0]]])
def test_any_all_with_axes_as_torch(values: list) -> None:
    dtype = np.bool_ if isinstance(values[0][0], bool) else None
    x, t = both(values, dtype)
    for name in ["any", "all"]:
        same(getattr(cr, name)(x), getattr(torch, name)(t))
        same(getattr(x, name)(dim=1), getattr(t, name)(dim=1))
        same(getattr(x, name)(0, keepdim=True), getattr(t, name)(0, keepdim=True))
        same(getattr(cr, name)(x, (0, 1)), getattr(torch, name)(t, (0, 1)))


def test_any_all_of_uint8_stay_uint8_as_torch() -> None:
    x, t = both([0, 3], np.uint8)
    same(x.any(), t.any())
    same(cr.all(x, 0), torch.all(t, 0))


def test_bare_any_is_a_0d_bool_tensor_that_works_in_if() -> None:
    x = cr.tensor([0.0, 1.0])
    out = x.any()
    assert isinstance(out, cr.Tensor) and out.shape == () and out.dtype == np.bool_
    assert x.any() and not x.all()
    assert not (x > 5).any()


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin_as_torch(name: str) -> None:
    values = [[1.0, 5.0, 5.0, -2.0], [NAN, 0.0, 3.0, NAN], [-2.0, -2.0, 7.0, 7.0]]
    x, t = both(values)
    fn, torch_fn = getattr(cr, name), getattr(torch, name)
    same(fn(x), torch_fn(t))
    same(fn(x, 1), torch_fn(t, 1))
    same(fn(x, dim=0, keepdim=True), torch_fn(t, dim=0, keepdim=True))
    same(fn(x, keepdim=True), torch_fn(t, keepdim=True))
    same(getattr(x, name)(-1), getattr(t, name)(-1))
    ints, ints_torch = both([[3, 1, 3]], np.int32)
    same(fn(ints, 1), torch_fn(ints_torch, 1))
    same(fn(cr.tensor(2.0), 0), torch_fn(torch.tensor(2.0), 0))


def test_argmax_errors() -> None:
    with pytest.raises(TypeError, match="argmax: does not take a bool tensor"):
        cr.argmax(cr.tensor([True, False]))
    with pytest.raises(ValueError, match="argmin: an empty tensor"):
        cr.argmin(cr.zeros(0))
    with pytest.raises(ValueError, match="argmax: dim 1 has size 0"):
        cr.argmax(cr.zeros(2, 0), 1)
    with pytest.raises(AxisError, match="argmax: dim 2 is out of range"):
        cr.tensor([[1.0]]).argmax(2)


def test_amax_amin_are_max_min() -> None:
    x, t = both([[1.0, 4.0], [4.0, 2.0]])
    same(cr.amax(x, 1), torch.amax(t, 1))
    same(x.amin(dim=0, keepdim=True), t.amin(dim=0, keepdim=True))
    out, theirs = cr.amax(x), torch.amax(t)
    same(out, theirs)
    grads_agree(x, out, t, theirs)  # the tie shares the gradient, as torch.amax


def test_median_picks_torchs_index_and_handles_nan() -> None:
    values = [[4.0, 2.0, 2.0, 4.0, 2.0, 4.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
              [1.0, NAN, 3.0, NAN, 0.0, 2.0]]
    x, t = both(values)
    ours, theirs = cr.median(x, 1), torch.median(t, 1)
    same(ours.values, theirs.values)
    same(ours.indices, theirs.indices)
    grads_agree(x, ours.values, t, theirs.values)
    ours, theirs = x.median(dim=0, keepdim=True), t.median(dim=0, keepdim=True)
    same(ours.values, theirs.values)
    same(ours.indices, theirs.indices)


def test_median_of_all_is_the_lower_one_and_shares_ties() -> None:
    for values in ([4.0, 2.0, 2.0, 4.0, 2.0, 4.0], [1.0, 2.0, 3.0, 4.0], [1.0, NAN, 2.0]):
        x, t = both(values)
        ours, theirs = cr.median(x), torch.median(t)
        np.testing.assert_equal(ours.data, theirs.detach().numpy())
        grads_agree(x, ours, t, theirs)
    same(cr.median(cr.tensor([3, 1, 2])), torch.median(torch.tensor([3, 1, 2])))


def test_median_errors() -> None:
    with pytest.raises(ValueError, match="median: cannot take the median along dim 1"):
        cr.median(cr.zeros(2, 0), 1)
    with pytest.raises(AxisError, match="median: dim 3"):
        cr.median(cr.zeros(2, 2), dim=3)


# ----------------------------------------------------------------------------- sorting
def test_sort_is_stable_and_puts_nan_as_torch() -> None:
    for values, dtype in [([2, 1, 2, 1, 2], np.int64), ([1.0, NAN, 0.0, 1.0, NAN], None),
                          ([True, False, True], np.bool_), ([3, 1, 200, 0], np.uint8)]:
        x, t = both(values, dtype)
        for descending in (False, True):
            ours = cr.sort(x, descending=descending)
            theirs = torch.sort(t, descending=descending, stable=True)
            same(ours.values, theirs.values)
            same(ours.indices, theirs.indices)
            same(x.argsort(descending=descending),
                 torch.argsort(t, descending=descending, stable=True))


def test_sort_gradient_and_methods() -> None:
    x, t = both([[3.0, 1.0, 2.0], [0.0, -1.0, 5.0]])
    values, indices = x.sort(dim=0, descending=True)
    theirs = t.sort(dim=0, descending=True)
    same(indices, theirs.indices)
    grads_agree(x, values, t, theirs.values)
    x0, t0 = both(2.0)
    same(cr.sort(x0).indices, torch.sort(t0).indices)
    same(cr.argsort(x0, 0), torch.argsort(t0, 0))


def test_topk_gradient_goes_to_the_chosen_positions_only() -> None:
    x, t = both([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    ours, theirs = cr.topk(x, 2), torch.topk(t, 2)
    same(ours.values, theirs.values)
    # Which of equal values is taken is open in PyTorch; each taken one gets its gradient.
    ours.values.backward(np.ones((2, 2)))
    assert x.grad.sum() == 4 and set(np.unique(x.grad)) <= {0.0, 1.0}
    chosen = np.zeros((2, 4))
    np.put_along_axis(chosen, ours.indices.data, 1.0, 1)
    np.testing.assert_array_equal(x.grad, chosen)


def test_topk_options_as_torch() -> None:
    x, t = both([[4.0, -1.0, 7.0, 0.5], [9.0, 3.0, -6.0, 2.0]])
    for kwargs in ({"k": 3}, {"k": 1, "dim": 0}, {"k": 2, "largest": False}, {"k": 0},
                   {"k": 4, "dim": -1, "largest": False}):
        ours, theirs = x.topk(**kwargs), t.topk(**kwargs)
        same(ours.values, theirs.values)
        same(ours.indices, theirs.indices)
    ours, theirs = cr.topk(x, 2, sorted=False), torch.topk(t, 2, sorted=False)
    np.testing.assert_array_equal(np.sort(ours.values.data),
                                  np.sort(theirs.values.detach().numpy()))
    same(cr.topk(cr.tensor(3.0), 1).values, torch.topk(torch.tensor(3.0), 1).values)
    ints, ints_torch = both([5, 1, 9], np.int32)
    same(cr.topk(ints, 2).values, torch.topk(ints_torch, 2).values)


def test_sort_and_topk_errors() -> None:
    x = cr.ones(2, 3)
    with pytest.raises(ValueError, match="topk: k=4 is larger than the 3 elements"):
        cr.topk(x, 4)
    with pytest.raises(ValueError, match="topk: k must be >= 0"):
        x.topk(-1)
    with pytest.raises(TypeError, match="topk: k must be an int"):
        x.topk(1.5)
    with pytest.raises(TypeError, match="sort: descending must be True or False"):
        cr.sort(x, descending=1)
    with pytest.raises(AxisError, match="sort: dim 2"):
        x.sort(2)
    with pytest.raises(TypeError, match="topk: largest must be True or False"):
        x.topk(1, largest="yes")


# ----------------------------------------------------------------------------- linear algebra
def test_einsum_call_forms_and_implicit_output() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    expected = torch.einsum("ij,jk->ik", torch.tensor(a), torch.tensor(b))
    same(cr.einsum("ij,jk->ik", cr.tensor(a), cr.tensor(b)), expected)
    same(cr.einsum("ij,jk", [cr.tensor(a), cr.tensor(b)]), expected)
    same(cr.einsum(" i j , j k ", (cr.tensor(a), cr.tensor(b))), expected)
    same(cr.einsum("ba,cb", cr.tensor(a.T), cr.tensor(b.T)),
         torch.einsum("ba,cb", torch.tensor(a.T), torch.tensor(b.T)))


def test_einsum_gradients_on_diagonals_traces_and_broadcasting() -> None:
    rng = np.random.default_rng(1)
    for equation, shapes in [("ii->i", [(3, 3)]), ("ii->", [(3, 3)]), ("iij->ji", [(2, 2, 3)]),
                             ("ii,i->i", [(1, 1), (3,)]), ("...ij,...jk->...ik",
                                                         [(2, 1, 2, 3), (4, 3, 2)]),
                             ("ij,ij->i", [(2, 1), (1, 3)]), ("i,i", [(3,), (3,)])]:
        arrays = [rng.standard_normal(s) for s in shapes]
        ours = [cr.tensor(a, requires_grad=True) for a in arrays]
        theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
        out, expected = cr.einsum(equation, *ours), torch.einsum(equation, *theirs)
        same(out, expected)
        weights = rng.standard_normal(out.shape)
        out.backward(weights)
        expected.backward(torch.tensor(weights))
        for mine, reference in zip(ours, theirs):
            np.testing.assert_allclose(mine.grad, reference.grad.numpy(), rtol=1e-10,
                                       err_msg=equation)


def test_einsum_output_is_not_a_view_of_an_input() -> None:
    a = cr.tensor(np.eye(3))
    out = cr.einsum("ii->i", a)
    out.data[0] = 5.0
    assert a.data[0, 0] == 1.0


def test_einsum_errors() -> None:
    a = cr.ones(2, 3)
    with pytest.raises(ValueError, match="einsum: the equation 'ij,jk->ik' has 2 operand terms "
                                         "but 1 operand was given"):
        cr.einsum("ij,jk->ik", a)
    with pytest.raises(ValueError, match="einsum: operand 0 has 2 dims but its subscripts 'i'"):
        cr.einsum("i", a)
    with pytest.raises(ValueError, match="subscript j has size 3 in one operand and 2"):
        cr.einsum("ij,jk->ik", a, cr.ones(2, 4))
    with pytest.raises(ValueError, match="subscript i is repeated in operand 0 with different"):
        cr.einsum("ii", a)
    with pytest.raises(ValueError, match="output subscript i appears more than once"):
        cr.einsum("i->ii", cr.ones(2))
    with pytest.raises(ValueError, match="output subscript j is in no operand"):
        cr.einsum("i->j", cr.ones(2))
    with pytest.raises(ValueError, match="holds '1'"):
        cr.einsum("i1", a)
    with pytest.raises(TypeError, match="sublist form"):
        cr.einsum(a, [0, 1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="einsum: input 0 is float64 but input 1 is float32"):
        cr.einsum("i,i", cr.ones(2, dtype=np.float64), cr.ones(2, dtype=np.float32))


def test_matrix_products_over_matmul_match_torch() -> None:
    rng = np.random.default_rng(2)

    def check(name: str, shapes: list, **kwargs: float) -> None:
        arrays = [rng.standard_normal(s) for s in shapes]
        ours = [cr.tensor(a, requires_grad=True) for a in arrays]
        theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
        out, expected = getattr(cr, name)(*ours, **kwargs), getattr(torch, name)(*theirs,
                                                                                 **kwargs)
        same(out, expected)
        method = getattr(ours[0], name)(*ours[1:], **kwargs)
        same(method, expected)
        weights = rng.standard_normal(out.shape)
        out.backward(weights)
        expected.backward(torch.tensor(weights))
        for mine, reference in zip(ours, theirs):
            np.testing.assert_allclose(mine.grad, reference.grad.numpy(), rtol=1e-10)

    check("outer", [(3,), (4,)])
    check("dot", [(3,), (3,)])
    check("mv", [(2, 3), (3,)])
    check("bmm", [(2, 3, 4), (2, 4, 5)])
    check("baddbmm", [(2, 3, 5), (2, 3, 4), (2, 4, 5)])
    check("baddbmm", [(5,), (2, 3, 4), (2, 4, 5)], beta=0.5, alpha=-2.0)
    check("addmm", [(2, 4), (2, 3), (3, 4)])
    check("addmm", [(1, 4), (2, 3), (3, 4)], beta=2.0, alpha=0.25)
    same(cr.outer(cr.tensor([1, 2]), cr.tensor([0.5])),
         torch.outer(torch.tensor([1, 2]), torch.tensor([0.5])))


def test_beta_zero_ignores_the_input_even_nan() -> None:
    nan_input = cr.full((2, 2, 2), NAN)
    out = cr.baddbmm(nan_input, cr.ones(2, 2, 3), cr.ones(2, 3, 2), beta=0)
    np.testing.assert_array_equal(out.data, np.full((2, 2, 2), 3.0))
    out = cr.addmm(cr.full((2, 2), NAN), cr.ones(2, 3), cr.ones(3, 2), beta=0.0, alpha=2)
    np.testing.assert_array_equal(out.data, np.full((2, 2), 6.0))


def test_matrix_product_errors() -> None:
    with pytest.raises(ValueError, match="bmm: input must be 3-D, got shape \\(2, 3\\)"):
        cr.bmm(cr.ones(2, 3), cr.ones(3, 2))
    with pytest.raises(ValueError, match="bmm: shapes \\(2, 3, 4\\) and \\(1, 4, 5\\) do not "
                                         "fit.*bmm does not"):
        cr.bmm(cr.ones(2, 3, 4), cr.ones(1, 4, 5))
    with pytest.raises(ValueError, match="baddbmm: input of shape \\(3,\\) does not broadcast"):
        cr.baddbmm(cr.ones(3), cr.ones(2, 3, 4), cr.ones(2, 4, 5))
    with pytest.raises(TypeError, match="baddbmm: beta must be a real number"):
        cr.baddbmm(cr.ones(5), cr.ones(2, 3, 4), cr.ones(2, 4, 5), beta="1")
    with pytest.raises(ValueError, match="dot: the vectors have 2 and 3 elements"):
        cr.dot(cr.ones(2), cr.ones(3))
    with pytest.raises(TypeError, match="dot: input 0 is float64 but input 1 is float32"):
        cr.dot(cr.ones(2, dtype=np.float64), cr.ones(2, dtype=np.float32))
    with pytest.raises(ValueError, match="mv: vec must be 1-D"):
        cr.mv(cr.ones(2, 3), cr.ones(3, 1))
    with pytest.raises(ValueError, match="mv: matrix of shape \\(2, 3\\) and vector"):
        cr.mv(cr.ones(2, 3), cr.ones(2))
    with pytest.raises(ValueError, match="addmm: mat1 of shape .* do not align: mat2 needs 3 rows"):
        cr.addmm(cr.ones(2, 2), cr.ones(2, 3), cr.ones(2, 2))
    with pytest.raises(ValueError, match="outer: vec2 must be 1-D"):
        cr.outer(cr.ones(2), cr.ones(2, 2))
    with pytest.raises(TypeError, match="addmm: input is float32 but the matrices are float64"):
        cr.addmm(cr.ones(2, 2, dtype=np.float32), cr.ones(2, 3, dtype=np.float64),
                 cr.ones(3, 2, dtype=np.float64))


# ----------------------------------------------------------------------------- review fixes
def test_cummax_backward_on_an_empty_tensor() -> None:
    x, t = both(np.zeros((0, 3)))
    for name in ("cummax", "cummin"):
        getattr(cr, name)(x, 0).values.sum().backward()
        assert x.grad.shape == (0, 3)


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
@pytest.mark.parametrize("dtype", [np.int32, np.int16, np.uint8])
def test_scans_keep_a_small_integer_dtype_when_asked(name: str, dtype: type) -> None:
    x, t = both([[1, 2, 3], [4, 0, 2]], dtype)
    torch_dtype = torch.from_numpy(np.zeros(1, dtype)).dtype
    same(getattr(cr, name)(x, 1, dtype=dtype), getattr(torch, name)(t, 1, dtype=torch_dtype))


def test_max_and_min_reduce_an_empty_tensor_along_its_other_dims() -> None:
    for name in ("amax", "amin", "max", "min"):
        x, t = both(np.zeros((0, 3)))
        same(getattr(cr, name)(x, 1), getattr(torch, name)(t, 1) if name[0] == "a"
             else getattr(torch, name)(t, 1).values)
        op = name.removeprefix("a")  # amax is max under PyTorch's other name
        with pytest.raises(ValueError, match=f"{op}: cannot reduce over dim 0 of size 0"):
            getattr(cr, name)(x, 0)


def test_max_and_min_of_two_tensors_are_elementwise_as_in_torch() -> None:
    x, t = both([[1.0, 5.0], [3.0, -1.0]])
    y, u = both([2.0, 2.0])
    same(cr.max(x, y), torch.max(t, u))
    same(x.min(y), t.min(u))
    same(cr.min(x, y.data), torch.min(t, u))
    with pytest.raises(TypeError, match="takes no keepdim"):
        cr.max(x, y, True)


def test_var_and_std_take_unbiased() -> None:
    x, t = both(np.arange(12.0).reshape(3, 4) ** 1.5)
    same(cr.var(x, 1, unbiased=False), torch.var(t, 1, unbiased=False))
    same(cr.std(x, 0, True, True), torch.std(t, 0, True, keepdim=True))  # torch's order
    same(cr.var(x, unbiased=False), torch.var(t, unbiased=False))
    same(x.std(unbiased=False), t.std(unbiased=False))
    same(x.var(dim=1, keepdim=True, correction=0), t.var(dim=1, keepdim=True, correction=0))
    with pytest.raises(TypeError, match="both unbiased= and correction="):
        cr.var(x, 1, unbiased=True, correction=1)


def test_mode_against_torch() -> None:
    from chainrule.ops.reduce import mode

    x, t = both([[1.0, 2.0, 2.0, 3.0, 1.0], [4.0, 4.0, 1.0, 1.0, 0.5]])
    same(mode(x).values, torch.mode(t).values)
    same(mode(x).indices, torch.mode(t).indices)  # the last place the mode occurs
    out, expected = x.mode(dim=0, keepdim=True), torch.mode(t, dim=0, keepdim=True)
    same(out.values, expected.values)
    same(out.indices, expected.indices)
    grads_agree(x, mode(x, 1).values, t, torch.mode(t, 1).values)
    i, u = both([3, 1, 3, 2, 1, 3], np.int32)
    same(mode(i).values, torch.mode(u).values)
    s, v = both(2.5)
    same(mode(s, -1).indices, torch.mode(v, -1).indices)
    with pytest.raises(ValueError, match="mode: cannot take the mode along dim 0 of size 0"):
        mode(cr.zeros(0, 2), 0)


def test_logsumexp_of_nothing_and_of_integers() -> None:
    x, t = both(np.zeros((0, 2)))
    same(cr.logsumexp(x, 0), torch.logsumexp(t, 0))
    i, u = both([1, 2, 3], np.int64)
    out, expected = cr.logsumexp(i, 0), torch.logsumexp(u, 0)
    assert out.dtype == np.float32 == expected.numpy().dtype
    np.testing.assert_allclose(out.data, expected.numpy(), rtol=1e-6)


def test_baddbmm_and_addmm_with_beta_0_still_give_input_a_gradient() -> None:
    i, u = both(np.full((2, 3, 5), NAN))
    a, b = both(np.ones((2, 3, 4))), both(np.ones((2, 4, 5)))
    out, expected = cr.baddbmm(i, a[0], b[0], beta=0), torch.baddbmm(u, a[1], b[1], beta=0)
    same(out, expected)
    grads_agree(i, out, u, expected)
    m, w = both(np.ones((3, 5)))
    out = cr.addmm(m, cr.ones(3, 4, dtype=np.float64), cr.ones(4, 5, dtype=np.float64), beta=0)
    out.sum().backward()
    np.testing.assert_array_equal(m.grad, np.zeros((3, 5)))


def test_integer_baddbmm_and_addmm_stay_integer() -> None:
    i, u = both(np.ones((2, 2, 2)), np.int64)
    a, t = both(np.arange(8).reshape(2, 2, 2), np.int64)
    same(cr.baddbmm(i, a, a, beta=2, alpha=3), torch.baddbmm(u, t, t, beta=2, alpha=3))
    same(cr.addmm(i[0], a[0], a[0], alpha=2.0), torch.addmm(u[0], t[0], t[0], alpha=2))
    with pytest.raises(TypeError, match="addmm: alpha must be an int for int64 tensors"):
        cr.addmm(i[0], a[0], a[0], alpha=1.5)
