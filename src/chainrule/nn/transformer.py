"""The pre-LayerNorm transformer block and the GPT built from it, in nanoGPT's layout.

Module and parameter names are nanoGPT's (``transformer.h.0.attn.c_attn.weight``, ...), so a
nanoGPT state dict loads; the head is tied to the token embedding, and its key
``lm_head.weight``, which torch's state dicts repeat, is accepted on load and not written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from chainrule import validate
from chainrule.engine import backend
from chainrule.engine.tensor import STATE, Tensor, _as_data, no_grad
from chainrule.nn import init
from chainrule.nn.activation import GELU
from chainrule.nn.dropout import Dropout
from chainrule.nn.embedding import Embedding
from chainrule.nn.linear import Linear
from chainrule.nn.module import Module
from chainrule.nn.norm import LayerNorm
from chainrule.ops.attention import self_attention
from chainrule.ops.linalg import linear_gelu


class CausalSelfAttention(Module):
    """Masked self-attention over (B, T, C) inputs: ``c_attn`` projects to queries, keys and
    values at once (C -> 3 C), ``n_head`` heads attend causally (one op), ``c_proj`` mixes the
    heads back (C -> C); dropout on the attention weights and after the projection."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True,
                 dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        n_embd = validate.integer(name, "n_embd", n_embd, low=1)
        n_head = validate.integer(name, "n_head", n_head, low=1)
        if n_embd % n_head:
            raise ValueError(f"{name}: n_embd ({n_embd}) must be divisible by n_head "
                             f"({n_head}): each head takes n_embd // n_head features")
        self.n_embd, self.n_head = n_embd, n_head
        self.dropout = validate.real(name, "dropout", dropout, 0, 1)
        self.generator = validate.generator(name, "generator", generator)
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias, dtype=dtype, generator=generator)
        self.c_proj = Linear(n_embd, n_embd, bias=bias, dtype=dtype, generator=generator)
        self.resid_dropout = Dropout(self.dropout, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        """Causal self-attention of ``x`` (B, T, C), the same shape back."""
        if x.ndim != 3 or x.shape[-1] != self.n_embd:
            raise ValueError(f"{type(self).__name__}: expected input (B, T, {self.n_embd}), "
                             f"got shape {tuple(x.shape)}")
        p = self.dropout if self.training else 0.0
        # one op splits (B, T, 3C) into heads, attends, and merges them back to (B, T, C)
        y = self_attention(self.c_attn(x), self.n_head, dropout_p=p, is_causal=True,
                           generator=self.generator)
        return self.resid_dropout(self.c_proj(y))

    def extra_repr(self) -> str:
        return f"n_embd={self.n_embd}, n_head={self.n_head}, dropout={self.dropout}"


class MLP(Module):
    """Linear C -> 4 C, GELU, Linear 4 C -> C, dropout (nanoGPT's ``c_fc`` and ``c_proj``)."""

    def __init__(self, n_embd: int, dropout: float = 0.0, bias: bool = True,
                 approximate: str = "tanh", dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        n_embd = validate.integer(type(self).__name__, "n_embd", n_embd, low=1)
        self.c_fc = Linear(n_embd, 4 * n_embd, bias=bias, dtype=dtype, generator=generator)
        self.gelu = GELU(approximate)
        self.c_proj = Linear(4 * n_embd, n_embd, bias=bias, dtype=dtype, generator=generator)
        self.dropout = Dropout(dropout, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        """The feed-forward part of a block."""
        return self.dropout(self.c_proj(self._expand(x)))

    def _expand(self, x: Tensor) -> Tensor:
        """gelu(c_fc(x)): one op (linear_gelu) for the tanh form, unless a hook, the sentinel
        or a subclass wants to see the two layers one by one."""
        fc, gelu = self.c_fc, self.gelu
        if (gelu.approximate == "tanh" and type(fc) is Linear and type(gelu) is GELU
                and STATE.sentinel is None and "_forward_hooks" not in fc.__dict__
                and "_forward_hooks" not in gelu.__dict__):
            return linear_gelu(x, fc.weight, fc.bias)
        return gelu(fc(x))


class TransformerBlock(Module):
    """Pre-LayerNorm block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).

    ``approximate`` is the GELU's form: 'tanh' by default, since chainrule's exact erf runs
    per element in Python (about 40 ms per million values); 'none' is nanoGPT's exact GELU.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True,
                 approximate: str = "tanh", dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(n_embd, bias=bias, dtype=dtype)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias, dtype, generator)
        self.ln_2 = LayerNorm(n_embd, bias=bias, dtype=dtype)
        self.mlp = MLP(n_embd, dropout, bias, approximate, dtype, generator)

    def forward(self, x: Tensor) -> Tensor:
        """One block: attention, then the MLP, each around a residual connection."""
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPTTrunk(Module):
    """nanoGPT's ``transformer``: token and position embeddings (``wte``, ``wpe``), dropout,
    the blocks ``h`` and the final LayerNorm ``ln_f``; tokens (B, T) -> features (B, T, C)."""

    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int,
                 n_embd: int, dropout: float, bias: bool, approximate: str,
                 dtype: np.dtype | str | None, generator: np.random.Generator | None) -> None:
        super().__init__()
        self.wte = Embedding(vocab_size, n_embd, dtype=dtype, generator=generator)
        self.wpe = Embedding(block_size, n_embd, dtype=dtype, generator=generator)
        self.drop = Dropout(dropout, generator=generator)
        self.h = [TransformerBlock(n_embd, n_head, dropout, bias, approximate, dtype, generator)
                  for _ in range(n_layer)]
        self.ln_f = LayerNorm(n_embd, bias=bias, dtype=dtype)

    def forward(self, idx: Any) -> Tensor:
        """The final features of each position."""
        t = idx.shape[1]
        x = self.drop(self.wte(idx) + self.wpe(np.arange(t)))
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class GPT(Module):
    """nanoGPT's GPT: tokens (B, T) of int ids -> logits (B, T, vocab_size).

    ``transformer`` (a GPTTrunk) then ``lm_head``, a Linear(n_embd, vocab_size, bias=False)
    whose weight *is* ``transformer.wte.weight`` (tied). Initialised as nanoGPT: every
    Linear and Embedding weight N(0, 0.02^2), biases 0, and the residual projections
    (``c_proj``) N(0, (0.02 / sqrt(2 n_layer))^2) so the residual stream's variance does not
    grow with depth.
    """

    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int,
                 n_embd: int, dropout: float = 0.0, bias: bool = True,
                 approximate: str = "tanh", dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.vocab_size = validate.integer(name, "vocab_size", vocab_size, low=1)
        self.block_size = validate.integer(name, "block_size", block_size, low=1)
        self.n_layer = validate.integer(name, "n_layer", n_layer, low=0)
        n_head = validate.integer(name, "n_head", n_head, low=1)
        n_embd = validate.integer(name, "n_embd", n_embd, low=1)
        if n_embd % n_head:
            raise ValueError(f"{name}: n_embd ({n_embd}) must be divisible by n_head "
                             f"({n_head}): each head takes n_embd // n_head features")
        dropout = validate.real(name, "dropout", dropout, 0, 1)
        bias = validate.boolean(name, "bias", bias)
        approximate = validate.choice(name, "approximate", approximate, ("none", "tanh"))
        dtype = validate.float_dtype(name, "dtype", dtype)
        generator = validate.generator(name, "generator", generator)
        self.transformer = GPTTrunk(self.vocab_size, self.block_size, self.n_layer, n_head,
                                    n_embd, dropout, bias, approximate, dtype, generator)
        self.lm_head = Linear(n_embd, self.vocab_size, bias=False, dtype=dtype)
        self.transformer.wte.weight = self.lm_head.weight  # tied: one Parameter, two uses
        self._init_weights(generator)

    def _init_weights(self, generator: np.random.Generator | None) -> None:
        """nanoGPT's init, drawn in its order (modules depth first, then the c_proj)."""
        for module in self.modules():
            if isinstance(module, (Linear, Embedding)):
                init.normal_(module.weight, 0.0, 0.02, generator=generator)
            if isinstance(module, Linear) and module.bias is not None:
                init.zeros_(module.bias)
        std = 0.02 / math.sqrt(2 * self.n_layer) if self.n_layer else 0.02
        for key, param in self.named_parameters():
            if key.endswith("c_proj.weight"):
                init.normal_(param, 0.0, std, generator=generator)

    def forward(self, idx: Any) -> Tensor:
        """Logits (B, T, vocab_size) of the next token after each position of ``idx``."""
        idx = self._tokens(idx)
        return self.lm_head(self.transformer(idx))

    def _tokens(self, idx: Any) -> np.ndarray:
        data = idx.data if isinstance(idx, Tensor) else _as_data(idx, where="GPT input")
        name = type(self).__name__
        if data.ndim != 2 or data.dtype.kind not in "iu":
            raise ValueError(f"{name}: expected (B, T) integer token ids, got shape "
                             f"{data.shape} of {data.dtype}")
        if data.shape[1] > self.block_size:
            raise ValueError(f"{name}: a sequence of {data.shape[1]} tokens is longer than "
                             f"block_size {self.block_size}, the positions the model has "
                             f"embeddings for; pass at most the last {self.block_size} tokens")
        if data.shape[1] == 0:
            raise ValueError(f"{name}: expected at least one token per sequence, got shape "
                             f"{data.shape}")
        return data

    def generate(self, idx: Any, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: np.random.Generator | None = None
                 ) -> np.ndarray:
        """``idx`` (B, T) followed by ``max_new_tokens`` sampled tokens, (B, T + new), each
        drawn from softmax(logits / temperature) (only the ``top_k`` likeliest, if given),
        with the context cropped to the last block_size tokens; in eval mode, no gradient."""
        name = f"{type(self).__name__}.generate"
        tokens = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
        if tokens.ndim == 1:
            tokens = tokens[None]
        if tokens.ndim != 2 or tokens.dtype.kind not in "iu" or not tokens.shape[1]:
            raise ValueError(f"{name}: expected (B, T) integer token ids with T >= 1, got "
                             f"shape {tokens.shape} of {tokens.dtype}")
        max_new_tokens = validate.integer(name, "max_new_tokens", max_new_tokens, low=0)
        temperature = validate.real(name, "temperature", temperature, low=0, low_open=True)
        top_k = validate.integer(name, "top_k", top_k, low=1, optional=True)
        generator = validate.generator(name, "generator", generator)
        rng = generator if generator is not None else backend.default_generator()
        tokens = tokens.astype(np.int64)
        modes = [(module, module.training) for module in self.modules()]
        self.eval()
        try:
            with no_grad():
                for _ in range(max_new_tokens):
                    context = tokens[:, -self.block_size:]
                    logits = self(context).data[:, -1, :].astype(np.float64)
                    # Shifted first: divided by a tiny temperature, the largest stays 0 and
                    # the rest go to -inf, never inf - inf = NaN.
                    logits = (logits - logits.max(axis=-1, keepdims=True)) / temperature
                    if top_k is not None and top_k < logits.shape[-1]:
                        kth = np.partition(logits, -top_k, axis=-1)[:, -top_k, None]
                        logits = np.where(logits < kth, -np.inf, logits)
                    logits -= logits.max(axis=-1, keepdims=True)
                    probs = np.exp(logits)
                    cdf = np.cumsum(probs, axis=-1)
                    draw = rng.random((len(tokens), 1)) * cdf[:, -1:]
                    # the first token whose cumulative share passes the draw
                    nxt = np.minimum((cdf <= draw).sum(axis=-1), logits.shape[-1] - 1)
                    tokens = np.concatenate([tokens, nxt[:, None].astype(np.int64)], axis=1)
        finally:
            for module, mode in modes:
                module.training = mode
        return tokens

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """As Module's; a ``lm_head.weight`` key (torch repeats the tied weight under both
        names) must equal ``transformer.wte.weight`` and is then dropped."""
        if "lm_head.weight" in state:
            state = dict(state)
            head = state.pop("lm_head.weight")
            tied = state.get("transformer.wte.weight")
            head = np.asarray(head.data if isinstance(head, Tensor) else head)
            if tied is not None and not np.array_equal(
                    head, np.asarray(tied.data if isinstance(tied, Tensor) else tied)):
                raise ValueError("load_state_dict into GPT: lm_head.weight differs from "
                                 "transformer.wte.weight, but the two are one tied weight here")
            if tied is None:
                state["transformer.wte.weight"] = head
        super().load_state_dict(state, strict)

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, block_size={self.block_size}"
