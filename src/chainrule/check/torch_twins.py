"""torch.nn twins of chainrule layers that torch.nn has no class for.

Imported only when a conversion needs them (it imports torch). Each mirrors the chainrule
layer's attribute names, so state_dicts line up key for key.
"""

from __future__ import annotations

import torch


class GlobalAvgPool2d(torch.nn.Module):
    """Mean over H and W: (N, C, H, W) -> (N, C); AdaptiveAvgPool2d(1) and Flatten in one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Average over the last two axes."""
        return x.mean(dim=(2, 3))


class ResidualBlock(torch.nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), as chainrule.nn.ResidualBlock."""

    def __init__(self, conv1: torch.nn.Module, bn1: torch.nn.Module, conv2: torch.nn.Module,
                 bn2: torch.nn.Module, shortcut: torch.nn.Module | None) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu = conv1, bn1, torch.nn.ReLU()
        self.conv2, self.bn2, self.shortcut = conv2, bn2, shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the block."""
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.shortcut is None else self.shortcut(x)))
