"""model.summary / cr.summary and `chainrule summary`: shapes, parameters, mult-adds, memory."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import models, nn
from chainrule.cli import main


def test_an_mlps_summary_counts_what_its_layers_hold_and_do() -> None:
    model = models.mlp()  # 784-256-128-10
    result = model.summary((3, 784))
    rows = {row.name: row for row in result.rows}
    assert [row.name for row in result.rows] == ["0", "1", "2", "3", "4"]
    assert rows["0"].output_shape == (3, 256) and rows["4"].output_shape == (3, 10)
    assert rows["0"].params == 784 * 256 + 256 and rows["1"].params == 0
    assert rows["0"].mult_adds == 3 * 784 * 256 and rows["2"].mult_adds == 3 * 256 * 128
    assert result.total_params == models.parameter_count("mlp")
    assert result.mult_adds == 3 * (784 * 256 + 256 * 128 + 128 * 10)
    # every op's output once: linear, relu, linear, relu, linear, float32
    assert result.activation_bytes == 4 * 3 * (256 * 2 + 128 * 2 + 10)
    text = str(result)
    assert "0 (Linear)" in text and "(3, 256)" in text and "200,960" in text
    assert f"parameters: {result.total_params:,}" in text


def test_a_conv_nets_mult_adds_are_each_output_times_its_window() -> None:
    result = models.cnn().summary((2, 1, 28, 28))
    rows = {row.name: row for row in result.rows}
    assert rows["0"].output_shape == (2, 32, 28, 28)
    assert rows["0"].mult_adds == 2 * 32 * 28 * 28 * (1 * 3 * 3)
    assert rows["4"].mult_adds == 2 * 64 * 14 * 14 * (32 * 3 * 3)
    assert rows["1"].params == 64 and rows["1"].mult_adds == 0  # BatchNorm: weight and bias
    assert result.buffer_bytes == 4 * (32 * 2 + 64 * 2) + 8 * 2  # and two batch counters


def test_a_gpts_tied_head_is_counted_once_and_attention_is_counted() -> None:
    model = models.gpt(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
    result = cr.summary(model, (3, 8), dtype=np.int64)
    rows = {row.name: row for row in result.rows}
    assert rows["lm_head"].tied == ["weight"] and rows["lm_head"].params == 0
    assert result.total_params == models.parameter_count(
        "gpt", vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
    assert rows["transformer.h.0.attn"].mult_adds == 2 * 3 * 8 * 8 * 16
    assert "tied" in str(result)
    assert model.training  # the summary runs in eval mode and puts the mode back


def test_summary_refuses_bad_shapes_and_models() -> None:
    with pytest.raises(ValueError, match="positive whole numbers"):
        models.mlp().summary((0, 784))
    with pytest.raises(TypeError, match="expected a chainrule Module"):
        cr.summary(object(), (1, 2))
    with pytest.raises(ValueError, match="linear"):  # the forward's own error, unchanged
        nn.Linear(3, 2).summary((1, 4))


def test_the_summary_command_prints_a_recipes_table(capsys) -> None:
    assert main(["summary", "--model", "cnn", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "input (4, 1, 28, 28)" in out and "0 (Conv2d)" in out and "(4, 32, 28, 28)" in out
    assert f"parameters: {models.parameter_count('cnn'):,}" in out
    assert main(["summary", "--model", "gpt", "--n-layer", "1"]) == 0
    out = capsys.readouterr().out
    assert "input (12, 64)" in out and "lm_head (Linear)" in out and "tied" in out


@pytest.mark.parametrize("argv, message", [
    (["--model", "resnet", "--hidden", "3"], "--hidden is for the mlp and cnn models"),
    (["--model", "mlp", "--dropout", "0.2"], "--dropout is for the cnn model and the gpt"),
    (["--model", "mlp", "--n-layer", "2"], "--n-layer: for the gpt only"),
    (["--model", "gpt", "--n-head", "3"], "must be a multiple of --n-head 3"),
    (["--model", "gpt", "--channels", "3"], "--channels is for the image models"),
])
def test_the_summary_command_refuses_flags_the_model_does_not_take(capsys, argv,
                                                                   message) -> None:
    assert main(["summary", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_layer_called_twice_is_counted_once_at_its_first_name() -> None:
    layer = nn.Linear(4, 4)
    result = nn.Sequential(layer, nn.ReLU(), layer).summary((2, 4))
    rows = {row.name: row for row in result.rows}
    assert rows["0"].mult_adds == 2 * 2 * 4 * 4 and rows["0"].params == 20  # both calls
    assert rows["2"].same_as == "0" and rows["2"].params == 0 and not rows["2"].tied
    assert result.total_params == 20 and "2 is the layer 0, called again" in str(result)


def test_views_add_no_activation_memory() -> None:
    flat = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    assert flat.summary((5, 3, 4)).activation_bytes == 4 * 5 * 2  # the Linear's output only
