"""Optimizers and lr schedules, checked step by step against torch.optim."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

import chainrule as cr
from chainrule import optim

SHAPES = [(3, 4), (5,), (2, 1, 3)]


def twin_params(dtype: Any = np.float64, seed: int = 0, shapes: list = SHAPES
                ) -> tuple[list[cr.Tensor], list[torch.Tensor]]:
    """The same starting values as chainrule and torch leaves."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    ours = [cr.tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    return ours, theirs


def gradients(step: int, dtype: Any = np.float64) -> list[np.ndarray | None]:
    """Step ``step``'s gradients; parameter 1 has none every third step (it must be skipped)."""
    rng = np.random.default_rng([7, step])
    grads: list[np.ndarray | None] = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    if step % 3 == 1:
        grads[1] = None
    return grads


def set_grads(params: list, grads: list[np.ndarray | None]) -> None:
    for p, g in zip(params, grads):
        if isinstance(p, torch.Tensor):
            p.grad = None if g is None else torch.from_numpy(g.copy())
        else:
            p.grad = None if g is None else g.copy()


def assert_twins(ours: list[cr.Tensor], theirs: list[torch.Tensor], rtol: float, atol: float,
                 what: str) -> None:
    for i, (p, t) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"{what}, param {i}")


def run_against_torch(kind: str, kwargs: dict, dtype: Any, rtol: float, atol: float,
                      steps: int = 20, groups: Callable | None = None) -> None:
    """Step our optimizer and torch's on the same gradients, comparing params after each step."""
    ours, theirs = twin_params(dtype)
    make = groups or (lambda params: params)
    opt = getattr(optim, kind)(make(ours), **kwargs)
    reference = getattr(torch.optim, kind)(make(theirs), **kwargs)
    for step in range(steps):
        grads = gradients(step, dtype)
        set_grads(ours, grads)
        set_grads(theirs, grads)
        opt.step()
        reference.step()
        assert_twins(ours, theirs, rtol, atol, f"{kind}({kwargs}) step {step}")


CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.1, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("Adam", {}),
    ("Adam", {"lr": 0.1, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.05, "betas": (0.5, 0.9), "eps": 1e-3}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.1, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.5}),
]
CASE_IDS = [f"{kind}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}"
            for kind, kw in CASES]


# ----------------------------------------------------------------------------- update rules
@pytest.mark.parametrize("kind, kwargs", CASES, ids=CASE_IDS)
def test_matches_torch_float64(kind: str, kwargs: dict) -> None:
    run_against_torch(kind, kwargs, np.float64, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind, kwargs", CASES, ids=CASE_IDS)
def test_large_parameters_updated_in_blocks_give_the_same_bits(kind: str, kwargs: dict,
                                                                monkeypatch) -> None:
    """A parameter past kernels.threads.MIN_ELEMENTS is updated in blocks over threads; the
    result must be exactly that of one whole-array update, and torch's within rounding."""
    from chainrule.kernels import threads, update

    shapes = [(300, 260), (7,)]  # 78,000 elements: several blocks of 2^14
    monkeypatch.setattr(update, "UPDATE_BLOCK", 1 << 14)
    monkeypatch.setenv("CHAINRULE_NUM_THREADS", "2")
    results = []
    for min_elements in (threads.MIN_ELEMENTS, 10**9):  # blocked, then whole arrays
        monkeypatch.setattr(threads, "MIN_ELEMENTS", min_elements)
        ours, theirs = twin_params(np.float32, shapes=shapes)
        opt = getattr(optim, kind)(ours, **kwargs)
        reference = getattr(torch.optim, kind)(theirs, **kwargs)
        rng = np.random.default_rng(3)
        for _ in range(3):
            grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
            set_grads(ours, grads)
            set_grads(theirs, grads)
            opt.step()
            reference.step()
        assert_twins(ours, theirs, 1e-5, 1e-6, f"{kind}({kwargs})")
        results.append([p.data.copy() for p in ours])
    for blocked, whole in zip(*results):
        np.testing.assert_array_equal(blocked, whole)


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
def test_a_parameter_that_is_not_contiguous_is_still_updated_in_place(kind: str) -> None:
    base = np.random.default_rng(0).standard_normal((400, 300)).astype(np.float32)
    p = cr.from_numpy(base.T, requires_grad=True)  # a transposed view: not C-contiguous
    before = p.data.copy()
    p.grad = np.ones_like(p.data)
    getattr(optim, kind)([p], lr=0.1, **({"momentum": 0.9} if kind == "SGD" else {})).step()
    assert np.shares_memory(p.data, base) and (p.data < before).all()


@pytest.mark.parametrize("kind, kwargs", CASES, ids=CASE_IDS)
def test_matches_torch_float32(kind: str, kwargs: dict) -> None:
    run_against_torch(kind, kwargs, np.float32, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind, kwargs, overrides", [
    ("SGD", {"lr": 0.1, "momentum": 0.9}, {"lr": 0.01, "momentum": 0.5, "nesterov": True}),
    ("Adam", {"lr": 0.01}, {"lr": 0.1, "betas": (0.8, 0.9), "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01}, {"eps": 1e-4, "weight_decay": 0.3}),
])
def test_param_groups_match_torch(kind: str, kwargs: dict, overrides: dict) -> None:
    def groups(params: list) -> list[dict]:
        return [{"params": params[:2]}, {"params": params[2:], **overrides}]

    run_against_torch(kind, kwargs, np.float64, rtol=1e-10, atol=1e-12, groups=groups)


@settings(max_examples=30)
@given(lr=st.floats(0, 1), momentum=st.floats(0, 0.99), dampening=st.floats(0, 1),
       weight_decay=st.floats(0, 1), nesterov=st.booleans())
def test_sgd_matches_torch_for_any_hyperparameters(lr: float, momentum: float, dampening: float,
                                                   weight_decay: float, nesterov: bool) -> None:
    if nesterov:
        momentum, dampening = max(momentum, 0.1), 0.0
    kwargs = {"lr": lr, "momentum": momentum, "dampening": dampening,
              "weight_decay": weight_decay, "nesterov": nesterov}
    run_against_torch("SGD", kwargs, np.float64, rtol=1e-9, atol=1e-10, steps=8)


@settings(max_examples=30)
@given(kind=st.sampled_from(["Adam", "AdamW"]), lr=st.floats(0, 1), beta1=st.floats(0, 0.999),
       beta2=st.floats(0, 0.9999), eps=st.floats(1e-10, 1), weight_decay=st.floats(0, 1))
def test_adam_matches_torch_for_any_hyperparameters(kind: str, lr: float, beta1: float,
                                                    beta2: float, eps: float,
                                                    weight_decay: float) -> None:
    kwargs = {"lr": lr, "betas": (beta1, beta2), "eps": eps, "weight_decay": weight_decay}
    run_against_torch(kind, kwargs, np.float64, rtol=1e-9, atol=1e-10, steps=8)


@pytest.mark.parametrize("kind, kwargs", CASES, ids=CASE_IDS)
def test_updates_in_place_in_the_param_dtype_and_leaves_grads_alone(kind: str,
                                                                    kwargs: dict) -> None:
    ours, _ = twin_params(np.float32)
    opt = getattr(optim, kind)(ours, **kwargs)
    for step in range(3):
        grads = gradients(step, np.float32)
        set_grads(ours, grads)
        arrays = [p.data for p in ours]
        opt.step()
        for p, array, g in zip(ours, arrays, grads):
            assert p.data is array and p.data.dtype == np.float32
            if g is not None:
                np.testing.assert_array_equal(p.grad, g)
    for entry in opt.state.values():
        for value in entry.values():
            assert not isinstance(value, np.ndarray) or value.dtype == np.float32


def test_params_without_grad_are_skipped_and_get_no_state() -> None:
    ours, _ = twin_params()
    before = ours[1].data.copy()
    opt = optim.Adam(ours, lr=0.1)
    set_grads(ours, [np.ones((3, 4)), None, np.ones((2, 1, 3))])
    opt.step()
    np.testing.assert_array_equal(ours[1].data, before)
    assert ours[1] not in opt.state and sorted(opt.state_dict()["state"]) == [0, 2]


def test_zero_grad() -> None:
    ours, _ = twin_params()
    opt = optim.SGD(ours, lr=0.1)
    set_grads(ours, gradients(0))
    opt.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in ours)
    opt.zero_grad()
    assert all(p.grad is None for p in ours)


def test_closure_and_a_real_model_trains() -> None:
    rng = np.random.default_rng(0)
    x = cr.tensor(rng.standard_normal((64, 3)))
    y = cr.tensor(x.data @ np.array([1.5, -2.0, 0.5]) + 0.3)
    w = cr.tensor(np.zeros(3), requires_grad=True)
    b = cr.tensor(np.zeros(()), requires_grad=True)
    opt = optim.Adam([w, b], lr=0.1)

    def closure() -> cr.Tensor:
        opt.zero_grad()
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        return loss

    first = opt.step(closure).item()
    for _ in range(200):
        last = opt.step(closure).item()
    assert last < first * 1e-4
    np.testing.assert_allclose(w.data, [1.5, -2.0, 0.5], atol=1e-2)


class SignSGD(optim.Optimizer):
    """A minimal subclass: the base class carries groups, state dicts and validation."""

    def __init__(self, params: Any, lr: float = 0.01) -> None:
        super().__init__(params, {"lr": lr})

    def _validate(self, group: Any) -> None:
        if group["lr"] < 0:
            raise ValueError("SignSGD: lr must be >= 0")

    def _update_group(self, group: dict) -> None:
        for p in group["params"]:
            grad = self._grad(p)
            if grad is not None:
                p.data -= group["lr"] * np.sign(grad)


def test_custom_optimizer_subclass() -> None:
    ours, _ = twin_params()
    start = [p.data.copy() for p in ours]
    opt = SignSGD(ours, lr=0.5)
    set_grads(ours, gradients(0))
    opt.step()
    np.testing.assert_allclose(ours[0].data, start[0] - 0.5 * np.sign(gradients(0)[0]))
    assert opt.state_dict() == {"param_groups": [{"lr": 0.5, "params": [0, 1, 2]}], "state": {}}


# ----------------------------------------------------------------------------- state dicts
ROUND_TRIP_CASES = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}, np.float64),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.2}, np.float32),
    ("Adam", {"lr": 0.05, "weight_decay": 0.1}, np.float64),
    ("AdamW", {"lr": 0.05, "betas": (0.8, 0.95)}, np.float32),
]


def train(opt: optim.Optimizer, params: list[cr.Tensor], steps: range, dtype: Any) -> None:
    for step in steps:
        set_grads(params, gradients(step, dtype))
        opt.step()


def assert_same_state_dict(a: dict, b: dict) -> None:
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for index, entry in a["state"].items():
        assert entry.keys() == b["state"][index].keys()
        for key, value in entry.items():
            other = b["state"][index][key]
            assert type(value) is type(other)
            if isinstance(value, np.ndarray):
                assert value.dtype == other.dtype
                np.testing.assert_array_equal(value, other)
            else:
                assert value == other


def flat_round_trip(saved: optim.Optimizer, fresh: optim.Optimizer) -> None:
    """Through a real safetensors payload and JSON, as a checkpoint stores them."""
    arrays = load_safetensors(save_safetensors(saved.state_arrays()))
    fresh.load_flat_state(json.loads(json.dumps(saved.hyperparameters())), arrays)


def direct_round_trip(saved: optim.Optimizer, fresh: optim.Optimizer) -> None:
    fresh.load_state_dict(saved.state_dict())


@pytest.mark.parametrize("transfer", [direct_round_trip, flat_round_trip])
@pytest.mark.parametrize("kind, kwargs, dtype", ROUND_TRIP_CASES,
                         ids=[f"{c[0]}-{c[2].__name__}" for c in ROUND_TRIP_CASES])
def test_resuming_from_a_state_dict_is_bit_exact(kind: str, kwargs: dict, dtype: Any,
                                                 transfer: Callable) -> None:
    whole, _ = twin_params(dtype)
    train(getattr(optim, kind)(whole, **kwargs), whole, range(12), dtype)

    first, _ = twin_params(dtype)
    interrupted = getattr(optim, kind)(first, **kwargs)
    train(interrupted, first, range(5), dtype)
    resumed_params = [cr.tensor(p.data.copy(), requires_grad=True) for p in first]
    # Made with another lr: the loaded hyperparameters must win.
    resumed = getattr(optim, kind)(resumed_params, lr=0.7)
    transfer(interrupted, resumed)
    assert_same_state_dict(resumed.state_dict(), interrupted.state_dict())
    train(resumed, resumed_params, range(5, 12), dtype)
    for p, q in zip(resumed_params, whole):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_format_and_flat_form() -> None:
    ours, _ = twin_params()
    opt = optim.Adam([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.1}], betas=(0.8, 0.9))
    train(opt, ours, range(2), np.float64)
    state = opt.state_dict()
    assert state["param_groups"] == [
        {"lr": 1e-3, "betas": (0.8, 0.9), "eps": 1e-8, "weight_decay": 0.0, "params": [0]},
        {"lr": 0.1, "betas": (0.8, 0.9), "eps": 1e-8, "weight_decay": 0.0, "params": [1, 2]},
    ]
    assert state["state"][0]["step"] == 2 and state["state"][1]["step"] == 1
    assert set(state["state"][2]) == {"step", "exp_avg", "exp_avg_sq"}
    arrays = opt.state_arrays()
    assert sorted(arrays) == sorted(f"state.{i}.{k}" for i in range(3)
                                    for k in ("exp_avg", "exp_avg_sq", "step"))
    assert arrays["state.0.step"].shape == () and arrays["state.0.step"].dtype == np.int64
    assert json.loads(json.dumps(opt.hyperparameters()))["param_groups"][0]["betas"] == [0.8, 0.9]


def test_state_dict_is_a_snapshot() -> None:
    ours, _ = twin_params()
    opt = optim.SGD(ours, lr=0.1, momentum=0.9)
    train(opt, ours, range(2), np.float64)
    state = opt.state_dict()
    saved = state["state"][0]["momentum_buffer"].copy()
    train(opt, ours, range(2, 4), np.float64)
    np.testing.assert_array_equal(state["state"][0]["momentum_buffer"], saved)
    opt.load_state_dict(state)
    state["state"][0]["momentum_buffer"][...] = 0  # the loaded state does not alias the dict
    np.testing.assert_array_equal(opt.state[ours[0]]["momentum_buffer"], saved)


def loaded_into(kind: str, shapes: list, groups: int = 1, **kwargs: Any) -> optim.Optimizer:
    """An optimizer (of ``kind``) on fresh params of ``shapes``, to load a state dict into."""
    params, _ = twin_params(shapes=shapes)
    make = getattr(optim, kind)
    if groups == 2:
        opt = make([{"params": params[:1]}, {"params": params[1:]}], **kwargs)
    else:
        opt = make(params, **kwargs)
    set_grads(params, [np.ones(shape) for shape in shapes])
    opt.step()  # some state of its own, which a failed load must leave alone
    return opt


def trained_state(kind: str = "Adam", **kwargs: Any) -> dict:
    params, _ = twin_params()
    opt = getattr(optim, kind)(params, **{"lr": 0.1, **kwargs})
    train(opt, params, range(3), np.float64)
    return opt.state_dict()


@pytest.mark.parametrize("make, state, match", [
    (lambda: loaded_into("Adam", SHAPES, groups=2), lambda: trained_state(),
     "the state dict has 1 parameter groups, this optimizer has 2"),
    (lambda: loaded_into("Adam", SHAPES[:2]), lambda: trained_state(),
     "parameter group 0 has 3 parameters in the state dict but 2 here"),
    (lambda: loaded_into("Adam", [(4, 3), (5,), (2, 1, 3)]), lambda: trained_state(),
     r"state exp_avg(_sq)? of parameter 0 has shape \(3, 4\), but the parameter has shape \(4"),
    (lambda: loaded_into("Adam", SHAPES), lambda: trained_state("SGD", momentum=0.9),
     "parameter group 0 of the state dict lacks betas, eps"),
    (lambda: loaded_into("SGD", SHAPES, lr=0.1), lambda: trained_state(),
     "lacks momentum, dampening, nesterov"),
    (lambda: loaded_into("SGD", SHAPES, lr=0.1),
     lambda: {**trained_state("SGD", momentum=0.9),
              "state": {0: {"exp_avg": np.zeros((3, 4))}}},
     r"state for parameter 0 has \['exp_avg'\], but SGD keeps \['momentum_buffer'\]"),
    (lambda: loaded_into("Adam", SHAPES),
     lambda: {**trained_state(), "state": {7: {}}},
     "state for parameter 7, which none of its param groups lists"),
    (lambda: loaded_into("Adam", SHAPES),
     lambda: {"param_groups": trained_state()["param_groups"]},
     "exactly the keys 'param_groups' and 'state'"),
    (lambda: loaded_into("Adam", SHAPES),
     lambda: {**trained_state(), "param_groups": [
         {**trained_state()["param_groups"][0], "lr": -1.0}]},
     "Adam: lr must be >= 0, got -1.0"),
])
def test_loading_a_mismatched_state_dict_fails_clearly_and_changes_nothing(
        make: Callable, state: Callable, match: str) -> None:
    opt = make()
    before = opt.state_dict()
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(state())
    assert_same_state_dict(opt.state_dict(), before)


def test_load_flat_state_accepts_a_step_stored_with_shape_1() -> None:
    ours, _ = twin_params()
    opt = optim.Adam(ours)
    train(opt, ours, range(2), np.float64)
    arrays = {k: v.reshape(1) if v.ndim == 0 else v for k, v in opt.state_arrays().items()}
    fresh = optim.Adam(twin_params()[0])
    fresh.load_flat_state(opt.hyperparameters(), arrays)
    assert fresh.state_dict()["state"][0]["step"] == 2


def test_load_flat_state_rejects_unknown_array_names() -> None:
    ours, _ = twin_params()
    opt = optim.SGD(ours, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"unexpected optimizer array 'momentum\.0'"):
        opt.load_flat_state(opt.hyperparameters(), {"momentum.0": np.zeros((3, 4))})


# ----------------------------------------------------------------------------- bad input
def _ours() -> list[cr.Tensor]:
    return twin_params()[0]


@pytest.mark.parametrize("make, error, match", [
    (lambda ps: optim.SGD(ps, lr=-0.1), ValueError, r"SGD: lr must be >= 0, got -0\.1"),
    (lambda ps: optim.SGD(ps, lr=math.nan), ValueError, "SGD: lr must be >= 0, got nan"),
    (lambda ps: optim.SGD(ps, lr="0.1"), TypeError, "SGD: lr must be a real number"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=-0.5), ValueError, "momentum must be >= 0"),
    (lambda ps: optim.SGD(ps, lr=0.1, dampening=1.5), ValueError,
     r"dampening must be in \[0, 1\], got 1\.5"),
    (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1), ValueError,
     "weight_decay must be >= 0, got -1"),
    (lambda ps: optim.SGD(ps, lr=0.1, nesterov=True), ValueError,
     "nesterov=True needs momentum > 0 and dampening = 0, got momentum=0, dampening=0"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     "nesterov=True needs momentum > 0 and dampening = 0"),
    (lambda ps: optim.SGD([{"params": ps, "lr": -2.0}], lr=0.1), ValueError,
     "SGD: lr must be >= 0, got -2.0"),
    (lambda ps: optim.Adam(ps, betas=(1.0, 0.999)), ValueError,
     r"Adam: betas\[0\] must be in \[0, 1\), got 1\.0"),
    (lambda ps: optim.Adam(ps, betas=(0.9, -0.1)), ValueError, r"betas\[1\] must be in \[0, 1\)"),
    (lambda ps: optim.Adam(ps, betas=(0.9,)), ValueError, "betas must be a pair"),
    (lambda ps: optim.Adam(ps, eps=-1e-8), ValueError, "Adam: eps must be >= 0"),
    (lambda ps: optim.AdamW(ps, lr=-1.0), ValueError, "AdamW: lr must be >= 0"),
    (lambda ps: optim.AdamW(ps, weight_decay=-0.1), ValueError, "AdamW: weight_decay must be"),
    (lambda ps: optim.SGD(ps[0], lr=0.1), TypeError, "got a single Tensor; wrap it in a list"),
    (lambda ps: optim.SGD(set(ps), lr=0.1), TypeError, "not a set"),
    (lambda ps: optim.SGD([{"params": set(ps)}], lr=0.1), TypeError, "not a set"),
    (lambda ps: optim.SGD([], lr=0.1), ValueError, "empty parameter list"),
    (lambda ps: optim.SGD([ps[0], ps[0]], lr=0.1), ValueError, "appear more than once"),
    (lambda ps: optim.SGD([{"params": ps[:1]}, {"params": ps[:2]}], lr=0.1), ValueError,
     "appear more than once"),
    (lambda ps: optim.SGD([np.zeros(3)], lr=0.1), TypeError,
     "can only optimize Tensors, got ndarray"),
    (lambda ps: optim.SGD([cr.tensor([1, 2])], lr=0.1), TypeError,
     "can only optimize floating tensors, got one of dtype int64"),
    (lambda ps: optim.SGD([ps[0] * 2], lr=0.1), ValueError, "can't optimize a non-leaf tensor"),
    (lambda ps: optim.SGD([{"lr": 0.1}], lr=0.1), ValueError, "param group has no 'params' key"),
])
def test_bad_arguments_are_refused(make: Callable, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make(_ours())


def test_a_grad_of_the_wrong_shape_is_refused() -> None:
    ours = _ours()
    opt = optim.Adam(ours)
    ours[1].grad = np.zeros(4)
    with pytest.raises(ValueError, match=r"parameter 1 has shape \(5,\) but its grad has shape "
                                         r"\(4,\)"):
        opt.step()


# ----------------------------------------------------------------------------- schedules
def momentum_of(group: dict) -> float:
    return group["betas"][0] if "betas" in group else group["momentum"]


def compare_schedules(kind: str, opt_kwargs: dict, make: Callable, steps: int,
                      two_groups: bool = False, momentum: bool = False) -> None:
    """Run our scheduler and torch's side by side; lrs (and momenta) must agree at every step."""
    ours, theirs = twin_params()
    if two_groups:
        ours = [{"params": ours[:1]}, {"params": ours[1:], "lr": 0.02}]
        theirs = [{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.02}]
    opt = getattr(optim, kind)(ours, **opt_kwargs)
    reference = getattr(torch.optim, kind)(theirs, **opt_kwargs)
    sched, torch_sched = make(optim, opt), make(torch.optim.lr_scheduler, reference)
    for step in range(steps + 1):
        np.testing.assert_allclose(sched.get_last_lr(), torch_sched.get_last_lr(), rtol=1e-12,
                                   atol=1e-15, err_msg=f"lr at step {step}")
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
        if momentum:
            np.testing.assert_allclose([momentum_of(g) for g in opt.param_groups],
                                       [momentum_of(g) for g in reference.param_groups],
                                       rtol=1e-12, err_msg=f"momentum at step {step}")
        if step < steps:
            opt.step()
            reference.step()
            sched.step()
            torch_sched.step()


@pytest.mark.parametrize("two_groups", [False, True])
def test_step_lr_matches_torch(two_groups: bool) -> None:
    compare_schedules("SGD", {"lr": 0.1}, lambda m, opt: m.StepLR(opt, step_size=3, gamma=0.5),
                      steps=25, two_groups=two_groups)


@pytest.mark.parametrize("eta_min", [0.0, 1e-3])
def test_cosine_annealing_matches_torch_beyond_t_max(eta_min: float) -> None:
    compare_schedules("Adam", {"lr": 0.1},
                      lambda m, opt: m.CosineAnnealingLR(opt, T_max=10, eta_min=eta_min),
                      steps=35, two_groups=True)


ONE_CYCLE_CASES = [
    ("SGD", {"lr": 0.1, "momentum": 0.9}, {"max_lr": 0.1, "total_steps": 40}),
    ("SGD", {"lr": 0.1}, {"max_lr": 0.5, "total_steps": 31, "three_phase": True,
                          "div_factor": 10.0, "final_div_factor": 100.0}),
    ("Adam", {}, {"max_lr": [0.01, 0.003], "total_steps": 25, "pct_start": 0.25,
                  "anneal_strategy": "linear", "base_momentum": [0.8, 0.85],
                  "max_momentum": 0.9}),
    ("AdamW", {}, {"max_lr": 0.01, "epochs": 3, "steps_per_epoch": 7}),
    ("Adam", {}, {"max_lr": 0.01, "total_steps": 12, "cycle_momentum": False}),
]


@pytest.mark.parametrize("kind, opt_kwargs, kwargs", ONE_CYCLE_CASES)
def test_one_cycle_matches_torch_and_stops_after_total_steps(kind: str, opt_kwargs: dict,
                                                             kwargs: dict) -> None:
    two_groups = isinstance(kwargs["max_lr"], list)
    compare_schedules(kind, opt_kwargs, lambda m, opt: m.OneCycleLR(opt, **kwargs),
                      steps=kwargs.get("total_steps", 21), two_groups=two_groups, momentum=True)


@settings(max_examples=30)
@given(kind=st.sampled_from(["SGD", "Adam"]), total_steps=st.integers(1, 150),
       pct_start=st.floats(0, 0.9), anneal=st.sampled_from(["cos", "linear"]),
       three_phase=st.booleans(), max_lr=st.floats(1e-4, 1), div_factor=st.floats(1, 100),
       final_div_factor=st.floats(1, 1e4))
def test_one_cycle_matches_torch_for_any_settings(kind: str, total_steps: int, pct_start: float,
                                                  anneal: str, three_phase: bool, max_lr: float,
                                                  div_factor: float,
                                                  final_div_factor: float) -> None:
    if three_phase:
        pct_start /= 2
    kwargs = {"max_lr": max_lr, "total_steps": total_steps, "pct_start": pct_start,
              "anneal_strategy": anneal, "three_phase": three_phase, "div_factor": div_factor,
              "final_div_factor": final_div_factor}
    # torch divides by zero when a phase is exactly zero steps wide; we start it at its end.
    ends = [pct_start * total_steps - 1, 2 * pct_start * total_steps - 2]
    assume(all(end != 0 for end in ends) and ends[0] != total_steps - 1)
    compare_schedules(kind, {"lr": 0.1, "momentum": 0.9} if kind == "SGD" else {},
                      lambda m, opt: m.OneCycleLR(opt, **kwargs), steps=total_steps,
                      momentum=True)


def test_one_cycle_refuses_to_step_past_total_steps() -> None:
    sched = optim.OneCycleLR(optim.SGD(_ours(), lr=0.1, momentum=0.9), max_lr=0.1,
                             total_steps=5)
    for _ in range(5):
        sched.step()
    with pytest.raises(ValueError, match="tried to step 6 times, but total_steps is 5"):
        sched.step()
    assert sched.last_epoch == 5


def test_one_cycle_with_a_zero_width_warm_up_starts_at_max_lr() -> None:
    # pct_start * total_steps - 1 == 0: torch divides by zero here.
    sched = optim.OneCycleLR(optim.SGD(_ours(), lr=0.1), max_lr=0.4, total_steps=10,
                             pct_start=0.1)
    assert sched.get_last_lr() == [0.4]


def schedule_run(kind: str, make_sched: Callable, steps: range, params: list,
                 opt: optim.Optimizer | None = None, sched: Any = None
                 ) -> tuple[optim.Optimizer, Any, list[float]]:
    if opt is None:
        opt = getattr(optim, kind)(params, lr=0.1, **({"momentum": 0.9} if kind == "SGD" else {}))
    sched = sched or make_sched(opt)
    lrs = []
    for step in steps:
        set_grads(params, gradients(step))
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    return opt, sched, lrs


@pytest.mark.parametrize("kind, make_sched", [
    ("SGD", lambda opt: optim.StepLR(opt, step_size=4, gamma=0.3)),
    ("Adam", lambda opt: optim.CosineAnnealingLR(opt, T_max=8, eta_min=1e-3)),
    ("SGD", lambda opt: optim.OneCycleLR(opt, max_lr=0.2, total_steps=14)),
    ("AdamW", lambda opt: optim.OneCycleLR(opt, max_lr=0.02, total_steps=14, three_phase=True)),
], ids=["StepLR", "CosineAnnealingLR", "OneCycleLR-SGD", "OneCycleLR-AdamW"])
def test_resuming_a_schedule_is_bit_exact(kind: str, make_sched: Callable) -> None:
    whole, _ = twin_params()
    _, _, whole_lrs = schedule_run(kind, make_sched, range(14), whole)

    first, _ = twin_params()
    opt, sched, lrs = schedule_run(kind, make_sched, range(6), first)
    opt_json = json.dumps(opt.hyperparameters())
    arrays = load_safetensors(save_safetensors(opt.state_arrays()))
    sched_json = json.dumps(sched.state_dict())

    params = [cr.tensor(p.data.copy(), requires_grad=True) for p in first]
    fresh = getattr(optim, kind)(params, lr=0.5)
    fresh_sched = make_sched(fresh)
    fresh.load_flat_state(json.loads(opt_json), arrays)
    fresh_sched.load_state_dict(json.loads(sched_json))
    assert fresh_sched.get_last_lr() == sched.get_last_lr()
    _, _, more = schedule_run(kind, make_sched, range(6, 14), params, fresh, fresh_sched)
    assert lrs + more == whole_lrs
    for p, q in zip(params, whole):
        np.testing.assert_array_equal(p.data, q.data)


def _sgd() -> optim.SGD:
    return optim.SGD(_ours(), lr=0.1, momentum=0.9)


@pytest.mark.parametrize("make, error, match", [
    (lambda: optim.StepLR("sgd", step_size=2), TypeError, "StepLR: expected an Optimizer"),
    (lambda: optim.StepLR(_sgd(), step_size=0), ValueError,
     "step_size must be a positive integer, got 0"),
    (lambda: optim.StepLR(_sgd(), step_size=2, gamma=-1.0), ValueError, "gamma must be >= 0"),
    (lambda: optim.CosineAnnealingLR(_sgd(), T_max=2.5), ValueError,
     "T_max must be a positive integer, got 2.5"),
    (lambda: optim.CosineAnnealingLR(_sgd(), T_max=5, eta_min=-1.0), ValueError,
     "eta_min must be >= 0"),
    (lambda: optim.OneCycleLR(_sgd(), max_lr=0.1), ValueError,
     "give total_steps, or epochs and steps_per_epoch"),
    (lambda: optim.OneCycleLR(_sgd(), max_lr=0.1, total_steps=0), ValueError,
     "total_steps must be a positive integer, got 0"),
    (lambda: optim.OneCycleLR(_sgd(), max_lr=0.1, epochs=0, steps_per_epoch=3), ValueError,
     "epochs must be a positive integer"),
    (lambda: optim.OneCycleLR(_sgd(), max_lr=0.1, total_steps=9, pct_start=1.5), ValueError,
     r"pct_start must be in \[0, 1\], got 1\.5"),
    (lambda: optim.OneCycleLR(_sgd(), max_lr=0.1, total_steps=9, anneal_strategy="exp"),
     ValueError, "anneal_strategy must be 'cos' or 'linear', got 'exp'"),
    (lambda: optim.OneCycleLR(_sgd(), max_lr=0.1, total_steps=9, three_phase=True,
                              pct_start=0.6), ValueError, "three_phase needs pct_start <= 0.5"),
    (lambda: optim.OneCycleLR(_sgd(), max_lr=[0.1, 0.2], total_steps=9), ValueError,
     "max_lr has 2 values, but the optimizer has 1 param groups"),
    (lambda: optim.OneCycleLR(_sgd(), max_lr=-0.1, total_steps=9), ValueError,
     "max_lr must be >= 0"),
    (lambda: optim.OneCycleLR(_sgd(), max_lr=0.1, total_steps=9, div_factor=0), ValueError,
     "div_factor and final_div_factor must be > 0"),
    (lambda: optim.OneCycleLR(SignSGD(_ours()), max_lr=0.1, total_steps=9), ValueError,
     "cycle_momentum=True needs an optimizer with momentum or betas, and SignSGD has neither"),
])
def test_bad_scheduler_arguments_are_refused(make: Callable, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_a_scheduler_state_dict_must_fit() -> None:
    sched = optim.CosineAnnealingLR(_sgd(), T_max=5)
    before = sched.state_dict()
    with pytest.raises(ValueError, match=r"missing \['T_max', 'eta_min'\] and has unexpected "
                                         r"\['gamma', 'step_size'\]"):
        sched.load_state_dict(optim.StepLR(_sgd(), step_size=2).state_dict())
    with pytest.raises(ValueError, match="T_max must be a positive integer"):
        sched.load_state_dict({**before, "T_max": 0, "last_epoch": 3})
    with pytest.raises(ValueError, match="has base_lrs for 2 param groups, the optimizer has 1"):
        sched.load_state_dict({**before, "base_lrs": [0.1, 0.1]})
    assert sched.state_dict() == before
    json.dumps(optim.OneCycleLR(_sgd(), max_lr=0.1, total_steps=5).state_dict())
