"""Learning-rate schedules with the sequences of torch's StepLR, CosineAnnealingLR, OneCycleLR.

Make the scheduler after the optimizer (making it sets the step-0 lr), then call
``optimizer.step()`` and ``scheduler.step()`` once per batch (or per epoch, for a per-epoch
schedule). Every lr is computed in closed form from the step count, so long schedules do not
drift, and an lr set by hand is replaced (not rescaled) at the next ``scheduler.step()``.
A ``state_dict()`` is JSON-able; the per-group values OneCycleLR keeps in the param groups
(``initial_lr``, ``max_lr``, ...) travel with the optimizer's state dict, as in torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from chainrule.optim.optimizer import Optimizer, check_range


class LRScheduler:
    """Base class: sets each param group's lr from the step count (``last_epoch``).

    Subclasses define ``_lrs_at(step)``, list the settings that ``state_dict`` saves in
    ``_config``, and check (and derive from) those settings in ``_check_config``.
    """

    _config: tuple[str, ...] = ()

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        # A group that already has initial_lr keeps it: the schedule starts from that lr.
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(group["initial_lr"]) for group in optimizer.param_groups]
        self.last_epoch = -1
        self._last_lr: list[float] = []
        self.step()

    def _lrs_at(self, step: int) -> list[float]:
        raise NotImplementedError(f"{type(self).__name__} must define _lrs_at()")

    def _check_config(self) -> None:
        """Validate the settings named in ``_config`` (and compute what follows from them)."""

    def step(self) -> None:
        """Advance one step and set every group's lr; call it after ``optimizer.step()``."""
        self.last_epoch += 1
        lrs = self._lrs_at(self.last_epoch)
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = lrs

    def get_last_lr(self) -> list[float]:
        """The lr of each param group, as last set by this scheduler."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """The step count, base lrs and settings, as JSON-able values."""
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs),
                "last_lr": list(self._last_lr),
                **{name: getattr(self, name) for name in self._config}}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()``; checks everything first, so a mismatch changes nothing."""
        name = type(self).__name__
        expected = {"last_epoch", "base_lrs", "last_lr", *self._config}
        missing, unexpected = expected - set(state_dict), set(state_dict) - expected
        if missing or unexpected:
            raise ValueError(f"{name}: state dict is missing {sorted(missing)} and has "
                             f"unexpected {sorted(unexpected)} (is it from another scheduler?)")
        groups = len(self.optimizer.param_groups)
        for key in ("base_lrs", "last_lr"):
            if len(state_dict[key]) != groups:
                raise ValueError(f"{name}: state dict has {key} for {len(state_dict[key])} "
                                 f"param groups, the optimizer has {groups}")
        last_epoch = state_dict["last_epoch"]
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, int) or last_epoch < 0:
            raise ValueError(f"{name}: last_epoch must be an integer >= 0, got {last_epoch!r}")
        previous = {key: getattr(self, key) for key in self._config}
        for key in self._config:
            setattr(self, key, state_dict[key])
        try:
            self._check_config()
        except (TypeError, ValueError):
            for key, value in previous.items():
                setattr(self, key, value)
            self._check_config()
            raise
        self.last_epoch = last_epoch
        self.base_lrs = [float(lr) for lr in state_dict["base_lrs"]]
        self._last_lr = [float(lr) for lr in state_dict["last_lr"]]


def _positive_int(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return value


def _per_group(owner: str, name: str, value: Any, groups: int) -> list[float]:
    """One value per param group: a list of them, or a single value for all groups."""
    if isinstance(value, (list, tuple)):
        if len(value) != groups:
            raise ValueError(f"{owner}: {name} has {len(value)} values, but the optimizer has "
                             f"{groups} param groups")
        return [check_range(owner, name, v) for v in value]
    return [check_range(owner, name, value)] * groups


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` steps: ``base * gamma**(t // size)``."""

    _config = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size, self.gamma = step_size, gamma
        self._check_config()
        super().__init__(optimizer)

    def _check_config(self) -> None:
        _positive_int("StepLR", "step_size", self.step_size)
        self.gamma = check_range("StepLR", "gamma", self.gamma)

    def _lrs_at(self, step: int) -> list[float]:
        return [base * self.gamma ** (step // self.step_size) for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from the base lr down to ``eta_min`` over ``T_max`` steps.

    ``lr = eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2``; past ``T_max`` it
    climbs back, as torch's does.
    """

    _config = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max, self.eta_min = T_max, eta_min
        self._check_config()
        super().__init__(optimizer)

    def _check_config(self) -> None:
        _positive_int("CosineAnnealingLR", "T_max", self.T_max)
        self.eta_min = check_range("CosineAnnealingLR", "eta_min", self.eta_min)

    def _lrs_at(self, step: int) -> list[float]:
        # Weighting the two ends gives exactly base at t = 0 and exactly eta_min at t = T_max.
        weight = (1 + math.cos(math.pi * step / self.T_max)) / 2
        return [weight * base + (1 - weight) * self.eta_min for base in self.base_lrs]


class _Phase(NamedTuple):
    end_step: float
    start_lr: str
    end_lr: str
    start_momentum: str
    end_momentum: str


class OneCycleLR(LRScheduler):
    """The 1cycle policy: warm the lr up to ``max_lr``, then anneal it far below its start.

    The lr goes from ``max_lr / div_factor`` up to ``max_lr`` over ``pct_start`` of the steps,
    then down to ``max_lr / div_factor / final_div_factor`` (``three_phase`` first comes back to
    the start, then anneals); momentum (or Adam's beta1) cycles the other way. Stepping more
    than ``total_steps`` times is an error, as in torch.
    """

    _config = ("total_steps", "pct_start", "anneal_strategy", "three_phase", "cycle_momentum",
               "use_beta1")

    def __init__(self, optimizer: Optimizer, max_lr: float | Sequence[float],
                 total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float | Sequence[float] = 0.85,
                 max_momentum: float | Sequence[float] = 0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False) -> None:
        name = "OneCycleLR"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError(f"{name}: give total_steps, or epochs and steps_per_epoch")
            total_steps = (_positive_int(name, "epochs", epochs)
                           * _positive_int(name, "steps_per_epoch", steps_per_epoch))
        self.total_steps, self.pct_start = total_steps, pct_start
        self.anneal_strategy, self.three_phase = anneal_strategy, three_phase
        self.cycle_momentum = bool(cycle_momentum)
        self.use_beta1 = "betas" in optimizer.defaults
        self._check_config()
        groups = optimizer.param_groups
        max_lrs = _per_group(name, "max_lr", max_lr, len(groups))
        div_factor = check_range(name, "div_factor", div_factor)
        final_div_factor = check_range(name, "final_div_factor", final_div_factor)
        if div_factor == 0 or final_div_factor == 0:
            raise ValueError(f"{name}: div_factor and final_div_factor must be > 0")
        if self.cycle_momentum:
            max_momenta = _per_group(name, "max_momentum", max_momentum, len(groups))
            base_momenta = _per_group(name, "base_momentum", base_momentum, len(groups))
        for i, group in enumerate(groups):
            group["initial_lr"] = max_lrs[i] / div_factor
            group["max_lr"] = max_lrs[i]
            group["min_lr"] = group["initial_lr"] / final_div_factor
            if self.cycle_momentum:
                group["max_momentum"], group["base_momentum"] = max_momenta[i], base_momenta[i]
                self._set_momentum(group, max_momenta[i])
        super().__init__(optimizer)

    def _check_config(self) -> None:
        name = "OneCycleLR"
        _positive_int(name, "total_steps", self.total_steps)
        self.pct_start = check_range(name, "pct_start", self.pct_start, high=1.0)
        if self.anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{name}: anneal_strategy must be 'cos' or 'linear', got "
                             f"{self.anneal_strategy!r}")
        if self.three_phase and self.pct_start > 0.5:
            raise ValueError(f"{name}: three_phase needs pct_start <= 0.5 (warm-up and the way "
                             f"back each take pct_start of the steps), got {self.pct_start:g}")
        if self.cycle_momentum and ("betas" if self.use_beta1 else "momentum"
                                    ) not in self.optimizer.defaults:
            raise ValueError(f"{name}: cycle_momentum=True needs an optimizer with momentum or "
                             f"betas, and {type(self.optimizer).__name__} has neither; pass "
                             "cycle_momentum=False")
        # Phase boundaries are fractional step numbers, as in torch.
        total, pct = self.total_steps, self.pct_start
        if self.three_phase:
            self._phases = [
                _Phase(pct * total - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                _Phase(2 * pct * total - 2, "max_lr", "initial_lr", "base_momentum",
                       "max_momentum"),
                _Phase(total - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self._phases = [
                _Phase(pct * total - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                _Phase(total - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]

    def _set_momentum(self, group: dict[str, Any], momentum: float) -> None:
        if self.use_beta1:
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            group["momentum"] = momentum

    def _phase_at(self, step: int) -> tuple[_Phase, float]:
        """The phase that ``step`` falls in, and how far through it (0 to 1) the step is."""
        start = 0.0
        for phase in self._phases[:-1]:
            if step <= phase.end_step:
                break
            start = phase.end_step
        else:
            phase = self._phases[-1]
        width = phase.end_step - start
        return phase, (step - start) / width if width > 0 else 1.0

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _lrs_at(self, step: int) -> list[float]:
        phase, pct = self._phase_at(step)
        return [self._anneal(group[phase.start_lr], group[phase.end_lr], pct)
                for group in self.optimizer.param_groups]

    def step(self) -> None:
        """Advance one step, setting lr (and momentum); an error past ``total_steps``."""
        if self.last_epoch >= self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {self.last_epoch + 1} times, but "
                             f"total_steps is {self.total_steps}; make total_steps cover every "
                             "optimizer step (epochs * batches per epoch)")
        super().step()
        if self.cycle_momentum:
            phase, pct = self._phase_at(self.last_epoch)
            for group in self.optimizer.param_groups:
                self._set_momentum(group, self._anneal(group[phase.start_momentum],
                                                       group[phase.end_momentum], pct))


class WarmupCosineLR(LRScheduler):
    """Linear warm-up to the base lr, then half a cosine down to ``eta_min`` (nanoGPT's rule).

    At step ``t``, with ``w = warmup_steps`` and ``T = total_steps``:
    ``base * (t + 1) / (w + 1)`` for ``t < w`` (never 0, so no step is wasted);
    ``eta_min + (base - eta_min) * (1 + cos(pi * (t - w) / (T - w))) / 2`` for ``w <= t <= T``;
    ``eta_min`` after ``T``. torch has no such class: ``LambdaLR`` with this factor (over base)
    gives the same rates, but its state cannot be saved as JSON, so chainrule names the rule.
    """

    _config = ("warmup_steps", "total_steps", "eta_min")

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int,
                 eta_min: float = 0.0) -> None:
        self.warmup_steps, self.total_steps, self.eta_min = warmup_steps, total_steps, eta_min
        self._check_config()
        super().__init__(optimizer)

    def _check_config(self) -> None:
        name = "WarmupCosineLR"
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) \
                or self.warmup_steps < 0:
            raise ValueError(f"{name}: warmup_steps must be an integer >= 0, got "
                             f"{self.warmup_steps!r}")
        _positive_int(name, "total_steps", self.total_steps)
        if self.warmup_steps >= self.total_steps:
            raise ValueError(f"{name}: warmup_steps ({self.warmup_steps}) must be fewer than "
                             f"total_steps ({self.total_steps}), leaving steps to decay over")
        self.eta_min = check_range(name, "eta_min", self.eta_min)

    def _lrs_at(self, step: int) -> list[float]:
        warmup, total = self.warmup_steps, self.total_steps
        if step < warmup:
            return [base * (step + 1) / (warmup + 1) for base in self.base_lrs]
        if step > total:
            return [self.eta_min for _ in self.base_lrs]
        weight = (1 + math.cos(math.pi * (step - warmup) / (total - warmup))) / 2
        return [self.eta_min + weight * (base - self.eta_min) for base in self.base_lrs]


__all__ = ["CosineAnnealingLR", "LRScheduler", "OneCycleLR", "StepLR", "WarmupCosineLR"]
