"""Modules and layers, each checked against its torch.nn twin and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from layer_twins import (
    F64,
    check_finite_differences,
    check_torch_twin,
    randomised,
    to_torch_state,
)
from tape import ops_on_tape

import chainrule as cr
from chainrule import nn
from chainrule.check import gradcheck


def mlp(dtype: str = "float64") -> nn.Sequential:
    return nn.Sequential(nn.Linear(5, 4, dtype=dtype), nn.ReLU(), nn.Linear(4, 3, dtype=dtype))


def torch_mlp() -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(),
                               torch.nn.Linear(4, 3)).double()



# ----------------------------------------------------------------------------- layer twins
def torch_block(in_channels: int, out_channels: int, stride: int) -> torch.nn.Module:
    """The torch twin of nn.ResidualBlock (chainrule.check.torch_twins), in float64."""
    from chainrule.check import torch_twins

    shortcut = None
    if stride != 1 or in_channels != out_channels:
        shortcut = torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            torch.nn.BatchNorm2d(out_channels))
    return torch_twins.ResidualBlock(
        torch.nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        torch.nn.BatchNorm2d(out_channels),
        torch.nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        torch.nn.BatchNorm2d(out_channels), shortcut).double()


def global_pool_twin() -> torch.nn.Module:
    from chainrule.check import torch_twins

    return torch_twins.GlobalAvgPool2d()


RESIDUAL_TWINS = [
    ("ResidualBlock, identity shortcut, training",
     lambda: randomised(nn.ResidualBlock(3, 3, **F64)), lambda: torch_block(3, 3, 1),
     (2, 3, 5, 5)),
    ("ResidualBlock, strided 1x1 shortcut, eval",
     lambda: randomised(nn.ResidualBlock(2, 4, stride=2, **F64)).eval(),
     lambda: torch_block(2, 4, 2).eval(), (2, 2, 6, 5)),
    ("GlobalAvgPool2d", nn.GlobalAvgPool2d, global_pool_twin, (2, 3, 4, 5)),
]


LAYER_TWINS = [
    ("Linear", lambda: nn.Linear(5, 3, dtype="float64"),
     lambda: torch.nn.Linear(5, 3).double(), (4, 5)),
    ("Linear without bias, 3-D input", lambda: nn.Linear(5, 2, bias=False, dtype="float64"),
     lambda: torch.nn.Linear(5, 2, bias=False).double(), (2, 3, 5)),
    ("ReLU", nn.ReLU, torch.nn.ReLU, (3, 4)),
    ("Sequential MLP", mlp, torch_mlp, (6, 5)),
    ("Conv2d padded, grouped", lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2, dtype="float64"),
     lambda: torch.nn.Conv2d(4, 6, 3, padding=1, groups=2).double(), (2, 4, 6, 5)),
    ("Conv2d strided, dilated, no bias",
     lambda: nn.Conv2d(2, 3, 2, stride=2, dilation=2, bias=False, dtype="float64"),
     lambda: torch.nn.Conv2d(2, 3, 2, stride=2, dilation=2, bias=False).double(), (1, 2, 7, 7)),
    ("small CNN",
     lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, dtype="float64"), nn.ReLU(),
                           nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, dtype="float64"),
                           nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4, 3, dtype="float64")),
     lambda: torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                                 torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 4, 3),
                                 torch.nn.AvgPool2d(2), torch.nn.Flatten(),
                                 torch.nn.Linear(4, 3)).double(), (2, 1, 8, 8)),
    ("BatchNorm1d (N, C), training", lambda: randomised(nn.BatchNorm1d(4, **F64)),
     lambda: torch.nn.BatchNorm1d(4).double(), (6, 4)),
    ("BatchNorm1d (N, C, L), momentum None, no affine",
     lambda: nn.BatchNorm1d(3, momentum=None, affine=False, **F64),
     lambda: torch.nn.BatchNorm1d(3, momentum=None, affine=False).double(), (4, 3, 5)),
    ("BatchNorm2d, training", lambda: randomised(nn.BatchNorm2d(3, eps=1e-3, **F64)),
     lambda: torch.nn.BatchNorm2d(3, eps=1e-3).double(), (2, 3, 4, 5)),
    ("BatchNorm2d, eval", lambda: randomised(nn.BatchNorm2d(3, **F64)).eval(),
     lambda: torch.nn.BatchNorm2d(3).double().eval(), (2, 3, 4, 5)),
    ("BatchNorm2d without running statistics, eval",
     lambda: randomised(nn.BatchNorm2d(2, track_running_stats=False, **F64)).eval(),
     lambda: torch.nn.BatchNorm2d(2, track_running_stats=False).double().eval(), (3, 2, 2, 2)),
    ("LayerNorm over two axes", lambda: randomised(nn.LayerNorm((3, 4), **F64)),
     lambda: torch.nn.LayerNorm((3, 4)).double(), (2, 3, 4)),
    ("LayerNorm without bias", lambda: randomised(nn.LayerNorm(5, bias=False, **F64)),
     lambda: torch.nn.LayerNorm(5, bias=False).double(), (2, 3, 5)),
    ("LayerNorm without affine", lambda: nn.LayerNorm(5, elementwise_affine=False),
     lambda: torch.nn.LayerNorm(5, elementwise_affine=False), (4, 5)),
    ("Tanh", nn.Tanh, torch.nn.Tanh, (3, 4)),
    ("Sigmoid", nn.Sigmoid, torch.nn.Sigmoid, (3, 4)),
    ("LeakyReLU", lambda: nn.LeakyReLU(0.2), lambda: torch.nn.LeakyReLU(0.2), (3, 4)),
    ("SiLU", nn.SiLU, torch.nn.SiLU, (3, 4)),
    ("GELU", nn.GELU, torch.nn.GELU, (3, 4)),
    ("GELU tanh", lambda: nn.GELU("tanh"), lambda: torch.nn.GELU("tanh"), (3, 4)),
    ("Dropout, eval", lambda: nn.Dropout(0.5).eval(), lambda: torch.nn.Dropout(0.5).eval(),
     (3, 4)),
    ("Dropout p=0, training", lambda: nn.Dropout(0.0), lambda: torch.nn.Dropout(0.0), (3, 4)),
    ("CNN with BatchNorm2d and GELU",
     # No conv bias: BatchNorm removes it, so its gradient is 0 up to rounding.
     lambda: nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, bias=False, **F64), randomised(
         nn.BatchNorm2d(3, **F64)), nn.GELU(), nn.MaxPool2d(2), nn.Flatten(),
         nn.Linear(12, 2, **F64)),
     lambda: torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1, bias=False),
                                 torch.nn.BatchNorm2d(3),
                                 torch.nn.GELU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                 torch.nn.Linear(12, 2)).double(), (2, 1, 4, 4)),
]


LAYER_TWINS += RESIDUAL_TWINS


@pytest.mark.parametrize("name, make, make_torch, shape", LAYER_TWINS, ids=[t[0] for t in
                                                                           LAYER_TWINS])
def test_layer_matches_its_torch_twin(name, make, make_torch, shape) -> None:
    check_torch_twin(name, make, make_torch, shape)


@pytest.mark.parametrize("name, make, make_torch, shape", LAYER_TWINS, ids=[t[0] for t in
                                                                           LAYER_TWINS])
def test_layer_matches_finite_differences(name, make, make_torch, shape) -> None:
    check_finite_differences(make, shape)


def test_mse_loss_matches_torch_and_drops_only_a_trailing_one() -> None:
    rng = np.random.default_rng(3)
    out, target = rng.standard_normal((6, 1)), rng.standard_normal(6)
    ours = cr.tensor(out, requires_grad=True)
    loss = nn.MSELoss()(ours, target)
    theirs = torch.tensor(out, requires_grad=True)
    expected = torch.nn.MSELoss()(theirs.squeeze(-1), torch.tensor(target))
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)
    loss.backward()
    expected.backward()
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-12)
    assert ours.grad.shape == (6, 1)
    # The seed's own hand-derived gradient: 2 (output - target) / N, with the trailing 1 kept.
    np.testing.assert_allclose(ours.grad, 2 * (out[:, 0] - target)[:, None] / 6)
    with pytest.raises(ValueError, match=r"output shape \(6, 6\) and target shape \(6,\)"):
        cr.mse(cr.tensor(rng.standard_normal((6, 6))), target)
    assert nn.MSELoss(reduction="sum")(cr.tensor([1.0, 2.0]), [0.0, 0.0]).item() == 5.0


def test_mse_accepts_integer_targets() -> None:
    loss = cr.mse(cr.tensor([[1.0], [2.0]]), np.array([1, 1]))
    assert loss.dtype == np.float32 and loss.item() == pytest.approx(0.5)


# ----------------------------------------------------------------------------- Module
def test_parameters_are_found_in_order_with_torch_names() -> None:
    model = mlp()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert names == list(dict(torch_mlp().named_parameters()))
    assert len(model.parameters()) == 4 and len(list(model.children())) == 3


def test_lists_of_modules_and_plain_trainable_tensors_count() -> None:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = [nn.Linear(2, 3), nn.ReLU()]
            self.scale = cr.ones(1, requires_grad=True)  # not a Parameter, still trained
            self.constant = cr.ones(1)

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x * self.scale

    names = [name for name, _ in Model().named_parameters()]
    assert names == ["scale", "layers.0.weight", "layers.0.bias"]


def test_shared_parameters_are_listed_once() -> None:
    layer = nn.Linear(3, 3)
    assert len(nn.Sequential(layer, layer).parameters()) == 2


def test_zero_grad_train_eval() -> None:
    model = mlp()
    model(cr.randn(2, 5, dtype="float64")).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert model.eval() is model and not any(m.training for m in model.modules())
    assert all(m.training for m in model.train().modules())


def test_state_dict_round_trips_with_torch_without_transposing() -> None:
    ours, theirs = mlp(), torch_mlp()
    ours.load_state_dict(theirs.state_dict())  # torch tensors go straight in
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[key], value.numpy())
    assert ours[0].weight.shape == (4, 5)  # (out_features, in_features), as in torch
    again = torch_mlp()
    again.load_state_dict(to_torch_state(ours))
    x = torch.randn(3, 5, dtype=torch.float64)
    np.testing.assert_allclose(again(x).detach().numpy(), ours(cr.tensor(x.numpy())).data)


def test_state_dict_is_a_copy() -> None:
    layer = nn.Linear(2, 2)
    state = layer.state_dict()
    state["weight"][...] = 0
    assert np.any(layer.weight.data != 0)


def test_load_state_dict_names_missing_unexpected_and_mismatched_keys() -> None:
    model = mlp()
    state = model.state_dict()
    state["0.weight"] = np.zeros((7, 5))
    del state["2.bias"]
    state["extra"] = np.zeros(1)
    before = model[0].weight.data.copy()
    with pytest.raises(ValueError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "missing keys: 2.bias" in message and "unexpected keys: extra" in message
    assert "0.weight: checkpoint has shape (7, 5), model has (4, 5)" in message
    np.testing.assert_array_equal(model[0].weight.data, before)  # nothing half-loaded
    del state["extra"]
    state["0.weight"] = np.ones((4, 5))
    model.load_state_dict(state, strict=False)
    assert np.all(model[0].weight.data == 1)


def test_repr_reads_like_torch() -> None:
    assert repr(mlp()) == (
        "Sequential(\n"
        "  (0): Linear(in_features=5, out_features=4, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Linear(in_features=4, out_features=3, bias=True)\n"
        ")"
    )
    assert repr(nn.Parameter(np.zeros(2, np.float32))).startswith("Parameter([0., 0.]")


def test_bad_layer_arguments_are_explained() -> None:
    with pytest.raises(ValueError, match="Linear: in_features must be >= 1, got 0"):
        nn.Linear(0, 3)
    with pytest.raises(TypeError, match="item 1 is an int, not a Module"):
        nn.Sequential(nn.ReLU(), 3)
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 4\).*\(3, 5\)"):
        nn.Linear(5, 3)(cr.ones(2, 4))


# ----------------------------------------------------------------------------- init
@pytest.mark.parametrize("fill, std", [
    (nn.init.kaiming_normal_, math.sqrt(2 / 400)),
    (nn.init.kaiming_uniform_, math.sqrt(2 / 400)),
    (nn.init.xavier_normal_, math.sqrt(2 / 700)),
    (nn.init.xavier_uniform_, math.sqrt(2 / 700)),
])
def test_init_functions_have_the_published_std(fill, std) -> None:
    weight = nn.Parameter(np.empty((300, 400), np.float32))
    fill(weight, generator=np.random.default_rng(0))
    assert weight.data.std() == pytest.approx(std, rel=0.02)
    assert abs(weight.data.mean()) < std / 20


def test_kaiming_keeps_activations_from_exploding_or_vanishing() -> None:
    # The seed's lesson: 50 layers of randn weights blow up; Kaiming keeps the scale.
    rng = np.random.default_rng(0)
    x = cr.tensor(rng.standard_normal((200, 100), np.float32))
    with np.errstate(over="ignore", invalid="ignore"):
        raw = x
        for _ in range(50):
            raw = raw @ cr.tensor(rng.standard_normal((100, 100), np.float32))
    assert not np.all(np.isfinite(raw.data))
    scaled = x
    for _ in range(50):
        weight = nn.Parameter(np.empty((100, 100), np.float32))
        nn.init.kaiming_normal_(weight, generator=rng)
        scaled = (scaled @ weight.T).relu()
    assert 0.2 < np.sqrt(np.mean(scaled.data ** 2)) < 5


def test_init_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="at least 2 dims"):
        nn.init.kaiming_normal_(nn.Parameter(np.zeros(3)))
    with pytest.raises(ValueError, match="unknown nonlinearity 'swish'"):
        nn.init.kaiming_normal_(nn.Parameter(np.zeros((2, 2))), nonlinearity="swish")


def test_linear_default_init_matches_torch_bounds() -> None:
    layer = nn.Linear(100, 50, generator=np.random.default_rng(0))
    assert np.abs(layer.weight.data).max() <= 0.1 and np.abs(layer.bias.data).max() <= 0.1
    assert layer.weight.data.std() == pytest.approx(0.1 / math.sqrt(3), rel=0.05)


# ----------------------------------------------------------------------------- seed style
class SeedRelu(nn.Module):
    def forward(self, inp):
        return inp.clamp_min(0.0)

    def bwd(self, out, inp):
        inp.g = (inp > 0).float() * out.g


class SeedLin(nn.Module):
    def __init__(self, w, b):
        self.w, self.b = w, b

    def forward(self, inp):
        return inp @ self.w + self.b

    def bwd(self, out, inp):
        inp.g = self.out.g @ self.w.t()
        self.w.g = inp.t() @ self.out.g
        self.b.g = self.out.g.sum(0)


def test_seed_style_modules_are_nodes_on_the_tape() -> None:
    rng = np.random.default_rng(4)
    x, target = rng.standard_normal((8, 5)), rng.standard_normal(8)
    w1, b1 = rng.standard_normal((5, 4)), np.zeros(4)
    w2, b2 = rng.standard_normal((4, 1)), np.zeros(1)
    params = [cr.tensor(a, requires_grad=True) for a in (w1, b1, w2, b2)]
    lin1, lin2 = SeedLin(params[0], params[1]), SeedLin(params[2], params[3])
    inp = cr.tensor(x, requires_grad=True)
    # Hand-written layers mixed with a built-in op (tanh) and the built-in mse.
    loss = cr.mse(lin2(SeedRelu()(lin1(inp)).tanh()), target)
    loss.backward()

    tensors = [torch.tensor(a, requires_grad=True) for a in (x, w1, b1, w2, b2)]
    tx, tw1, tb1, tw2, tb2 = tensors
    tout = (torch.relu(tx @ tw1 + tb1).tanh() @ tw2 + tb2).squeeze(-1)
    expected = torch.nn.functional.mse_loss(tout, torch.tensor(target))
    expected.backward()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)
    for mine, theirs in zip([inp, *params], tensors):
        np.testing.assert_allclose(mine.grad, theirs.grad.numpy(), rtol=1e-10)


def test_seed_style_module_passes_finite_differences() -> None:
    rng = np.random.default_rng(5)
    w = cr.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    b = cr.tensor(rng.standard_normal(2), requires_grad=True)
    gradcheck(SeedLin(w, b), [rng.standard_normal((4, 3))])


def test_a_seed_style_bwd_with_a_wrong_gradient_is_caught() -> None:
    class WrongLin(SeedLin):
        def bwd(self, out, inp):
            super().bwd(out, inp)
            inp.g = inp.g * 2  # off by a factor of two

    rng = np.random.default_rng(6)
    layer = WrongLin(cr.tensor(rng.standard_normal((3, 2))), cr.tensor(np.zeros(2)))
    with pytest.raises(cr.check.GradcheckError, match="input 0"):
        gradcheck(layer, [rng.standard_normal((4, 3))])


def test_a_seed_style_bwd_that_forgets_the_batch_sum_is_told() -> None:
    class NoSum(SeedLin):
        def bwd(self, out, inp):
            super().bwd(out, inp)
            self.b.g = out.g  # should be out.g.sum(0)

    layer = NoSum(cr.randn(3, 2, requires_grad=True), cr.zeros(2, requires_grad=True))
    with pytest.raises(RuntimeError, match=r"NoSum.bwd set b.g with shape \(4, 2\), but b has "
                                           r"shape \(2,\) \(a missing sum over the batch axis"):
        layer(cr.randn(4, 3)).sum().backward()


def test_a_seed_style_bwd_that_forgets_an_input_gradient_is_told() -> None:
    class NoInputGrad(SeedLin):
        def bwd(self, out, inp):
            super().bwd(out, inp)
            inp.g = None

    layer = NoInputGrad(cr.randn(3, 2), cr.zeros(2))
    x = cr.randn(4, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="NoInputGrad.bwd did not set argument 0.g"):
        layer(x).sum().backward()
    # An input that needs no gradient may be left without one.
    weight = cr.randn(3, 2, requires_grad=True)
    NoInputGrad(weight, cr.zeros(2))(cr.randn(4, 3)).sum().backward()
    assert weight.grad is not None


def test_conv_layers_explain_bad_input() -> None:
    layer = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8\): expected input \(N, 3, H, W\), "
                                         r"got shape \(2, 4, 5, 5\)"):
        layer(cr.zeros(2, 4, 5, 5))
    assert layer(cr.zeros(3, 5, 5)).shape == (8, 3, 3)  # unbatched, as torch takes it
    with pytest.raises(ValueError, match="kernel spans 3 pixels in height but the padded "
                                         "input has only 2"):
        layer(cr.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="Conv2d: stride must be >= 1, got 0"):
        nn.Conv2d(3, 8, 3, stride=0)
    with pytest.raises(ValueError, match="groups=2 must divide in_channels=3"):
        nn.Conv2d(3, 8, 3, groups=2)
    with pytest.raises(ValueError, match="max_pool2d: expects images"):
        nn.MaxPool2d(2)(cr.zeros(4, 4))
    with pytest.raises(ValueError, match="padding .* must be at most half the kernel"):
        nn.MaxPool2d(2, padding=2)(cr.zeros(1, 1, 4, 4))


def test_gradcheck_runs_a_float32_module_at_float64_and_leaves_it_untouched() -> None:
    layer = nn.Linear(3, 2)  # float32 parameters
    before = {k: v.copy() for k, v in layer.state_dict().items()}
    x32 = np.random.default_rng(7).standard_normal((4, 3)).astype(np.float32)
    gradcheck(layer, [x32])  # would fail its float64 tolerances if run at float32
    for name, param in layer.named_parameters():
        assert param.grad is None and param.dtype == np.float32, name
        np.testing.assert_array_equal(param.data, before[name])


class ScaledLin(SeedLin):
    """A seed-style layer with a keyword argument that its bwd needs as well."""

    cross_check = True

    def forward(self, inp, scale=1.0):
        return (inp @ self.w + self.b) * scale

    def bwd(self, out, inp, scale=1.0):
        inp.g = (out.g * scale) @ self.w.t()
        self.w.g = inp.t() @ (out.g * scale)
        self.b.g = (out.g * scale).sum(0)


def test_keyword_arguments_reach_bwd_and_the_cross_check() -> None:
    rng = np.random.default_rng(8)
    w = cr.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    b = cr.tensor(rng.standard_normal(2), requires_grad=True)
    x = cr.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    ScaledLin(w, b)(x, scale=3.0).sum().backward()  # the cross-check would raise if it differed
    np.testing.assert_allclose(b.grad, np.full(2, 12.0))
    np.testing.assert_allclose(x.grad, np.tile(3.0 * w.data.sum(1), (4, 1)))


def test_nested_g_write_watches_restore_the_outer_one() -> None:
    from chainrule.check.handwritten import watch_g_writes

    rng = np.random.default_rng(9)
    layer = SeedLin(cr.tensor(rng.standard_normal((3, 2)), requires_grad=True),
                    cr.tensor(np.zeros(2), requires_grad=True))
    with watch_g_writes(layer) as outer:
        with watch_g_writes(layer):
            pass
        layer(cr.tensor(rng.standard_normal((4, 3)))).sum().backward()
    assert id(layer.w) in outer and id(layer.b) in outer


# ----------------------------------------------------------------------------- Linear+ReLU fusion
def test_fuse_makes_linear_relu_one_op_with_the_same_numbers() -> None:
    cr.manual_seed(0)
    model = mlp()
    x = np.random.default_rng(0).standard_normal((6, 5))
    plain_out = model(cr.tensor(x))
    assert ops_on_tape(plain_out) == ["linear", "relu", "linear"]  # Sequential fuses nothing
    plain_out.sum().backward()
    plain_grads = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    fused = nn.fuse(model)
    fused_out = fused(cr.tensor(x))
    assert ops_on_tape(fused_out) == ["linear", "linear_relu"]
    fused_out.sum().backward()
    np.testing.assert_array_equal(fused_out.data, plain_out.data)
    for mine, theirs in zip(plain_grads, (p.grad for p in model.parameters())):
        np.testing.assert_array_equal(mine, theirs)  # the same parameter objects got them


def test_fuse_leaves_hooked_layers_and_subclasses_apart() -> None:
    cr.manual_seed(0)
    model = mlp()
    x = cr.tensor(np.ones((2, 5)))
    seen = []
    handle = model[1].register_forward_hook(lambda module, args, out: seen.append(out.shape))
    assert ops_on_tape(nn.fuse(model)(x)) == ["linear", "relu", "linear"] and seen == [(2, 4)]
    handle.remove()
    assert ops_on_tape(nn.fuse(model)(x)) == ["linear", "linear_relu"]

    class MyReLU(nn.ReLU):
        pass

    model.layers[1] = MyReLU()
    assert ops_on_tape(nn.fuse(model)(x)) == ["linear", "relu", "linear"]


def test_the_sentinel_sees_a_linear_before_a_relu_as_itself() -> None:
    from chainrule.check import NonFiniteError, sentinel

    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    model[0].weight.data[...] = np.inf
    with sentinel(model), pytest.raises(NonFiniteError, match="^linear produced.*in layer 0 "):
        model(cr.tensor([[1.0, 2.0]]))
