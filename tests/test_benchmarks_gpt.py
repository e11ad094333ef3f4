"""A smoke test of benchmarks/gpt_shakespeare.py's parts, on a tiny GPT: the schedule written
for torch is chainrule's, the pair starts equal and trains alike, the flags and the table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from benchmark_scripts import load_benchmark

import chainrule as cr
from chainrule import optim
from chainrule.data.text import TextDataset, load_text_dataset

bench = load_benchmark("gpt_shakespeare")
TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4)


@pytest.fixture(scope="module")
def shakespeare() -> TextDataset:
    return load_text_dataset("shakespeare-char")


@pytest.fixture
def threads_restored(monkeypatch: pytest.MonkeyPatch):
    """main(--threads) sets process-wide thread counts: put them back afterwards."""
    monkeypatch.delenv("CHAINRULE_NUM_THREADS", raising=False)
    torch_threads = torch.get_num_threads()
    blas = cr.kernels.blas_threads()
    blas_threads = blas[0]() if blas else None
    yield
    torch.set_num_threads(torch_threads)
    if blas:
        blas[1](blas_threads)


def test_the_torch_schedule_is_chainrules_warmup_cosine() -> None:
    for iters in (2000, 30, 1):
        config = bench.Config(iters=iters)
        warmup = config.warmup_steps()
        assert warmup == (100 if iters == 2000 else iters // 20)
        opt = optim.AdamW([cr.zeros(3, requires_grad=True)], lr=config.lr)
        schedule = optim.WarmupCosineLR(opt, warmup, iters, eta_min=config.min_lr)
        for step in range(iters + 2):
            assert math.isclose(opt.param_groups[0]["lr"], bench.nanogpt_lr(step, config),
                                rel_tol=1e-12), (iters, step)
            schedule.step()
    config = bench.Config()
    assert bench.nanogpt_lr(0, config) == pytest.approx(1e-3 / 101)
    assert bench.nanogpt_lr(100, config) == pytest.approx(1e-3)
    assert bench.nanogpt_lr(2000, config) == pytest.approx(1e-4)


def test_the_pair_starts_with_the_same_weights_held_apart() -> None:
    config = bench.Config(**TINY)
    ours, twin = bench.build_pair(11, config, seed=3)
    idx = np.random.default_rng(0).integers(0, 11, (2, 16))
    with cr.no_grad(), torch.no_grad():
        np.testing.assert_allclose(ours(idx).data, twin(torch.from_numpy(idx)).numpy(),
                                   rtol=1e-4, atol=1e-6)
    twin.transformer.wte.weight.data.zero_()  # a copy, not a view of chainrule's weights
    assert ours.transformer.wte.weight.data.any()
    assert twin.lm_head.weight is twin.transformer.wte.weight  # tied as nanoGPT's
    again, _ = bench.build_pair(11, config, seed=3)
    assert all(np.array_equal(v, again.state_dict()[k]) for k, v in ours.state_dict().items())
    decayed, plain = bench.decay_groups(ours.parameters(), 0.1)
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decayed["params"]) and plain["params"]
    assert all(p.ndim == 1 for p in plain["params"])


def test_both_libraries_train_alike_from_one_seed(shakespeare: TextDataset) -> None:
    config = bench.Config(iters=8, eval_batches=2, **TINY)
    valid = bench.validation_batches(shakespeare, config)
    assert len(valid) == 2 and valid[0][0].shape == (4, 16) and valid[0][0].flags.c_contiguous
    lines: list[str] = []
    result = bench.train_seed(shakespeare, config, 0, valid, log_every=4, out=lines.append)
    assert len(lines) == 2 and "step     8/8" in lines[-1]
    assert result.start_gap < 1e-5
    for name in ("chainrule", "torch"):
        assert math.isfinite(result.valid_loss[name]) and result.valid_loss[name] < 4.5
        assert len(result.step_seconds[name]) == 8 - bench.WARMUP_STEPS_UNTIMED
    assert abs(result.valid_loss["chainrule"] - result.valid_loss["torch"]) < 1e-3
    assert abs(result.train_loss["chainrule"] - result.train_loss["torch"]) < 1e-3
    figures = bench.summary([result, result])
    assert figures["valid_difference"] == pytest.approx(
        result.valid_loss["chainrule"] - result.valid_loss["torch"])
    assert figures["time_ratio"] == pytest.approx(figures["ms_chainrule"] / figures["ms_torch"])


def test_flags() -> None:
    config, args = bench.parse_args([])
    assert (config.iters, config.seeds, config.eval_batches, config.gelu) == (2000, 2, None,
                                                                               "tanh")
    assert (config.n_layer, config.n_head, config.n_embd, config.block_size,
            config.batch_size) == (4, 4, 128, 64, 12)
    assert (config.lr, config.min_lr, config.warmup, config.beta2, config.weight_decay,
            config.grad_clip) == (1e-3, 1e-4, 100, 0.99, 0.1, 1.0)
    config, _ = bench.parse_args(["--quick", "--iters", "7", "--gelu", "none"])
    assert (config.iters, config.seeds, config.eval_batches, config.gelu) == (7, 1, 4, "none")
    for bad in (["--iters", "0"], ["--seeds", "0"], ["--eval-batches", "0"],
                ["--threads", "0"], ["--gelu", "erf"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_main_prints_the_table_and_the_command(capsys: pytest.CaptureFixture,
                                               threads_restored: None) -> None:
    argv = ["--iters", "2", "--seeds", "1", "--eval-batches", "1", "--threads", "1",
            "--log-every", "0"]
    figures = bench.main(argv)
    out = capsys.readouterr().out
    assert "valid chainrule" in out and "\nmean " in out and "targets (issue 14)" in out
    assert "threads: chainrule 1" in out and "torch 1" in out
    assert out.rstrip().endswith("command: python benchmarks/gpt_shakespeare.py "
                                 + " ".join(argv))
    assert abs(figures["valid_difference"]) < 1e-3 and figures["ms_torch"] > 0
