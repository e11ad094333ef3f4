"""The op profiler: per-op forward/backward time, exclusive of nested ops, classes restored."""

from __future__ import annotations

import time

import numpy as np
import pytest

import chainrule as cr
from chainrule import models
from chainrule.engine.function import _REGISTRY
from chainrule.nn import functional as F
from chainrule.ops.linalg import LinearOp


def test_a_training_step_is_split_by_op_and_pass() -> None:
    cr.manual_seed(0)
    model = cr.nn.fuse(models.mlp(in_features=6, hidden=(5,), classes=3))
    x, y = cr.tensor(np.ones((4, 6), np.float32)), np.array([0, 1, 2, 0])
    with cr.profiler.profile() as prof:
        for _ in range(3):
            F.cross_entropy(model(x), y).backward()
    assert prof.calls[("linear_relu", "forward")] == 3
    assert prof.calls[("linear", "backward")] == 3
    assert prof.calls[("cross_entropy", "backward")] == 3
    table = prof.table(per=3)
    assert table.splitlines()[0].split() == ["op", "pass", "ms", "share", "calls"]
    assert "linear_relu" in table and "of the block's" in table
    assert sum(prof.seconds.values()) <= prof.wall
    assert "run" not in LinearOp.__dict__["forward"].__func__.__qualname__  # restored


class Outer(cr.Function):
    """An op whose forward runs another op's forward inside it, and sleeps itself."""

    name = "profiler_test_outer"

    @staticmethod
    def forward(ctx: cr.Context, a: np.ndarray) -> np.ndarray:
        out = Sleepy.forward(ctx, a)
        time.sleep(0.01)
        return out

    @staticmethod
    def backward(ctx: cr.Context, grad: np.ndarray) -> np.ndarray:
        return grad


class Sleepy(cr.Function):
    name = "profiler_test_sleepy"

    @staticmethod
    def forward(ctx: cr.Context, a: np.ndarray) -> np.ndarray:
        time.sleep(0.03)
        return a.copy()

    @staticmethod
    def backward(ctx: cr.Context, grad: np.ndarray) -> np.ndarray:
        return grad


@pytest.fixture(scope="module", autouse=True)
def _unregister_test_ops():
    yield
    for name in ("profiler_test_outer", "profiler_test_sleepy"):
        _REGISTRY.pop(name, None)


def test_nested_ops_count_only_their_own_time() -> None:
    with cr.profiler.profile() as prof:
        Outer.apply(cr.tensor([1.0]))
    inner = prof.seconds[("profiler_test_sleepy", "forward")]
    outer = prof.seconds[("profiler_test_outer", "forward")]
    assert inner >= 0.03 and 0.01 <= outer < 0.03  # the outer row excludes the inner sleep
    assert inner + outer <= prof.wall


def test_profiles_do_not_nest_and_per_must_be_positive() -> None:
    with cr.profiler.profile() as prof, pytest.raises(RuntimeError, match="already running"):
        cr.profiler.profile().__enter__()
    with pytest.raises(ValueError, match="per must be a positive"):
        prof.table(per=0)
