"""scaled_dot_product_attention's public function (masks, dropout, fully masked rows, errors)
against torch.nn.functional's, nn.MultiheadAttention against torch.nn.MultiheadAttention (state
dicts both ways, every option), and the transformer block against a torch twin."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from layer_twins import (
    F64,
    check_finite_differences,
    check_torch_twin,
    randomised,
    to_torch_state,
)

import chainrule as cr
from chainrule import nn
from chainrule.check import gradcheck

F = nn.functional
RNG = np.random.default_rng(0)


def qkv(*batch: int, length: int = 3, source: int = 5, features: int = 4, values: int = 2
        ) -> list[np.ndarray]:
    return [RNG.standard_normal(batch + (length, features)),
            RNG.standard_normal(batch + (source, features)),
            RNG.standard_normal(batch + (source, values))]


def both(arrays: list[np.ndarray]) -> tuple[list[cr.Tensor], list[torch.Tensor]]:
    return ([cr.tensor(a, requires_grad=True) for a in arrays],
            [torch.tensor(a, requires_grad=True) for a in arrays])


def assert_same_with_gradients(ours: list[cr.Tensor], theirs: list[torch.Tensor],
                               out: cr.Tensor, expected: torch.Tensor) -> None:
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    weights = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(weights)
    expected.backward(torch.from_numpy(weights))
    for mine, reference in zip(ours, theirs):
        np.testing.assert_allclose(mine.grad, reference.grad.numpy(), rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- the function
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_fully_masked_rows_give_zeros_and_no_gradient_as_torch(kind: str) -> None:
    arrays = qkv(2)
    keep = RNG.random((3, 5)) < 0.6
    keep[0] = True
    keep[1] = False  # a row with every key masked
    mask = keep if kind == "bool" else np.where(keep, 0.0, -np.inf)
    ours, theirs = both(arrays)
    out = F.scaled_dot_product_attention(*ours, attn_mask=mask)
    expected = TF.scaled_dot_product_attention(*theirs, attn_mask=torch.from_numpy(mask))
    assert np.isfinite(out.data).all() and not out.data[:, 1].any()
    assert_same_with_gradients(ours, theirs, out, expected)
    assert not ours[0].grad[:, 1].any()


def test_causal_with_more_or_fewer_keys_than_queries() -> None:
    for length, source in ((5, 3), (3, 5), (4, 4)):
        ours, theirs = both(qkv(2, 2, length=length, source=source))
        assert_same_with_gradients(
            ours, theirs, F.scaled_dot_product_attention(*ours, is_causal=True),
            TF.scaled_dot_product_attention(*theirs, is_causal=True))


def test_float_mask_gets_its_gradient_and_other_precisions_are_cast() -> None:
    arrays = qkv(2)
    mask = RNG.standard_normal((3, 5))
    ours, theirs = both(arrays + [mask])
    out = F.scaled_dot_product_attention(*ours[:3], attn_mask=ours[3], scale=0.7)
    expected = TF.scaled_dot_product_attention(*theirs[:3], attn_mask=theirs[3], scale=0.7)
    assert_same_with_gradients(ours, theirs, out, expected)
    # A float32 mask with float64 inputs is added in float64, as PyTorch does.
    low = F.scaled_dot_product_attention(*arrays, attn_mask=mask.astype(np.float32))
    assert low.dtype == np.float64
    np.testing.assert_allclose(low.data, TF.scaled_dot_product_attention(
        *map(torch.from_numpy, arrays), attn_mask=torch.from_numpy(mask.astype(np.float32))
    ).numpy(), rtol=1e-10)


def test_value_batch_axes_broadcast_the_output() -> None:
    q, k = qkv(length=3, source=5)[:2]
    v = RNG.standard_normal((2, 5, 2))
    ours, theirs = both([q, k, v])
    out = F.scaled_dot_product_attention(*ours, is_causal=True)
    assert out.shape == (2, 3, 2)
    assert_same_with_gradients(ours, theirs, out,
                               TF.scaled_dot_product_attention(*theirs, is_causal=True))


def test_dropout_draws_its_mask_from_the_generator() -> None:
    arrays = qkv(2, 2)
    first = F.scaled_dot_product_attention(*arrays, dropout_p=0.5,
                                           generator=np.random.default_rng(3))
    again = F.scaled_dot_product_attention(*arrays, dropout_p=0.5,
                                           generator=np.random.default_rng(3))
    np.testing.assert_array_equal(first.data, again.data)
    plain = F.scaled_dot_product_attention(*arrays)
    assert not np.allclose(first.data, plain.data)
    cr.manual_seed(5)
    seeded = F.scaled_dot_product_attention(*arrays, dropout_p=0.5).data
    cr.manual_seed(5)
    np.testing.assert_array_equal(F.scaled_dot_product_attention(*arrays, dropout_p=0.5).data,
                                  seeded)
    # p = 1 drops everything, as torch's gives zeros
    assert not F.scaled_dot_product_attention(*arrays, dropout_p=1.0).data.any()
    # the expected value is kept: the mean over many draws approaches the plain output
    rng = np.random.default_rng(0)
    mean = np.mean([F.scaled_dot_product_attention(*arrays, dropout_p=0.3,
                                                   generator=rng).data
                    for _ in range(3000)], axis=0)
    np.testing.assert_allclose(mean, plain.data, atol=0.05)


def test_float32_stays_float32_and_gradcheck_through_the_function() -> None:
    out = F.scaled_dot_product_attention(*(a.astype(np.float32) for a in qkv(2)))
    assert out.dtype == np.float32
    mask = RNG.random((3, 5)) < 0.7
    mask[:, 0] = True
    gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                             scale=0.9), qkv(2))


def _split_heads(packed: np.ndarray, heads: int) -> list[np.ndarray]:
    *lead, length, width = packed.shape
    return [np.swapaxes(x.reshape(*lead, length, heads, -1), -3, -2)
            for x in np.split(packed, 3, axis=-1)]


def test_self_attention_is_the_head_split_around_sdpa_dropout_and_all() -> None:
    packed = RNG.standard_normal((2, 5, 3 * 6))
    for kwargs in ({}, {"is_causal": True, "scale": 0.4}, {"dropout_p": 0.3}):
        out = F.self_attention(packed, 2, generator=np.random.default_rng(1), **kwargs)
        heads = F.scaled_dot_product_attention(*_split_heads(packed, 2),
                                               generator=np.random.default_rng(1), **kwargs)
        expected = np.swapaxes(heads.data, -3, -2).reshape(2, 5, 6)
        np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-14)
    gradcheck(lambda x: F.self_attention(x, 3, is_causal=True), [packed])
    single = F.self_attention(packed[0].astype(np.float32), 1)  # no batch axis; float32
    assert single.shape == (5, 6) and single.dtype == np.float32


def test_self_attention_refuses_bad_packing() -> None:
    with pytest.raises(ValueError, match=r"3 \* C\) with C divisible by n_head \(4\)"):
        F.self_attention(RNG.standard_normal((2, 5, 18)), 4)
    with pytest.raises(ValueError, match="3 \\* C"):
        F.self_attention(RNG.standard_normal((2, 5, 7)), 1)
    with pytest.raises(TypeError, match="floating"):
        F.self_attention(np.ones((2, 5, 6), np.int64), 2)
    with pytest.raises(ValueError, match="n_head"):
        F.self_attention(RNG.standard_normal((2, 5, 6)), 0)


def test_bad_inputs_are_refused_clearly() -> None:
    q, k, v = qkv(2)
    sdpa = F.scaled_dot_product_attention
    with pytest.raises(ValueError, match="query's last axis"):
        sdpa(q, k[..., :3], v)
    with pytest.raises(ValueError, match="as many positions"):
        sdpa(q, k, v[:, :4])
    with pytest.raises(ValueError, match="at least 2 dims"):
        sdpa(q[0, 0], k, v)
    with pytest.raises(TypeError, match="share one dtype"):
        sdpa(q, k.astype(np.float32), v)
    with pytest.raises(TypeError, match="floating"):
        sdpa(q.astype(np.int64), k, v)
    with pytest.raises(ValueError, match="not both"):
        sdpa(q, k, v, attn_mask=np.ones((3, 5), bool), is_causal=True)
    with pytest.raises(ValueError, match="does not broadcast"):
        sdpa(q, k, v, attn_mask=np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="does not broadcast"):
        sdpa(q, k, v, attn_mask=np.ones((4, 3, 5), bool))  # would grow the scores
    with pytest.raises(TypeError, match="bool .* or floating"):
        sdpa(q, k, v, attn_mask=np.ones((3, 5), np.int64))
    with pytest.raises(ValueError, match="dropout_p"):
        sdpa(q, k, v, dropout_p=1.5)
    with pytest.raises(ValueError, match="enable_gqa"):
        sdpa(q, k, v, enable_gqa=True)
    with pytest.raises(ValueError, match="do not broadcast"):
        sdpa(q, RNG.standard_normal((3, 5, 4)), RNG.standard_normal((3, 5, 2)))


# ----------------------------------------------------------------------------- the layer
MHA_OPTIONS = [{}, {"batch_first": True}, {"bias": False}, {"kdim": 3, "vdim": 5},
               {"add_bias_kv": True}, {"add_zero_attn": True},
               {"add_bias_kv": True, "add_zero_attn": True, "batch_first": True}]


def twins(options: dict, seed: int = 0) -> tuple[nn.MultiheadAttention,
                                                  torch.nn.MultiheadAttention]:
    ours = randomised(nn.MultiheadAttention(8, 2, **options, **F64), seed)
    theirs = torch.nn.MultiheadAttention(8, 2, **options, dtype=torch.float64)
    theirs.load_state_dict(to_torch_state(ours))
    return ours, theirs


def sequences(options: dict, batch: int | None = 2, length: int = 3, source: int = 4
              ) -> list[np.ndarray]:
    def shaped(n: int, e: int) -> tuple[int, ...]:
        if batch is None:
            return (n, e)
        return (batch, n, e) if options.get("batch_first") else (n, batch, e)
    return [RNG.standard_normal(shaped(length, 8)),
            RNG.standard_normal(shaped(source, options.get("kdim", 8))),
            RNG.standard_normal(shaped(source, options.get("vdim", 8)))]


def close(ours: np.ndarray, reference: np.ndarray, what: str = "") -> None:
    """Equal to rounding: relative 1e-9, absolute 1e-12 of the array's largest entry. The key
    bias's gradient is 0 in exact arithmetic (it shifts all of a query's scores alike), so
    both sides hold only rounding noise there, of the size of the other gradients' rounding."""
    np.testing.assert_allclose(ours, reference, rtol=1e-9,
                               atol=1e-12 * (1 + np.abs(reference).max()), err_msg=what)


def check_mha(ours: nn.MultiheadAttention, theirs: torch.nn.MultiheadAttention,
              inputs: list[np.ndarray], self_attention: bool = False, **kwargs) -> None:
    """Output, weights, input gradients and parameter gradients equal torch's."""
    mine, reference = both(inputs)
    if self_attention:
        mine, reference = mine[:1] * 3, reference[:1] * 3
    torch_kwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                    for k, v in kwargs.items()}
    out, weights = ours(*mine, **kwargs)
    expected, expected_weights = theirs(*reference, **torch_kwargs)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    if expected_weights is None:
        assert weights is None
        loss, expected_loss = (out * out).sum(), (expected * expected).sum()
    else:
        np.testing.assert_allclose(weights.data, expected_weights.detach().numpy(),
                                   rtol=1e-10, atol=1e-12)
        loss = (out * out).sum() + (weights * weights).sum()
        expected_loss = (expected * expected).sum() + (expected_weights ** 2).sum()
    loss.backward()
    expected_loss.backward()
    for a, b in zip(mine[:1] if self_attention else mine, reference):
        close(a.grad, b.grad.numpy())
    torch_params = dict(theirs.named_parameters())
    assert [k for k, _ in ours.named_parameters()] == list(torch_params)
    for key, param in ours.named_parameters():
        close(param.grad, torch_params[key].grad.numpy(), key)


@pytest.mark.parametrize("options", MHA_OPTIONS, ids=str)
def test_mha_matches_torch_with_every_mask(options: dict) -> None:
    inputs = sequences(options)
    padding = RNG.random((2, 4)) < 0.4
    padding[:, 0] = False
    scores = RNG.standard_normal((3, 4))
    hidden = (scores > 0.5) & (np.arange(4) > 0)
    per_head = RNG.standard_normal((2 * 2, 3, 4))
    for masks in ({}, {"key_padding_mask": padding}, {"attn_mask": scores},
                  {"attn_mask": hidden, "key_padding_mask": padding},
                  {"attn_mask": per_head, "key_padding_mask": np.where(padding, -np.inf, 0.0)},
                  {"attn_mask": hidden, "is_causal": True}):
        for average in (True, False):
            ours, theirs = twins(options)
            check_mha(ours, theirs, inputs, average_attn_weights=average, **masks)
    ours, theirs = twins(options)
    check_mha(ours, theirs, inputs, need_weights=False)


@pytest.mark.parametrize("options", [{}, {"batch_first": True}], ids=str)
def test_mha_self_attention_and_unbatched(options: dict) -> None:
    ours, theirs = twins(options)
    check_mha(ours, theirs, sequences(options, source=3), self_attention=True)
    ours, theirs = twins(options)
    causal = ~np.tril(np.ones((3, 3), bool))
    check_mha(ours, theirs, sequences(options, batch=None), attn_mask=RNG.standard_normal((3, 4)),
              key_padding_mask=np.array([0.0, -np.inf, 0.0, 0.0]))
    ours, theirs = twins(options)
    check_mha(ours, theirs, sequences(options, batch=None, source=3), self_attention=True,
              attn_mask=causal, need_weights=False)


def test_mha_dropout_matches_torch_given_the_same_mask() -> None:
    ours, theirs = twins({"batch_first": True, "dropout": 0.4})
    q, k, v = sequences({"batch_first": True})
    ours.generator = np.random.default_rng(7)
    out, weights = ours(q, k, v, average_attn_weights=False)
    assert out.shape == (2, 3, 8) and weights.shape == (2, 2, 3, 4)
    # Replay our mask through torch's math: softmax, the mask and 1 / (1 - p), bmm.
    keep = np.random.default_rng(7).random((2, 2, 3, 4)) >= 0.4
    tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
    w, b = theirs.in_proj_weight, theirs.in_proj_bias
    proj = [TF.linear(x, w[i * 8:(i + 1) * 8], b[i * 8:(i + 1) * 8]).view(2, -1, 2, 4)
            .transpose(1, 2) for i, x in enumerate((tq, tk, tv))]
    probs = torch.softmax(proj[0] @ proj[1].transpose(-1, -2) / 2, -1)
    dropped = probs * torch.from_numpy(keep) / 0.6
    expected = theirs.out_proj((dropped @ proj[2]).transpose(1, 2).reshape(2, 3, 8))
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(weights.data, dropped.detach().numpy(), rtol=1e-10)
    ours.eval()
    theirs.eval()
    check_mha(ours, theirs, [q, k, v])  # eval: no dropout, as torch


def test_mha_state_dicts_load_both_ways_and_init_like_torch() -> None:
    for options in MHA_OPTIONS:
        torch_layer = torch.nn.MultiheadAttention(8, 2, **options, dtype=torch.float64)
        ours = nn.MultiheadAttention(8, 2, **options, **F64)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {
            k: tuple(v.shape) for k, v in torch_layer.state_dict().items()}
        assert list(ours.state_dict()) == list(torch_layer.state_dict())
        ours.load_state_dict(torch_layer.state_dict())
        for key, value in ours.state_dict().items():
            np.testing.assert_array_equal(value, torch_layer.state_dict()[key].numpy())
    layer = nn.MultiheadAttention(64, 4, generator=np.random.default_rng(0))
    bound = math.sqrt(6 / (64 + 3 * 64))  # Xavier uniform over the stacked (3E, E) matrix
    assert 0.9 * bound < np.abs(layer.in_proj_weight.data).max() <= bound
    assert not layer.in_proj_bias.data.any() and not layer.out_proj.bias.data.any()
    assert layer.in_proj_weight.dtype == np.float32
    assert repr(layer) == ("MultiheadAttention(\n  (out_proj): Linear(in_features=64, "
                           "out_features=64, bias=True)\n)")


def test_mha_gradients_pass_finite_differences() -> None:
    layer = randomised(nn.MultiheadAttention(4, 2, add_bias_kv=True, **F64))
    q, k, v = (RNG.standard_normal((3, 2, 4)) for _ in range(3))
    padding = np.array([[False, True, False], [False, False, False]])
    gradcheck(lambda q, k, v: layer(q, k, v, key_padding_mask=padding)[0], [q, k, v])

    def with_parameter(module: nn.Module, attr: str, value: cr.Tensor) -> cr.Tensor:
        param = getattr(module, attr)
        # Past Module's guard on purpose, as layer_twins does: a plain tensor in the
        # parameter's place for one call, the parameter back right after.
        object.__setattr__(module, attr, value)
        try:
            return layer(q, k, v, key_padding_mask=padding)[0]
        finally:
            object.__setattr__(module, attr, param)

    for module, attr in ((layer, "in_proj_weight"), (layer, "in_proj_bias"),
                         (layer, "bias_k"), (layer, "bias_v"), (layer.out_proj, "weight")):
        gradcheck(lambda p, m=module, a=attr: with_parameter(m, a, p),
                  [getattr(module, attr).data.copy()])


def test_mha_refuses_bad_settings_and_inputs() -> None:
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(6, 4)
    with pytest.raises(TypeError, match="num_heads"):
        nn.MultiheadAttention(8, 2.0)
    layer = nn.MultiheadAttention(8, 2, **F64)
    x = RNG.standard_normal((3, 2, 8))
    with pytest.raises(ValueError, match="8 features"):
        layer(x[..., :4], x, x)
    with pytest.raises(ValueError, match="3-D .* or all 2-D"):
        layer(x, x[0], x[0])
    with pytest.raises(ValueError, match="same batch size"):
        layer(x, x[:, :1], x[:, :1])
    with pytest.raises(ValueError, match="key_padding_mask must have shape"):
        layer(x, x, x, key_padding_mask=np.zeros((3, 2), bool))
    with pytest.raises(ValueError, match="attn_mask must have shape"):
        layer(x, x, x, attn_mask=np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match="needs attn_mask"):
        layer(x, x, x, is_causal=True)
    with pytest.raises(TypeError, match="bool .* or floating"):
        layer(x, x, x, attn_mask=np.zeros((3, 3), np.int64))
    everything = np.ones((2, 3), bool)
    with pytest.raises(ValueError, match="every key masked out"):
        layer(x, x, x, key_padding_mask=everything)
    with pytest.raises(ValueError, match="every key masked out"):
        layer(x, x, x, attn_mask=np.full((3, 3), -np.inf))


# ----------------------------------------------------------------------------- the block
class TorchCausalSelfAttention(torch.nn.Module):
    def __init__(self, n_embd: int, n_head: int, bias: bool = True) -> None:
        super().__init__()
        self.c_attn = torch.nn.Linear(n_embd, 3 * n_embd, bias=bias, dtype=torch.float64)
        self.c_proj = torch.nn.Linear(n_embd, n_embd, bias=bias, dtype=torch.float64)
        self.n_head = n_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
                   for z in self.c_attn(x).split(c, dim=2))
        y = TF.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class TorchBlock(torch.nn.Module):
    def __init__(self, n_embd: int, n_head: int, bias: bool = True) -> None:
        super().__init__()
        f64 = {"dtype": torch.float64}
        self.ln_1 = torch.nn.LayerNorm(n_embd, bias=bias, **f64)
        self.attn = TorchCausalSelfAttention(n_embd, n_head, bias)
        self.ln_2 = torch.nn.LayerNorm(n_embd, bias=bias, **f64)
        self.mlp = torch.nn.Module()
        self.mlp.c_fc = torch.nn.Linear(n_embd, 4 * n_embd, bias=bias, **f64)
        self.mlp.c_proj = torch.nn.Linear(4 * n_embd, n_embd, bias=bias, **f64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        hidden = TF.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh")
        return x + self.mlp.c_proj(hidden)


def check_twin_with_biases(layer: nn.Module, twin: torch.nn.Module) -> None:
    """check_torch_twin's comparison, with ``close``'s tolerance: c_attn's key bias has the
    gradient 0 in exact arithmetic, which check_torch_twin's pure rtol cannot compare."""
    twin.load_state_dict(to_torch_state(layer))
    x = RNG.standard_normal((2, 5, 8))
    ours, theirs = cr.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = layer(ours), twin(theirs)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-10)
    weights = RNG.standard_normal(out.shape)
    out.backward(weights)
    expected.backward(torch.from_numpy(weights))
    close(ours.grad, theirs.grad.numpy())
    twin_params = dict(twin.named_parameters())
    assert [k for k, _ in layer.named_parameters()] == list(twin_params)
    for key, param in layer.named_parameters():
        close(param.grad, twin_params[key].grad.numpy(), key)


def test_block_and_attention_match_torch_twins() -> None:
    check_torch_twin("CausalSelfAttention",
                     lambda: randomised(nn.CausalSelfAttention(8, 2, bias=False, **F64)),
                     lambda: TorchCausalSelfAttention(8, 2, False), (2, 5, 8))
    check_torch_twin("TransformerBlock",
                     lambda: randomised(nn.TransformerBlock(8, 2, bias=False, **F64)),
                     lambda: TorchBlock(8, 2, False), (2, 5, 8))
    check_twin_with_biases(randomised(nn.CausalSelfAttention(8, 2, **F64)),
                           TorchCausalSelfAttention(8, 2))
    check_twin_with_biases(randomised(nn.TransformerBlock(8, 2, **F64)), TorchBlock(8, 2))


def test_block_passes_finite_differences() -> None:
    check_finite_differences(lambda: randomised(nn.TransformerBlock(4, 2, **F64)), (2, 3, 4))


def test_block_dropout_and_errors() -> None:
    block = nn.TransformerBlock(8, 2, dropout=0.5, **F64)
    x = RNG.standard_normal((2, 4, 8))
    cr.manual_seed(0)
    first = block(x).data
    cr.manual_seed(0)
    np.testing.assert_array_equal(block(x).data, first)
    block.eval()
    assert not np.allclose(block(x).data, first)
    with pytest.raises(ValueError, match=r"expected input \(B, T, 8\), got shape \(4, 8\)"):
        block(x[0])
    with pytest.raises(ValueError, match=r"expected input \(\.\.\., 8\)"):
        block(x[..., :4])
    with pytest.raises(ValueError, match="divisible"):
        nn.CausalSelfAttention(8, 3)
