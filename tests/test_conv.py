"""Conv and pooling internals: ties, memory layouts and threads change nothing but speed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import kernels, nn
from chainrule.ops.conv import conv2d, max_pool2d

RNG = np.random.default_rng(0)


def run(fn, *arrays):
    """Forward value and every input's gradient (upstream: a fixed random array)."""
    tensors = [cr.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    upstream = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(upstream)
    return out.data, [t.grad for t in tensors], upstream


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), (3, 1, 1),
                                                     (2, 2, 1)])
def test_max_pool_sends_ties_to_the_first_maximum_like_torch(kernel, stride, padding) -> None:
    # After a ReLU most windows hold several zeros: ties are the rule, not the exception.
    x = np.maximum(RNG.standard_normal((2, 3, 7, 6)), 0).round(1)
    out, (grad,), upstream = run(lambda t: max_pool2d(t, kernel, stride, padding), x)
    tx = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.max_pool2d(tx, kernel, stride, padding)
    expected.backward(torch.tensor(upstream))
    np.testing.assert_array_equal(out, expected.detach().numpy())
    np.testing.assert_array_equal(grad, tx.grad.numpy())


def test_channels_last_and_channels_first_inputs_give_the_same_numbers() -> None:
    x = RNG.standard_normal((3, 4, 9, 8))
    w, b = RNG.standard_normal((5, 4, 3, 3)), RNG.standard_normal(5)
    channels_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    first = run(lambda *t: conv2d(*t, padding=1), x, w, b)
    last = run(lambda *t: conv2d(*t, padding=1), channels_last, w, b)
    np.testing.assert_allclose(first[0], last[0], rtol=1e-12)
    for a, b_ in zip(first[1], last[1]):
        np.testing.assert_allclose(a, b_, rtol=1e-12)


def test_threads_change_nothing(monkeypatch) -> None:
    monkeypatch.setattr(kernels.threads, "MIN_ELEMENTS", 0)  # split even these small arrays
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, dtype="float64"), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(8, 4, 3, stride=2, dtype="float64"),
                          nn.AvgPool2d(2, stride=1))
    x = RNG.standard_normal((5, 3, 12, 12))
    results = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("CHAINRULE_NUM_THREADS", threads)
        model.zero_grad()
        out, (grad,), _ = run(model, x)
        results.append((out, grad, [p.grad.copy() for p in model.parameters()]))
    for out, grad, params in results[1:]:
        np.testing.assert_array_equal(out, results[0][0])
        np.testing.assert_array_equal(grad, results[0][1])
        for mine, first in zip(params, results[0][2]):
            np.testing.assert_allclose(mine, first, rtol=1e-12)


def test_a_bad_thread_setting_is_named(monkeypatch) -> None:
    monkeypatch.setenv("CHAINRULE_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="CHAINRULE_NUM_THREADS must be a whole number"):
        kernels.threads.num_threads()


def test_work_runs_once_per_slice_and_errors_surface(monkeypatch) -> None:
    monkeypatch.setenv("CHAINRULE_NUM_THREADS", "2")
    seen = []
    kernels.threads.over_batch(10, lambda lo, hi: seen.append((lo, hi)), elements=1 << 20)
    assert sorted(seen) == [(0, 5), (5, 10)]

    def fail(lo: int, hi: int) -> None:
        raise RuntimeError(f"slice {lo}:{hi}")

    with pytest.raises(RuntimeError, match="slice"):
        kernels.threads.over_batch(10, fail, elements=1 << 20)


def test_empty_batches_pass_through_conv_and_pooling_like_torch() -> None:
    for fn in (lambda t: conv2d(t, cr.randn(4, 3, 3, 3), padding=1),
               lambda t: max_pool2d(t, 2), lambda t: cr.ops.avg_pool2d(t, 2)):
        x = cr.zeros(0, 3, 8, 8, requires_grad=True)
        out = fn(x)
        out.sum().backward()
        assert out.shape[0] == 0 and x.grad.shape == (0, 3, 8, 8)


def test_a_nan_wins_its_max_pool_window_like_torch() -> None:
    x = np.arange(32.0).reshape(1, 2, 4, 4)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = x[0, 1, 3, 3] = np.nan
    out, (grad,), upstream = run(lambda t: max_pool2d(t, 2), x)
    tx = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.max_pool2d(tx, 2)
    expected.backward(torch.tensor(upstream))
    np.testing.assert_array_equal(out, expected.detach().numpy())  # NaN == NaN here
    np.testing.assert_array_equal(grad, tx.grad.numpy())


def small_blocks(monkeypatch, threads: str) -> None:
    """Force many blocks split over several threads, even for test-sized arrays."""
    monkeypatch.setattr(kernels.threads, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(kernels.threads, "BLOCK_BYTES", 256)
    monkeypatch.setenv("CHAINRULE_NUM_THREADS", threads)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_norm_in_many_blocks_on_many_threads_matches_torch(monkeypatch, dtype) -> None:
    small_blocks(monkeypatch, "3")
    layer = nn.BatchNorm2d(4, dtype=dtype)
    x = (RNG.standard_normal((7, 4, 5, 3)) * 3 + 10).astype(dtype)
    x[0, :, 0, 0] = 1000  # an outlier first: no shortcut in the variance may lose it
    twin = torch.nn.BatchNorm2d(4).to(torch.float64)
    out, (grad,), upstream = run(layer, x)
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    expected = twin(tx)
    expected.backward(torch.tensor(upstream))
    tol = 1e-10 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.running_var.data, twin.running_var.numpy(), rtol=tol)


def test_blocked_sums_give_the_same_bits_every_time(monkeypatch) -> None:
    small_blocks(monkeypatch, "4")
    values = RNG.standard_normal((1000, 3))
    sums = {kernels.threads.blocked_sum(len(values), lambda lo, hi: values[lo:hi].sum(axis=0),
                                 values.size, values.strides[0]).tobytes() for _ in range(50)}
    assert len(sums) == 1


def test_every_slice_finishes_and_the_lowest_failure_is_raised(monkeypatch) -> None:
    import threading
    import time

    monkeypatch.setenv("CHAINRULE_NUM_THREADS", "3")
    done, lock = [], threading.Lock()

    def work(lo: int, hi: int) -> None:
        if lo == 0:
            raise ValueError("slice 0")
        time.sleep(0.05)
        with lock:
            done.append(lo)
        raise KeyError(f"slice {lo}")

    with pytest.raises(ValueError, match="slice 0"):
        kernels.threads.over_batch(9, work, elements=1 << 20)
    assert sorted(done) == [3, 6]  # the workers ran to their end before the error came back


def test_a_forked_child_can_still_pool(tmp_path) -> None:
    import subprocess
    import sys

    script = tmp_path / "fork.py"
    script.write_text(
        "import os, sys\n"
        "import chainrule as cr\n"
        "from chainrule.ops.conv import max_pool2d\n"
        "x = cr.randn(64, 16, 28, 28)\n"
        "max_pool2d(x, 2)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    max_pool2d(x, 2)\n"
        "    os._exit(0)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "sys.exit(os.waitstatus_to_exitcode(status))\n")
    result = subprocess.run([sys.executable, str(script)], timeout=60,
                            env={**__import__("os").environ, "CHAINRULE_NUM_THREADS": "2"})
    assert result.returncode == 0


def test_small_products_on_one_blas_thread_count_batched_operands() -> None:
    a = RNG.standard_normal((4, 5))
    b = RNG.standard_normal((3, 5, 2))
    np.testing.assert_allclose(kernels.blas.matmul(a, b), a @ b)
    control = kernels.blas.blas_threads()
    if control is not None:  # the thread count comes back after the product
        before = control[0]()
        kernels.blas.matmul(a, b)
        assert control[0]() == before
