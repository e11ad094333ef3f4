"""PyTorch parity: converters both ways, the registry, and the per-layer parity report."""

import functools
import subprocess
import sys

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import nn
from chainrule.check import torch_twins
from chainrule.check.parity import (
    ConversionError,
    from_torch,
    parity_report,
    register_converter,
    to_torch,
    to_torch_parameter,
    unregister_converter,
)

RNG = np.random.default_rng(0)


def mlp(dtype: str = "float32") -> nn.Sequential:
    return nn.Sequential(nn.Linear(6, 5, dtype=dtype), nn.ReLU(), nn.Linear(5, 4, dtype=dtype),
                         nn.ReLU(), nn.Linear(4, 3, dtype=dtype))


def same_state(a: dict, b: dict) -> bool:
    """Same names, dtypes, shapes and bytes."""
    return list(a) == list(b) and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        and a[k].tobytes() == b[k].tobytes() for k in a)


def torch_state(module: torch.nn.Module) -> dict:
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def outputs_agree(ours: nn.Module, theirs: torch.nn.Module, shape: tuple) -> None:
    x = RNG.standard_normal(shape).astype(ours.parameters()[0].dtype if ours.parameters()
                                          else np.float64)
    with cr.no_grad(), torch.no_grad():
        np.testing.assert_allclose(ours(cr.tensor(x)).numpy(), theirs(torch.from_numpy(x)),
                                   rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- converters
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_converts_both_ways_with_weights_and_dtype(bias: bool, dtype: str) -> None:
    layer = nn.Linear(5, 3, bias=bias, dtype=dtype)
    twin = to_torch(layer)
    assert type(twin) is torch.nn.Linear and (twin.bias is None) == (not bias)
    assert (twin.in_features, twin.out_features) == (5, 3)
    assert twin.weight.dtype == getattr(torch, dtype)
    assert same_state(layer.state_dict(), torch_state(twin))
    outputs_agree(layer, twin, (4, 5))
    twin.weight.data.add_(1.0)  # a copy, not a view: the chainrule layer is untouched
    assert not np.array_equal(layer.weight.numpy(), twin.weight.detach().numpy())

    back = from_torch(twin)
    assert type(back) is nn.Linear and (back.bias is None) == (not bias)
    assert same_state(back.state_dict(), torch_state(twin))
    outputs_agree(back, twin, (2, 5))


def test_relu_and_frozen_parameters_convert() -> None:
    assert type(to_torch(nn.ReLU())) is torch.nn.ReLU
    assert type(from_torch(torch.nn.ReLU(inplace=True))) is nn.ReLU
    layer = nn.Linear(3, 2)
    layer.bias.requires_grad = False
    twin = to_torch(layer)
    assert twin.weight.requires_grad and not twin.bias.requires_grad
    assert not from_torch(twin).bias.requires_grad


ALL = ("mean", "sum", "none")
LOSSES = [(nn.MSELoss, torch.nn.MSELoss, ALL, {}),
          (nn.L1Loss, torch.nn.L1Loss, ALL, {}),
          (nn.SmoothL1Loss, torch.nn.SmoothL1Loss, ALL, {"beta": 0.5}),
          (nn.HuberLoss, torch.nn.HuberLoss, ALL, {"delta": 0.7}),
          (nn.KLDivLoss, torch.nn.KLDivLoss, ALL + ("batchmean",), {"log_target": True}),
          (nn.BCELoss, torch.nn.BCELoss, ALL, {"weight": np.array([1.0, 2.0, 0.5])}),
          (nn.CrossEntropyLoss, torch.nn.CrossEntropyLoss, ALL,
           {"weight": np.array([1.0, 2.0, 0.5]), "ignore_index": 1, "label_smoothing": 0.1}),
          (nn.NLLLoss, torch.nn.NLLLoss, ALL, {"weight": np.array([1.0, 2.0, 0.5]),
                                               "ignore_index": 0}),
          (nn.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss, ALL,
           {"pos_weight": np.array([1.0, 3.0, 0.5])})]


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")  # torch's KLDivLoss advice
@pytest.mark.parametrize("ours, theirs, reductions, options", LOSSES,
                         ids=[t[0].__name__ for t in LOSSES])
def test_loss_layers_convert_keeping_reduction_and_options(ours, theirs, reductions,
                                                           options) -> None:
    out = RNG.standard_normal((4, 3))
    classes = np.array([0, 2, 1, 2])
    target = classes if ours in (nn.CrossEntropyLoss, nn.NLLLoss) else RNG.random((4, 3))
    if ours is nn.BCELoss:
        out = 1 / (1 + np.exp(-out))
    for reduction in reductions:
        twin = to_torch(ours(reduction=reduction, **options))
        assert type(twin) is theirs and twin.reduction == reduction
        back = from_torch(twin)
        assert type(back) is ours and back.reduction == reduction
        expected = twin(torch.from_numpy(out), torch.from_numpy(target)).numpy()
        if options:  # the options reached torch: the loss differs from the plain one's
            plain = theirs(reduction=reduction)(torch.from_numpy(out), torch.from_numpy(target))
            assert not np.allclose(expected, plain.numpy())
        np.testing.assert_allclose(back(cr.tensor(out), target).numpy(), expected, rtol=1e-12)


def test_from_torch_refuses_loss_options_chainrule_lacks() -> None:
    # PyTorch's deprecated size_average lives on as a reduction; a made-up option is refused.
    twin = torch.nn.KLDivLoss(reduction="batchmean")
    assert from_torch(twin).reduction == "batchmean"
    twin.log_target = "yes"
    with pytest.raises(ConversionError, match=r"1 \(KLDivLoss.*log_target"):
        from_torch(torch.nn.Sequential(torch.nn.Linear(3, 3), twin))


def test_nested_sequential_keeps_structure_names_and_outputs() -> None:
    model = nn.Sequential(nn.Linear(6, 5), nn.Sequential(nn.ReLU(), nn.Sequential(
        nn.Linear(5, 4), nn.ReLU())), nn.Linear(4, 2, bias=False))
    twin = to_torch(model)
    assert isinstance(twin[1][1], torch.nn.Sequential) and isinstance(twin[1][1][0],
                                                                      torch.nn.Linear)
    assert [n for n, _ in model.named_modules()] == [n for n, _ in twin.named_modules()]
    assert list(model.state_dict()) == list(twin.state_dict())
    outputs_agree(model, twin, (3, 6))
    back = from_torch(twin)
    assert repr(back) == repr(model)
    outputs_agree(back, twin, (3, 6))


def test_round_trips_are_bit_exact() -> None:
    model = nn.Sequential(mlp("float64"), nn.Linear(3, 2, dtype="float32"))
    back = from_torch(to_torch(model))
    assert same_state(model.state_dict(), back.state_dict())
    twin = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    again = to_torch(from_torch(twin))
    assert same_state(torch_state(twin), torch_state(again))


def test_dtype_and_train_eval_mode_are_kept_per_module() -> None:
    model = nn.Sequential(nn.Linear(3, 3, dtype="float64"), nn.ReLU(),
                          nn.Linear(3, 2, dtype="float32"))
    model.eval()
    model[1].train()
    twin = to_torch(model)
    assert [twin[0].weight.dtype, twin[2].weight.dtype] == [torch.float64, torch.float32]
    assert [m.training for m in twin.modules()] == [False, False, True, False]
    back = from_torch(twin)
    assert [back[0].weight.dtype, back[2].weight.dtype] == [np.float64, np.float32]
    assert [m.training for m in back.modules()] == [False, False, True, False]


def test_shared_layers_stay_shared_and_no_random_numbers_are_drawn() -> None:
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    torch_rng, cr_rng = torch.get_rng_state(), cr.default_generator().bit_generator.state
    twin = to_torch(model)
    back = from_torch(twin)
    assert torch.equal(torch.get_rng_state(), torch_rng)
    assert cr.default_generator().bit_generator.state == cr_rng
    assert twin[0] is twin[2] and back[0] is back[2]


class MyLayer(nn.Module):
    def forward(self, x):
        return x * 2


class Lin(nn.Module):
    """The lesson's hand-written layer: x @ w + b with w laid out (in, out)."""

    def __init__(self, w, b):
        self.w, self.b = w, b

    def forward(self, inp):
        return inp @ self.w + self.b

    def bwd(self, out, inp):
        inp.g = out.g @ self.w.t()
        self.w.g = inp.t() @ out.g
        self.b.g = out.g.sum(0)


class SeedModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [Lin(cr.randn(4, 3, requires_grad=True), cr.zeros(3, requires_grad=True)),
                       nn.ReLU(), MyLayer()]

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def test_unsupported_layers_are_named_with_their_path_and_the_fix() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Sequential(nn.ReLU(), MyLayer()))
    with pytest.raises(ConversionError, match=r"no converter for 2\.1 \(MyLayer\)\. "
                       r"Converters exist for: Linear, .*ReLU, Sequential.*register_converter"
                       r"\(MyLayer, torch\.nn\.<Twin>, to_fn, from_fn\)"):
        to_torch(model)
    with pytest.raises(ConversionError, match=r"<model> \(SeedModel\), layers\.0 \(Lin, a "
                       r"hand-written layer with bwd\), layers\.2 \(MyLayer\)\."):
        to_torch(SeedModel())
    with pytest.raises(ConversionError, match=r"from_torch: no converter for 1 \(Tanhshrink\)"
                       r"\. Converters exist for: torch\.nn\.Linear"):
        from_torch(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanhshrink()))


def test_a_registered_converter_pair_makes_a_new_layer_convert() -> None:
    class Double(nn.Module):
        def forward(self, x):
            return x * 2

    class TorchDouble(torch.nn.Module):
        def forward(self, x):
            return x * 2

    register_converter(Double, TorchDouble, lambda layer, children: TorchDouble(),
                       lambda twin, children: Double())
    try:
        twin = to_torch(nn.Sequential(nn.Linear(3, 2), Double()))
        assert type(twin[1]) is TorchDouble
        assert type(from_torch(twin)[1]) is Double
        outputs_agree(from_torch(twin), twin, (2, 3))
    finally:
        unregister_converter(Double)
    with pytest.raises(ConversionError, match=r"1 \(Double\)"):
        to_torch(nn.Sequential(nn.Linear(3, 2), Double()))


def test_a_converter_returning_the_wrong_thing_is_named() -> None:
    register_converter(MyLayer, "torch.nn.Identity", lambda layer, children: "oops")
    try:
        with pytest.raises(ConversionError, match="converter of MyLayer returned a str"):
            to_torch(MyLayer())
    finally:
        unregister_converter(MyLayer)


def test_missing_torch_gives_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # what `import torch` sees without it
    for call in (lambda: to_torch(mlp()), lambda: parity_report(mlp(), np.ones((2, 6))),
                 lambda: to_torch_parameter(cr.ones(2))):
        with pytest.raises(ImportError, match=r"pip install torch==2\.13\.0"):
            call()


def test_importing_parity_does_not_import_torch() -> None:
    code = ("import sys; import chainrule.check.parity as p\n"
            "class Tanh(p.Module): pass\n"
            "p.register_converter(Tanh, 'torch.nn.Tanh', lambda layer, children: None)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- parity report
X = RNG.standard_normal((8, 6)).astype(np.float32)
CLASSES = np.array([0, 1, 2, 0, 1, 2, 2, 1])


def test_report_on_an_mlp_with_cross_entropy_is_all_ok_at_float64() -> None:
    model = mlp()
    before = model.state_dict()
    report = parity_report(model, X, CLASSES, loss=nn.functional.cross_entropy)
    assert report.ok and report.flagged == [] and report.dtype == "float64"
    assert [r.name for r in report.rows] == ["(input)", "0", "1", "2", "3", "4", "(loss)"]
    assert [r.type for r in report.rows[1:-1]] == ["Linear", "ReLU"] * 2 + ["Linear"]
    assert all(r.status == "✓" for r in report.rows)
    assert set(report.rows[1].param_grads) == {"weight", "bias"}
    assert report.worst is not None and report.worst.max_rel < 1e-12
    assert abs(report.loss[0] - report.loss[1]) < 1e-12
    # The user's model is not touched: same float32 weights, no gradients, no hooks.
    assert same_state(model.state_dict(), before)
    assert all(p.grad is None for p in model.parameters())
    assert not any(m.__dict__.get("_forward_hooks") for m in model.modules())
    text = str(report)
    assert "layer" in text and "output grad" in text and "✗" not in text
    assert "OK: every layer agrees with torch" in text


@pytest.mark.parametrize("loss", [None, nn.functional.mse, nn.MSELoss(reduction="sum"),
                                  functools.partial(nn.functional.mse, reduction="sum")])
def test_report_with_mse_and_the_trailing_one(loss) -> None:
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 1))
    targets = RNG.standard_normal(8)  # (N,) against an (N, 1) output: compared as if squeezed
    report = parity_report(model, X, targets, loss=loss)
    assert report.ok, str(report)
    assert report.worst.max_rel < 1e-12


@pytest.mark.parametrize("loss, targets", [
    (nn.CrossEntropyLoss(reduction="sum"), CLASSES),
    (functools.partial(nn.functional.nll_loss, reduction="sum"), CLASSES),
    (nn.BCEWithLogitsLoss(), RNG.random((8, 3))),
    (None, None),  # the sum of the outputs
])
def test_report_with_other_losses(loss, targets) -> None:
    report = parity_report(mlp(), X, targets, loss=loss)
    assert report.ok, str(report)


def test_report_flags_exactly_the_broken_layer() -> None:
    class OffLinear(nn.Linear):
        def forward(self, x):
            return super().forward(x) + 1e-3  # the bug: torch's Linear has no such shift

    def off_to_torch(layer, children):
        twin = torch.nn.Linear(layer.in_features, layer.out_features, device="meta")
        twin.weight, twin.bias = to_torch_parameter(layer.weight), to_torch_parameter(layer.bias)
        return twin

    register_converter(OffLinear, torch.nn.Linear, off_to_torch)  # one-way: a debugging twin
    try:
        model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), OffLinear(5, 4), nn.ReLU(),
                              nn.Linear(4, 3))
        report = parity_report(model, X, CLASSES)
        # torch.nn.Linear still converts back to the standard layer
        assert type(from_torch(torch.nn.Linear(2, 2))) is nn.Linear
    finally:
        unregister_converter(OffLinear)
    assert not report.ok and report.flagged == ["2"]
    rows = {r.name: r for r in report.rows}
    assert rows["2"].status == "✗" and rows["2"].local_ok is False
    assert all(rows[n].local_ok and rows[n].forward.ok for n in ("0", "1"))
    assert rows["2"].forward.max_abs == pytest.approx(1e-3, rel=1e-6)
    text = str(report)
    assert "FAILED: disagrees with torch on identical inputs: 2 (OffLinear)" in text


def test_report_with_a_given_torch_twin_uses_the_models_weights() -> None:
    model = mlp()
    twin = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 4),
                               torch.nn.ReLU(), torch.nn.Linear(4, 3))
    report = parity_report(model, X, CLASSES, torch_model=twin)
    assert report.ok, str(report)
    assert twin[0].weight.dtype == torch.float32  # the caller's twin is copied, not cast
    with pytest.raises(ValueError, match="missing in torch_model: 4.bias, 4.weight"):
        parity_report(model, X, CLASSES, torch_model=twin[:4])


class TorchLin(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w, self.b = torch.nn.Parameter(torch.zeros(4, 3)), torch.nn.Parameter(torch.zeros(3))

    def forward(self, x):
        return x @ self.w + self.b


class TorchSeedModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([TorchLin(), torch.nn.ReLU()])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class WrongLin(Lin):
    def bwd(self, out, inp):
        super().bwd(out, inp)
        self.b.g = out.g.sum(0) * 2  # the bug: a factor of 2 in the bias gradient


@pytest.mark.parametrize("lin, flagged", [(Lin, []), (WrongLin, ["layers.0"])])
def test_report_on_a_hand_written_layer_with_its_torch_twin(lin, flagged) -> None:
    model = SeedModel()
    model.layers = [lin(model.layers[0].w, model.layers[0].b), nn.ReLU()]
    report = parity_report(model, X[:, :4], torch_model=TorchSeedModel())
    assert [r.name for r in report.rows] == ["(input)", "layers.0", "layers.1", "(loss)"]
    assert report.flagged == flagged and report.ok == (not flagged), str(report)
    if flagged:
        row = report.rows[1]
        assert not row.param_grads["b"].ok and row.param_grads["w"].ok
        assert report.rows[0].status == "✓"  # the input's gradient does not depend on b


def test_report_marks_layers_the_torch_twin_lacks() -> None:
    class FunctionalRelu(torch.nn.Module):  # same parameters, but relu is no layer here
        def __init__(self):
            super().__init__()
            self.add_module("0", torch.nn.Linear(6, 3))

        def forward(self, x):
            return torch.relu(getattr(self, "0")(x))

    report = parity_report(nn.Sequential(nn.Linear(6, 3), nn.ReLU()), X,
                           torch_model=FunctionalRelu())
    assert report.flagged == ["1"] and not report.ok
    assert report.rows[2].note == "no torch layer named '1' in torch_model"
    assert "1: no torch layer named '1'" in str(report)


def test_report_refuses_an_unknown_loss_unless_given_its_torch_twin() -> None:
    def my_loss(out, target):
        return ((out - target) ** 2).sum()

    targets = RNG.standard_normal((8, 3))
    with pytest.raises(TypeError, match="torch_loss="):
        parity_report(mlp(), X, targets, loss=my_loss)
    report = parity_report(mlp(), X, targets, loss=my_loss,
                           torch_loss=lambda out, t: ((out - t) ** 2).sum())
    assert report.ok and report.loss_name == "my_loss"
    with pytest.raises(ValueError, match="single number: use reduction 'mean' or 'sum'"):
        parity_report(mlp(), X, CLASSES, loss=nn.CrossEntropyLoss(reduction="none"))


def test_conv_layers_convert_both_ways_and_pass_the_parity_report() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 4, 3, groups=2, dilation=1), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(4, 3))
    twin = to_torch(model)
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(twin(torch.from_numpy(x)).detach().numpy(), model(x).data,
                               rtol=1e-5, atol=1e-6)
    back = from_torch(twin)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[key], value)
    assert parity_report(model, x, np.array([0, 2])).ok


def _randomise_batch_norm(layer: nn.Module) -> nn.Module:
    rng = np.random.default_rng(3)
    for name, value in layer.state_dict().items():
        if value.dtype.kind == "f":
            fresh = rng.uniform(0.5, 2.0, value.shape) if name.endswith("var") else \
                rng.standard_normal(value.shape)
            layer.load_state_dict({**layer.state_dict(), name: fresh})
    return layer


@pytest.mark.parametrize("make", [
    lambda: nn.BatchNorm1d(4), lambda: nn.BatchNorm2d(3, eps=1e-3, momentum=None),
    lambda: nn.BatchNorm2d(3, affine=False), lambda: nn.BatchNorm1d(4, dtype="float64"),
    lambda: nn.BatchNorm2d(3, track_running_stats=False),
])
def test_batch_norm_converts_both_ways_with_buffers(make) -> None:
    layer = _randomise_batch_norm(make())
    layer.num_batches_tracked = None if layer.num_batches_tracked is None else cr.tensor(
        np.array(7, np.int64))
    twin = to_torch(layer)
    assert type(twin).__name__ == type(layer).__name__
    assert (twin.eps, twin.momentum, twin.affine, twin.track_running_stats) == (
        layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
    assert same_state(layer.state_dict(), torch_state(twin))
    back = from_torch(twin)
    assert type(back) is type(layer) and repr(back) == repr(layer)
    assert same_state(back.state_dict(), layer.state_dict())
    shape = (5, 4) if isinstance(layer, nn.BatchNorm1d) else (2, 3, 4, 4)
    dtype = (layer.parameters() or layer.buffers() or [cr.ones(1)])[0].dtype
    for mode in ("eval", "train"):
        getattr(layer, mode)(), getattr(twin, mode)()
        x = RNG.standard_normal(shape).astype(dtype)
        np.testing.assert_allclose(layer(cr.tensor(x)).numpy(), twin(torch.from_numpy(x))
                                   .detach().numpy(), rtol=1e-5, atol=1e-5)
    expected = torch_state(twin)  # a training step moved both sets of running statistics
    for key, value in layer.state_dict().items():
        np.testing.assert_allclose(value, expected[key], rtol=1e-6, err_msg=key)


@pytest.mark.parametrize("layer, torch_type", [
    (nn.LayerNorm((3, 4)), torch.nn.LayerNorm), (nn.LayerNorm(4, bias=False), torch.nn.LayerNorm),
    (nn.LayerNorm(4, elementwise_affine=False), torch.nn.LayerNorm),
    (nn.Tanh(), torch.nn.Tanh), (nn.Sigmoid(), torch.nn.Sigmoid), (nn.SiLU(), torch.nn.SiLU),
    (nn.LeakyReLU(0.25), torch.nn.LeakyReLU), (nn.GELU("tanh"), torch.nn.GELU),
    (nn.GELU(), torch.nn.GELU), (nn.Dropout(0.3), torch.nn.Dropout),
])
def test_layer_norm_activations_and_dropout_convert_both_ways(layer, torch_type) -> None:
    if isinstance(layer, nn.LayerNorm):
        _randomise_batch_norm(layer)
    twin = to_torch(layer)
    assert type(twin) is torch_type
    back = from_torch(twin)
    assert type(back) is type(layer) and repr(back) == repr(layer)
    assert same_state(back.state_dict(), layer.state_dict())
    assert same_state(layer.state_dict(), torch_state(twin))
    layer.eval(), twin.eval()  # dropout's masks are each library's own
    outputs_agree(layer, twin, (2, 3, 4))


def test_a_cnn_with_batch_norm_dropout_and_gelu_passes_the_parity_report() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                          nn.GELU(), nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.2),
                          nn.Linear(16, 8), nn.LayerNorm(8), nn.LeakyReLU(0.1),
                          nn.Linear(8, 3))
    model[5].eval()  # a training-mode Dropout draws a different mask in each library
    x = np.random.default_rng(1).standard_normal((4, 1, 4, 4)).astype(np.float32)
    report = parity_report(model, x, np.array([0, 2, 1, 1]))
    assert report.ok, str(report)
    model.eval()
    assert parity_report(model, x, np.array([0, 2, 1, 1])).ok
    before = model.state_dict()
    back = from_torch(to_torch(model))
    assert same_state(back.state_dict(), before)


def test_a_given_torch_twin_gets_the_models_running_statistics() -> None:
    model = _randomise_batch_norm(nn.BatchNorm1d(3)).eval()
    report = parity_report(model, X[:, :3], torch_model=torch.nn.BatchNorm1d(3).eval())
    assert report.ok, str(report)


def test_converting_back_leaves_chainrule_random_stream_alone() -> None:
    twin = to_torch(cr.models.resnet(widths=(2, 3), blocks=(1, 1)))  # convs, BN, residual
    cr.manual_seed(5)
    expected = cr.randn(4).data
    cr.manual_seed(5)
    from_torch(twin)
    np.testing.assert_array_equal(cr.randn(4).data, expected)


def test_a_fused_model_converts_and_compares_as_its_plain_layers() -> None:
    from chainrule import models

    cr.manual_seed(0)
    fused = nn.fuse(models.cnn(channels=(4,), hidden=8))
    twin = to_torch(fused)
    assert [type(m).__name__ for m in twin] == [
        "Conv2d", "BatchNorm2d", "MaxPool2d", "ReLU", "Flatten", "Dropout", "Linear", "ReLU",
        "Dropout", "Linear"]
    report = parity_report(fused.eval(), np.random.default_rng(0).standard_normal((2, 1, 28,
                                                                                   28)))
    assert report.ok, str(report)


# ----------------------------------------------------------------------------- every layer
F64 = {"dtype": "float64"}


def _unpool_inputs(dims: int, kernel: tuple, stride: tuple, padding: tuple, shape: tuple):
    """Values and indices as the matching torch max pool gives them, for MaxUnpool."""
    def make(rng: np.random.Generator) -> list[np.ndarray]:
        pool = getattr(torch.nn.functional, f"max_pool{dims}d")
        values, indices = pool(torch.from_numpy(rng.standard_normal(shape)), kernel, stride,
                               padding, return_indices=True)
        return [values.numpy(), indices.numpy()]
    return make


def _embedding_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    """Indices into a 6-row table."""
    return [rng.integers(0, 6, (4, 5))]  # repeats, so scale_grad_by_freq matters


def _pretrained() -> nn.Module:
    """A frozen Embedding: its weight needs no gradient."""
    table = np.random.default_rng(4).standard_normal((6, 3))  # not RNG: ids build it too
    return nn.Embedding.from_pretrained(table, padding_idx=1,
                                        scale_grad_by_freq=True)


# (chainrule layer with settings off their defaults, its inputs: shapes or a function of a
# generator). The torch twin is torch.nn's class of the same name unless TWIN_TYPES says.
LAYERS = [
    (lambda: nn.Linear(5, 3, bias=False, **F64), [(4, 5)]),
    (lambda: nn.Bilinear(3, 4, 2, **F64), [(5, 3), (5, 4)]),
    (lambda: nn.Bilinear(3, 2, 4, bias=False, **F64), [(5, 3), (5, 2)]),
    (lambda: nn.MultiheadAttention(6, 2, batch_first=True, **F64), [(2, 3, 6)] * 3),
    (lambda: nn.RNN(3, 4, num_layers=2, nonlinearity="relu", batch_first=True, **F64),
     [(2, 5, 3)]),
    (lambda: nn.GRU(3, 4, bidirectional=True, bias=False, **F64), [(5, 2, 3)]),
    (lambda: nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, **F64),
     [(2, 5, 3)]),
    (lambda: nn.RNNCell(3, 4, nonlinearity="relu", **F64), [(2, 3)]),
    (lambda: nn.GRUCell(3, 4, bias=False, **F64), [(2, 3)]),
    (lambda: nn.LSTMCell(3, 4, **F64), [(2, 3)]),
    (lambda: nn.MultiheadAttention(4, 2, bias=False, add_bias_kv=True, kdim=3, vdim=5, **F64),
     [(3, 2, 4), (5, 2, 3), (5, 2, 5)]),
    (lambda: nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2,
                       padding_mode="reflect", **F64), [(2, 4, 11)]),
    (lambda: nn.Conv2d(4, 6, (3, 2), padding="same", dilation=(2, 1), groups=2,
                       padding_mode="circular", **F64), [(2, 4, 7, 6)]),
    (lambda: nn.Conv2d(3, 4, 3, padding="valid", bias=False, **F64), [(2, 3, 6, 6)]),
    (lambda: nn.Conv2d(2, 4, 3, stride=(2, 1), padding=(1, 2), padding_mode="replicate",
                       **F64), [(2, 2, 7, 6)]),
    (lambda: nn.Conv2d(2, 2, 3, padding="same", **F64), [(1, 2, 5, 5)]),
    (lambda: nn.Conv3d(2, 4, (2, 3, 2), stride=(1, 2, 1), padding=(1, 0, 1), groups=2,
                       **F64), [(2, 2, 5, 6, 4)]),
    (lambda: nn.Conv3d(2, 2, 3, padding="same", padding_mode="reflect", bias=False, **F64),
     [(1, 2, 4, 5, 4)]),
    (lambda: nn.ConvTranspose1d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2,
                                **F64), [(2, 4, 5)]),
    (lambda: nn.ConvTranspose2d(2, 4, (3, 2), stride=(2, 3), padding=(1, 0),
                                output_padding=(1, 2), bias=False, **F64), [(2, 2, 4, 3)]),
    (lambda: nn.ConvTranspose3d(2, 2, 2, stride=2, dilation=2, output_padding=1, **F64),
     [(2, 2, 3, 3, 2)]),
    (lambda: nn.MaxPool1d(3, stride=2, padding=1, dilation=2, ceil_mode=True), [(2, 3, 10)]),
    (lambda: nn.MaxPool2d(3, stride=(2, 1), padding=1, dilation=(1, 2), return_indices=True,
                          ceil_mode=True), [(2, 3, 7, 8)]),
    (lambda: nn.MaxPool2d(2), [(1, 2, 5, 4)]),
    (lambda: nn.MaxPool3d(2, stride=1, padding=1, return_indices=True), [(1, 2, 4, 3, 4)]),
    (lambda: nn.AvgPool1d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
     [(2, 3, 8)]),
    (lambda: nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False,
                          divisor_override=5), [(2, 3, 8, 7)]),
    (lambda: nn.AvgPool2d((2, 3), padding=(1, 1), count_include_pad=False), [(1, 2, 5, 6)]),
    (lambda: nn.AvgPool3d(2, stride=(1, 2, 1), padding=1, ceil_mode=True, divisor_override=3),
     [(1, 2, 4, 4, 3)]),
    (lambda: nn.AdaptiveAvgPool1d(3), [(2, 3, 7)]),
    (lambda: nn.AdaptiveAvgPool2d((3, None)), [(2, 3, 7, 5)]),
    (lambda: nn.AdaptiveAvgPool3d((2, 3, 1)), [(1, 2, 5, 6, 4)]),
    (lambda: nn.AdaptiveMaxPool1d(4, return_indices=True), [(2, 3, 9)]),
    (lambda: nn.AdaptiveMaxPool2d((None, 2), return_indices=True), [(2, 3, 5, 7)]),
    (lambda: nn.AdaptiveMaxPool3d((2, None, 3)), [(1, 2, 5, 4, 6)]),
    (lambda: nn.MaxUnpool1d(3, stride=2, padding=1),
     _unpool_inputs(1, (3,), (2,), (1,), (2, 3, 9))),
    (lambda: nn.MaxUnpool2d((2, 3), stride=(2, 1), padding=(1, 0)),
     _unpool_inputs(2, (2, 3), (2, 1), (1, 0), (2, 2, 4, 6))),
    (lambda: nn.MaxUnpool3d(2, stride=(2, 1, 2), padding=(1, 0, 0)),
     _unpool_inputs(3, (2, 2, 2), (2, 1, 2), (1, 0, 0), (1, 2, 4, 3, 4))),
    (lambda: nn.UpsamplingNearest2d(scale_factor=2), [(1, 2, 3, 4)]),
    (lambda: nn.UpsamplingBilinear2d(size=(5, 3)), [(1, 2, 3, 4)]),
    (lambda: nn.Upsample(scale_factor=(2, 1.5), mode="bilinear", align_corners=True),
     [(1, 2, 4, 4)]),
    (lambda: nn.Upsample(size=(5, 7), mode="bicubic"), [(1, 2, 3, 4)]),
    (lambda: nn.Upsample(scale_factor=1.7, mode="nearest-exact", recompute_scale_factor=True),
     [(1, 2, 5)]),
    (lambda: nn.Upsample(size=(3, 4, 5), mode="trilinear", align_corners=False),
     [(1, 2, 2, 3, 3)]),
    (lambda: nn.Upsample(scale_factor=0.5, mode="area"), [(1, 2, 6, 4)]),
    (lambda: nn.PixelShuffle(2), [(1, 8, 3, 2)]),
    (lambda: nn.PixelUnshuffle(2), [(1, 2, 4, 6)]),
    (lambda: nn.ZeroPad1d((1, 2)), [(2, 3, 4)]),
    (lambda: nn.ZeroPad2d((1, 0, 2, 3)), [(2, 3, 4)]),
    (lambda: nn.ZeroPad3d((1, 0, 2, 0, 0, 1)), [(1, 2, 3, 3, 2)]),
    (lambda: nn.ConstantPad1d(2, 3.5), [(2, 3, 4)]),
    (lambda: nn.ConstantPad2d((1, 2, 0, 1), -1.0), [(2, 3, 4)]),
    (lambda: nn.ConstantPad3d((1, 0, 0, 1, 2, 0), 0.5), [(1, 2, 3, 3, 2)]),
    (lambda: nn.ReflectionPad1d((2, 1)), [(2, 3, 4)]),
    (lambda: nn.ReflectionPad2d((1, 2, 2, 0)), [(2, 3, 4)]),
    (lambda: nn.ReflectionPad3d(1), [(1, 2, 3, 3, 2)]),
    (lambda: nn.ReplicationPad1d((0, 3)), [(2, 3, 4)]),
    (lambda: nn.ReplicationPad2d(2), [(1, 2, 3, 4)]),
    (lambda: nn.ReplicationPad3d((1, 2, 0, 1, 1, 0)), [(1, 2, 3, 3, 2)]),
    (lambda: nn.CircularPad1d((1, 2)), [(2, 3, 4)]),
    (lambda: nn.CircularPad2d((2, 1, 1, 0)), [(1, 2, 3, 4)]),
    (lambda: nn.CircularPad3d(1), [(1, 2, 3, 3, 2)]),
    (lambda: nn.ReLU(), [(3, 4)]),
    (lambda: nn.Tanh(), [(3, 4)]),
    (lambda: nn.Sigmoid(), [(3, 4)]),
    (lambda: nn.SiLU(), [(3, 4)]),
    (lambda: nn.LeakyReLU(0.2), [(3, 4)]),
    (lambda: nn.GELU("tanh"), [(3, 4)]),
    (lambda: nn.Softplus(2.0, 1.5), [(3, 4)]),
    (lambda: nn.ELU(0.5, inplace=True), [(3, 4)]),
    (lambda: nn.CELU(1.5, inplace=True), [(3, 4)]),
    (lambda: nn.SELU(inplace=True), [(3, 4)]),
    (lambda: nn.Mish(inplace=True), [(3, 4)]),
    (lambda: nn.Hardswish(inplace=True), [(3, 4)]),
    (lambda: nn.Hardsigmoid(inplace=True), [(3, 4)]),
    (lambda: nn.LogSigmoid(), [(3, 4)]),
    (lambda: nn.Softsign(), [(3, 4)]),
    (lambda: nn.Hardtanh(-0.5, 2.5, inplace=True), [(3, 4)]),
    (lambda: nn.ReLU6(inplace=True), [(3, 4)]),
    (lambda: nn.Softmax(dim=1), [(2, 3, 4)]),
    (lambda: nn.LogSoftmax(dim=0), [(2, 3, 4)]),
    (lambda: nn.Softmin(dim=-1), [(2, 3, 4)]),
    (lambda: nn.GLU(dim=1), [(2, 4, 3)]),
    (lambda: nn.PReLU(3, init=0.1, **F64), [(2, 3, 4)]),
    (lambda: nn.Dropout(0.3), [(3, 4)]),
    (lambda: nn.BatchNorm1d(3, eps=1e-3, momentum=0.2, **F64), [(4, 3, 5)]),
    (lambda: nn.BatchNorm2d(3, momentum=None, affine=False, **F64), [(2, 3, 4, 4)]),
    (lambda: nn.BatchNorm3d(2, eps=1e-4, momentum=0.3, **F64), [(2, 2, 3, 3, 2)]),
    (lambda: nn.BatchNorm3d(2, track_running_stats=False, **F64), [(2, 2, 3, 3, 2)]),
    (lambda: nn.BatchNorm2d(3, bias=False, **F64), [(2, 3, 4, 4)]),
    (lambda: nn.GroupNorm(2, 4, eps=1e-3, **F64), [(2, 4, 3)]),
    (lambda: nn.GroupNorm(3, 6, bias=False, **F64), [(2, 6, 2, 2)]),
    (lambda: nn.GroupNorm(2, 4, affine=False, **F64), [(2, 4, 3)]),
    (lambda: nn.InstanceNorm1d(3, eps=1e-3, momentum=0.2, affine=True,
                               track_running_stats=True, **F64), [(2, 3, 6)]),
    (lambda: nn.InstanceNorm2d(3, affine=True, bias=False, **F64), [(2, 3, 4, 4)]),
    (lambda: nn.InstanceNorm3d(2, momentum=None, track_running_stats=True, **F64),
     [(2, 2, 3, 3, 3)]),
    (lambda: nn.LayerNorm((3, 4), eps=1e-3, bias=False, **F64), [(2, 3, 4)]),
    (lambda: nn.LayerNorm(4, elementwise_affine=False), [(2, 3, 4)]),
    (lambda: nn.RMSNorm((3, 4), eps=1e-4, **F64), [(2, 3, 4)]),
    (lambda: nn.RMSNorm(4, elementwise_affine=False), [(2, 3, 4)]),
    (lambda: nn.Embedding(6, 3, padding_idx=-2, norm_type=1.0, scale_grad_by_freq=True,
                          **F64), _embedding_inputs),
    (_pretrained, _embedding_inputs),
    (lambda: nn.Identity(3, unused=1), [(2, 3)]),
    (lambda: nn.Flatten(0, 1), [(2, 3, 4)]),
    (lambda: nn.Unflatten(1, (2, -1)), [(3, 6, 2)]),
    (lambda: nn.CosineSimilarity(dim=0, eps=1e-3), [(4, 3), (4, 3)]),
    (lambda: nn.Sequential(nn.Linear(3, 4, **F64), nn.Tanh()), [(2, 3)]),
    (lambda: nn.GlobalAvgPool2d(), [(2, 3, 4, 4)]),
    (lambda: nn.ResidualBlock(2, 3, stride=2, **F64), [(2, 2, 6, 6)]),
]
TWIN_TYPES = {"GlobalAvgPool2d": torch_twins.GlobalAvgPool2d,
              "ResidualBlock": torch_twins.ResidualBlock}
# chainrule layers torch.nn has no class for: the fused ones, which to_torch unfuses into the
# plain layers they stand for before converting, and the GPT's parts (nanoGPT's, not torch.nn's;
# tests/test_gpt.py checks them against a torch twin). (GlobalAvgPool2d and ResidualBlock have
# twins in chainrule.check.torch_twins; Module itself is the base class, not a layer.)
NO_TORCH_TWIN = ["BatchNormMaxPool2d", "CausalSelfAttention", "Fused", "GPT", "LinearReLU",
                 "TransformerBlock"]
# torch's float64 hardsigmoid slope is float32's 1/6 (rtol 3e-8); chainrule's is exact.
GRAD_RTOL = {"Hardsigmoid": 1e-7}


def _layer_id(case: tuple) -> str:
    """The test id of a LAYERS row: its layer's class name."""
    return type(case[0]()).__name__


def _settings(module: nn.Module) -> dict:
    """A layer's public settings: its attributes but tensors, sub-modules and lists of them."""
    return {k: v for k, v in vars(module).items() if not k.startswith("_")
            and not isinstance(v, (cr.Tensor, nn.Module, list))}


def _flat(out) -> list:
    """A layer's outputs as a flat list: LSTM gives (output, (h_n, c_n))."""
    if isinstance(out, tuple):
        return [leaf for part in out for leaf in _flat(part)]
    return [out]


def _run(module, arrays: list[np.ndarray], library: str) -> tuple[list, list, dict]:
    """Outputs, input and parameter gradients of one call (backward from the first output)."""
    if library == "torch":
        inputs = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
        # A clone: torch's inplace=True layers may not overwrite a leaf that needs a gradient.
        out = module(*[x.clone() for x in inputs])
    else:
        inputs = [cr.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
        out = module(*inputs)
    outs = _flat(out)
    weights = np.random.default_rng(1).standard_normal(tuple(outs[0].shape))
    if outs[0].requires_grad:  # not for a frozen Embedding: nothing needs a gradient
        outs[0].backward(torch.from_numpy(weights) if library == "torch" else weights)

    def numpy(value) -> np.ndarray | None:
        if value is None:
            return None
        return value.detach().numpy() if library == "torch" else np.asarray(
            value.data if isinstance(value, cr.Tensor) else value)

    return ([numpy(o) for o in outs], [numpy(x.grad) for x in inputs if x.requires_grad],
            {k: numpy(p.grad) for k, p in module.named_parameters()})


@pytest.mark.parametrize("make, inputs", LAYERS, ids=[_layer_id(c) for c in LAYERS])
def test_every_layer_converts_both_ways_with_settings_state_and_gradients(make,
                                                                          inputs) -> None:
    layer = _randomise_batch_norm(make())  # random weights and running statistics
    if isinstance(layer, nn.Dropout):
        layer.eval()  # a training-mode Dropout draws a different mask in each library
    twin = to_torch(layer)
    name = type(layer).__name__
    assert type(twin) is (TWIN_TYPES[name] if name in TWIN_TYPES else getattr(torch.nn, name))
    back = from_torch(twin)
    assert type(back) is type(layer) and repr(back) == repr(layer)
    # A repr leaves some settings out (AvgPool2d's divisor_override): compare them all, and
    # with torch's where it keeps one under the same name.
    settings = _settings(layer)
    assert _settings(back) == settings
    assert {k: getattr(twin, k) for k in settings if hasattr(twin, k)} == {
        k: v for k, v in settings.items() if hasattr(twin, k)}
    assert same_state(layer.state_dict(), torch_state(twin))
    assert same_state(back.state_dict(), layer.state_dict())
    rng = np.random.default_rng(0)
    arrays = inputs(rng) if callable(inputs) else [3 * rng.standard_normal(s) for s in inputs]
    ours, theirs, again = _run(layer, arrays, "cr"), _run(twin, arrays, "torch"), \
        _run(back, arrays, "cr")
    rtol = GRAD_RTOL.get(name, 1e-10)
    for result in (ours, again):
        for kind, got, want in zip(("output", "input grad"), result[:2], theirs[:2]):
            assert len(got) == len(want), kind
            for a, b in zip(got, want):
                assert a.dtype == b.dtype and a.shape == b.shape, kind
                np.testing.assert_allclose(a, b, rtol=1e-10 if kind == "output" else rtol,
                                           atol=1e-12, err_msg=kind)
        assert list(result[2]) == list(theirs[2])
        for key, grad in result[2].items():
            want = theirs[2][key]
            assert (grad is None) == (want is None), key  # a frozen weight gets none
            if grad is not None:
                np.testing.assert_allclose(grad, want, rtol=rtol, atol=1e-12, err_msg=key)
    # Running statistics moved the same way in all three.
    for state in (layer.state_dict(), back.state_dict()):
        assert list(state) == list(torch_state(twin))
        for key, value in state.items():
            np.testing.assert_allclose(value, torch_state(twin)[key], rtol=1e-12, err_msg=key)


def test_the_layer_list_covers_every_converter() -> None:
    from chainrule.check.converters import _CONVERTERS

    covered = {type(make()) for make, _ in LAYERS} | {case[0] for case in LOSSES}
    assert sorted(t.__name__ for t in _CONVERTERS if t not in covered) == []


def test_every_layer_with_a_torch_twin_has_a_converter() -> None:
    from chainrule.check.converters import _CONVERTERS

    layers = [name for name, obj in vars(nn).items() if isinstance(obj, type)
              and issubclass(obj, nn.Module) and obj is not nn.Module]
    assert sorted(name for name in layers if getattr(nn, name) not in _CONVERTERS) == \
        NO_TORCH_TWIN


def _changed(module: torch.nn.Module, **values) -> torch.nn.Module:
    """``module`` with attributes set past its constructor (settings chainrule lacks)."""
    for name, value in values.items():
        setattr(module, name, value)
    return module


@pytest.mark.parametrize("twin, message", [
    (torch.nn.Embedding(4, 2, max_norm=1.0), r"\(Embedding\): Embedding: max_norm"),
    (torch.nn.Embedding(4, 2, sparse=True), r"\(Embedding\): Embedding: sparse=True"),
    (_changed(torch.nn.ZeroPad2d(1), value=2.0), r"\(ZeroPad2d\): value=2\.0 has no chainrule"),
    (_changed(torch.nn.ReLU6(), max_val=5.0), r"\(ReLU6\): max_val=5\.0 has no chainrule"),
    (torch.nn.CELU(0.0), r"\(CELU\): CELU: alpha must not be 0"),
    (torch.nn.BatchNorm3d(2, eps=0.0), r"\(BatchNorm3d\): BatchNorm3d: eps"),
])
def test_from_torch_refuses_settings_chainrule_lacks_naming_them(twin, message) -> None:
    with pytest.raises(ConversionError, match=r"from_torch: 1 " + message):
        from_torch(torch.nn.Sequential(torch.nn.Identity(), twin))
