"""Loss functions as layers; the functional forms (and their backward passes) live in ops.loss."""

from __future__ import annotations

from typing import Any, ClassVar

from chainrule import validate
from chainrule.engine.tensor import Tensor
from chainrule.nn.module import Module
from chainrule.ops.loss import binary_cross_entropy_with_logits, cross_entropy, mse, nll_loss


class _Loss(Module):
    """Shared by the loss layers: ``reduction`` is checked where the layer is built."""

    reductions: ClassVar[tuple[str, ...]] = ("mean", "sum", "none")

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = validate.choice(type(self).__name__, "reduction", reduction,
                                         self.reductions)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Mean squared error; an (N, 1) output against (N,) targets is compared as if squeezed."""

    reductions = ("mean", "sum")  # the op returns one number, so no per-element 'none'

    def forward(self, output: Tensor, target: Any) -> Tensor:
        """The loss between ``output`` and ``target``."""
        return mse(output, target, self.reduction)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy of (N, C) logits against (N,) class indices (one fused op)."""

    def forward(self, logits: Tensor, targets: Any) -> Tensor:
        """The loss of ``logits`` at the ``targets`` classes."""
        return cross_entropy(logits, targets, self.reduction)


class NLLLoss(_Loss):
    """Negative log-likelihood of (N, C) log-probabilities at (N,) class indices."""

    def forward(self, log_probs: Tensor, targets: Any) -> Tensor:
        """The loss of ``log_probs`` at the ``targets`` classes."""
        return nll_loss(log_probs, targets, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1]."""

    def forward(self, logits: Tensor, targets: Any) -> Tensor:
        """The loss of ``logits`` against ``targets``."""
        return binary_cross_entropy_with_logits(logits, targets, self.reduction)
