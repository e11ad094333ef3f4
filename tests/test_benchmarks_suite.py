"""The suite's measuring parts that are not timings alone: what they count and restore."""

from __future__ import annotations

import numpy as np
import pytest
from benchmark_scripts import load_benchmark

import chainrule as cr

suite = load_benchmark("suite")


def test_products_in_situ_counts_only_the_products_and_restores_matmul() -> None:
    inner = cr.kernels.matmul
    a = np.ones((64, 64), np.float32)
    calls = []

    def products() -> float:
        calls.append(cr.kernels.matmul(a, a))
        return 0.0

    assert suite.products_in_situ(products, repeats=3) > 0
    assert len(calls) == 3 and np.array_equal(calls[0], a @ a)
    assert suite.products_in_situ(lambda: 0.0, repeats=3) == 0.0
    assert cr.kernels.matmul is inner


def test_products_in_situ_restores_matmul_when_the_run_fails() -> None:
    inner = cr.kernels.matmul

    def broken() -> float:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        suite.products_in_situ(broken, repeats=1)
    assert cr.kernels.matmul is inner

