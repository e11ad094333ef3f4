"""benchmarks/distributed.py: the cost model's parts, and a smoke run of the whole script
(two ranks by mpiexec; skipped where the distributed extra is missing)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

from chainrule import distributed

bench = load_benchmark("distributed")
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "distributed.py"


def test_the_ring_model_and_its_fit() -> None:
    alpha, beta = 10e-6, 5e9
    # two ranks: one reduce-scatter step and one all-gather step, each of half the bytes
    assert bench.ring_time(1 << 20, 2, alpha, beta) == pytest.approx(2 * alpha + (1 << 20) / beta)
    assert bench.ring_time(1 << 20, 1, alpha, beta) == 0
    times = {s: 2 * alpha + s / beta for s in bench.SIZES}
    fitted = bench.fit_link(times)
    assert fitted[0] == pytest.approx(alpha, rel=1e-6) and fitted[1] == pytest.approx(beta)
    # 9 MiB of gradients: buckets of 4, 4 and 1 MiB, each an allreduce
    step = bench.step_time(0.0, 9 << 20, 2, alpha, beta)
    assert step == pytest.approx(3 * 2 * alpha + (9 << 20) / beta)


@pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None
                    or distributed.mpiexec_path() is None,
                    reason='needs mpi4py and mpiexec: pip install "chainrule[distributed]"')
def test_a_quick_run_prints_every_table() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in ("allreduce (in place", "fitted: T = 2 alpha", "training throughput",
                     "the model: speed-up on N machines", "10 GbE, assumed",
                     "command: python benchmarks/distributed.py --quick"):
        assert expected in out, out
    assert out.count("\nmlp ") + out.count("\ncnn ") >= 6
