"""A smoke test of benchmarks/kernels.py: every compiled kernel in its table runs, agrees with
its reference, and gets a row; a bad flag is refused."""

from __future__ import annotations

import numpy as np
import pytest
from benchmark_scripts import load_benchmark

from chainrule import kernels

bench = load_benchmark("kernels")


@pytest.mark.skipif(kernels.backend() != "numba", reason="the compiled kernels are off")
def test_every_row_runs_and_is_timed(capsys) -> None:
    rows = bench.main(["--calls", "1"])
    cases = bench.cases(np.random.default_rng(0))
    names = {case[1] for case in cases}
    assert len(rows) == len(cases)
    assert names <= set(kernels.KERNELS)
    assert all(compiled > 0 and reference > 0 for _, compiled, reference in rows)
    out = capsys.readouterr().out
    assert "softmax_columns causal" in out and "command: python benchmarks/kernels.py" in out


def test_calls_must_be_positive() -> None:
    with pytest.raises(SystemExit):
        bench.main(["--calls", "0"])
