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


# ----------------------------------------------------------------------------- GPT
# nanoGPT's model in torch, with chainrule.nn.GPT's module and parameter names, so that a
# chainrule GPT's state dict loads into it (the tied head listed under both names, as torch
# writes it). Shared by the parity test (tests/test_gpt.py) and the training benchmark
# (benchmarks/gpt_shakespeare.py). Dropout is torch's own: only at dropout 0 do the two
# compute the same numbers, since the libraries draw their masks from different streams.
class CausalSelfAttention(torch.nn.Module):
    """``c_attn`` (C -> 3 C), causal attention over ``n_head`` heads, ``c_proj`` (C -> C)."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0,
                 bias: bool = True) -> None:
        super().__init__()
        self.c_attn = torch.nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = torch.nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = torch.nn.Dropout(dropout)
        self.n_head, self.dropout = n_head, dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Causal self-attention of ``x`` (B, T, C), the same shape back."""
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
                   for z in self.c_attn(x).split(c, dim=2))
        y = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c)))


class MLP(torch.nn.Module):
    """Linear C -> 4 C, GELU (``approximate``: 'tanh' or 'none'), Linear 4 C -> C, dropout."""

    def __init__(self, n_embd: int, dropout: float = 0.0, bias: bool = True,
                 approximate: str = "tanh") -> None:
        super().__init__()
        self.c_fc = torch.nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = torch.nn.GELU(approximate)
        self.c_proj = torch.nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The feed-forward part of a block."""
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class TransformerBlock(torch.nn.Module):
    """Pre-LayerNorm block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True,
                 approximate: str = "tanh") -> None:
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = torch.nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias, approximate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One block, each half around a residual connection."""
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(torch.nn.Module):
    """nanoGPT's GPT, as chainrule.nn.GPT: tokens (B, T) -> logits (B, T, vocab_size), the
    head tied to the token embedding. Weights are torch's defaults: load chainrule's."""

    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int,
                 n_embd: int, dropout: float = 0.0, bias: bool = True,
                 approximate: str = "tanh") -> None:
        super().__init__()
        self.transformer = torch.nn.ModuleDict(dict(
            wte=torch.nn.Embedding(vocab_size, n_embd),
            wpe=torch.nn.Embedding(block_size, n_embd),
            drop=torch.nn.Dropout(dropout),
            h=torch.nn.ModuleList([TransformerBlock(n_embd, n_head, dropout, bias, approximate)
                                   for _ in range(n_layer)]),
            ln_f=torch.nn.LayerNorm(n_embd, bias=bias)))
        self.lm_head = torch.nn.Linear(n_embd, vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied, as nanoGPT's

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits of the next token after each position of ``idx``."""
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))
