"""models.gpt against a PyTorch twin (nanoGPT's model: chainrule.check.torch_twins.GPT), the
same weights loaded through state_dict: logits and every parameter's gradient at float64; the
recipe, the initialisation, generate and the errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import chainrule as cr
from chainrule import models, nn
from chainrule.check import torch_twins

# the twin: nanoGPT's model in torch, with chainrule's names (shared with the benchmark)
TorchGPT = torch_twins.GPT

SIZES = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)


def randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every weight random (biases and LayerNorms too), so each one matters in the check."""
    rng = np.random.default_rng(seed)
    model.load_state_dict({k: rng.standard_normal(v.shape) * 0.5 + (k.endswith("ln_1.weight"))
                           for k, v in model.state_dict().items()})
    return model


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_logits_and_every_gradient_match_the_torch_twin(bias: bool, approximate: str) -> None:
    ours = randomised(models.build_model("gpt", **SIZES, bias=bias, approximate=approximate,
                                         dtype="float64"))
    twin = TorchGPT(**SIZES, bias=bias, approximate=approximate).double()
    state = {k: torch.from_numpy(v) for k, v in ours.state_dict().items()}
    state["lm_head.weight"] = state["transformer.wte.weight"]  # torch lists the tie twice
    twin.load_state_dict(state)
    idx = np.random.default_rng(1).integers(0, SIZES["vocab_size"], (3, 7))
    targets = np.random.default_rng(2).integers(0, SIZES["vocab_size"], (3, 7))
    logits = ours(idx)
    expected = twin(torch.from_numpy(idx))
    assert logits.shape == (3, 7, SIZES["vocab_size"]) and logits.dtype == np.float64
    np.testing.assert_allclose(logits.data, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    loss = nn.functional.cross_entropy(logits.reshape(-1, SIZES["vocab_size"]), targets.reshape(-1))
    expected_loss = F.cross_entropy(expected.reshape(-1, SIZES["vocab_size"]),
                                    torch.from_numpy(targets).reshape(-1))
    np.testing.assert_allclose(loss.item(), expected_loss.item(), rtol=1e-12)
    loss.backward()
    expected_loss.backward()
    theirs = dict(twin.named_parameters())
    names = [k for k, _ in ours.named_parameters()]
    assert names == list(theirs)  # the tie: one parameter, under nanoGPT's name
    for key, param in ours.named_parameters():
        np.testing.assert_allclose(param.grad, theirs[key].grad.numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=key)
    # and back: the twin's state dict (tied weight listed twice) loads into ours
    again = models.build_model("gpt", **SIZES, bias=bias, approximate=approximate,
                               dtype="float64")
    again.load_state_dict(twin.state_dict())
    np.testing.assert_allclose(again(idx).data, logits.data, rtol=1e-12)


def test_the_head_is_tied_to_the_token_embedding() -> None:
    model = models.gpt(**SIZES)
    assert model.lm_head.weight is model.transformer.wte.weight
    assert "lm_head.weight" not in model.state_dict()
    bad = model.state_dict()
    bad["lm_head.weight"] = bad["transformer.wte.weight"] + 1
    with pytest.raises(ValueError, match="tied"):
        model.load_state_dict(bad)


def test_nanogpt_initialisation() -> None:
    model = models.gpt(vocab_size=50, block_size=32, n_layer=3, n_head=4, n_embd=64,
                       generator=np.random.default_rng(0))
    state = model.state_dict()
    for key, value in state.items():
        if key.endswith("c_proj.weight"):
            assert abs(value.std() - 0.02 / math.sqrt(6)) < 0.002, key
        elif key.endswith(("c_attn.weight", "c_fc.weight", "wte.weight", "wpe.weight")):
            assert abs(value.std() - 0.02) < 0.002, key
        elif "ln" in key:
            assert np.all(value == (1 if key.endswith("weight") else 0)), key
        else:  # the Linear biases
            assert key.endswith("bias") and not value.any(), key
    again = models.gpt(vocab_size=50, block_size=32, n_layer=3, n_head=4, n_embd=64,
                       generator=np.random.default_rng(0))
    assert all(np.array_equal(v, again.state_dict()[k]) for k, v in state.items())


def test_recipe_shapes_and_build_model() -> None:
    assert "gpt" in models.recipes() and models.input_kind("gpt") == "tokens"
    shapes = models.parameter_shapes("gpt", **SIZES)
    assert shapes["transformer.wte.weight"] == (11, 8)
    assert shapes["transformer.h.1.attn.c_attn.weight"] == (24, 8)
    assert shapes["transformer.h.1.mlp.c_fc.weight"] == (32, 8)
    model = models.build_model("gpt", **SIZES)
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes
    assert models.parameter_count("gpt", **SIZES) == sum(p.size for p in model.parameters())
    with pytest.raises(ValueError, match="takes no setting"):
        models.check_kwargs("gpt", {"n_layers": 2})


def test_refuses_sequences_past_block_size_and_bad_tokens() -> None:
    model = models.gpt(**SIZES)
    model(np.zeros((2, 8), np.int64))
    with pytest.raises(ValueError, match="longer than block_size 8"):
        model(np.zeros((2, 9), np.int64))
    with pytest.raises(ValueError, match=r"\(B, T\) integer token ids"):
        model(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(B, T\) integer token ids"):
        model(np.zeros(3, np.int64))
    with pytest.raises(IndexError, match="out of range"):
        model(np.full((1, 3), 11))
    with pytest.raises(ValueError, match="divisible"):
        models.gpt(vocab_size=5, block_size=4, n_layer=1, n_head=3, n_embd=8)


def test_dropout_is_seeded_and_off_in_eval() -> None:
    model = models.gpt(**SIZES, dropout=0.3)
    idx = np.random.default_rng(0).integers(0, 11, (2, 8))
    cr.manual_seed(0)
    first = model(idx).data
    cr.manual_seed(0)
    np.testing.assert_array_equal(model(idx).data, first)
    model.eval()
    plain = model(idx).data
    np.testing.assert_array_equal(model(idx).data, plain)
    assert not np.allclose(first, plain)


def test_generate() -> None:
    model = models.gpt(**SIZES, dropout=0.1)
    start = np.array([[1, 2, 3], [4, 5, 6]])
    out = model.generate(start, 12, top_k=3, generator=np.random.default_rng(0))
    assert out.shape == (2, 15) and out.dtype == np.int64
    np.testing.assert_array_equal(out[:, :3], start)
    assert out.min() >= 0 and out.max() < 11
    assert model.training  # mode restored
    again = model.generate(start, 12, top_k=3, generator=np.random.default_rng(0))
    np.testing.assert_array_equal(out, again)
    # top_k=1 is greedy: the argmax of the logits at each step
    greedy = model.generate(start[:1], 4, top_k=1)
    model.eval()
    tokens = start[:1]
    for _ in range(4):
        tokens = np.concatenate([tokens, model(tokens).data[:, -1].argmax(-1)[:, None]], 1)
    np.testing.assert_array_equal(greedy, tokens)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(start, 1, temperature=0)


def test_generate_with_a_tiny_temperature_is_greedy_not_nan() -> None:
    model = models.gpt(**SIZES).eval()
    start = np.array([[1, 2, 3]])
    tiny = model.generate(start, 4, temperature=1e-300, generator=np.random.default_rng(0))
    greedy = model.generate(start, 4, top_k=1)
    np.testing.assert_array_equal(tiny, greedy)
    model.train()
    model.transformer.h[0].eval()  # a part the user froze stays frozen
    model.generate(start, 1)
    assert model.training and not model.transformer.h[0].training
