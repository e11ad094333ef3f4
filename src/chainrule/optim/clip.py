"""Gradient clipping, as torch.nn.utils does it: by the global norm, or value by value.

``clip_grad_norm_`` treats every gradient as one long vector: with ``total`` its norm, each
gradient is multiplied in place by ``min(1, max_norm / (total + 1e-6))``, so the direction of
the step is kept and only its length is capped. The small constant is torch's: it keeps the
factor finite when every gradient is zero. The norm is computed in the gradients' dtype (a
float32 model's norm is float32, as torch's is), and parameters without a gradient are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from chainrule import validate
from chainrule.engine.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(owner: str, parameters: Tensor | Iterable[Tensor]) -> list[np.ndarray]:
    """The ``.grad`` arrays of ``parameters`` (one tensor or an iterable of them) that exist."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    elif isinstance(parameters, (str, bytes)) or not isinstance(parameters, Iterable):
        raise TypeError(f"{owner}: parameters must be a tensor or an iterable of tensors "
                        f"(e.g. model.parameters()), got {type(parameters).__name__}")
    grads = []
    for i, p in enumerate(parameters):
        if not isinstance(p, Tensor):
            raise TypeError(f"{owner}: parameters[{i}] is a {type(p).__name__}, not a tensor; "
                            "pass model.parameters() (a dict of them: .values())")
        if p.grad is not None:
            grads.append(p.grad)
    return grads


def _norm_type(owner: str, norm_type: Any) -> float:
    if isinstance(norm_type, str):
        if norm_type.strip().lower() != "inf":
            raise ValueError(f"{owner}: norm_type must be a number > 0 or 'inf', got "
                             f"{norm_type!r}")
        return math.inf
    value = validate.real(owner, "norm_type", norm_type, finite=False)
    if not value > 0:  # also refuses NaN
        raise ValueError(f"{owner}: norm_type must be > 0 (2.0 for the Euclidean norm, "
                         f"float('inf') for the largest entry), got {norm_type!r}")
    return value


def _vector_norm(values: np.ndarray, p: float) -> np.generic:
    """The p-norm of all of ``values``, in their dtype."""
    flat = values.reshape(-1)
    if p == math.inf:
        return np.max(np.abs(flat)) if flat.size else flat.dtype.type(0)
    if p == 2.0:
        return np.sqrt(np.dot(flat, flat))
    if p == 1.0:
        return np.sum(np.abs(flat))
    return np.sum(np.abs(flat) ** flat.dtype.type(p)) ** flat.dtype.type(1 / p)


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                    norm_type: float | str = 2.0, error_if_nonfinite: bool = False,
                    foreach: bool | None = None) -> Tensor:
    """Scale the gradients in place so their global norm is at most ``max_norm``; the norm."""
    owner = "clip_grad_norm_"
    max_norm = validate.real(owner, "max_norm", max_norm, low=0.0)
    p = _norm_type(owner, norm_type)
    validate.boolean(owner, "error_if_nonfinite", error_if_nonfinite)
    del foreach  # torch's choice of kernel; one NumPy loop serves here
    grads = _grads(owner, parameters)
    if not grads:
        return Tensor(np.array(0.0, dtype=np.float32))
    # The norm of the per-gradient norms equals the norm of them all end to end (torch's way).
    dtype = np.result_type(*grads)
    norms = np.array([_vector_norm(g, p) for g in grads], dtype=dtype)
    total = _vector_norm(norms, p)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"{owner}: the total norm of order {norm_type} of the gradients is "
                           f"{total}, so they cannot be clipped. Find where the loss or a layer "
                           "goes NaN/inf (chainrule.check.sentinel, a lower learning "
                           "rate), or pass error_if_nonfinite=False to scale them anyway")
    coef = dtype.type(max_norm) / (total + dtype.type(1e-6))
    coef = min(coef, dtype.type(1.0))
    for g in grads:
        g *= coef.astype(g.dtype)  # in place, as torch's mul_: the gradient arrays are kept
    return Tensor(np.asarray(total, dtype=dtype))


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float,
                     foreach: bool | None = None) -> None:
    """Clamp every gradient entry into ``[-clip_value, clip_value]``, in place."""
    owner = "clip_grad_value_"
    clip_value = validate.real(owner, "clip_value", clip_value, low=0.0)
    del foreach
    for g in _grads(owner, parameters):
        np.clip(g, -clip_value, clip_value, out=g)
