"""Loss functions as layers; the functional forms (and their backward passes) live in ops.loss.

Each layer takes PyTorch's constructor arguments in PyTorch's order, the deprecated
``size_average`` and ``reduce`` included (accepted as None only), and keeps class weights as
buffers under PyTorch's names, so state_dicts match.
"""

from __future__ import annotations

from typing import Any, ClassVar

from chainrule import validate
from chainrule.engine.backend import get_default_dtype
from chainrule.engine.tensor import Tensor
from chainrule.nn.module import Module
from chainrule.ops import loss as ops_loss


class _Loss(Module):
    """Shared by the loss layers: ``reduction`` is checked where the layer is built. Their repr
    is PyTorch's, ``CrossEntropyLoss()``, without the settings."""

    reductions: ClassVar[tuple[str, ...]] = ("mean", "sum", "none")

    def __init__(self, size_average: None = None, reduce: None = None,
                 reduction: str = "mean") -> None:
        super().__init__()
        ops_loss._no_legacy(type(self).__name__, size_average, reduce)
        self.reduction = validate.choice(type(self).__name__, "reduction", reduction,
                                         self.reductions)


class _WeightedLoss(_Loss):
    """A loss with a class ``weight``, kept as a buffer (as PyTorch keeps it)."""

    def __init__(self, weight: Any = None, size_average: None = None, reduce: None = None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _weight_array(type(self).__name__, "weight", weight))


def _weight_array(owner: str, name: str, value: Any) -> Any:
    """A weight argument as the array its buffer keeps (integers at the default dtype)."""
    array = ops_loss.weight_data(owner, name, value)
    if array is None:
        return None
    return array.copy() if array.dtype.kind == "f" else array.astype(get_default_dtype())


class MSELoss(_Loss):
    """Mean squared error; an (N, 1) output against (N,) targets is compared as if squeezed."""

    def forward(self, output: Tensor, target: Any) -> Tensor:
        """The loss between ``output`` and ``target``."""
        return ops_loss.mse(output, target, self.reduction)


class L1Loss(_Loss):
    """Mean absolute error |input - target|."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        """The loss between ``input`` and ``target``."""
        return ops_loss.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Squared error below ``beta``, absolute error above it."""

    def __init__(self, size_average: None = None, reduce: None = None, reduction: str = "mean",
                 beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = validate.real(type(self).__name__, "beta", beta, low=0)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        """The loss between ``input`` and ``target``."""
        return ops_loss.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """Squared error below ``delta``, linear above it."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = validate.real(type(self).__name__, "delta", delta, low=0, low_open=True)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        """The loss between ``input`` and ``target``."""
        return ops_loss.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class KLDivLoss(_Loss):
    """KL divergence of the target from log-probabilities ('batchmean' is the true one)."""

    reductions = ("mean", "batchmean", "sum", "none")

    def __init__(self, size_average: None = None, reduce: None = None, reduction: str = "mean",
                 log_target: bool = False) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = validate.boolean(type(self).__name__, "log_target", log_target)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        """The divergence of ``target`` from ``input`` (log-probabilities)."""
        return ops_loss.kl_div(input, target, reduction=self.reduction,
                               log_target=self.log_target)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy of probabilities in [0, 1] against targets."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        """The loss of ``input`` against ``target``."""
        return ops_loss.binary_cross_entropy(input, target, self.weight,
                                             reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy of logits against class indices or probabilities (one fused op);
    ``weight`` per class, ``ignore_index``, ``label_smoothing`` as PyTorch's."""

    def __init__(self, weight: Any = None, size_average: None = None, ignore_index: int = -100,
                 reduce: None = None, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        name = type(self).__name__
        self.ignore_index = validate.integer(name, "ignore_index", ignore_index)
        self.label_smoothing = validate.real(name, "label_smoothing", label_smoothing, 0, 1)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        """The loss of ``input`` at the ``target`` classes."""
        return ops_loss.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                                      reduction=self.reduction,
                                      label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities at class indices."""

    def __init__(self, weight: Any = None, size_average: None = None, ignore_index: int = -100,
                 reduce: None = None, reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = validate.integer(type(self).__name__, "ignore_index", ignore_index)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        """The loss of ``input`` at the ``target`` classes."""
        return ops_loss.nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                                 reduction=self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1]; ``pos_weight``
    weighs the positive term per class."""

    def __init__(self, weight: Any = None, size_average: None = None, reduce: None = None,
                 reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.register_buffer("pos_weight", _weight_array(type(self).__name__, "pos_weight",
                                                         pos_weight))

    def forward(self, input: Tensor, target: Any) -> Tensor:
        """The loss of ``input`` against ``target``."""
        return ops_loss.binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight)
