"""The compiled LayerNorm and Adam kernels: against their references, through their op and
optimizer, with ``kernels.use("numpy")`` against the default, and against PyTorch."""

from __future__ import annotations

import os
from collections.abc import Callable

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings

import chainrule as cr
from chainrule import kernels, optim
from chainrule.kernels import jit
from chainrule.kernels import layernorm as layer_norm_module
from chainrule.kernels import update as update_module
from chainrule.nn import functional as F

DTYPES = (np.float32, np.float64)
NEEDS = [(True, True, True), (True, False, False), (False, True, True), (False, False, True)]
# Tests that count the compiled loops' calls: not where the environment chooses the references.
compiled_only = pytest.mark.skipif(os.environ.get("CHAINRULE_KERNELS", "").strip().lower()
                                  == "numpy", reason="CHAINRULE_KERNELS=numpy chosen")


@pytest.fixture
def backend(monkeypatch) -> Callable[[str], None]:
    """``backend(name)`` calls ``kernels.use(name)``; the choice is undone after the test."""
    monkeypatch.setattr(jit, "_chosen", jit._chosen)
    return kernels.use


def spy(monkeypatch, module, name: str) -> list[int]:
    """Count the calls of the compiled loops ``module.name`` (they still run)."""
    loops, calls = getattr(module, name), []

    def counted(*args):
        calls.append(1)
        return loops(*args)

    monkeypatch.setattr(module, name, counted)
    return calls


@compiled_only
def test_the_compiled_kernels_run_here() -> None:
    """numba is installed in this environment: the comparisons below are of real loops."""
    assert kernels.backend() == "numba"
    for kernel in (kernels.layer_norm, kernels.layer_norm_grad, kernels.adam_update):
        assert isinstance(kernel.loops, jit.Loops), kernel


# ----------------------------------------------------------------------------- LayerNorm
@st.composite
def layer_norm_inputs(draw) -> tuple:
    """(x, grad, weight, bias, eps): 0 to 2 leading axes (rows 0, 1 or many), C from 1, x
    and grad often strided views, values at an offset."""
    dtype = draw(st.sampled_from(DTYPES))
    # (150,) and (3, 50): more rows than the backward's float32 blocks (FLUSH_ROWS)
    lead = draw(st.sampled_from([(), (0,), (1,), (3,), (0, 4), (2, 5), (40,), (3, 1, 7),
                                 (150,), (3, 50)]))
    c = draw(st.sampled_from([1, 2, 3, 8, 33, 128]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    offset, spread = draw(st.sampled_from([(0.0, 1.0), (5.0, 0.5), (-3.0, 20.0)]))

    def array(shape: tuple, strided: bool) -> np.ndarray:
        if not strided:
            return (rng.standard_normal(shape) * spread + offset).astype(dtype)
        big = (rng.standard_normal((*shape[:-1], 2 * shape[-1])) * spread + offset)
        return big.astype(dtype)[..., ::2]  # every other column of a bigger array

    x = array((*lead, c), draw(st.booleans()))
    if draw(st.booleans()) and x.ndim >= 2:  # rows apart in memory, columns adjacent
        x = np.swapaxes(np.ascontiguousarray(np.swapaxes(x, 0, -2)), 0, -2)
    grad = array(x.shape, draw(st.booleans()))
    weight = rng.standard_normal(c).astype(dtype) if draw(st.booleans()) else None
    bias = rng.standard_normal(c).astype(dtype) if draw(st.booleans()) else None
    return x, grad, weight, bias, draw(st.sampled_from([1e-5, 1e-12, 0.1]))


def biggest(*arrays: np.ndarray | None) -> float:
    """The largest magnitude among the arrays (1 if none)."""
    return max([float(np.abs(a).max(initial=0)) for a in arrays if a is not None] + [1.0])


def agree(fast, plain, scales: list[float], dtype) -> None:
    """Each result of ``fast`` equals ``plain``'s within rounding: a kernel summing in its
    own order (float64 in places) against a reference summing in ``dtype``, to the scale of
    the terms of each result."""
    assert len(fast) == len(plain) == len(scales)
    ulps = 1e-11 if dtype == np.float64 else 2e-5
    for f, p, scale in zip(fast, plain, scales):
        if p is None:
            assert f is None
            continue
        assert f.shape == p.shape and f.dtype == p.dtype, (f.shape, p.shape, f.dtype, p.dtype)
        np.testing.assert_allclose(f, p, rtol=ulps, atol=ulps * scale)


def grad_scales(grad: np.ndarray, xhat: np.ndarray, inv_std: np.ndarray,
                weight: np.ndarray | None) -> list[float]:
    """The terms' scales in layer norm's d/dx, d/d weight and d/d bias."""
    rows = xhat.size // max(xhat.shape[-1], 1)
    terms = biggest(grad) * biggest(weight) * (1 + biggest(xhat) ** 2)
    return [biggest(inv_std) * terms, rows * biggest(grad) * biggest(xhat),
            rows * biggest(grad)]


@settings(max_examples=120)
@given(inputs=layer_norm_inputs(), needs=st.sampled_from(NEEDS))
def test_layer_norm_kernels_match_their_references(inputs, needs) -> None:
    x, grad, weight, bias, eps = inputs
    before = [a.copy() for a in (x, grad)]
    fast = kernels.layer_norm(x, weight, bias, eps)
    plain = kernels.layer_norm_reference(x, weight, bias, eps)
    # centring x loses |x| / std of its ulps: the scale of xhat's rounding
    xhat_scale = biggest(x) * biggest(plain[2])
    out_scale = xhat_scale * biggest(weight) + biggest(bias)
    agree(fast, plain, [out_scale, biggest(x), biggest(plain[2])], x.dtype)
    out, mean, inv_std = fast
    assert mean.shape == inv_std.shape == (*x.shape[:-1], 1)
    back = kernels.layer_norm_grad(grad, x, mean, inv_std, weight, *needs)
    expected = kernels.layer_norm_grad_reference(grad, x, mean, inv_std, weight, *needs)
    xhat = (x - mean) * inv_std
    agree(back, expected, grad_scales(grad, xhat, inv_std, weight), x.dtype)
    for a, b in zip((x, grad), before):
        np.testing.assert_array_equal(a, b)  # the inputs are left alone


@compiled_only
def test_layer_norm_kernels_are_precise_where_the_reference_is_not() -> None:
    """float32 rows far from 0: the kernel's float64 sums keep what float32 sums lose."""
    rng = np.random.default_rng(1)
    x64 = rng.standard_normal((64, 768)) + 3000.0
    x = x64.astype(np.float32)
    exact = kernels.layer_norm_reference(x.astype(np.float64), None, None, 1e-5)[0]
    fast = kernels.layer_norm(x, None, None, 1e-5)[0]
    plain = kernels.layer_norm_reference(x, None, None, 1e-5)[0]
    assert np.abs(fast - exact).max() < np.abs(plain - exact).max()
    assert np.abs(fast - exact).max() < 2e-3  # float32 x at 3000 is itself off by 1.2e-4


@compiled_only
def test_layer_norm_kernels_fall_back_for_other_dtypes(monkeypatch) -> None:
    calls = spy(monkeypatch, layer_norm_module, "_layer_norm_loops")
    grad_calls = spy(monkeypatch, layer_norm_module, "_layer_norm_grad_loops")
    x = np.random.default_rng(2).standard_normal((5, 6)).astype(np.float16)
    w = np.ones(6, np.float16)
    fast = kernels.layer_norm(x, w, None, 1e-5)
    for f, p in zip(fast, kernels.layer_norm_reference(x, w, None, 1e-5)):
        np.testing.assert_array_equal(f, p)
    mixed = kernels.layer_norm(x.astype(np.float32), w.astype(np.float64), None, 1e-5)
    assert mixed[0].dtype == np.float64  # the reference's NumPy promotion
    kernels.layer_norm_grad(x, x, fast[1], fast[2], w, True, True, True)
    assert not calls and not grad_calls
    kernels.layer_norm(x.astype(np.float32), None, None, 1e-5)
    assert calls == [1]


def _through_the_op(x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                    grad: np.ndarray, normalized_shape, transposed: bool = False
                    ) -> list[np.ndarray]:
    """layer_norm's output and the gradients of x, weight, bias (those given) for the
    output's gradient ``grad``; ``transposed``: of x.T, a strided view made on the tape."""
    leaves = [cr.tensor(a.copy(), requires_grad=True) if a is not None else None
              for a in (x, weight, bias)]
    source = leaves[0].T if transposed else leaves[0]
    out = F.layer_norm(source, normalized_shape, leaves[1], leaves[2], eps=1e-5)
    out.backward(grad)
    return [out.data.copy(), *(t.grad for t in leaves if t is not None)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [True, False])
@compiled_only
def test_the_numpy_backend_agrees_through_the_op(monkeypatch, backend, dtype, affine) -> None:
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 9, 32)) * 2 + 1).astype(dtype)
    grad = rng.standard_normal(x.shape).astype(dtype)
    weight, bias = ((rng.standard_normal(32).astype(dtype) for _ in range(2)) if affine
                    else (None, None))
    calls = spy(monkeypatch, layer_norm_module, "_layer_norm_loops")
    grad_calls = spy(monkeypatch, layer_norm_module, "_layer_norm_grad_loops")
    compiled = _through_the_op(x, weight, bias, grad, 32)
    assert calls == [1] and grad_calls == [1]
    backend("numpy")
    plain = _through_the_op(x, weight, bias, grad, (32,))
    assert calls == [1] and grad_calls == [1]  # the references ran
    inv_std = 1 / np.sqrt(x.var(axis=-1) + 1e-5)
    xhat = (x - x.mean(axis=-1, keepdims=True)) * inv_std[..., None]
    scales = grad_scales(grad, xhat, inv_std, weight)
    agree(compiled, plain, [biggest(x, xhat) * biggest(inv_std) * biggest(weight)
                            + biggest(bias), *scales[:1 + 2 * affine]], dtype)
    backend("numba")
    wide = [None if a is None else np.tile(a, (9, 1)) for a in (weight, bias)]
    _through_the_op(x, *wide, grad, (9, 32))  # two axes: the op's own NumPy path
    assert calls == [1] and grad_calls == [1]


def _torch_layer_norm(x, weight, bias, grad, normalized_shape, transposed: bool = False
                      ) -> list[np.ndarray]:
    leaves = [torch.tensor(a.copy(), requires_grad=True) if a is not None else None
              for a in (x, weight, bias)]
    source = leaves[0].T if transposed else leaves[0]
    out = torch.nn.functional.layer_norm(source, normalized_shape, leaves[1], leaves[2],
                                         eps=1e-5)
    out.backward(torch.from_numpy(grad))
    return [out.detach().numpy(), *(t.grad.numpy() for t in leaves if t is not None)]


@pytest.mark.parametrize("shape", [(6, 16), (2, 3, 33), (1, 1), (0, 5), (7, 1)])
@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
def test_layer_norm_gradients_match_torch(shape, affine) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape) * 3 + 2
    grad = rng.standard_normal(shape)
    c = shape[-1]
    weight = rng.standard_normal(c) if affine in ("both", "weight") else None
    bias = rng.standard_normal(c) if affine in ("both", "bias") else None
    ours = _through_the_op(x, weight, bias, grad, c)
    theirs = _torch_layer_norm(x, weight, bias, grad, (c,))
    for mine, expected in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, expected, rtol=1e-10, atol=1e-12)


def test_layer_norm_gradients_match_torch_for_strided_input() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((12, 10)) * 0.5 - 4  # normalised as x.T, (10, 12): strided rows
    grad = rng.standard_normal((12, 10)).T  # a strided gradient too
    weight, bias = rng.standard_normal(12), rng.standard_normal(12)
    ours = _through_the_op(x, weight, bias, grad, 12, transposed=True)
    theirs = _torch_layer_norm(x, weight, bias, np.ascontiguousarray(grad), (12,),
                               transposed=True)
    for mine, expected in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, expected, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- Adam
@st.composite
def adam_inputs(draw) -> tuple:
    """(make, hyperparameters): make() gives fresh param, grad, exp_avg, exp_avg_sq of one
    shape, dtype and layout (C order, Fortran order or a stepped view), the same each call."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.sampled_from([(0,), (1,), (7,), (3, 5), (300,), (2, 3, 40)]))
    layout = draw(st.sampled_from(["C", "F", "stepped"]))
    seed = draw(st.integers(0, 2**32 - 1))

    def array(rng: np.random.Generator, positive: bool = False) -> np.ndarray:
        a = rng.standard_normal((*shape[:-1], 2 * shape[-1])).astype(dtype)
        a = np.abs(a) if positive else a
        if layout == "stepped":
            return a[..., ::2]
        a = a[..., :shape[-1]]
        return np.asfortranarray(a) if layout == "F" else np.ascontiguousarray(a)

    def make() -> tuple:
        rng = np.random.default_rng(seed)
        return array(rng), array(rng), array(rng), array(rng, positive=True)

    lr = draw(st.sampled_from([0.0, 1e-3, 0.1]))
    betas = draw(st.sampled_from([(0.9, 0.999), (0.0, 0.5), (0.5, 0.0)]))
    eps = draw(st.sampled_from([1e-8, 1e-3]))
    weight_decay = draw(st.sampled_from([0.0, 0.01, 0.5]))
    return make, (lr, *betas, eps, weight_decay, draw(st.booleans()), draw(st.integers(1, 9)))


@settings(max_examples=120)
@given(inputs=adam_inputs())
def test_adam_update_gives_the_reference_bits(inputs) -> None:
    make, hyper = inputs
    arrays, fast, plain = make(), make(), make()
    kernels.adam_update(*fast, *hyper)
    kernels.adam_update_reference(*plain, *hyper)
    for f, p, original in zip(fast, plain, arrays):
        assert f.dtype == original.dtype and f.strides == original.strides
        np.testing.assert_array_equal(f, p)
    np.testing.assert_array_equal(fast[1], arrays[1])  # the gradient is left alone


@compiled_only
def test_adam_update_runs_the_loops_only_where_they_fit(monkeypatch, backend) -> None:
    calls = spy(monkeypatch, update_module, "_adam_loops")
    rng = np.random.default_rng(6)
    hyper = (0.1, 0.9, 0.999, 1e-8, 0.1, True, 2)

    def step(dtype, order: str = "C") -> None:
        arrays = [np.abs(rng.standard_normal((20, 30))).astype(dtype, order=order)
                  for _ in range(4)]
        plain = [a.copy(order="K") for a in arrays]
        kernels.adam_update(*arrays, *hyper)
        kernels.adam_update_reference(*plain, *hyper)
        for f, p in zip(arrays, plain):
            np.testing.assert_array_equal(f, p)

    step(np.float32)
    assert len(calls) == 1
    step(np.float16)
    step(np.float64, "F")
    backend("numpy")
    step(np.float64)
    assert len(calls) == 1


def _params(seed: int, shapes: list[tuple], order: str = "C") -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.asarray(rng.standard_normal(s), order=order) for s in shapes]


ADAMS = [("Adam", {"lr": 0.01}), ("Adam", {"lr": 0.05, "weight_decay": 0.1}),
         ("Adam", {"lr": 0.1, "betas": (0.5, 0.9), "eps": 1e-3}),
         ("AdamW", {"lr": 0.01}), ("AdamW", {"lr": 0.05, "weight_decay": 0.3}),
         ("AdamW", {"lr": 0.1, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.0})]


@pytest.fixture
def torch_on_one_thread():
    """torch's Adam on its threads gave other bits (by 1e-12 relative) from one process to
    the next, 1 to 4 runs in 16 on this machine; on one thread it gives the same every time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("kind, kwargs", ADAMS)
@pytest.mark.parametrize("order", ["C", "F"])
def test_adam_and_adamw_match_torch(kind, kwargs, order, torch_on_one_thread) -> None:
    shapes = [(64, 33), (500,), (3, 1, 7), (1,)]
    starts = _params(7, shapes, order)
    ours = [cr.tensor(a.copy(order="K"), requires_grad=True) for a in starts]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in starts]
    opt = getattr(optim, kind)(ours, **kwargs)
    reference = getattr(torch.optim, kind)(theirs, **kwargs)
    for step in range(6):
        for p, q, g in zip(ours, theirs, _params(100 + step, shapes, order)):
            p.grad, q.grad = g.copy(order="K"), torch.from_numpy(g.copy())
        opt.step()
        reference.step()
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12, atol=1e-14,
                                       err_msg=f"{kind} {kwargs} step {step}")


@compiled_only
@pytest.mark.parametrize("kind", ["Adam", "AdamW"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_numpy_backend_gives_the_optimizers_the_same_bits(monkeypatch, backend, kind,
                                                              dtype) -> None:
    calls = spy(monkeypatch, update_module, "_adam_loops")

    def run() -> list[np.ndarray]:
        params = [cr.tensor(a.astype(dtype), requires_grad=True)
                  for a in _params(8, [(40, 50), (9,)])]
        opt = getattr(optim, kind)(params, lr=0.05, weight_decay=0.2)
        for step in range(4):
            for p, g in zip(params, _params(200 + step, [(40, 50), (9,)])):
                p.grad = g.astype(dtype)
            opt.step()
        return [p.data for p in params] + [v for s in opt.state.values()
                                           for v in s.values() if isinstance(v, np.ndarray)]

    compiled = run()
    assert len(calls) == 8
    backend("numpy")
    plain = run()
    assert len(calls) == 8
    for f, p in zip(compiled, plain, strict=True):
        np.testing.assert_array_equal(f, p)
