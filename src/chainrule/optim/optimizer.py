"""Optimizer: parameter groups, per-parameter state, and saving and loading that state.

The state dict has PyTorch's shape::

    {"param_groups": [{"lr": 0.01, ..., "params": [0, 1, 2]}, ...],
     "state": {0: {"step": 3, "exp_avg": array, "exp_avg_sq": array}, ...}}

Parameters are numbered in order across the groups; ``state`` holds only the parameters that
have been stepped. For a safetensors checkpoint the same content splits in two:
``state_arrays()`` gives ``{"state.0.exp_avg": array, "state.0.step": 0-d int64 array, ...}``
and ``hyperparameters()`` gives the JSON-able ``{"param_groups": [...]}``;
``load_flat_state(hyperparameters, arrays)`` puts them back together.
"""

from __future__ import annotations

import copy
import math
import numbers
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from chainrule import validate
from chainrule.engine.tensor import Tensor, enable_grad

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]

_ARRAY_NAME = re.compile(r"state\.(\d+)\.(\w+)")
_SET_MESSAGE = ("{name}: params must be an ordered collection such as a list, not a set: a "
                "set's order changes between runs, and state dicts name parameters by position")


class Optimizer:
    """Base class of the optimizers: holds parameter groups and per-parameter state.

    A subclass passes its hyperparameter defaults to ``__init__``, lists the names of its
    per-parameter state in ``state_names`` (those that are counts kept as Python ints, like
    ``step``, also in ``scalar_state_names``), checks a group's hyperparameters in
    ``_validate`` and updates one group's parameters in ``_update_group``.
    """

    state_names: tuple[str, ...] = ()
    scalar_state_names: tuple[str, ...] = ()

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self._validate(self.defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        name = type(self).__name__
        if isinstance(params, (Tensor, dict)):
            raise TypeError(f"{name}: params must be an iterable of tensors or of param-group "
                            f"dicts, got a single {type(params).__name__}; wrap it in a list")
        if isinstance(params, (set, frozenset)):
            raise TypeError(_SET_MESSAGE.format(name=name))
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones take defaults)."""
        name = type(self).__name__
        if not isinstance(group, dict):
            raise TypeError(f"{name}: a param group must be a dict, got {type(group).__name__}")
        if "params" not in group:
            raise ValueError(f"{name}: param group has no 'params' key (keys: {sorted(group)})")
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(_SET_MESSAGE.format(name=name))
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: can only optimize Tensors, got {type(p).__name__}")
            if p.dtype.kind != "f":
                raise TypeError(f"{name}: can only optimize floating tensors, got one of dtype "
                                f"{p.dtype}")
            if not p.is_leaf:
                raise ValueError(f"{name}: can't optimize a non-leaf tensor (made by "
                                 f"{p.grad_fn.__name__}); optimize the leaves it came from")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids) or seen.intersection(ids):
            raise ValueError(f"{name}: some parameters appear more than once (in one group or "
                             "in several); list each parameter once")
        full = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
        self._validate(full)
        full["params"] = params
        self.param_groups.append(full)

    def _validate(self, group: Mapping[str, Any]) -> None:
        """Raise ValueError/TypeError if a group's hyperparameters are invalid."""

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    # ------------------------------------------------------------------ stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (or fill it with zeros, for set_to_none=False)."""
        for p in self._params():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.fill(0)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns closure() if one is given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._update_group(group)
            for p in group["params"]:
                if p.grad is not None:  # updated in place: a graph that saw it is stale now
                    p._bump_version()
        return loss

    def _update_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define _update_group()")

    def _grad(self, p: Tensor) -> np.ndarray | None:
        """p's gradient, checked against p's shape (None: skip the parameter)."""
        grad = p.grad
        if grad is not None and grad.shape != p._data.shape:
            index = next(i for i, q in enumerate(self._params()) if q is p)
            raise ValueError(f"{type(self).__name__}: parameter {index} has shape {p.data.shape} "
                             f"but its grad has shape {grad.shape}")
        return grad

    # ------------------------------------------------------------------ state dicts
    def state_dict(self) -> dict[str, Any]:
        """A snapshot (copies) of hyperparameters and state, parameters named by index."""
        index = {id(p): i for i, p in enumerate(self._params())}
        groups = []
        for group in self.param_groups:
            saved = copy.deepcopy({k: v for k, v in group.items() if k != "params"})
            saved["params"] = [index[id(p)] for p in group["params"]]
            groups.append(saved)
        state = {}
        for i, p in enumerate(self._params()):
            entry = self.state.get(p)
            if entry:
                state[i] = {k: v.copy() if isinstance(v, np.ndarray) else v
                            for k, v in entry.items()}
        return {"param_groups": groups, "state": state}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()``; checks everything first, so a mismatch changes nothing."""
        name = type(self).__name__
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"param_groups", "state"}:
            keys = sorted(state_dict) if isinstance(state_dict, Mapping) else type(state_dict)
            raise ValueError(f"{name}: a state dict has exactly the keys 'param_groups' and "
                             f"'state', got {keys}")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}: the state dict has {len(saved_groups)} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        by_saved_index: dict[int, Tensor] = {}
        new_groups = []
        for g, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            saved_params = list(saved.get("params", []))
            if len(saved_params) != len(group["params"]):
                raise ValueError(f"{name}: parameter group {g} has {len(saved_params)} "
                                 f"parameters in the state dict but {len(group['params'])} here")
            missing = [k for k in self.defaults if k not in saved]
            if missing:
                raise ValueError(f"{name}: parameter group {g} of the state dict lacks "
                                 f"{', '.join(missing)} (is it from another optimizer?)")
            hyper = {k: tuple(v) if isinstance(v, list) else v
                     for k, v in saved.items() if k != "params"}
            self._validate(hyper)
            new_groups.append(hyper)
            by_saved_index.update(zip((int(i) for i in saved_params), group["params"]))
        new_state = {}
        for key, entry in state_dict["state"].items():
            p = by_saved_index.get(int(key))
            if p is None:
                raise ValueError(f"{name}: the state dict has state for parameter {key}, which "
                                 "none of its param groups lists")
            new_state[p] = self._checked_entry(int(key), p, entry)
        for group, hyper in zip(self.param_groups, new_groups):
            group.update(hyper)
        self.state = new_state

    def _checked_entry(self, index: int, p: Tensor, entry: Mapping[str, Any]) -> dict[str, Any]:
        """One parameter's loaded state, checked against p and copied into p's dtype."""
        name = type(self).__name__
        if set(entry) != set(self.state_names):
            raise ValueError(f"{name}: state for parameter {index} has {sorted(entry)}, but "
                             f"{name} keeps {sorted(self.state_names)}")
        checked: dict[str, Any] = {}
        for key, value in entry.items():
            if key in self.scalar_state_names:
                # Some writers store a 0-d array as shape (1,) (np.ascontiguousarray does).
                if isinstance(value, np.ndarray) and value.size == 1 and value.ndim <= 1:
                    value = value.item()
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise TypeError(f"{name}: state {key} of parameter {index} must be a "
                                    f"number, got {type(value).__name__}")
                # The scalar states are counts (Adam's step): a negative or fractional one
                # would make the bias corrections meaningless, or fail in a sqrt later.
                checked[key] = validate.integer(name, f"state {key} of parameter {index}",
                                                value, low=0)
                continue
            value = np.asarray(value)
            if value.shape != p.data.shape:
                raise ValueError(f"{name}: state {key} of parameter {index} has shape "
                                 f"{value.shape}, but the parameter has shape {p.data.shape}")
            checked[key] = np.array(value, dtype=p.data.dtype)  # a copy, in the param's dtype
        return checked

    # ------------------------------------------------------------------ flat form
    def state_arrays(self) -> dict[str, np.ndarray]:
        """The state as ``{"state.<index>.<name>": array}``, ready for a safetensors file.

        Numbers (like Adam's ``step``) become 0-d arrays (int64 or float64).
        """
        arrays = {}
        for index, entry in self.state_dict()["state"].items():
            for key, value in entry.items():
                if not isinstance(value, np.ndarray):
                    value = np.asarray(value, np.int64 if isinstance(value, int) else np.float64)
                arrays[f"state.{index}.{key}"] = value
        return arrays

    def hyperparameters(self) -> dict[str, Any]:
        """The param groups (hyperparameters and parameter indices) as JSON-able values."""
        return {"param_groups": [_jsonable(group)
                                 for group in self.state_dict()["param_groups"]]}

    def load_flat_state(self, hyperparameters: Mapping[str, Any],
                        arrays: Mapping[str, np.ndarray]) -> None:
        """Restore from ``hyperparameters()`` and ``state_arrays()`` (e.g. read from a file)."""
        state: dict[int, dict[str, Any]] = {}
        for key, value in arrays.items():
            match = _ARRAY_NAME.fullmatch(key)
            if match is None:
                raise ValueError(f"{type(self).__name__}: unexpected optimizer array {key!r} "
                                 "(names look like 'state.3.exp_avg')")
            state.setdefault(int(match[1]), {})[match[2]] = value
        if not isinstance(hyperparameters, Mapping) or "param_groups" not in hyperparameters:
            raise ValueError(f"{type(self).__name__}: hyperparameters must be a dict with "
                             "'param_groups', as hyperparameters() returns")
        self.load_state_dict({"param_groups": hyperparameters["param_groups"],
                              "state": dict(sorted(state.items()))})

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            settings = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} params, {settings}")
        return "\n".join(lines) + "\n)"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------------- validation helpers
def real(owner: str, name: str, value: Any) -> float:
    """``value`` as a float; a TypeError naming ``owner`` and ``name`` if it is not a number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    return float(value)


def check_range(owner: str, name: str, value: Any, low: float = 0.0,
                high: float = math.inf, high_open: bool = False) -> float:
    """``value`` as a float, checked to be finite and in [low, high] (or [low, high))."""
    number = real(owner, name, value)
    ok = math.isfinite(number) and low <= number and (number < high if high_open
                                                      else number <= high)
    if not ok:
        bounds = (f">= {low:g}" if high == math.inf
                  else f"in [{low:g}, {high:g}{')' if high_open else ']'}")
        raise ValueError(f"{owner}: {name} must be {bounds}, got {value!r}")
    return number
