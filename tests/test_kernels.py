"""Every fast kernel against its plain reference, the kernels seam, and the process settings.

Each comparison runs twice: as the kernels run at these sizes (mostly one call), and with
the split thresholds forced down so that the same small arrays go through many cache
blocks on several threads. Where a kernel promises the reference's bits (copies, maxima,
elementwise passes), equality is exact; where it sums in another order, within rounding.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

import chainrule as cr
from chainrule import kernels, nn
from chainrule.kernels import (
    activation,
    blas,
    conv,
    jit,
    layernorm,
    mkl,
    norm,
    process,
    recurrent,
    reduce,
    threads,
    update,
)
from chainrule.kernels.exp import exp_float32
from chainrule.nn import functional as F

MODULES = (activation, blas, conv, layernorm, norm, process, recurrent, reduce, threads,
           update)
NUMBA = pytest.mark.skipif(jit.backend() != "numba", reason="numba is not installed or chosen")
RNG = np.random.default_rng(0)


@pytest.fixture(params=["whole", "split"])
def split(request, monkeypatch) -> str:
    """'split': every threshold forced down, so test-sized arrays go in many blocks on three
    threads; 'whole': the thresholds as shipped."""
    if request.param == "split":
        monkeypatch.setattr(threads, "MIN_ELEMENTS", 0)
        monkeypatch.setattr(threads, "BLOCK_BYTES", 256)
        monkeypatch.setattr(update, "UPDATE_BLOCK", 100)
        monkeypatch.setenv("CHAINRULE_NUM_THREADS", "3")
    return request.param


def compare(name: str, *args, exact: bool = False, rtol: float = 1e-12, atol: float = 0.0,
            in_place: bool = False):
    """Run kernel ``name`` and its reference on copies of ``args``; check the results agree
    (with ``in_place``, every array argument as the two calls left it). Returns the
    kernel's result (its arguments, in place)."""
    fast_args, plain_args = _copies(args), _copies(args)
    fast = getattr(kernels, name)(*fast_args)
    plain = getattr(kernels, f"{name}_reference")(*plain_args)
    if in_place:
        assert fast is None and plain is None, name
        fast, plain = fast_args, plain_args
    _agree(fast, plain, exact, rtol, atol, name)
    return fast


def compare_exactly_computed(name: str, *args, rtol: float, atol: float):
    """Run kernel ``name`` on float32 ``args`` and its reference on float64 copies of them;
    check the kernel is within tolerance of that more exact answer. For kernels that compute
    in float32 by another formula than their reference (GELU's tanh form as a sigmoid): both
    round, differently, and the kernel is held to the exact value. Returns its result.
    On the NumPy path the kernel runs its reference: then it is compared with it."""
    if kernels.backend() != "numba":
        return compare(name, *args, rtol=rtol, atol=atol)
    fast = getattr(kernels, name)(*_copies(args))
    wide = [a.astype(np.float64) if isinstance(a, np.ndarray) else a for a in args]
    exact = getattr(kernels, f"{name}_reference")(*wide)
    pairs = zip(fast, exact) if isinstance(fast, tuple) else [(fast, exact)]
    for mine, truth in pairs:
        assert mine.dtype == np.float32 and mine.shape == truth.shape, name
        np.testing.assert_allclose(mine, truth, rtol=rtol, atol=atol, err_msg=name)
    return fast


def _copies(args: tuple) -> list:
    return [a.copy(order="K") if isinstance(a, np.ndarray) else a for a in args]


def _agree(fast, plain, exact: bool, rtol: float, atol: float, name: str) -> None:
    if isinstance(fast, (tuple, list)):
        assert isinstance(plain, (tuple, list)) and len(fast) == len(plain), name
        for f, p in zip(fast, plain):
            _agree(f, p, exact, rtol, atol, name)
        return
    if fast is None or plain is None or isinstance(fast, str):
        assert fast == plain if isinstance(fast, str) else plain is None, name
        return
    fast, plain = np.asarray(fast), np.asarray(plain)
    assert fast.shape == plain.shape and fast.dtype == plain.dtype, (name, fast.shape,
                                                                     plain.shape)
    if exact:
        np.testing.assert_array_equal(fast, plain, err_msg=name)
    else:
        np.testing.assert_allclose(fast, plain, rtol=rtol, atol=atol, err_msg=name)


def nhwc(n: int, h: int, w: int, c: int, dtype=np.float64) -> np.ndarray:
    return RNG.standard_normal((n, h, w, c)).astype(dtype)


# ---------------------------------------------------------------------- completeness
def _public_functions(module) -> list[str]:
    return [name for name, f in inspect.getmembers(module, inspect.isfunction)
            if f.__module__ == module.__name__ and not name.startswith("_")]


def test_every_kernel_has_a_reference_with_its_signature() -> None:
    for module in MODULES:
        for name in _public_functions(module):
            if name.endswith("_reference"):
                assert name.removesuffix("_reference") in kernels.KERNELS, name
            elif name in kernels.KERNELS:
                reference = getattr(module, f"{name}_reference", None)
                assert reference is not None, f"kernel {module.__name__}.{name} has no reference"
                assert (inspect.signature(reference) == inspect.signature(getattr(module, name))
                        ), f"{name}_reference's signature differs from {name}'s"
            else:
                assert name in kernels.HELPERS, (
                    f"{module.__name__}.{name} is public but neither a kernel (list it in "
                    "kernels.KERNELS and give it a reference) nor in kernels.HELPERS")
    for name in (*kernels.KERNELS, *kernels.HELPERS):
        assert callable(getattr(kernels, name)), name
        assert name in kernels.__all__, name
    for name in kernels.KERNELS:
        assert f"{name}_reference" in kernels.__all__, name


def test_every_kernel_is_compared_in_this_file() -> None:
    source = Path(__file__).read_text()
    compared = set(re.findall(r'compare(?:_exactly_computed)?\("(\w+)"', source))
    missing = set(kernels.KERNELS) - compared - set(REFERENCE_CHECKED)
    assert not missing, f"kernels never compared with their reference here: {missing}"


# The schedulers take work functions rather than arrays; tested by hand below.
REFERENCE_CHECKED = ("over_batch", "over_blocks", "blocked_sum", "blocked_update")


# ---------------------------------------------------------------------- threads
def _slices(scheduler, n: int, *args) -> list[tuple[int, int]]:
    seen: list[tuple[int, int]] = []
    scheduler(n, lambda lo, hi: seen.append((lo, hi)), *args)
    return seen


@pytest.mark.parametrize("n", [0, 1, 7, 100])
def test_schedulers_cover_the_range_once(split, n) -> None:
    for name, args in (("over_batch", (n * 1000,)), ("over_blocks", (n * 1000, 800))):
        seen = _slices(getattr(kernels, name), n, *args)
        assert sorted(i for lo, hi in seen for i in range(lo, hi)) == list(range(n)), name
        assert _slices(getattr(kernels, f"{name}_reference"), n, *args) == [(0, n)]
        if split == "split" and n >= 3:
            assert len(seen) > 1  # really split


def test_blocked_sum_matches_its_reference_and_repeats_its_bits(split) -> None:
    values = RNG.standard_normal((700, 3)).astype(np.float32)

    def part(lo: int, hi: int) -> np.ndarray:
        return values[lo:hi].sum(axis=0, dtype=np.float64)

    fast = kernels.blocked_sum(len(values), part, values.size, values.strides[0])
    plain = kernels.blocked_sum_reference(len(values), part, values.size, values.strides[0])
    np.testing.assert_allclose(fast, plain, rtol=1e-12)
    again = kernels.blocked_sum(len(values), part, values.size, values.strides[0])
    assert fast.tobytes() == again.tobytes()


# ---------------------------------------------------------------------- blas
@pytest.mark.parametrize("shapes", [((5,), (5,)), ((3, 5), (5,)), ((5,), (5, 4)),
                                    ((4, 5), (5, 2)), ((3, 4, 5), (5, 2)),
                                    ((2, 1, 4, 5), (3, 5, 2)), ((300, 400), (400, 200))])
def test_matmul(shapes) -> None:
    a, b = (RNG.standard_normal(s) for s in shapes)
    compare("matmul", a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_into_out_views(dtype) -> None:
    """out= as np.matmul's: a C array, the heads of a (B, T, H, D) array (row stride H D),
    a 2-D block of a wider matrix; an out that overlaps an operand still gets a @ b."""
    rng = np.random.default_rng(6)
    a = rng.standard_normal((2, 3, 40, 30)).astype(dtype)
    b = rng.standard_normal((2, 3, 30, 20)).astype(dtype)
    tol = {"rtol": FLOAT_RTOL[dtype] * 10, "atol": FLOAT_ATOL[dtype] * 100}
    merged = np.full((2, 40, 3, 20), np.nan, dtype)  # (B, T, H, D)
    for out in (np.empty((2, 3, 40, 20), dtype), np.swapaxes(merged, 1, 2)):
        assert kernels.matmul(a, b, out=out) is out
        np.testing.assert_allclose(out, a @ b, **tol)
    if mkl.available():  # MKL writes the views itself, NumPy is not asked
        assert mkl.matmul(a, b, np.swapaxes(merged, 1, 2)) is not None
        assert mkl.matmul(a[0, 0], b[0, 0], np.zeros((40, 50), dtype)[:, 5:25]) is not None
    wide = np.zeros((40, 50), dtype)
    block = wide[:, 5:25]
    assert kernels.matmul(a[0, 0], b[0, 0], out=block) is block
    np.testing.assert_allclose(block, a[0, 0] @ b[0, 0], **tol)
    assert not wide[:, :5].any() and not wide[:, 25:].any()  # nothing outside the view
    square = rng.standard_normal((3, 60, 60)).astype(dtype)
    expected = square @ square
    result = kernels.matmul(square, square, out=square)
    np.testing.assert_allclose(result, expected, **tol)
    with pytest.raises(ValueError):
        kernels.matmul(a, b, out=np.empty((2, 3, 40, 21), dtype))


@pytest.mark.parametrize("private_api", [True, False])
def test_blas_thread_control_with_and_without_threadpoolctl_internals(monkeypatch,
                                                                       private_api) -> None:
    pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(blas, "_blas", None)  # look the controls up again
    if not private_api:  # as when the private helper is gone (see the test below)
        monkeypatch.setattr(blas, "_openblas_c_functions", lambda lib: None)
    control = blas.blas_threads()
    if control is None:
        pytest.skip("no single BLAS that threadpoolctl can drive")
    get_threads, set_threads = control
    if private_api:  # OpenBLAS: the C functions themselves
        assert not inspect.ismethod(set_threads)
    before = get_threads()
    try:
        set_threads(1)
        assert get_threads() == 1
    finally:
        set_threads(before)
    assert get_threads() == before
    a, b = RNG.standard_normal((8, 6)), RNG.standard_normal((6, 4))
    np.testing.assert_allclose(blas.matmul(a, b), a @ b)
    assert get_threads() == before  # matmul gives the thread count back


def test_the_private_symbol_helper_falls_back_on_anything_unexpected() -> None:
    class Lib:
        internal_api = "openblas"

        def __init__(self, symbol):
            if symbol is not None:
                self._get_symbol = symbol

    def found(name):
        return lambda *args: 1

    def broken(name):
        raise TypeError("the helper changed")

    assert blas._openblas_c_functions(Lib(found)) is not None
    assert blas._openblas_c_functions(Lib(None)) is None
    assert blas._openblas_c_functions(Lib(broken)) is None
    assert blas._openblas_c_functions(Lib(lambda name: None)) is None
    other = Lib(found)
    other.internal_api = "mkl"
    assert blas._openblas_c_functions(other) is None


def test_no_blas_control_leaves_matmul_plain(monkeypatch) -> None:
    monkeypatch.setattr(blas, "_blas", False)
    a, b = RNG.standard_normal((4, 3)), RNG.standard_normal((3, 2))
    np.testing.assert_array_equal(blas.matmul(a, b), a @ b)


# ---------------------------------------------------------------------- reduce
@pytest.mark.parametrize("rows", [0, 1, 127, 128, 300, 2000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_sums(rows, dtype) -> None:
    block = (RNG.standard_normal((rows, 5)) * 3 + 2).astype(dtype)
    scale = np.abs(block).sum(axis=0, dtype=np.float64).max(initial=1.0)
    eps = np.finfo(dtype).eps
    compare("precise_column_sums", block, rtol=0, atol=32 * eps * scale)
    compare("column_sums", block, rtol=0, atol=rows * eps * scale + 1e-300)
    # a strided view, as batch norm's (values, C) matrix of a channels-first input is
    strided = np.moveaxis(block.reshape(rows, 5, 1), 1, -1).reshape(rows, 5)[:, ::2]
    compare("precise_column_sums", strided, rtol=0, atol=32 * eps * scale)


@pytest.mark.parametrize("classes", [1, 10, 32, 33, 100])
def test_row_sums_and_maxima(classes) -> None:
    a = RNG.standard_normal((64, classes)).astype(np.float32)
    compare("row_sums", a, rtol=1e-6, atol=1e-6)
    a[3, 0] = np.nan
    a[5, :] = -np.inf
    compare("max_along", a, 1, exact=True)
    compare("max_along", a, 0, exact=True)
    compare("max_along", a, -1, exact=True)


def test_max_along_other_shapes() -> None:
    a = RNG.standard_normal((4, 5, 6))
    for axis in (0, 1, 2):
        compare("max_along", a, axis, exact=True)
    compare("max_along", RNG.standard_normal((7, 3)).T, 1, exact=True)  # not contiguous


def test_cached_constants_are_read_only_and_made_once() -> None:
    ones = compare("cached_ones", (3, 1), np.float32, exact=True)
    arange = compare("cached_arange", 9, np.intp, exact=True)
    assert kernels.cached_ones((3, 1), np.float32) is ones
    assert kernels.cached_arange(9, np.intp) is arange
    for array in (ones, arange, kernels.cached_ones_reference((2,), np.float64),
                  kernels.cached_arange_reference(4, np.int64)):
        assert not array.flags.writeable


# ---------------------------------------------------------------------- conv
@pytest.mark.parametrize("padding, fill", [((0, 0), 0.0), ((1, 2), 0.0), ((1, 1), -np.inf)])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_channels_last(split, padding, fill, layout) -> None:
    x = RNG.standard_normal((5, 3, 6, 7))
    if layout == "channels_last":  # what a conv op returns: a transposed NHWC array
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    compare("channels_last", x, padding, fill, exact=True)


@pytest.mark.parametrize("kernel, stride, dilation", [((3, 3), (1, 1), (1, 1)),
                                                      ((2, 3), (2, 1), (1, 2)),
                                                      ((1, 1), (2, 2), (1, 1))])
@pytest.mark.parametrize("channels", [1, 4])
def test_windows_and_im2col(split, kernel, stride, dilation, channels) -> None:
    x = nhwc(3, 9, 8, channels)
    out = ((9 - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1,
           (8 - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1)
    views = compare("windows", x, kernel, stride, dilation, out, exact=True)
    for dtype in (np.float64, np.float32):  # the copy may convert
        compare("im2col", views, np.dtype(dtype), exact=True)


@pytest.mark.parametrize("groups, stride, dilation", [(1, (1, 1), (1, 1)), (2, (2, 1), (1, 2)),
                                                      (4, (1, 2), (2, 1))])
def test_conv_input_grad(split, groups, stride, dilation) -> None:
    n, channels, out_channels, kernel = 3, 4, 8, (3, 2)
    padded_shape = (n, 10, 9, channels)
    out = ((10 - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1,
           (9 - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1)
    grad_rows = RNG.standard_normal((n * out[0] * out[1], out_channels))
    w_rows = RNG.standard_normal((out_channels, kernel[0] * kernel[1] * channels // groups))
    compare("conv_input_grad", grad_rows, w_rows, padded_shape, kernel, stride, dilation, out,
            groups, rtol=1e-12, atol=1e-12)


POOLS = [((2, 2), (2, 2), (8, 6)), ((2, 2), (2, 2), (7, 5)), ((3, 3), (2, 2), (7, 7)),
         ((3, 2), (1, 1), (6, 5)), ((1, 1), (1, 1), (3, 3))]


def _out(kernel, stride, size):
    return tuple((s - k) // st + 1 for s, k, st in zip(size, kernel, stride))


@pytest.mark.parametrize("kernel, stride, size", POOLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_max_pooling(split, kernel, stride, size, dtype) -> None:
    x = np.maximum(nhwc(5, *size, 3, dtype), 0).round(1)  # after a ReLU: ties everywhere
    x[0, 0, 1, 0] = np.nan
    x[1, 2, 2, 1] = -np.inf
    out = _out(kernel, stride, size)
    _, larger = compare("window_max", x, kernel, stride, out, exact=True)
    grad = nhwc(5, *out, 3, dtype)
    overlapping = stride[0] < kernel[0] or stride[1] < kernel[1]
    compare("route_to_winners", grad, larger, x.shape, kernel, stride, out,
            exact=not overlapping, rtol=1e-12 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("kernel, stride, size", POOLS)
def test_average_pooling(split, kernel, stride, size) -> None:
    x = nhwc(5, *size, 3)
    out = _out(kernel, stride, size)
    compare("window_mean", x, kernel, stride, out, rtol=1e-12)
    share = nhwc(5, *out, 3)
    compare("spread_over_windows", share, x.shape, kernel, stride, out, rtol=1e-12)


# ---------------------------------------------------------------------- norm
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 2e-5)])
@pytest.mark.parametrize("rows", [2, 50, 1000])
def test_mean_and_variance(split, dtype, rtol, rows) -> None:
    values = (RNG.standard_normal((rows, 4)) * 3 + 1000).astype(dtype)
    values[0] = 1e4  # an outlier first: no shortcut may lose it
    compare("mean_and_variance", values, rtol=rtol)
    compare("mean_and_variance", np.asfortranarray(values), rtol=rtol)  # other strides
    compare("mean_and_variance", values[::2], rtol=rtol)


def _affine_inputs(dtype):
    rows = RNG.standard_normal((300, 5)).astype(dtype)
    mean, a, b, c = (RNG.standard_normal(5).astype(dtype) for _ in range(4))
    return rows, mean, a, b, c


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_affine_passes_give_the_reference_bits(split, dtype) -> None:
    rows, mean, scale, bias, c = _affine_inputs(dtype)
    compare("normalise", rows, mean, scale, bias, exact=True)
    compare("normalise", rows, mean, scale, None, exact=True)
    grads = RNG.standard_normal(rows.shape).astype(dtype)
    compare("batch_norm_input_grad", grads, rows, mean, scale, bias, c, exact=True)
    compare("batch_norm_input_grad", grads, rows, mean, scale, None, None, exact=True)


@pytest.mark.parametrize("want", [(True, True), (True, False), (False, True), (False, False)])
def test_batch_norm_sums(split, want) -> None:
    rows, mean, *_ = _affine_inputs(np.float64)
    grads = RNG.standard_normal(rows.shape)
    compare("batch_norm_sums", grads, rows, mean, *want, rtol=1e-10, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_no_rows_give_what_the_references_give(split, dtype) -> None:
    rows, grads, mean = (np.zeros((0, 7), dtype), np.zeros((0, 7), dtype),
                         np.zeros(7, dtype))
    compare("mean_and_variance", rows, exact=True)  # NaN: no values, no mean
    assert np.isnan(kernels.mean_and_variance(rows)[0]).all()
    for want in [(True, True), (True, False), (False, True)]:
        compare("batch_norm_sums", grads, rows, mean, *want, exact=True)  # zeros


@pytest.mark.parametrize("kernel, stride, size", POOLS[:4])
def test_the_fused_pooling_kernels(split, kernel, stride, size) -> None:
    images = nhwc(4, *size, 3).round(1)  # rounded: ties
    sign = np.array([1.0, -1.0, 1.0])
    out = _out(kernel, stride, size)
    _, larger = compare("signed_window_max", images, sign, kernel, stride, out, exact=True)
    mean, b, c = (RNG.standard_normal(3) for _ in range(3))
    scaled = nhwc(4, *out, 3)
    overlapping = stride[0] < kernel[0] or stride[1] < kernel[1]
    for coefficients in ((b, c), (None, None)):
        compare("pooled_input_grad", images, mean, *coefficients, scaled, larger, kernel,
                stride, out, exact=not overlapping, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel, stride, size", POOLS[:4])
def test_the_fused_pooling_kernels_in_float32_and_with_nan(kernel, stride, size) -> None:
    images = nhwc(3, *size, 5).round(1).astype(np.float32)
    images[0, 0, 0, 0] = np.nan  # np.maximum's NaN: the caller sees it in the maxima
    sign = np.array([1, -1, 1, 1, -1], np.float32)
    out = _out(kernel, stride, size)
    best, larger = compare("signed_window_max", images, sign, kernel, stride, out, exact=True)
    assert np.isnan(best[0, 0, 0, 0]) and np.isfinite(best[1:]).all()
    mean, b, c = (RNG.standard_normal(5).astype(np.float32) for _ in range(3))
    scaled = nhwc(3, *out, 5).astype(np.float32)
    overlapping = stride[0] < kernel[0] or stride[1] < kernel[1]
    compare("pooled_input_grad", images, mean, b, c, scaled, larger, kernel, stride, out,
            exact=not overlapping, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------- update
def _adam_like(param: np.ndarray, grad: np.ndarray, avg: np.ndarray) -> None:
    avg *= 0.9
    avg += 0.1 * grad
    param -= 0.01 * avg / (np.abs(avg) + 1e-3)


@pytest.mark.parametrize("contiguous", [True, False])
def test_blocked_update_gives_the_bits_of_one_call(split, contiguous) -> None:
    shape = (300, 70)
    arrays = [RNG.standard_normal(shape).astype(np.float32) for _ in range(3)]
    if not contiguous:
        arrays = [np.asfortranarray(a) for a in arrays]
    fast, plain = _copies(arrays), _copies(arrays)
    calls = []

    def counted(*views):
        calls.append(views[0].size)
        _adam_like(*views)

    kernels.blocked_update(counted, *fast)
    kernels.blocked_update_reference(_adam_like, *plain)
    for f, p in zip(fast, plain):
        np.testing.assert_array_equal(f, p)
    assert sum(calls) == fast[0].size
    assert (len(calls) > 1) == (split == "split" and contiguous)


# ---------------------------------------------------------------------- the seam
def _train_once(fused: bool, seed: int = 0) -> list[np.ndarray]:
    """The loss, the gradients and the parameters after an SGD step of a small conv net
    (``fused``: batch norm, max pooling and ReLU as one op)."""
    cr.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, dtype="float64"), nn.BatchNorm2d(4, dtype="float64"),
        nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, groups=2, dtype="float64"), nn.ReLU(),
        nn.AvgPool2d(2, stride=1), nn.Flatten(), nn.Linear(6, 3, dtype="float64"))
    if fused:
        model = nn.fuse(model)
    opt = cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = np.random.default_rng(seed).standard_normal((6, 1, 13, 13))
    y = np.array([0, 1, 2, 0, 1, 2])
    loss = F.cross_entropy(model(cr.from_numpy(x)), y)
    loss.backward()
    grads = [p.grad.copy() for p in model.parameters()]
    opt.step()
    return [loss.data.copy(), *grads, *(p.data.copy() for p in model.parameters())]


@pytest.mark.parametrize("fused", [False, True])
def test_the_ops_run_on_the_references_alone(monkeypatch, fused) -> None:
    """The ops reach every kernel through the kernels namespace: with each one replaced by
    its reference (as a backend would replace them), training gives the same numbers."""
    fast = _train_once(fused)
    called = set()
    for name in kernels.KERNELS:
        reference = getattr(kernels, f"{name}_reference")

        def spy(*args, _name=name, _reference=reference, **kwargs):
            called.add(_name)
            return _reference(*args, **kwargs)

        monkeypatch.setattr(kernels, name, spy)
    plain = _train_once(fused)
    for f, p in zip(fast, plain):
        np.testing.assert_allclose(f, p, rtol=1e-9, atol=1e-12)
    pooling = {"signed_window_max", "pooled_input_grad"} if fused else {"window_max",
                                                                        "route_to_winners"}
    assert pooling | {"im2col", "conv_input_grad", "matmul", "cross_entropy_rows", "sgd_update",
                      "window_mean", "spread_over_windows"} <= called, called


# ---------------------------------------------------------------------- compiled (numba)
# Compiled loops sum and round in their own order (float64 inside where the docstring says):
# agreement within a few float32 ulps, or float64 rounding.
FLOAT_RTOL = {np.float32: 2e-6, np.float64: 1e-13}
FLOAT_ATOL = {np.float32: 1e-6, np.float64: 1e-14}


@st.composite
def _float_arrays(draw, dtypes=(np.float32, np.float64), max_dims=3):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=7))
    dtype = draw(st.sampled_from(dtypes))
    scale = draw(st.sampled_from([0.1, 1.0, 6.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    array = (rng.standard_normal(shape) * scale).astype(dtype)
    if array.ndim >= 2 and draw(st.booleans()):  # a transposed, non-contiguous view
        array = np.ascontiguousarray(np.swapaxes(array, 0, -1)).swapaxes(0, -1)
    return array


@settings(max_examples=60, deadline=None)
@given(a=_float_arrays(), approximate=st.sampled_from(["tanh", "none"]))
def test_gelu_forward_and_backward(a, approximate) -> None:
    dtype = a.dtype.type
    grad = np.random.default_rng(1).standard_normal(a.shape).astype(a.dtype)
    tol = {"rtol": FLOAT_RTOL[dtype], "atol": FLOAT_ATOL[dtype]}
    if (dtype, approximate) == (np.float32, "tanh"):
        out = compare_exactly_computed("gelu", a, approximate, **tol)
        compare_exactly_computed("gelu_grad", a, grad, approximate, **tol)
    else:
        out = compare("gelu", a, approximate, **tol)
        compare("gelu_grad", a, grad, approximate, **tol)
    assert out.shape == a.shape and out.dtype == a.dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_over_several_blocks_and_a_partial_one(dtype) -> None:
    from chainrule.kernels.activation import BLOCK

    rng = np.random.default_rng(4)
    a = (rng.standard_normal((3, BLOCK + 77)) * 3).astype(dtype)
    grad = rng.standard_normal(a.shape).astype(dtype)
    tol = {"rtol": FLOAT_RTOL[dtype], "atol": FLOAT_ATOL[dtype]}
    if dtype == np.float32:
        compare_exactly_computed("gelu", a, "tanh", **tol)
        compare_exactly_computed("gelu_grad", a, grad, "tanh", **tol)
    else:
        compare("gelu", a, "tanh", **tol)
        compare("gelu_grad", a, grad, "tanh", **tol)


def test_gelu_float32_edges_match_the_reference() -> None:
    # far tails, zeros, infinities and NaN: the sigmoid form gives the reference's values,
    # but for the left tail's tiny values (under 1e-25), which it keeps and the reference's
    # 1 + tanh rounds to 0
    a = np.array([-1e4, -60, -9.5, -9, -0.0, 0, 1e-30, 9, 60, 1e4, np.inf, -np.inf, np.nan],
                 np.float32)
    grad = np.linspace(-2, 2, a.size).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        for fast, plain in ((kernels.gelu(a, "tanh"), kernels.gelu_reference(a, "tanh")),
                            (kernels.gelu_grad(a, grad, "tanh"),
                             kernels.gelu_grad_reference(a, grad, "tanh"))):
            np.testing.assert_allclose(fast, plain, rtol=2e-6, atol=1e-25)


def test_gelu_of_other_dtypes_goes_to_the_reference() -> None:
    a = np.linspace(-3, 3, 11, dtype=np.float16)
    np.testing.assert_array_equal(kernels.gelu(a, "tanh"), kernels.gelu_reference(a, "tanh"))


@jit.loops(contract=True)
def _exp_loops(a, out):
    for i in range(a.size):
        out[i] = exp_float32(a[i])


def test_exp_float32_is_within_two_ulp_of_exp_over_float32s_range() -> None:
    sweep = np.linspace(-110, 90, 400_001, dtype=np.float32)
    edges = np.array([0, -0.0, 1e-30, -1e-30, np.inf, -np.inf, np.nan, 88.72283, 88.7229,
                      -103.9720, -103.9721, -87.3, -88, -100, 1, -1], np.float32)
    a = np.concatenate([sweep, edges])
    out = np.empty_like(a)
    _exp_loops(a, out)  # compiled where numba is, else the plain Python
    with np.errstate(over="ignore", invalid="ignore"):
        exact = np.exp(a.astype(np.float64))
        rounded = exact.astype(np.float32)
    finite = np.isfinite(rounded)
    ulp = np.spacing(rounded[finite]).astype(np.float64)
    error = np.abs(out[finite].astype(np.float64) - exact[finite]) / ulp
    assert error.max() <= 2, (error.max(), a[finite][error.argmax()])
    np.testing.assert_array_equal(out[~finite], rounded[~finite])  # inf above, NaN stays
    assert out[a == -np.inf][0] == 0 and out[a == 1e-30][0] == 1
    # the plain Python form (NUMBA_DISABLE_JIT) computes the same values
    with np.errstate(over="ignore"):  # NumPy's scalars say when 2^n e^r overflows
        for x in edges[np.isfinite(edges)]:
            assert exp_float32(np.float32(x)) == out[len(sweep) + list(edges).index(x)]


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(0, 9), classes=st.integers(1, 70),
       dtype=st.sampled_from([np.float32, np.float64]), scale=st.sampled_from([0.1, 3, 60, 500]),
       seed=st.integers(0, 2**31), odd=st.sampled_from(["", "inf", "-inf row", "nan"]))
def test_cross_entropy_rows(rows, classes, dtype, scale, seed, odd) -> None:
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((rows, classes)) * scale).astype(dtype)
    targets = rng.integers(0, classes, rows)
    if rows and odd == "inf":
        logits[0, -1] = np.inf
    elif rows and odd == "-inf row":
        logits[-1] = -np.inf
    elif rows and odd == "nan":
        logits[0, 0] = np.nan
    tol = {"rtol": FLOAT_RTOL[dtype] * 4, "atol": FLOAT_ATOL[dtype] * 4}
    with np.errstate(invalid="ignore", divide="ignore"):
        losses, probs = compare("cross_entropy_rows", logits, targets, **tol)
    assert losses.shape == (rows,) and probs.shape == logits.shape and probs.dtype == dtype
    finite = np.isfinite(logits).all(axis=1)
    np.testing.assert_allclose(probs[finite].sum(axis=1), 1, rtol=1e-5)
    assert (losses[finite] >= -1e-5).all()


def test_cross_entropy_rows_of_many_large_logits_do_not_overflow() -> None:
    # 50,000 classes all at 79: unshifted, the sum of e^79 would pass float32's largest value
    logits = np.full((2, 50_000), 79, np.float32)
    losses, probs = kernels.cross_entropy_rows(logits, np.array([0, 7]))
    np.testing.assert_allclose(losses, np.log(50_000), rtol=1e-5)
    np.testing.assert_allclose(probs, 1 / 50_000, rtol=1e-5)


@st.composite
def _scores(draw):
    """(..., S, L) attention scores (keys by queries), some keys masked with -inf (whole
    columns too), sometimes a transposed view (the kernels send those to the reference)."""
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    shape = (*lead, draw(st.integers(0, 9)), draw(st.integers(1, 9)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    scores = (rng.standard_normal(shape) * draw(st.sampled_from([0.1, 3.0, 40.0]))
              ).astype(dtype)
    if draw(st.booleans()):
        scores[rng.random(shape) < 0.3] = -np.inf
    if draw(st.booleans()):
        scores[..., draw(st.integers(0, shape[-1] - 1))] = -np.inf  # a query sees no key
    if draw(st.booleans()):
        scores = np.ascontiguousarray(np.swapaxes(scores, -1, -2)).swapaxes(-1, -2)
    return scores


@settings(max_examples=80, deadline=None)
@given(scores=_scores(), scale=st.sampled_from([0.125, 1.0, 3.0]), causal=st.booleans())
def test_attention_softmax_forward_and_backward(scores, scale, causal) -> None:
    dtype = scores.dtype.type
    tol = {"rtol": FLOAT_RTOL[dtype] * 4, "atol": FLOAT_ATOL[dtype] * 4}
    probs = compare("softmax_columns", scores, scale, causal, **tol)
    assert probs.shape == scores.shape and probs.dtype == scores.dtype
    assert np.isfinite(probs).all() and (probs >= 0).all()
    sums = probs.sum(axis=-2)  # over the keys: 1 for each query, or 0 where it sees none
    assert np.all((np.abs(sums - 1) < 1e-5) | (sums == 0))
    if causal:  # key j after query i gets nothing
        keys, length = scores.shape[-2:]
        assert not probs[..., np.tril(np.ones((keys, length), bool), k=-1)].any()
    grad = np.random.default_rng(2).standard_normal(scores.shape).astype(scores.dtype)
    compare("softmax_columns_grad", grad, np.ascontiguousarray(probs), scale, **tol)


def test_attention_softmax_works_in_place_and_keeps_nan_columns_nan() -> None:
    # keys by queries: query 0 sees a NaN, query 1 a masked key, query 2 no key at all
    scores = np.array([[[1.0, 0.5, -np.inf], [2.0, -np.inf, -np.inf],
                        [np.nan, 1.0, -np.inf]]], np.float32)
    plain = kernels.softmax_columns_reference(scores.copy(), 1.0, False)
    out = kernels.softmax_columns(scores, 1.0, False)
    assert out is scores  # the op keeps the weights in the scores' own array
    assert np.isnan(out[0, :, 0]).all() and np.isnan(plain[0, :, 0]).all()
    np.testing.assert_allclose(out[0, :, 1:], plain[0, :, 1:], rtol=1e-6)
    np.testing.assert_array_equal(out[0, :, 2], [0, 0, 0])
    grad = np.ones_like(out)
    assert kernels.softmax_columns_grad(grad, out, 2.0) is grad


@settings(max_examples=50, deadline=None)
@given(rows=st.integers(1, 9), width=st.integers(0, 5), count=st.integers(0, 30),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**31))
def test_scatter_add_rows_gives_add_at_bits(rows, width, count, dtype, seed) -> None:
    rng = np.random.default_rng(seed)
    index = rng.integers(-rows, rows, count)  # repeats and negative indices
    target = rng.standard_normal((rows, width)).astype(dtype)
    compare("scatter_add_rows", target, index, rng.standard_normal((count, width)).astype(dtype),
            exact=True, in_place=True)


def test_scatter_add_rows_out_of_range_is_the_references_index_error() -> None:
    target = np.zeros((3, 2))
    with pytest.raises(IndexError):
        kernels.scatter_add_rows(target, np.array([0, 3]), np.ones((2, 2)))
    np.testing.assert_array_equal(target, 0)  # nothing written before the error


@settings(max_examples=40, deadline=None)
@given(out=_float_arrays(max_dims=4), seed=st.integers(0, 2**31))
def test_add_bias_gives_numpys_bits(out, seed) -> None:
    from chainrule.kernels import bias as bias_module

    out = np.atleast_1d(out)  # a layer's output has its feature axis
    bias = np.random.default_rng(seed).standard_normal(out.shape[-1:]).astype(out.dtype)
    with pytest.MonkeyPatch.context() as patch:  # every size through the loops
        patch.setattr(bias_module, "MIN_SIZE", 0)
        compare("add_bias", out, bias, exact=True, in_place=True)
    big = np.random.default_rng(seed).standard_normal((300, 257)).astype(out.dtype)
    compare("add_bias", big, big[0].copy(), exact=True, in_place=True)  # over MIN_SIZE


def _gates(rng, gates, steps, batch, hidden, dtype):
    """Gate-major pre-activations and step-major rows, as ops/recurrent.py keeps them."""
    acts = rng.standard_normal((gates, steps, batch, hidden)).astype(dtype)
    rows = rng.standard_normal((batch, gates * hidden)).astype(dtype)
    return acts, rows


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 6), hidden=st.integers(1, 9), steps=st.integers(1, 3),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**31))
def test_recurrent_steps(batch, hidden, steps, dtype, seed) -> None:
    rng = np.random.default_rng(seed)
    tol = {"rtol": FLOAT_RTOL[dtype], "atol": FLOAT_ATOL[dtype]}
    t = steps - 1  # a step's views into the (gates, T, B, H) array, as the ops pass them

    def state():
        return rng.standard_normal((batch, hidden)).astype(dtype)

    acts, gh = _gates(rng, 3, steps, batch, hidden, dtype)
    b_hn = rng.standard_normal(hidden).astype(dtype)
    compare("gru_step", acts[:, t], gh, b_hn, state(), state(), state(), in_place=True, **tol)
    d_gi, d_gh = (np.empty((batch, 3 * hidden), dtype) for _ in range(2))
    gates = 0.5 * (1 + np.tanh(acts[:, t]))  # r, z in (0, 1) as forward leaves them
    compare("gru_step_grad", state(), state(), state(), gates, state(), state(), d_gi, d_gh,
            in_place=True, **tol)
    acts, gh = _gates(rng, 4, steps, batch, hidden, dtype)
    compare("lstm_step", acts[:, t], gh, state(), state(), state(), state(), in_place=True,
            **tol)
    d = np.empty((batch, 4 * hidden), dtype)
    gates = 0.5 * (1 + np.tanh(acts[:, t]))
    compare("lstm_step_grad", state(), state(), state(), state(), gates, np.tanh(state()),
            state(), d, in_place=True, **tol)


def test_recurrent_steps_take_broadcast_and_strided_inputs() -> None:
    """The loops see flat contiguous copies of inputs that are not; outputs that are not
    contiguous send the call to the reference."""
    rng = np.random.default_rng(3)
    batch, hidden = 4, 5
    gates = 0.5 * (1 + np.tanh(rng.standard_normal((3, batch, hidden))))
    grad = np.broadcast_to(np.float64(1.0), (batch, hidden))
    h_prev = rng.standard_normal((hidden, batch)).T
    args = (grad, np.zeros((batch, hidden)), rng.standard_normal((batch, hidden)), gates,
            h_prev, rng.standard_normal((batch, hidden)), np.empty((batch, 3 * hidden)),
            np.empty((batch, 3 * hidden)))
    compare("gru_step_grad", *args, in_place=True, rtol=1e-13, atol=1e-14)
    strided_out = np.empty((batch, 6 * hidden))[:, ::2]
    compare("gru_step_grad", *args[:6], strided_out, args[7], in_place=True, rtol=1e-13,
            atol=1e-14)


@NUMBA
def test_the_compiled_path_really_runs_and_use_switches_it(monkeypatch) -> None:
    """With numba the kernels call their loops; kernels.use('numpy') sends every call to the
    reference; both give the same numbers through an op."""
    a = cr.tensor(RNG.standard_normal((3, 4)), requires_grad=True)
    called = []
    loops = kernels.gelu.loops
    monkeypatch.setattr(loops, "_compiled", None)
    original = loops._compile
    monkeypatch.setattr(loops, "_compile", lambda: called.append(1) or original())
    fast = F.gelu(a, approximate="tanh")
    fast.sum().backward()
    assert called, "the compiled loops did not run"
    fast_grad, a.grad = a.grad.copy(), None
    try:
        kernels.use("numpy")
        assert kernels.backend() == "numpy"
        called.clear()
        monkeypatch.setattr(loops, "_compiled", None)
        plain = F.gelu(a, approximate="tanh")
        plain.sum().backward()
        assert not called
    finally:
        kernels.use("numba")
    np.testing.assert_allclose(fast.data, plain.data, rtol=1e-13)
    np.testing.assert_allclose(fast_grad, a.grad, rtol=1e-13)
    with pytest.raises(ValueError, match="backend must be one of"):
        kernels.use("cuda")


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment, timeout=300, check=False)


def test_without_numba_the_references_run_after_one_notice() -> None:
    """numba missing (its import fails): one RuntimeWarning naming the fix, same numbers."""
    code = """
import sys, warnings
sys.modules["numba"] = None  # makes `import numba` raise ImportError
import numpy as np
from chainrule import kernels
a = np.linspace(-3, 3, 7)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    first = kernels.gelu(a, "tanh")
    again = kernels.gelu_grad(a, a, "tanh")
notices = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
assert len(notices) == 1, notices
assert "pip install numba" in notices[0] and "CHAINRULE_KERNELS=numpy" in notices[0]
assert kernels.backend() == "numpy"
np.testing.assert_array_equal(first, kernels.gelu_reference(a, "tanh"))
print("ok")
"""
    result = _run(code, CHAINRULE_KERNELS="")  # the default choice, whatever CI chose
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@NUMBA
def test_numba_disable_jit_runs_the_loops_as_python() -> None:
    """NUMBA_DISABLE_JIT=1 (the documented debugging switch): the loops run as the plain
    Python they are, a breakpoint inside them works, and the results are the same."""
    code = """
import numpy as np
from chainrule import kernels
from chainrule.kernels import layernorm, softmax
x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
out = kernels.layer_norm(x, None, None, 1e-5)[0]
ref = kernels.layer_norm_reference(x, None, None, 1e-5)[0]
assert np.allclose(out, ref, rtol=1e-5, atol=1e-6)
s = x.reshape(1, 3, 5).copy()
assert np.allclose(kernels.softmax_columns(s.copy(), 0.5, True),
                   kernels.softmax_columns_reference(s.copy(), 0.5, True), atol=1e-6)
assert np.allclose(kernels.gelu(x, "tanh"), kernels.gelu_reference(x, "tanh"), atol=1e-6)
compiled = layernorm._layer_norm_loops._compiled
print(type(compiled).__name__, kernels.backend())
"""
    result = _run(code, NUMBA_DISABLE_JIT="1", CHAINRULE_KERNELS="numba")
    assert result.returncode == 0, result.stderr
    kind, backend = result.stdout.split()
    assert backend == "numba" and kind == "function", result.stdout  # plain Python, no JIT


@NUMBA
def test_the_parallel_loops_give_the_serial_bits(monkeypatch) -> None:
    """use_parallel(True): the prange loops on numba's threads, each iteration independent,
    so every kernel written over prange gives the serial form's bits."""
    monkeypatch.setattr(jit, "PARALLEL_MIN_ELEMENTS", 0)  # small arrays through threads too
    rng = np.random.default_rng(8)
    images = rng.standard_normal((3, 6, 6, 5)).astype(np.float32).round(1)
    sign = np.array([1, -1, 1, 1, -1], np.float32)
    mean, b, c = (rng.standard_normal(5).astype(np.float32) for _ in range(3))
    scaled = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
    x, w = (rng.standard_normal((4, 9)).astype(np.float32) for _ in range(2))
    grad_rows = rng.standard_normal((3 * 16, 4)).astype(np.float32)
    w_rows = rng.standard_normal((4, 9 * 5)).astype(np.float32)
    p, g, m, v = (rng.standard_normal(500).astype(np.float32) for _ in range(4))
    v = np.abs(v)

    def run() -> list:
        best, larger = kernels.signed_window_max(images, sign, (2, 2), (2, 2), (3, 3))
        results = [best, larger,
                   kernels.pooled_input_grad(images, mean, b, c, scaled, larger, (2, 2),
                                             (2, 2), (3, 3)),
                   kernels.pooled_input_grad(images, mean, b, c, scaled, larger, (2, 2),
                                             (1, 1), (3, 3)),  # overlapping windows
                   kernels.conv_input_grad(grad_rows, w_rows, (3, 6, 6, 5), (3, 3), (1, 1),
                                           (1, 1), (4, 4), 1),
                   *kernels.layer_norm(x, w[0], w[1], 1e-5),
                   kernels.normalise(x, w[0], w[1], w[2]), kernels.normalise(x, w[0], w[1], None)]
        arrays = [a.copy() for a in (p, g, m, v)]
        kernels.adam_update(*arrays, 1e-3, 0.9, 0.999, 1e-8, 0.1, True, 3)
        momentum = m.copy()
        kernels.sgd_update(arrays[0], g, momentum, 0.01, 0.9, 0.0, 1e-4, True, False)
        return results + arrays + [momentum]

    jit.use_parallel(False)
    try:
        serial = run()
        jit.use_parallel(True)
        assert kernels.parallel()
        threaded = run()
        compiled = kernels.signed_window_max.loops._compiled_parallel
        assert compiled is not None and compiled.targetoptions.get("parallel")
    finally:
        jit.use_parallel(None)
    for one, other in zip(serial, threaded):
        np.testing.assert_array_equal(one, other)


def test_use_parallel_and_its_environment_variable(monkeypatch) -> None:
    with pytest.raises(ValueError, match="True, False or None"):
        jit.use_parallel("yes")
    monkeypatch.setattr(jit, "_parallel", None)
    for value, expected in (("1", True), ("0", False),
                            ("", kernels.num_threads() >= jit.PARALLEL_MIN_THREADS)):
        monkeypatch.setattr(jit, "_parallel_default", None)  # read once per process
        monkeypatch.setenv("CHAINRULE_PARALLEL_KERNELS", value)
        assert kernels.parallel() is expected
    jit.use_parallel(True)  # the call wins over the environment
    assert kernels.parallel()
    jit.use_parallel(None)


def test_the_environment_chooses_the_references_and_a_bad_value_warns() -> None:
    code = "from chainrule import kernels; print(kernels.backend())"
    chosen = _run(code, CHAINRULE_KERNELS="numpy")
    assert chosen.returncode == 0 and chosen.stdout.strip() == "numpy", chosen.stderr
    assert "RuntimeWarning" not in chosen.stderr
    bad = _run(code, CHAINRULE_KERNELS="fortran")
    assert bad.returncode == 0 and "CHAINRULE_KERNELS='fortran' is not one of" in bad.stderr


@NUMBA
def test_loops_numba_cannot_compile_fall_back_to_the_reference_with_a_notice() -> None:
    @jit.loops
    def _bad_loops(a, out):
        out[0] = {"a dict": a}  # numba cannot type this

    def thing_reference(a: np.ndarray) -> np.ndarray:
        return a * 2

    @jit.kernel(_bad_loops, thing_reference)
    def thing(a: np.ndarray) -> np.ndarray:
        out = np.empty_like(a)
        _bad_loops(a, out)
        return out

    a = np.arange(4.0)
    with pytest.warns(RuntimeWarning, match="numba failed on _bad_loops"):
        np.testing.assert_array_equal(thing(a), a * 2)
    np.testing.assert_array_equal(thing(a), a * 2)  # no second notice: off for good
    assert inspect.signature(thing) == inspect.signature(thing_reference)


@NUMBA
def test_reassociate_sets_only_numbas_reassoc_flag_and_sums_within_rounding() -> None:
    @jit.loops(reassociate=True)
    def _row_sums(x, out):
        for r in range(x.shape[0]):
            total = 0.0
            for j in range(x.shape[1]):
                total += x[r, j]
            out[r] = total

    x = np.random.default_rng(3).standard_normal((7, 1000))
    out = np.empty(7)
    _row_sums(x, out)
    assert _row_sums._compiled.targetoptions["fastmath"] == {"reassoc"}
    np.testing.assert_allclose(out, x.sum(axis=1), rtol=1e-12, atol=1e-12)
    assert not jit.loops(_row_sums.function).reassociate


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_and_adam_against_their_references(dtype) -> None:
    """The seam's own check; tests/test_compiled_norm_update.py fuzzes them further."""
    rng = np.random.default_rng(7)
    tol = {"rtol": FLOAT_RTOL[dtype] * 10, "atol": FLOAT_ATOL[dtype] * 10}
    x, g = (rng.standard_normal((5, 3, 8)).astype(dtype) for _ in range(2))
    w, b = (rng.standard_normal(8).astype(dtype) for _ in range(2))
    out, mean, inv_std = compare("layer_norm", x, w, b, 1e-5, **tol)
    compare("layer_norm_grad", g, x, mean, inv_std, w, True, True, True, **tol)
    compare("layer_norm_grad", g, x, mean, inv_std, None, True, False, True, **tol)
    p, grad, m = (rng.standard_normal(1000).astype(dtype) for _ in range(3))
    v = rng.random(1000).astype(dtype)
    compare("adam_update", p, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.1, True, 3, exact=True,
            in_place=True)


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from([np.float32, np.float64]), size=st.integers(0, 300),
       momentum=st.sampled_from([0.0, 0.9]), dampening=st.sampled_from([0.0, 0.3]),
       weight_decay=st.sampled_from([0.0, 0.05]), nesterov=st.booleans(), first=st.booleans(),
       strided=st.booleans(), seed=st.integers(0, 2**31))
def test_sgd_update_gives_the_references_bits(dtype, size, momentum, dampening, weight_decay,
                                              nesterov, first, strided, seed) -> None:
    """Every option of torch's SGD (momentum, dampening, Nesterov, L2, the buffer's first
    step), float32 and float64; strided arrays go through the blocked passes."""
    if nesterov and (momentum == 0 or dampening != 0):
        nesterov = False  # SGD refuses that combination before any kernel sees it
    rng = np.random.default_rng(seed)
    p, g, buf = (rng.standard_normal(size).astype(dtype) for _ in range(3))
    settings_ = (0.01, momentum, dampening, weight_decay, nesterov, first)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(update, "SGD_MIN_SIZE", 0)  # every size through the loop
        _sgd_checks(p, g, buf, momentum, settings_, strided)


def _sgd_checks(p, g, buf, momentum, settings_, strided) -> None:
    compare("sgd_update", p, g, buf if momentum else None, *settings_, exact=True,
            in_place=True)
    if strided:  # views every other element of bigger arrays (compare would copy them)
        wide = [np.repeat(a, 2) for a in (p, g, buf)]
        views = [w[::2] for w in wide]
        plain = [a.copy() for a in (p, g, buf)]
        kernels.sgd_update(views[0], views[1], views[2] if momentum else None, *settings_)
        kernels.sgd_update_reference(plain[0], plain[1], plain[2] if momentum else None,
                                     *settings_)
        for view, expected in zip(views, plain):
            np.testing.assert_array_equal(view, expected)


# ---------------------------------------------------------------------- MKL products
MKL = pytest.mark.skipif(not mkl.available(), reason="the mkl wheel is not installed")


def _layouts(rng, shape, dtype):
    """The same matrix (or stack) as a C array, a transposed view, strided slices, and for a
    stack the heads of a (B, T, H, D) array: (B, H) strides that do not step evenly."""
    base = rng.standard_normal(shape).astype(dtype)
    transposed = np.ascontiguousarray(np.swapaxes(base, -1, -2)).swapaxes(-1, -2)
    wide = np.zeros((*shape[:-1], 2 * shape[-1]), dtype)
    wide[..., ::2] = base
    padded = np.zeros((*shape[:-1], shape[-1] + 3), dtype)
    padded[..., :shape[-1]] = base
    layouts = [base, transposed, wide[..., ::2], padded[..., :shape[-1]]]
    if base.ndim >= 3:
        layouts.append(np.ascontiguousarray(np.swapaxes(base, -3, -2)).swapaxes(-3, -2))
        layouts.append(np.swapaxes(np.ascontiguousarray(np.swapaxes(transposed, -3, -1)),
                                   -3, -1))
    return layouts


@MKL
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", [((40, 30), (30, 50)), ((3, 40, 30), (30, 50)),
                                    ((2, 3, 40, 30), (2, 3, 30, 50)), ((40, 30), (3, 30, 50)),
                                    ((2, 3, 40, 30), (30, 50)), ((1, 300), (300, 70)),
                                    ((700, 300), (300, 1))])
def test_mkl_products_in_every_layout(dtype, shapes) -> None:
    rng = np.random.default_rng(5)
    tol = {"rtol": FLOAT_RTOL[dtype] * 10, "atol": FLOAT_ATOL[dtype] * 100}
    taken = 0
    for a in _layouts(rng, shapes[0], dtype):
        for b in _layouts(rng, shapes[1], dtype):
            out = mkl.matmul(a, b)
            if out is not None:
                taken += 1
                assert out.shape == np.matmul(a, b).shape and out.dtype == dtype
                np.testing.assert_allclose(out, np.matmul(a, b), **tol)
            compare("matmul", a, b, **tol)
    assert taken >= 4, "MKL took too few of the layouts it is meant for"


@MKL
def test_mkl_leaves_what_it_does_not_take_to_numpy() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((2, 1, 8, 9)), rng.standard_normal((3, 9, 4))  # broadcasting
    assert mkl.matmul(a, b) is None
    assert mkl.matmul(a.astype(np.float32), rng.standard_normal((9, 4))) is None  # mixed
    assert mkl.matmul(rng.standard_normal((9,)), rng.standard_normal((9, 4))) is None  # 1-D
    assert mkl.matmul(rng.standard_normal((0, 9)), rng.standard_normal((9, 4))) is None
    assert mkl.matmul(rng.standard_normal((50, 40))[::-1], rng.standard_normal((40, 30))) is None
    compare("matmul", a, b, rtol=1e-12, atol=1e-12)


def test_chainrule_blas_numpy_turns_mkl_off() -> None:
    code = "from chainrule.kernels import mkl; print(mkl.available(), mkl.library_path())"
    result = _run(code, CHAINRULE_BLAS="numpy")
    assert result.returncode == 0 and result.stdout.split() == ["False", "None"], result.stderr


# ---------------------------------------------------------------------- process settings
def test_importing_chainrule_changes_no_process_setting(tmp_path) -> None:
    script = tmp_path / "imports.py"
    script.write_text(
        "import json, os, sys\n"
        "loaded = []\n"
        "sys.addaudithook(lambda event, args: loaded.append(str(args[0]))\n"
        "                 if event == 'ctypes.dlopen' else None)\n"
        "before = dict(os.environ)\n"
        "import chainrule\n"
        "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())\n"
        "assert not any('libc' in name for name in loaded), loaded\n"
        "assert chainrule.kernels.process._kept is None\n"
        "first = chainrule.kernels.tune_process()\n"
        "assert chainrule.kernels.tune_process() == first\n"
        "assert dict(os.environ) == before\n"
        "print(json.dumps(first))\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "CHAINRULE_KEEP_MEMORY")}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)
    assert settings == {"keep_freed_memory": process._is_glibc(),
                        "openblas_thread_timeout": None}


def test_tune_process_is_idempotent_and_reports_the_blas_spin(monkeypatch) -> None:
    monkeypatch.setattr(process, "_kept", None)
    calls = []
    monkeypatch.setattr(process, "_mallopt_keep", lambda: calls.append(1) or True)
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "4")
    monkeypatch.delenv("CHAINRULE_KEEP_MEMORY", raising=False)
    assert process.tune_process() == {"keep_freed_memory": True,
                                      "openblas_thread_timeout": "4"}
    assert process.tune_process()["keep_freed_memory"] is True
    assert calls == [1]  # mallopt once, however often it is asked
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT")
    assert process.tune_process()["openblas_thread_timeout"] is None


def test_kept_memory_can_be_refused_and_is_skipped_off_glibc(monkeypatch) -> None:
    monkeypatch.setattr(process, "_kept", None)
    monkeypatch.setenv("CHAINRULE_KEEP_MEMORY", "0")
    assert process.keep_freed_memory() is False
    assert process._kept is None  # refused, not tried
    monkeypatch.delenv("CHAINRULE_KEEP_MEMORY")

    def not_glibc(name: str) -> str:
        raise ValueError("unrecognized configuration name")

    monkeypatch.setattr(os, "confstr", not_glibc)
    assert process._is_glibc() is False
    assert process.keep_freed_memory() is False


def test_a_scalar_helpers_numbers_are_part_of_its_loops_cache_names() -> None:
    """numba freezes a scalar helper's module-level numbers into the loops' machine code;
    the cache file's name carries them, so a changed constant compiles afresh."""
    def helper_with(constant: float):
        names = {"SCALE": constant}
        exec("def helper(x):\n    return x * SCALE\n", names)
        return jit.scalar(names["helper"])

    one, two, same = helper_with(1.5), helper_with(2.5), helper_with(1.5)
    digest = jit._code_digest
    assert digest([one.function]) != digest([two.function])
    assert digest([one.function]) == digest([same.function])
    assert one(np.float32(2)) == 3.0  # from Python, it is the plain function


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_gelu_and_its_gradient(dtype) -> None:
    """A Linear's bias and the GELU after it in one pass each (linear_gelu's kernels), over
    more rows than one float32 block of the bias's sums."""
    rng = np.random.default_rng(11)
    h = (rng.standard_normal((150, 37)) * 3).astype(dtype)
    bias, grad = rng.standard_normal(37).astype(dtype), rng.standard_normal(h.shape).astype(dtype)
    tol = {"rtol": FLOAT_RTOL[dtype], "atol": FLOAT_ATOL[dtype] * 10}
    if dtype == np.float32:
        out = compare_exactly_computed("bias_gelu", h, bias, **tol)
        pre = h + bias
        compare_exactly_computed("bias_gelu_grad", grad, pre, **tol)
    else:
        out = compare("bias_gelu", h, bias, **tol)
        pre = h + bias
        compare("bias_gelu_grad", grad, pre, **tol)
    assert out.shape == h.shape and out.dtype == dtype
    plain = h.copy()
    kernels.bias_gelu(plain, bias)
    np.testing.assert_allclose(plain, pre, rtol=1e-6)  # h becomes h + bias, for the backward
    np.testing.assert_allclose(kernels.bias_gelu_grad(grad, pre)[1],
                               kernels.gelu_grad_reference(pre, grad, "tanh").sum(axis=0),
                               rtol=1e-4, atol=1e-4)
