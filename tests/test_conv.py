"""Conv and pooling internals: ties, memory layouts and threads change nothing but speed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import nn, parallel
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
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 0)  # split even these small arrays
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
        parallel.num_threads()


def test_work_runs_once_per_slice_and_errors_surface(monkeypatch) -> None:
    monkeypatch.setenv("CHAINRULE_NUM_THREADS", "2")
    seen = []
    parallel.over_batch(10, lambda lo, hi: seen.append((lo, hi)), elements=1 << 20)
    assert sorted(seen) == [(0, 5), (5, 10)]

    def fail(lo: int, hi: int) -> None:
        raise RuntimeError(f"slice {lo}:{hi}")

    with pytest.raises(RuntimeError, match="slice"):
        parallel.over_batch(10, fail, elements=1 << 20)
