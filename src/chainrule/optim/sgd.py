"""Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np

from chainrule import kernels
from chainrule.optim.optimizer import Optimizer, ParamsT, check_range


class SGD(Optimizer):
    """SGD with the update rule of ``torch.optim.SGD``.

    With g the gradient plus ``weight_decay * p``: the momentum buffer starts as the first g and
    then becomes ``momentum * buf + (1 - dampening) * g``; the step direction is the buffer, or
    ``g + momentum * buf`` with ``nesterov=True``; and ``p -= lr * direction``.
    """

    state_names = ("momentum_buffer",)

    def __init__(self, params: ParamsT, lr: float, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov})

    def _validate(self, group: Mapping[str, Any]) -> None:
        check_range("SGD", "lr", group["lr"])
        momentum = check_range("SGD", "momentum", group["momentum"])
        dampening = check_range("SGD", "dampening", group["dampening"], high=1.0)
        check_range("SGD", "weight_decay", group["weight_decay"])
        if not isinstance(group["nesterov"], (bool, np.bool_)):
            raise TypeError(f"SGD: nesterov must be True or False, got {group['nesterov']!r}")
        if group["nesterov"] and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={momentum:g}, dampening={dampening:g}")

    def _update_group(self, group: dict[str, Any]) -> None:
        # Python floats keep float32 arithmetic in float32 (NumPy treats them as weak scalars).
        lr, momentum = float(group["lr"]), float(group["momentum"])
        dampening, weight_decay = float(group["dampening"]), float(group["weight_decay"])
        rule = (lr, momentum, dampening, weight_decay, bool(group["nesterov"]))
        step = partial(_sgd_update, *rule, False)
        for p in group["params"]:
            grad = self._grad(p)
            if grad is None:
                continue
            param = p._data
            if momentum == 0:
                kernels.blocked_update(step, param, grad)
                continue
            state = self.state.setdefault(p, {})
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.empty_like(param)
                first_step = partial(_sgd_update, *rule, True)  # the buffer starts as g
                kernels.blocked_update(first_step, param, grad, buf)
            else:
                kernels.blocked_update(step, param, grad, buf)


def _sgd_update(lr: float, momentum: float, dampening: float, weight_decay: float,
                nesterov: bool, first: bool, param: np.ndarray, grad: np.ndarray,
                *buffer: np.ndarray) -> None:
    """One SGD step of ``param`` in place (with its momentum ``buffer`` if momentum > 0);
    ``first`` is the buffer's first step. Elementwise, so it may run block by block."""
    direction = grad
    if weight_decay != 0:
        direction = param * weight_decay  # a new array: p.grad is left as it was
        direction += grad
    if buffer:
        (buf,) = buffer
        if first:
            # As in torch, the buffer starts as the first gradient, undamped.
            buf[...] = direction
        else:
            buf *= momentum
            buf += direction if dampening == 0 else direction * (1 - dampening)
        if nesterov:
            look_ahead = buf * momentum
            look_ahead += direction
            direction = look_ahead
        else:
            direction = buf
    param += direction * -lr
