"""Training by steps, evaluating every N steps, mid-epoch resume, clipping, warm-up + cosine."""

from __future__ import annotations

import io as stdio
import math

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import nn, optim
from chainrule.data import ArrayDataset, DataLoader, TextDataset
from chainrule.engine import backend
from chainrule.nn.functional import cross_entropy
from chainrule.train import Callback, CheckpointCallback, Learner, ProgressBar

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, "
        "speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 12


def text_learner(seed: int = 0, callbacks=(), grad_clip: float | None = 0.5,
                 batches_per_epoch: int = 5) -> Learner:
    """A tiny character model with dropout (so the random stream matters), by steps."""
    data = TextDataset(TEXT)
    vocab = len(data.vocab)
    cr.manual_seed(seed)
    model = nn.Sequential(nn.Embedding(vocab, 16), nn.Dropout(0.3), nn.Linear(16, 32),
                          nn.GELU(), nn.Dropout(0.1), nn.Linear(32, vocab))
    optimizer = optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.99), weight_decay=0.1)
    scheduler = optim.WarmupCosineLR(optimizer, warmup_steps=4, total_steps=30, eta_min=3e-4)

    def loss(preds, targets):
        return cross_entropy(preds.reshape(-1, vocab), targets.reshape(-1))

    return Learner(model, data.train_loader(4, 16, seed=1, batches_per_epoch=batches_per_epoch),
                   optimizer, valid_data=data.valid_loader(4, 16), loss_func=loss,
                   scheduler=scheduler, callbacks=list(callbacks), grad_clip=grad_clip)


def image_learner(callbacks=()) -> Learner:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 8)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
    optimizer = optim.AdamW(model.parameters(), lr=0.01)
    return Learner(model, DataLoader(ArrayDataset(x, y), batch_size=16, shuffle=True, seed=3),
                   optimizer, valid_data=DataLoader(ArrayDataset(x[:40], y[:40]), batch_size=8),
                   callbacks=list(callbacks))


def assert_same_training_state(a: Learner, b: Learner) -> None:
    for key, value in a.model.state_dict().items():
        np.testing.assert_array_equal(b.model.state_dict()[key], value, err_msg=key)
    sa, sb = a.optimizer.state_arrays(), b.optimizer.state_arrays()
    assert sa.keys() == sb.keys()
    for key in sa:
        np.testing.assert_array_equal(sb[key], sa[key], err_msg=key)
    assert a.recorder.losses == b.recorder.losses and a.recorder.lrs == b.recorder.lrs
    assert a.step == b.step and (a.next_epoch, a.next_batch) == (b.next_epoch, b.next_batch)


# ------------------------------------------------------------------ steps
def test_fit_by_steps_runs_that_many_steps_across_epochs_and_stops_inside_one() -> None:
    learner = text_learner()
    history = learner.fit(steps=12)
    assert learner.step == 12 and len(learner.recorder.losses) == 12
    assert [row["epoch"] for row in history] == [0, 1]  # epoch 2 is unfinished: no row
    assert (learner.next_epoch, learner.next_batch) == (2, 2)
    assert {"valid_loss"} <= set(history[0])  # without eval_every: validation after epochs
    learner.fit(steps=15)  # finishes epoch 2, then validates it
    assert learner.step == 15 and [row["epoch"] for row in learner.history] == [0, 1, 2]


def test_steps_in_two_fits_are_the_steps_of_one() -> None:
    straight = text_learner()
    straight.fit(steps=13)
    split = text_learner()
    split.fit(steps=7)
    split.fit(steps=13)
    assert_same_training_state(straight, split)
    assert [r["train_loss"] for r in split.history] == [r["train_loss"]
                                                        for r in straight.history]


def test_evaluating_every_n_steps_leaves_the_weights_bit_identical() -> None:
    plain = text_learner()
    plain.fit(steps=30)
    watched = text_learner()
    watched.fit(steps=30, eval_every=5, eval_batches=2)
    assert_same_training_state(plain, watched)
    assert (backend.default_generator().bit_generator.state
            == plain_generator_after(30))
    assert [row["step"] for row in watched.evaluations] == [5, 10, 15, 20, 25, 30]
    assert all(math.isfinite(row["valid_loss"]) and math.isfinite(row["train_loss"])
               for row in watched.evaluations)
    assert watched.model.training and all(m.training for m in watched.model.modules())
    assert "valid_loss" not in watched.history[0]  # validation moved to the step schedule
    # the train loss of a row is the mean of the batch losses since the row before
    np.testing.assert_allclose(watched.evaluations[1]["train_loss"],
                               np.mean(watched.recorder.losses[5:10]))


def plain_generator_after(steps: int) -> dict:
    """chainrule's generator state after training ``steps`` steps without evaluations."""
    learner = text_learner()
    learner.fit(steps=steps)
    return backend.default_generator().bit_generator.state


def test_evaluating_every_n_steps_by_epochs_also_changes_nothing() -> None:
    plain = image_learner()
    plain.fit(3)
    watched = image_learner()
    frozen = watched.model[2]  # a submodule kept in eval mode must stay so
    watched.fit(3, eval_every=4, eval_batches=3)
    assert frozen.training
    assert_same_training_state(plain, watched)
    assert [row["step"] for row in watched.evaluations] == [4, 8, 12]
    assert [row["epoch"] for row in watched.history] == [0, 1, 2]


def test_evaluations_see_the_same_fixed_batches_and_only_eval_batches_of_them() -> None:
    class CountValidation(Callback):
        def __init__(self) -> None:
            self.batches: list[int] = []

        def before_validate(self, learner: Learner) -> None:
            self.batches.append(0)

        def after_batch(self, learner: Learner) -> None:
            if not learner.training:
                self.batches[-1] += 1

    counter = CountValidation()
    learner = text_learner(callbacks=[counter])
    learner.fit(steps=6, eval_every=3, eval_batches=2)
    assert counter.batches == [2, 2]
    first = learner.evaluate(learner.valid_data)
    assert learner.evaluate(learner.valid_data) == first  # fixed blocks: same figures


def test_a_run_stopped_between_checkpoints_resumes_bit_for_bit(tmp_path) -> None:
    straight = text_learner()
    straight.fit(steps=23, eval_every=5)

    class Crash(Callback):
        def after_step(self, learner: Learner) -> None:
            if learner.step == 17:
                raise RuntimeError("power cut")

    path = tmp_path / "run.safetensors"
    first = text_learner(callbacks=[CheckpointCallback(path, every_steps=7), Crash()])
    with pytest.raises(RuntimeError, match="power cut"):
        first.fit(steps=23, eval_every=5)
    resumed = text_learner(seed=99)  # another init: all must come from the file (step 14)
    resumed.load_checkpoint(path)
    assert (resumed.step, resumed.next_epoch, resumed.next_batch) == (14, 2, 4)
    resumed.fit(steps=23, eval_every=5)
    assert_same_training_state(straight, resumed)
    assert ([{k: v for k, v in r.items() if k != "seconds"} for r in resumed.evaluations]
            == [{k: v for k, v in r.items() if k != "seconds"} for r in straight.evaluations])
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"]
                                                          for r in straight.history]


def test_step_checkpoints_are_saved_every_n_steps_and_at_the_end(tmp_path) -> None:
    saved: list[int] = []

    class Spy(CheckpointCallback):
        def _save(self, learner: Learner) -> None:
            saved.append(learner.step)
            super()._save(learner)

    learner = text_learner(callbacks=[Spy(tmp_path / "c.safetensors", every_steps=4)])
    learner.fit(steps=10)
    assert saved == [4, 8, 10]


def test_the_progress_bar_shows_a_line_per_evaluation() -> None:
    out = stdio.StringIO()
    learner = text_learner(callbacks=[ProgressBar(file=out, bar=False)])
    learner.fit(steps=10, eval_every=5)
    lines = out.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines] == ["step 5/10", "epoch 1/2", "step 10/10",
                                                       "epoch 2/2"]
    assert "valid_loss" in lines[0] and "train_loss" in lines[0]
    drawn = stdio.StringIO()
    text_learner(callbacks=[ProgressBar(file=drawn, bar=True)]).fit(steps=4)
    assert "steps" in drawn.getvalue()


class Terminal(stdio.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_is_drawn_on_a_terminal_and_left_out_of_logs() -> None:
    log = stdio.StringIO()  # a file or a pipe: not a terminal
    text_learner(callbacks=[ProgressBar(file=log)]).fit(steps=4, eval_every=2)
    assert "\r" not in log.getvalue() and "step 2/4" in log.getvalue()
    terminal = Terminal()
    text_learner(callbacks=[ProgressBar(file=terminal)]).fit(steps=4, eval_every=2)
    assert "\r" in terminal.getvalue() and "step 2/4" in terminal.getvalue()


@pytest.mark.parametrize("call, error, says", [
    (lambda learner: learner.fit(), TypeError, "give either epochs .* not neither"),
    (lambda learner: learner.fit(2, steps=3), TypeError, "not both"),
    (lambda learner: learner.fit(steps=-1), ValueError, "steps must be >= 0"),
    (lambda learner: learner.fit(steps=4, eval_every=0), ValueError, "eval_every must be >= 1"),
    (lambda learner: learner.fit(steps=4, eval_batches=1.5), TypeError, "eval_batches must be"),
])
def test_fit_by_steps_refuses_bad_arguments(call, error, says) -> None:
    with pytest.raises(error, match=says):
        call(text_learner())


def test_fit_refuses_fewer_steps_than_done_and_eval_every_without_data() -> None:
    learner = text_learner()
    learner.fit(steps=3)
    with pytest.raises(ValueError, match=r"already done 3 steps; ask for more"):
        learner.fit(steps=2)
    with pytest.raises(ValueError, match=r"already done 0 epochs and 3 batches of the next"):
        learner.fit(0)
    learner.valid_data = None
    with pytest.raises(ValueError, match="eval_every needs data to evaluate on"):
        learner.fit(steps=6, eval_every=2)
    with pytest.raises(TypeError, match="no len\\(\\)"):
        Learner(learner.model, iter([]), learner.optimizer).fit(steps=2)


def test_steps_that_no_epoch_advances_are_an_error_not_a_hang() -> None:
    class SkipAll(Callback):
        def before_batch(self, learner: Learner) -> None:
            if learner.training:
                raise cr.train.CancelBatchException

    with pytest.raises(ValueError, match="made no optimizer step"):
        text_learner(callbacks=[SkipAll()]).fit(steps=3)


# ------------------------------------------------------------------ gradient clipping
def _grads_pair(dtype, seed: int = 0):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (5,), (2, 2, 2), (1,)]
    arrays = [rng.standard_normal(s).astype(dtype) * 3 for s in shapes]
    ours, theirs = [], []
    for a in arrays:
        t = cr.tensor(np.zeros_like(a), requires_grad=True)
        t.grad = a.copy()
        ours.append(t)
        p = torch.zeros(a.shape, dtype=torch.from_numpy(a).dtype, requires_grad=True)
        p.grad = torch.from_numpy(a.copy())
        theirs.append(p)
    ours.append(cr.tensor(np.zeros(2, dtype), requires_grad=True))  # no grad: skipped
    theirs.append(torch.zeros(2, dtype=theirs[0].dtype, requires_grad=True))
    return ours, theirs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(dtype, norm_type, max_norm) -> None:
    ours, theirs = _grads_pair(dtype)
    total = optim.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    assert total.data.dtype == dtype and total.shape == ()
    np.testing.assert_allclose(total.item(), expected.item(), rtol=tol)
    for t, p in zip(ours, theirs):
        if p.grad is None:
            assert t.grad is None
        else:
            np.testing.assert_allclose(t.grad, p.grad.numpy(), rtol=tol, atol=tol)


def test_clip_grad_norm_scales_in_place_keeps_small_grads_and_takes_one_tensor() -> None:
    ours, theirs = _grads_pair(np.float32)
    arrays = [t.grad for t in ours if t.grad is not None]
    before = [a.copy() for a in arrays]
    optim.clip_grad_norm_(ours, 1e9)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)  # a factor of exactly 1
    optim.clip_grad_norm_(ours, 1.0)
    assert all(t.grad is a for t, a in zip(ours, arrays))  # the same arrays, scaled
    total = math.sqrt(sum(float(np.sum(a.astype(np.float64) ** 2)) for a in arrays))
    assert abs(total - 1.0) < 1e-5
    single = cr.tensor(np.zeros(3), requires_grad=True)
    single.grad = np.array([3.0, 4.0, 0.0])
    assert optim.clip_grad_norm_(single, 1.0).item() == 5.0
    assert optim.clip_grad_norm_([], 1.0).item() == 0.0


def test_clip_grad_value_matches_torch() -> None:
    ours, theirs = _grads_pair(np.float64, seed=1)
    assert optim.clip_grad_value_(ours, 1.5) is None
    torch.nn.utils.clip_grad_value_(theirs, 1.5)
    for t, p in zip(ours, theirs):
        if p.grad is not None:
            np.testing.assert_array_equal(t.grad, p.grad.numpy())


@pytest.mark.parametrize("call, error, says", [
    (lambda ps: optim.clip_grad_norm_(ps, -1.0), ValueError, "max_norm must be >= 0"),
    (lambda ps: optim.clip_grad_norm_(ps, 1.0, norm_type=0), ValueError, "norm_type must be"),
    (lambda ps: optim.clip_grad_norm_(ps, 1.0, norm_type="fro"), ValueError, "or 'inf'"),
    (lambda ps: optim.clip_grad_norm_([np.zeros(2)], 1.0), TypeError, "not a tensor"),
    (lambda ps: optim.clip_grad_norm_(3.0, 1.0), TypeError, "iterable of tensors"),
    (lambda ps: optim.clip_grad_value_(ps, "1"), TypeError, "clip_value must be a real"),
])
def test_clipping_refuses_bad_arguments(call, error, says) -> None:
    ours, _ = _grads_pair(np.float64)
    with pytest.raises(error, match=says):
        call(ours)


def test_clip_grad_norm_can_refuse_a_nonfinite_norm() -> None:
    t = cr.tensor(np.zeros(2), requires_grad=True)
    t.grad = np.array([np.nan, 1.0])
    with pytest.raises(RuntimeError, match="total norm of order 2.0 .* is nan"):
        optim.clip_grad_norm_([t], 1.0, error_if_nonfinite=True)
    assert np.isnan(optim.clip_grad_norm_([t], 1.0).item())  # as torch: no error by default


def test_the_learner_clips_before_each_step_as_by_hand() -> None:
    norms: list[float] = []

    class ClipByHand(Callback):
        def after_backward(self, learner: Learner) -> None:
            norms.append(optim.clip_grad_norm_(learner.model.parameters(), 0.05).item())

    # one after the other: each seeds chainrule's generator, which dropout draws from
    learner = text_learner(grad_clip=0.05)
    learner.fit(steps=6)
    twin = text_learner(grad_clip=None, callbacks=[ClipByHand()])
    twin.fit(steps=6)
    assert_same_training_state(learner, twin)
    assert learner.grad_norm == norms[-1] and norms[0] > 0.05  # the clip did bite
    with pytest.raises(ValueError, match="grad_clip must be > 0"):
        text_learner(grad_clip=0.0)


# ------------------------------------------------------------------ warm-up + cosine
def nanogpt_factor(step: int, warmup: int, total: int, base: float, low: float) -> float:
    """nanoGPT's get_lr, over the base rate (what torch's LambdaLR multiplies by)."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if step > total:
        return low / base
    ratio = (step - warmup) / (total - warmup)
    return (low + 0.5 * (1 + math.cos(math.pi * ratio)) * (base - low)) / base


def test_warmup_cosine_matches_nanogpts_rule_as_torch_lambdalr() -> None:
    base, low, warmup, total = 1e-3, 1e-4, 10, 50
    ours_params = [cr.tensor(np.zeros(2), requires_grad=True)]
    ours = optim.AdamW(ours_params, lr=base)
    schedule = optim.WarmupCosineLR(ours, warmup_steps=warmup, total_steps=total, eta_min=low)
    theirs = torch.optim.AdamW([torch.zeros(2, requires_grad=True)], lr=base)
    twin = torch.optim.lr_scheduler.LambdaLR(
        theirs, lambda step: nanogpt_factor(step, warmup, total, base, low))
    for _ in range(60):
        np.testing.assert_allclose(ours.param_groups[0]["lr"], theirs.param_groups[0]["lr"],
                                   rtol=1e-12)
        ours.step()
        theirs.step()
        schedule.step()
        twin.step()
    assert ours.param_groups[0]["lr"] == low


def test_warmup_cosine_saves_resumes_and_refuses_bad_settings() -> None:
    params = [cr.tensor(np.zeros(2), requires_grad=True)]
    a = optim.AdamW(params, lr=0.1)
    first = optim.WarmupCosineLR(a, warmup_steps=3, total_steps=10)
    for _ in range(5):
        first.step()
    b = optim.AdamW(params, lr=0.1)
    second = optim.WarmupCosineLR(b, warmup_steps=3, total_steps=10)
    second.load_state_dict(first.state_dict())
    first.step()
    second.step()
    assert a.param_groups[0]["lr"] == b.param_groups[0]["lr"]
    with pytest.raises(ValueError, match=r"warmup_steps \(10\) must be fewer than total_steps"):
        optim.WarmupCosineLR(optim.AdamW(params), warmup_steps=10, total_steps=10)
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 0"):
        optim.WarmupCosineLR(optim.AdamW(params), warmup_steps=-1, total_steps=10)


def test_evaluate_puts_back_each_modules_own_mode() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    model[1].eval()  # frozen by the user
    data = [(np.ones((2, 3), np.float32), np.zeros(2, np.int64))]
    learner = Learner(model, data, optim.SGD(model.parameters(), lr=0.1),
                      loss_func=cross_entropy)
    learner.evaluate(data)
    assert model.training and model[0].training and not model[1].training


def test_in_a_jupyter_kernel_the_bar_is_drawn_as_tqdms_widget(monkeypatch) -> None:
    import sys
    import types

    from chainrule.train.callbacks import _watched

    kernel = types.SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setitem(sys.modules, "IPython",
                        types.SimpleNamespace(get_ipython=lambda: kernel))
    assert _watched(sys.stdout) and _watched(sys.stderr)
    assert not _watched(stdio.StringIO())  # a file of the user's is a log, even in Jupyter
    plain_shell = types.SimpleNamespace(config={"TerminalIPythonApp": {}})
    monkeypatch.setitem(sys.modules, "IPython",
                        types.SimpleNamespace(get_ipython=lambda: plain_shell))
    assert not _watched(sys.stdout)
