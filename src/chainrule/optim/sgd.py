"""Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay."""

from __future__ import annotations

from collections.abc import Mapping
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
        lr, momentum = float(group["lr"]), float(group["momentum"])
        rule = (lr, momentum, float(group["dampening"]), float(group["weight_decay"]),
                bool(group["nesterov"]))
        for p in group["params"]:
            grad = self._grad(p)
            if grad is None:
                continue
            buf, first = None, False
            if momentum != 0:
                state = self.state.setdefault(p, {})
                buf = state.get("momentum_buffer")
                if buf is None:  # the buffer starts as the first g
                    buf = state["momentum_buffer"] = np.empty_like(p._data)
                    first = True
            # the whole step, in place: one compiled loop, or kernels.sgd_update_reference's
            # passes in cache-sized blocks
            kernels.sgd_update(p._data, grad, buf, *rule, first)
