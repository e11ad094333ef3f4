"""Finite-difference gradient checks: does backward agree with the slope of forward?

For a random output weighting u, the scalar L(x) = sum(u * f(x)) has gradient
dL/dx = backward(u). Central differences estimate the same quantity:

    random mode:  (L(x + eps v) - L(x - eps v)) / (2 eps)  ~  <dL/dx, v>   for random v
    full mode:    (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)  ~  dL/dx[j]  for every j

Run in float64: in float32 the difference quotient loses about half its digits.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.tensor import Tensor


class GradcheckError(AssertionError):
    """A gradient disagrees with finite differences; the message says where and by how much."""


@dataclass
class GradcheckResult:
    """What a check compared: the worst relative error per input (None for untested inputs)."""

    mode: str
    worst_error: list[float | None] = field(default_factory=list)


def _scalar(fn: Callable[..., Any], arrays: Sequence[Any], weights: np.ndarray) -> float:
    inputs = [Tensor(a) if isinstance(a, np.ndarray) else a for a in arrays]
    out = fn(*inputs)
    return float(np.sum(weights * (out.data if isinstance(out, Tensor) else out)))


def _close(expected: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    return np.abs(expected - got) <= atol + rtol * np.abs(expected)


def gradcheck(fn: Callable[..., Any], inputs: Sequence[Any], mode: str = "auto",
              eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-7,
              wrt: Sequence[int] | None = None, directions: int = 3,
              seed: int = 0, full_limit: int = 64) -> GradcheckResult:
    """Compare ``fn``'s backward with central differences of its forward.

    ``inputs`` are arrays (or non-array constants passed through); floating arrays listed in
    ``wrt`` (all floating ones by default) get gradients. ``mode`` is 'random' (a few random
    directions per input, cheap), 'full' (every element: the whole Jacobian-vector product),
    or 'auto' (full when an input has at most ``full_limit`` elements). Raises GradcheckError
    naming the input and element that disagree. Floating inputs are taken at float64; a Module
    ``fn`` runs as a float64 copy, so its parameters and their gradients are left untouched.
    """
    from chainrule.nn.module import Module  # nn imports the engine; the engine not nn

    rng = np.random.default_rng(seed)
    if isinstance(fn, Module):
        fn = copy.deepcopy(fn)
        for param in fn.parameters():
            param.data = param.data.astype(np.float64)
    arrays = [np.asarray(a.data if isinstance(a, Tensor) else a)
              if isinstance(a, (np.ndarray, list, Tensor)) else a for a in inputs]
    arrays = [a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
              for a in arrays]
    if wrt is None:
        wrt = [i for i, a in enumerate(arrays)
               if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    tensors = [Tensor(a, requires_grad=(i in wrt)) if isinstance(a, np.ndarray) else a
               for i, a in enumerate(arrays)]
    out = fn(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    weights = rng.standard_normal(out.shape)
    if out.requires_grad:
        out.backward(weights.astype(out.dtype))
    result = GradcheckResult(mode=mode, worst_error=[None] * len(arrays))
    for i in wrt:
        x = arrays[i]
        analytic = tensors[i].grad if tensors[i].grad is not None else np.zeros_like(x)
        use_full = mode == "full" or (mode == "auto" and x.size <= full_limit)

        def loss_at(shifted: np.ndarray, i: int = i) -> float:
            return _scalar(fn, arrays[:i] + [shifted] + arrays[i + 1:], weights)

        if use_full:
            numeric = np.zeros(x.size)
            flat = x.reshape(-1)
            for j in range(x.size):
                step = np.zeros_like(flat)
                step[j] = eps
                plus, minus = (flat + step).reshape(x.shape), (flat - step).reshape(x.shape)
                numeric[j] = (loss_at(plus) - loss_at(minus)) / (2 * eps)
            got = analytic.reshape(-1)
            ok = _close(numeric, got, rtol, atol)
            scale = np.maximum(np.abs(numeric), 1.0)
            result.worst_error[i] = float(np.max(np.abs(numeric - got) / scale, initial=0.0))
            if not ok.all():
                j = int(np.argmin(ok))
                raise GradcheckError(
                    f"gradient of input {i} (shape {x.shape}) disagrees with finite differences "
                    f"at element {np.unravel_index(j, x.shape)}: finite differences give "
                    f"{numeric[j]:.8g}, backward gives {got[j]:.8g} "
                    f"({int((~ok).sum())} of {x.size} elements differ)"
                )
        else:
            worst = 0.0
            for _ in range(directions):
                v = rng.standard_normal(x.shape)
                numeric = (loss_at(x + eps * v) - loss_at(x - eps * v)) / (2 * eps)
                got = float(np.sum(analytic * v))
                worst = max(worst, abs(numeric - got) / max(abs(numeric), 1.0))
                if not _close(np.array(numeric), np.array(got), rtol, atol * x.size):
                    raise GradcheckError(
                        f"gradient of input {i} (shape {x.shape}) disagrees with finite "
                        f"differences along a random direction: the directional derivative is "
                        f"{numeric:.8g} by finite differences, {got:.8g} by backward"
                    )
            result.worst_error[i] = worst
    return result
