"""A helper the tests share: which ops a result's tape holds."""

from __future__ import annotations

import chainrule as cr


def ops_on_tape(out: cr.Tensor) -> list[str]:
    """Names of the ops on the tape behind ``out`` along first inputs, outputs first."""
    names, node = [], out
    while node is not None and node.grad_fn is not None:
        names.append(node.grad_fn.name)
        node = node._parents[0]
    return names
