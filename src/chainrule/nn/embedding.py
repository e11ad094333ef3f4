"""Embedding: a lookup table of learned rows; the op lives in chainrule.ops.embedding."""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import validate
from chainrule.engine.tensor import Tensor
from chainrule.nn import init
from chainrule.nn.module import Module, Parameter
from chainrule.ops.embedding import embedding


class Embedding(Module):
    """Rows of a (num_embeddings, embedding_dim) ``weight`` looked up by integer index.

    As in PyTorch: weights drawn from N(0, 1), the ``padding_idx`` row (if any) starts at zero
    and never receives a gradient, so it stays as it is set. ``max_norm`` and ``sparse=True``
    are not supported (the first rewrites weight in place during forward).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, sparse: bool = False,
                 _weight: Any = None, _freeze: bool = False,
                 dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        num_embeddings = validate.integer(name, "num_embeddings", num_embeddings, low=1)
        embedding_dim = validate.integer(name, "embedding_dim", embedding_dim, low=1)
        if padding_idx is not None:
            padding_idx = validate.integer(name, "padding_idx", padding_idx, -num_embeddings,
                                           num_embeddings - 1) % num_embeddings
        if max_norm is not None:
            raise ValueError(f"{name}: max_norm is not supported (it rescales weight in place "
                             "during forward); renormalise the weight yourself")
        if validate.boolean(name, "sparse", sparse):
            raise ValueError(f"{name}: sparse=True is not supported: chainrule's gradients "
                             "are dense")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx, self.max_norm = padding_idx, None
        self.norm_type = validate.real(name, "norm_type", norm_type, finite=False)
        self.scale_grad_by_freq = validate.boolean(name, "scale_grad_by_freq",
                                                   scale_grad_by_freq)
        self.sparse = False
        freeze = validate.boolean(name, "_freeze", _freeze)
        if _weight is None:
            dtype = validate.float_dtype(name, "dtype", dtype)
            generator = validate.generator(name, "generator", generator)
            self.weight = Parameter(init.empty((num_embeddings, embedding_dim), dtype),
                                    requires_grad=not freeze)
            init.normal_(self.weight, generator=generator)
            if padding_idx is not None:
                init._fill(self.weight, lambda: _zero_row(self.weight.data, padding_idx))
        else:
            data = np.array(_weight.data if isinstance(_weight, Tensor) else _weight,
                            dtype=None if dtype is None else validate.float_dtype(
                                name, "dtype", dtype))
            if data.shape != (num_embeddings, embedding_dim):
                raise ValueError(f"{name}: _weight must have shape ({num_embeddings}, "
                                 f"{embedding_dim}), got {data.shape}")
            validate.float_dtype(name, "_weight's dtype", data.dtype)
            self.weight = Parameter(data, requires_grad=not freeze)

    @classmethod
    def from_pretrained(cls, embeddings: Any, freeze: bool = True,
                        padding_idx: int | None = None, max_norm: float | None = None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> Embedding:
        """An Embedding holding a copy of the 2-D ``embeddings`` (frozen by default)."""
        shape = np.shape(embeddings.data if isinstance(embeddings, Tensor) else embeddings)
        if len(shape) != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape "
                             f"{shape}")
        return cls(shape[0], shape[1], padding_idx, max_norm, norm_type, scale_grad_by_freq,
                   sparse, _weight=embeddings, _freeze=freeze)

    def forward(self, input: Any) -> Tensor:
        """The rows of ``weight`` at the indices ``input``."""
        return embedding(input, self.weight, self.padding_idx,
                         scale_grad_by_freq=self.scale_grad_by_freq)

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        if self.norm_type != 2:
            text += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            text += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        return text


def _zero_row(weight: np.ndarray, row: int) -> np.ndarray:
    out = weight.copy()
    out[row] = 0
    return out
