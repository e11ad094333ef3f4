"""ONNX export: every recipe and every mapped op, run in onnxruntime against chainrule."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import chainrule as cr
from chainrule import models, nn
from chainrule.export import ExportError, build, supported_ops, to_onnx
from chainrule.nn import functional as F

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

TOLERANCE = 1e-5  # relative to the output's largest magnitude, float32


def run(proto: Any, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def ours(model: nn.Module, x: np.ndarray, training: bool) -> np.ndarray:
    model.train(training)
    with cr.no_grad():
        return model(cr.tensor(x)).data


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


def images(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 1, 28, 28)).astype(np.float32)


RECIPES = {
    "mlp": (lambda: models.mlp(), lambda b, s: images(b, s).reshape(b, 784)),
    # dropout 0 in training mode, so that the outputs are comparable (a dropout mask is
    # drawn by each runtime on its own: see test_dropout_in_training_mode)
    "cnn": (lambda: models.cnn(dropout=0.0), images),
    "resnet": (lambda: models.resnet(), images),
    "gpt": (lambda: models.gpt(),
            lambda b, s: np.random.default_rng(s).integers(0, 65, (b, 64))),
}


@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_runs_in_onnxruntime_as_in_chainrule(name: str, training: bool,
                                                          fused: bool) -> None:
    make, data = RECIPES[name]
    cr.manual_seed(0)
    model = nn.fuse(make()) if fused else make()
    if name in ("cnn", "resnet"):  # trained-looking running statistics, not the initial 0/1
        model.train(True)
        with cr.no_grad():
            for seed in range(3):
                model(cr.tensor(data(16, 10 + seed)))
    proto, _ = build(model, data(3, 0), training=training)
    for batch in (1, 5):  # the batch axis is free: other sizes than the example's
        x = data(batch, 1)
        error = relative_error(run(proto, x), ours(model, x, training))
        assert error <= TOLERANCE, (name, batch, error)


def test_training_and_eval_exports_differ_where_the_model_does() -> None:
    cr.manual_seed(0)
    model = models.resnet()
    x = images(4, 1)
    model.train(True)
    with cr.no_grad():
        model(cr.tensor(images(16, 2)))
    evaluated = run(build(model, x, training=False)[0], x)
    trained = run(build(model, x, training=True)[0], x)
    assert relative_error(trained, evaluated) > 1e-2


def test_tracing_in_training_mode_leaves_the_running_statistics_and_mode_alone() -> None:
    cr.manual_seed(0)
    model = models.cnn()
    model.eval()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    stream = cr.engine.backend.default_generator().bit_generator.state
    build(model, images(4), training=True)
    assert not model.training
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert cr.engine.backend.default_generator().bit_generator.state == stream


def test_dropout_in_training_mode_drops_and_scales_as_chainrule_does() -> None:
    model = nn.Sequential(nn.Linear(8, 4000), nn.Dropout(0.3))
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    proto, _ = build(model, x, training=True)
    assert "Dropout" in [node.op_type for node in proto.graph.node]
    got = run(proto, x)
    full = ours(model, x, False)
    kept = got != 0
    assert abs(1 - kept.mean() - 0.3) < 0.02  # about 30% dropped
    np.testing.assert_allclose(got[kept], full[kept] / 0.7, rtol=1e-5)
    # eval mode has no dropout at all
    assert "Dropout" not in [n.op_type for n in build(model, x)[0].graph.node]


class Lambda(nn.Module):
    """A layer whose forward is ``fn(x, self)``, with whatever parameters it was given."""

    def __init__(self, fn: Callable[..., Any], **params: Any) -> None:
        super().__init__()
        self.fn = fn
        for key, value in params.items():
            setattr(self, key, value)

    def forward(self, x: Any) -> Any:
        return self.fn(x, self)


class Attention(nn.Module):
    """Self-attention of (B, T, 8) as two heads, causal, with a bool mask, and a float mask."""

    def __init__(self) -> None:
        super().__init__()
        self.keep = np.tril(np.ones((4, 4), bool))
        self.keep[2] = False  # a query with every key masked: 0s, as in chainrule
        self.bias = np.linspace(-1, 1, 16).reshape(4, 4).astype(np.float32)

    def forward(self, x: Any) -> Any:
        heads = x.reshape(x.shape[0], 4, 2, 4).transpose(1, 2)
        causal = F.scaled_dot_product_attention(heads, heads, heads, is_causal=True)
        masked = F.scaled_dot_product_attention(heads, heads * 0.5, heads, attn_mask=self.keep,
                                                scale=0.3)
        added = F.scaled_dot_product_attention(heads, heads, heads * 2, attn_mask=self.bias)
        return causal + masked + added


def _lstm_outputs(result: Any) -> Any:
    """Every output of an LSTM in one tensor: the steps' h, and the last h and c."""
    out, (h_n, c_n) = result
    return cr.cat([out.reshape(out.shape[0], -1), h_n.transpose(0, 1).reshape(out.shape[0], -1),
                   c_n.transpose(0, 1).reshape(out.shape[0], -1)], axis=1)


def _param(*shape: int, seed: int = 0) -> nn.Parameter:
    return nn.Parameter(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


# op name -> (the layer, the example input's shape); each layer calls that op
OP_CASES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "relu": (lambda: nn.ReLU(), (3, 5)),
    "sigmoid": (lambda: Lambda(lambda x, m: x.sigmoid()), (3, 5)),
    "tanh": (lambda: Lambda(lambda x, m: x.tanh()), (3, 5)),
    "exp": (lambda: Lambda(lambda x, m: x.exp()), (3, 5)),
    "log": (lambda: Lambda(lambda x, m: (x * x + 1).log()), (3, 5)),
    "sqrt": (lambda: Lambda(lambda x, m: (x * x + 1).sqrt()), (3, 5)),
    "neg": (lambda: Lambda(lambda x, m: -x), (3, 5)),
    "abs": (lambda: Lambda(lambda x, m: x.abs()), (3, 5)),
    "reciprocal": (lambda: Lambda(lambda x, m: (x * x + 1).reciprocal()), (3, 5)),
    "erf": (lambda: Lambda(lambda x, m: x.erf()), (3, 5)),
    "sin": (lambda: Lambda(lambda x, m: x.sin()), (3, 5)),
    "cos": (lambda: Lambda(lambda x, m: x.cos()), (3, 5)),
    "floor": (lambda: Lambda(lambda x, m: x.floor() + x), (3, 5)),
    "ceil": (lambda: Lambda(lambda x, m: x.ceil() + x), (3, 5)),
    "sign": (lambda: Lambda(lambda x, m: x.sign() + x), (3, 5)),
    "softsign": (lambda: Lambda(lambda x, m: F.softsign(x)), (3, 5)),
    "clone": (lambda: Lambda(lambda x, m: x.clone()), (3, 5)),
    "add": (lambda: Lambda(lambda x, m: x + m.b + 1.5, b=_param(5)), (3, 5)),
    "sub": (lambda: Lambda(lambda x, m: x - m.b - 2.0, b=_param(5)), (3, 5)),
    "mul": (lambda: Lambda(lambda x, m: x * m.b * 3.0, b=_param(5)), (3, 5)),
    "div": (lambda: Lambda(lambda x, m: x / (m.b * m.b + 1) / 2.0, b=_param(5)), (3, 5)),
    "pow": (lambda: Lambda(lambda x, m: (x * x + 1) ** 1.5), (3, 5)),
    "maximum": (lambda: Lambda(lambda x, m: cr.maximum(x, m.b), b=_param(5)), (3, 5)),
    "minimum": (lambda: Lambda(lambda x, m: cr.minimum(x, m.b), b=_param(5)), (3, 5)),
    "matmul": (lambda: Lambda(lambda x, m: x @ m.w, w=_param(5, 4)), (3, 5)),
    "gelu": (lambda: nn.Sequential(nn.GELU(), nn.GELU("tanh")), (3, 5)),
    "silu": (lambda: nn.SiLU(), (3, 5)),
    "leaky_relu": (lambda: nn.LeakyReLU(0.2), (3, 5)),
    "elu": (lambda: nn.ELU(0.7), (3, 5)),
    "hardtanh": (lambda: Lambda(lambda x, m: F.hardtanh(x, -0.5, 0.25)), (3, 5)),
    "clamp": (lambda: Lambda(lambda x, m: x.clamp(-0.3, None) + x.clamp(None, 0.4)), (3, 5)),
    "softmax": (lambda: Lambda(lambda x, m: F.softmax(x, axis=0)), (3, 5)),
    "log_softmax": (lambda: Lambda(lambda x, m: F.log_softmax(x, axis=-1)), (3, 5)),
    "linear": (lambda: nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 2, bias=False)), (3, 5)),
    "linear_relu": (lambda: nn.fuse(nn.Sequential(nn.Linear(5, 4), nn.ReLU())), (3, 5)),
    "linear_gelu": (lambda: Lambda(lambda x, m: cr.ops.linear_gelu(x, m.w, m.b),
                                   w=_param(4, 5), b=_param(4)), (3, 2, 5)),
    "conv2d": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1),
                                     nn.Conv2d(4, 4, 3, dilation=2, groups=2, bias=False)),
               (2, 2, 11, 11)),
    "max_pool2d": (lambda: nn.MaxPool2d(3, stride=2, padding=1), (2, 3, 9, 9)),
    "avg_pool2d": (lambda: Lambda(lambda x, m: F.avg_pool2d(x, 2)), (2, 3, 8, 8)),
    "batch_norm": (lambda: nn.Sequential(nn.BatchNorm2d(3), nn.BatchNorm2d(3, affine=False)),
                   (4, 3, 5, 5)),
    "batch_norm_max_pool2d": (lambda: nn.fuse(nn.Sequential(
        nn.BatchNorm2d(3), nn.MaxPool2d(2), nn.ReLU())), (4, 3, 6, 6)),
    "layer_norm": (lambda: nn.Sequential(nn.LayerNorm(5), nn.LayerNorm(5, bias=False)),
                   (3, 2, 5)),
    "reshape": (lambda: Lambda(lambda x, m: x.reshape(x.shape[0], 5, 2) * 1.0), (3, 10)),
    "flatten": (lambda: nn.Sequential(nn.Flatten(), Lambda(lambda x, m: x.flatten())),
                (3, 2, 5)),
    "permute": (lambda: Lambda(lambda x, m: x.permute(0, 2, 1) * 1.0), (3, 2, 5)),
    "transpose": (lambda: Lambda(lambda x, m: x.transpose(1, 2) * 1.0), (3, 2, 5)),
    "unsqueeze": (lambda: Lambda(lambda x, m: x.unsqueeze(1) * 1.0), (3, 5)),
    "squeeze": (lambda: Lambda(lambda x, m: x.squeeze(1) * 1.0), (3, 1, 5)),
    "concatenate": (lambda: Lambda(lambda x, m: cr.cat([x, x * 2], axis=1)), (3, 5)),
    "mean": (lambda: Lambda(lambda x, m: x.mean(axis=1) + x.mean()), (3, 5)),
    "sum": (lambda: Lambda(lambda x, m: x.sum(axis=(1,), keepdims=True) * x), (3, 5)),
    "max": (lambda: Lambda(lambda x, m: x.max(axis=1)), (3, 5)),
    "min": (lambda: Lambda(lambda x, m: x.min(axis=1)), (3, 5)),
    "embedding": (lambda: nn.Embedding(7, 4), (3, 6)),
    "cast": (lambda: Lambda(lambda x, m: x.astype(np.float64)), (3, 5)),
    "tan": (lambda: Lambda(lambda x, m: (x * 0.5).tan()), (3, 5)),
    "sinh": (lambda: Lambda(lambda x, m: x.sinh()), (3, 5)),
    "cosh": (lambda: Lambda(lambda x, m: x.cosh()), (3, 5)),
    "asin": (lambda: Lambda(lambda x, m: (x.tanh() * 0.9).asin()), (3, 5)),
    "acos": (lambda: Lambda(lambda x, m: (x.tanh() * 0.9).acos()), (3, 5)),
    "atan": (lambda: Lambda(lambda x, m: x.atan()), (3, 5)),
    "asinh": (lambda: Lambda(lambda x, m: x.asinh()), (3, 5)),
    "acosh": (lambda: Lambda(lambda x, m: (x * x + 1.5).acosh()), (3, 5)),
    "atanh": (lambda: Lambda(lambda x, m: (x.tanh() * 0.9).atanh()), (3, 5)),
    "hardswish": (lambda: nn.Hardswish(), (3, 5)),
    "hardsigmoid": (lambda: nn.Hardsigmoid(), (3, 5)),
    "mish": (lambda: nn.Mish(), (3, 5)),
    "selu": (lambda: nn.SELU(), (3, 5)),
    "celu": (lambda: nn.CELU(0.5), (3, 5)),
    "square": (lambda: Lambda(lambda x, m: x.square()), (3, 5)),
    "rsqrt": (lambda: Lambda(lambda x, m: (x * x + 1).rsqrt()), (3, 5)),
    "logsigmoid": (lambda: nn.LogSigmoid(), (3, 5)),
    "softplus": (lambda: nn.Sequential(nn.Softplus(), nn.Softplus(beta=2, threshold=1)),
                 (3, 5)),
    "prelu": (lambda: nn.Sequential(nn.PReLU(3, init=0.1), nn.Flatten(), nn.PReLU()),
              (2, 3, 4)),
    "where": (lambda: Lambda(lambda x, m: cr.where(x > 0, x, m.b), b=_param(5)), (3, 5)),
    "less": (lambda: Lambda(lambda x, m: cr.where(x < x.tanh() * 2, x, 0.0)), (3, 5)),
    "less_equal": (lambda: Lambda(lambda x, m: cr.where(x <= 0.1, x, -x)), (3, 5)),
    "greater": (lambda: Lambda(lambda x, m: cr.where(x > 0.2, x, 1.0)), (3, 5)),
    "greater_equal": (lambda: Lambda(lambda x, m: cr.where(x >= x.sin(), 2 * x, x)),
                      (3, 5)),
    "equal": (lambda: Lambda(lambda x, m: cr.where(x.floor() == 0, x, 3.0)), (3, 5)),
    "not_equal": (lambda: Lambda(lambda x, m: cr.where(x.floor() != 0, x, 3.0)), (3, 5)),
    "max_pool": (lambda: nn.Sequential(nn.MaxPool1d(3, stride=2, padding=1, dilation=1,
                                                    ceil_mode=True)), (2, 3, 9)),
    "avg_pool": (lambda: nn.AvgPool1d(3, stride=2, padding=1, count_include_pad=False),
                 (2, 3, 9)),
    "adaptive_avg_pool": (lambda: nn.Sequential(nn.AdaptiveAvgPool2d((2, 3)),
                                                nn.AdaptiveAvgPool2d(1)), (2, 3, 4, 6)),
    "stack": (lambda: Lambda(lambda x, m: cr.stack([x, x * 2], axis=1)), (3, 5)),
    "getitem": (lambda: Lambda(lambda x, m: x[:, 1:4:2, -1] + x[..., 0, 2:].sum()),
                (3, 5, 4)),
    "bitwise_and": (lambda: Lambda(lambda x, m: cr.where((x > 0) & (x < 1), x, 0.0)), (3, 5)),
    "bitwise_or": (lambda: Lambda(lambda x, m: cr.where((x > 1) | (x < -1), x, 0.0)), (3, 5)),
    "bitwise_xor": (lambda: Lambda(lambda x, m: cr.where((x > 0) ^ (x > 1), x, 0.0)),
                    (3, 5)),
    "bitwise_not": (lambda: Lambda(lambda x, m: cr.where(~(x > 0), x, 0.0)), (3, 5)),
    "logical_and": (lambda: Lambda(lambda x, m: cr.where(cr.logical_and(x.floor() + 1, x > 0),
                                                         x, 0.0)), (3, 5)),
    "logical_or": (lambda: Lambda(lambda x, m: cr.where(cr.logical_or(x.floor(), x > 2), x,
                                                        0.0)), (3, 5)),
    "logical_xor": (lambda: Lambda(lambda x, m: cr.where(cr.logical_xor(x > 0, x.floor()), x,
                                                         0.0)), (3, 5)),
    "logical_not": (lambda: Lambda(lambda x, m: cr.where(cr.logical_not(x.floor()), x, 0.0)),
                    (3, 5)),
    "conv_nd": (lambda: nn.Sequential(nn.Conv3d(2, 3, 3, stride=(1, 2, 1), padding=1),
                                      nn.Conv3d(3, 2, 2, dilation=2, bias=False)),
                (2, 2, 6, 7, 6)),
    "rms_norm": (lambda: nn.Sequential(nn.RMSNorm(5), nn.RMSNorm((2, 5), eps=1e-3,
                                                                 elementwise_affine=False)),
                 (3, 2, 5)),
    "group_norm": (lambda: nn.Sequential(nn.GroupNorm(2, 4), nn.GroupNorm(4, 4, affine=False)),
                   (2, 4, 3, 5)),
    "pad": (lambda: nn.Sequential(
        Lambda(lambda x, m: F.pad(x, (1, 2), value=0.5)),
        Lambda(lambda x, m: F.pad(x, (2, 1, 1, 0), mode="reflect")),
        Lambda(lambda x, m: F.pad(x, (1, 1, 2, 2), mode="replicate")),
        Lambda(lambda x, m: F.pad(x, (1, 2, 1, 1), mode="circular"))), (2, 3, 4, 5)),
    "scaled_dot_product_attention": (lambda: Attention(), (2, 4, 8)),
    "rnn_sequence": (lambda: nn.Sequential(nn.RNN(5, 4, batch_first=True),
                                           Lambda(lambda out, m: out[0])), (3, 6, 5)),
    "gru_sequence": (lambda: nn.Sequential(nn.GRU(5, 4, num_layers=2, batch_first=True,
                                                  bidirectional=True),
                                           Lambda(lambda out, m: out[0])), (3, 6, 5)),
    "lstm_sequence": (lambda: Lambda(lambda x, m: _lstm_outputs(m.lstm(x)),
                                     lstm=nn.LSTM(5, 4, batch_first=True, bidirectional=True)),
                      (3, 6, 5)),
    "rnn_cell": (lambda: Lambda(lambda x, m: m.cell(x, m.cell(x)),
                                cell=nn.RNNCell(5, 4, nonlinearity="relu")), (3, 5)),
    "gru_cell": (lambda: Lambda(lambda x, m: m.cell(x, m.cell(x)), cell=nn.GRUCell(5, 4)),
                 (3, 5)),
    "lstm_cell": (lambda: Lambda(lambda x, m: cr.cat(list(m.cell(x, m.cell(x))), axis=1),
                                 cell=nn.LSTMCell(5, 4)), (3, 5)),
    "self_attention": (lambda: Lambda(lambda x, m: F.self_attention(x, 2, is_causal=True) +
                                      F.self_attention(x, 3)), (2, 4, 18)),
}


def _example(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if name == "embedding":
        return rng.integers(0, 7, shape)
    return rng.standard_normal(shape).astype(np.float32)


# ops whose output is random, each with the test that checks it instead
RANDOM_OPS = {"dropout": test_dropout_in_training_mode_drops_and_scales_as_chainrule_does}


def test_every_mapped_op_has_a_case() -> None:
    assert sorted({*OP_CASES, *RANDOM_OPS}) == supported_ops()


@pytest.mark.parametrize("name", sorted(OP_CASES))
def test_each_mapped_op_exports_and_runs_as_in_chainrule(name: str) -> None:
    make, shape = OP_CASES[name]
    cr.manual_seed(0)
    model = make()
    proto, _ = build(model, _example(name, shape, 0))
    model.eval()
    recorded = cr.export.trace(model, cr.tensor(_example(name, shape, 0)))[0]
    assert name in {call.fn.name for call in recorded.calls}, "the case must call its op"
    for batch in (shape[0], shape[0] + 2):
        x = _example(name, (batch,) + shape[1:], 1)
        error = relative_error(run(proto, x), ours(model, x, False))
        assert error <= TOLERANCE, (name, batch, error)


def test_a_model_that_returns_its_input_exports_as_identity() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    proto, _ = build(nn.Dropout(0.5), x)
    assert [node.op_type for node in proto.graph.node] == ["Identity"]
    np.testing.assert_array_equal(run(proto, x), x)


def test_an_op_without_a_mapping_is_an_error_naming_it_and_its_layer() -> None:
    model = nn.Sequential(nn.Linear(4, 4), Lambda(lambda x, m: x.cumsum(1)))
    with pytest.raises(ExportError, match=r"op 'cumsum' \(in layer '1'\) has no ONNX mapping"):
        build(model, np.zeros((2, 4), np.float32))


def test_a_model_that_ignores_its_input_is_refused() -> None:
    model = Lambda(lambda x, m: m.b * 2.0, b=_param(3))
    with pytest.raises(ExportError, match="no op of the traced forward reads the input"):
        build(model, np.zeros((2, 3), np.float32))


def test_names_are_readable_and_the_file_has_its_metadata(tmp_path) -> None:
    cr.manual_seed(0)
    model = models.cnn()
    path = to_onnx(model, images(2), tmp_path / "cnn.onnx",
                   metadata={"chainrule.normalize": [0.13, 0.31], "note": "hello"})
    proto = onnx.load(str(path))
    initializers = {init.name for init in proto.graph.initializer}
    assert set(model.state_dict()) - {k for k in model.state_dict() if "num_batches" in k} \
        <= initializers
    assert any(node.name.startswith("0/Conv") for node in proto.graph.node)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["chainrule.normalize"]) == [0.13, 0.31] and meta["note"] == "hello"
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.opset_import[0].version == cr.export.OPSET


def test_to_onnx_refuses_to_overwrite_and_writes_whole_files(tmp_path) -> None:
    model = models.mlp()
    target = tmp_path / "m.onnx"
    target.write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        to_onnx(model, np.zeros((2, 784), np.float32), target)
    assert target.read_bytes() == b"mine"
    with pytest.raises(ExportError):
        to_onnx(Lambda(lambda x, m: x.cumsum(1)), np.zeros((2, 3), np.float32),
                tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists() and list(tmp_path.iterdir()) == [target]
    to_onnx(model, np.zeros((2, 784), np.float32), target, overwrite=True)
    assert onnx.load(str(target)).graph.node


def test_the_export_check_catches_a_wrong_mapping(monkeypatch, tmp_path) -> None:
    from chainrule.export import onnx as exporter

    monkeypatch.setitem(exporter.MAPPINGS, "relu",
                        lambda g, call: g.add("Sigmoid", [g.value(call.args["a"])]))
    with pytest.raises(ExportError, match="onnxruntime's output differs"):
        to_onnx(nn.ReLU(), np.ones((2, 3), np.float32), tmp_path / "r.onnx")
    assert not (tmp_path / "r.onnx").exists()


def test_a_batch_shaped_value_made_outside_the_ops_is_refused() -> None:
    # np.abs on the input's array is no op: the trace could only keep this batch's values
    model = Lambda(lambda x, m: x * cr.tensor(np.abs(x.data)))
    with pytest.raises(ExportError, match="a value that no op made|no op made"):
        build(model, np.ones((2, 3), np.float32))


def test_a_value_made_from_the_input_outside_the_ops_is_caught_by_the_check(tmp_path) -> None:
    # the column means, taken with NumPy: the file would keep the example's; the check runs
    # the file on new values too, and finds it out
    model = Lambda(lambda x, m: x - cr.tensor(x.data.mean(axis=0)))
    example = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    with pytest.raises(ExportError, match="differs from chainrule's"):
        to_onnx(model, example, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_without_the_onnx_package_the_error_says_how_to_install_it(monkeypatch,
                                                                    tmp_path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now fails
    with pytest.raises(ImportError, match=r'pip install "chainrule\[onnx\]"'):
        to_onnx(nn.ReLU(), np.ones((2, 3), np.float32), tmp_path / "m.onnx")


def test_the_docs_list_exactly_the_ops_that_export() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "export.md").read_text()
    listed = text.split("checked against chainrule.export.supported_ops() by a test -->")[1]
    listed = listed.split("<!-- end of the list -->")[0]
    assert re.findall(r"`(\w+)`", listed) == supported_ops()
    built_in = {name for name, fn in cr.registry().items()
                if fn.__module__.startswith("chainrule.")}
    functions = len(set(supported_ops()) & built_in)
    others = len(set(supported_ops()) - built_in)
    assert " ".join(text.split()).count(
        f"({functions} of the registry's {len(built_in)} Functions, and {others} comparison, "
        "logical and bitwise ops") == 1


@pytest.mark.parametrize("fn", [
    lambda x: cr.where(x < 0.5, 1.0, 2.0),          # int64 against 0.5 compares as float
    lambda x: cr.where(x == 2, 1.0, 2.0),
    lambda x: ((x & 3) | 4).astype(np.float32),     # integer bitwise ops
    lambda x: (~x ^ 1).astype(np.float32),
    lambda x: (x > 0).sum(axis=1).astype(np.float32),  # bools sum as int64
    lambda x: cr.where(x, 1.0, 0.0),                # an integer condition: nonzero is true
], ids=["lt-half", "eq", "and-or", "not-xor", "bool-sum", "int-condition"])
def test_integer_inputs_follow_chainrules_promotion(fn) -> None:
    model = Lambda(lambda x, m: fn(x))
    x = np.array([[0, 1, 2], [3, -1, 0]], np.int64)
    proto, _ = build(model, x)
    other = np.array([[2, 0, 0], [1, 1, 5], [-3, 2, 0]], np.int64)
    np.testing.assert_array_equal(run(proto, other), ours(model, other, False))


def test_export_restores_each_layers_own_mode() -> None:
    cr.manual_seed(0)
    model = models.cnn()
    model.train()
    model[1].eval()  # a frozen BatchNorm inside a training model
    build(model, images(2))
    build(model, images(2), training=True)
    model.summary((2, 1, 28, 28))
    assert model.training and not model[1].training and model[5].training


def test_negative_permute_axes_and_unbatched_outputs_export() -> None:
    model = Lambda(lambda x, m: x.reshape(x.shape[0], 3, 1).permute(0, -1, 1).mean(0))
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    proto, _ = build(model, x)
    assert [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim] == [1, 3]
    np.testing.assert_allclose(run(proto, x), ours(model, x, False), rtol=1e-6)


def test_a_time_first_recurrent_layer_is_refused_not_unrolled_wrongly() -> None:
    model = Lambda(lambda x, m: m.gru(x)[0], gru=nn.GRU(5, 4))  # (T, B, features)
    with pytest.raises(ExportError, match="Export a batch_first layer"):
        build(model, np.zeros((6, 3, 5), np.float32))


def test_a_recurrent_state_given_as_a_batch_sized_constant_is_refused() -> None:
    model = Lambda(lambda x, m: m.gru(x, cr.zeros(1, 3, 4))[0],
                   gru=nn.GRU(5, 4, batch_first=True))
    with pytest.raises(ExportError, match="no op made"):
        build(model, np.zeros((3, 6, 5), np.float32))


@pytest.mark.parametrize("training", [False, True])
def test_functional_attention_dropout_is_exported_as_the_trace_drew_it(training) -> None:
    model = Lambda(lambda x, m: F.scaled_dot_product_attention(x, x, x, dropout_p=0.5))
    proto, _ = build(model, np.ones((2, 4, 3), np.float32), training=training)
    assert "Dropout" in [node.op_type for node in proto.graph.node]
    with pytest.raises(ExportError, match="p = 1"):
        build(Lambda(lambda x, m: F.scaled_dot_product_attention(x, x, x, dropout_p=1.0)),
              np.ones((2, 4, 3), np.float32))


def test_attention_lets_nan_through_where_chainrule_does() -> None:
    keep = np.ones((4, 4), bool)
    keep[1] = False
    model = Lambda(lambda x, m: F.scaled_dot_product_attention(x, x, x, attn_mask=keep))
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    proto, _ = build(model, x)
    x[0, 2, 1] = np.nan
    got, want = run(proto, x), ours(model, x, False)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(want).any() and not np.isnan(want).all()


def test_without_onnxruntime_the_export_warns_that_it_was_not_checked(monkeypatch,
                                                                       tmp_path) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.warns(UserWarning, match="was not run against chainrule"):
        to_onnx(nn.ReLU(), np.ones((2, 3), np.float32), tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_exports(batch_first) -> None:
    cr.manual_seed(0)
    attention = nn.MultiheadAttention(8, 2, batch_first=batch_first)
    model = Lambda(lambda x, m: m.attention(x, x, x, need_weights=False)[0],
                   attention=attention)
    shape = (3, 5, 8) if batch_first else (5, 3, 8)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    proto, _ = build(model, x)
    if batch_first:  # the batch axis is free; time-first, the batch is axis 1 and fixed
        x = np.random.default_rng(1).standard_normal((4, 5, 8)).astype(np.float32)
    assert relative_error(run(proto, x), ours(model, x, False)) <= TOLERANCE


def test_a_newer_opset_writes_the_same_nodes_and_a_wrong_one_is_refused() -> None:
    cr.manual_seed(0)
    model = models.gpt(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
    idx = np.random.default_rng(0).integers(0, 11, (2, 8))
    newest = onnx.defs.onnx_opset_version()
    default, _ = build(model, idx)
    later, _ = build(model, idx, opset=min(23, newest))
    assert later.opset_import[0].version == min(23, newest)
    assert [n.op_type for n in later.graph.node] == [n.op_type for n in default.graph.node]
    assert relative_error(run(later, idx), ours(model, idx, False)) <= TOLERANCE
    for wrong in (19, newest + 1, 20.5):
        with pytest.raises(ExportError, match="opset must be a whole number from 20"):
            build(model, idx, opset=wrong)
