"""A smoke test of benchmarks/fashion_cnn.py: both libraries train the recipe on the same
batches from the same weights, and the table and targets line print."""

from __future__ import annotations

import pytest
from benchmark_scripts import load_benchmark

bench = load_benchmark("fashion_cnn")


def test_a_quick_run_trains_both_and_reports(capsys) -> None:
    result = bench.main(["--quick"])
    assert 0.3 < result["chainrule_accuracy"] <= 1 and 0.3 < result["torch_accuracy"] <= 1
    # the same start, batches and schedule: one epoch leaves them close (dropout differs)
    assert abs(result["chainrule_accuracy"] - result["torch_accuracy"]) < 0.15
    assert result["chainrule_seconds"] > 0 and result["torch_seconds"] > 0
    out = capsys.readouterr().out
    assert "targets (issue 15)" in out and "a smoke run" in out


def test_the_schedule_cycles_lr_and_beta1_against_each_other() -> None:
    values = bench.schedule(100)
    lrs, betas = zip(*values)
    peak = lrs.index(max(lrs))
    assert 0 < peak < 99 and max(lrs) == pytest.approx(3e-3)
    assert betas[peak] == min(betas) and betas[0] == max(betas)


def test_epochs_must_be_positive() -> None:
    with pytest.raises(SystemExit):
        bench.main(["--epochs", "0"])
