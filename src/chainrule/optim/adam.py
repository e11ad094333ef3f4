"""Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from chainrule import kernels
from chainrule.optim.optimizer import Optimizer, ParamsT, check_range


class Adam(Optimizer):
    """Adam with the update rule of ``torch.optim.Adam`` (no amsgrad).

    m and v are running averages of g and g²; the step is
    ``p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``, so eps is added
    after v's bias correction. ``weight_decay`` adds ``weight_decay * p`` to g (L2 decay).
    """

    state_names = ("step", "exp_avg", "exp_avg_sq")
    scalar_state_names = ("step",)
    _decoupled = False

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay})

    def _validate(self, group: Mapping[str, Any]) -> None:
        name = type(self).__name__
        check_range(name, "lr", group["lr"])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        check_range(name, "betas[0]", betas[0], high=1.0, high_open=True)
        check_range(name, "betas[1]", betas[1], high=1.0, high_open=True)
        check_range(name, "eps", group["eps"])
        check_range(name, "weight_decay", group["weight_decay"])

    def _update_group(self, group: dict[str, Any]) -> None:
        lr, eps = float(group["lr"]), float(group["eps"])
        weight_decay = float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        for p in group["params"]:
            grad = self._grad(p)
            if grad is None:
                continue
            param = p._data
            state = self.state.get(p)
            if not state:
                state = self.state[p] = {"step": 0, "exp_avg": np.zeros_like(param),
                                         "exp_avg_sq": np.zeros_like(param)}
            state["step"] += 1
            # the whole step, in place: one compiled loop, or kernels.adam_update_reference's
            # NumPy passes in cache-sized blocks
            kernels.adam_update(param, grad, state["exp_avg"], state["exp_avg_sq"], lr, beta1,
                                beta2, eps, weight_decay, self._decoupled, state["step"])


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``.

    ``p *= 1 - lr * weight_decay`` before the Adam step, instead of adding ``weight_decay * p``
    to the gradient.
    """

    _decoupled = True

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
