"""nn.fuse and the fused layers: BatchNorm2d -> MaxPool2d (-> ReLU) and Linear -> ReLU as one
op, with the same numbers as the plain layers on the fast path and on each fallback; the fused
model shows what runs, keeps the plain model's state and names, and unfuses back."""

from __future__ import annotations

import numpy as np
import pytest
from tape import ops_on_tape

import chainrule as cr
from chainrule import nn


def block(relu: bool = True, channels: int = 3) -> nn.Sequential:
    cr.manual_seed(0)
    layers = [nn.Conv2d(2, channels, 3, padding=1, dtype="float64"),
              nn.BatchNorm2d(channels, dtype="float64"), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, *([nn.ReLU()] if relu else []))


def run(model: nn.Sequential, x: np.ndarray, apart: bool) -> tuple[cr.Tensor, list]:
    """Output and parameter gradients, the layers fused (nn.fuse) or as they are."""
    model.zero_grad()
    inputs = cr.tensor(x)
    out = model(inputs) if apart else nn.fuse(model)(inputs)
    weights = np.random.default_rng(1).standard_normal(out.shape)
    (out * cr.tensor(weights)).sum().backward()
    return out, [p.grad.copy() for p in model.parameters()]


def images(seed: int = 0, size: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((4, 2, size, size)) * 2 + 1


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("sign", [1.0, -1.0])  # a negative scale pools by the minimum of x
def test_the_fused_block_matches_the_layers_one_by_one(relu: bool, training: bool,
                                                        sign: float) -> None:
    model = block(relu)
    model[1].weight.data[:] = sign * np.array([0.5, 2.0, 1.5])
    model[1].running_var.data[:] = [0.5, 2.0, 1.0]
    model.train(training)
    x = images(size=7 if relu else 6)  # 7: the last row and column belong to no window
    stats_before = [model[1].running_mean.data.copy(), model[1].running_var.data.copy()]
    fused, fused_grads = run(model, x, apart=False)
    assert ops_on_tape(fused)[0] == "batch_norm_max_pool2d"
    stats_fused = [model[1].running_mean.data.copy(), model[1].running_var.data.copy()]
    model[1].running_mean.data[:], model[1].running_var.data[:] = stats_before
    model[1].num_batches_tracked.data[...] = 0
    apart, apart_grads = run(model, x, apart=True)
    assert ops_on_tape(apart)[:2] in (["relu", "max_pool2d"], ["max_pool2d", "batch_norm"])
    np.testing.assert_array_equal(fused.data, apart.data)
    for ours, theirs in zip(fused_grads, apart_grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(stats_fused[0], model[1].running_mean.data)
    np.testing.assert_array_equal(stats_fused[1], model[1].running_var.data)


@pytest.mark.parametrize("case", ["zero weight", "nan in eval", "pool padding", "empty batch"])
def test_where_the_shortcut_does_not_hold_the_op_composes_the_plain_ops(case: str) -> None:
    model = block()
    x = images()
    if case == "zero weight":  # every y of a channel ties: torch routes to the first
        model[1].weight.data[1] = 0.0
    elif case == "nan in eval":
        model.eval()
        x[0, 0, 2, 3] = np.nan
    elif case == "pool padding":
        model.layers[2] = nn.MaxPool2d(3, stride=2, padding=1)
    else:
        model.eval()
        x = x[:0]
    fused, fused_grads = run(model, x, apart=False)
    assert ops_on_tape(fused)[0] == "batch_norm_max_pool2d"
    apart, apart_grads = run(model, x, apart=True)
    np.testing.assert_array_equal(fused.data, apart.data)
    for ours, theirs in zip(fused_grads, apart_grads):
        np.testing.assert_array_equal(ours, theirs)


def test_hooks_and_subclasses_keep_the_layers_apart_and_nothing_fuses_unasked() -> None:
    model = block()
    x = cr.tensor(images())
    assert ops_on_tape(model(x))[:3] == ["relu", "max_pool2d", "batch_norm"]
    assert ops_on_tape(nn.fuse(model)(x))[0] == "batch_norm_max_pool2d"
    handle = model[2].register_forward_hook(lambda module, args, out: None)
    assert ops_on_tape(nn.fuse(model)(x))[:3] == ["relu", "max_pool2d", "batch_norm"]
    handle.remove()

    class MyPool(nn.MaxPool2d):
        pass

    model.layers[2] = MyPool(2)
    assert ops_on_tape(nn.fuse(model)(x))[:3] == ["relu", "max_pool2d", "batch_norm"]


@pytest.mark.parametrize("options", [{"ceil_mode": True}, {"dilation": 2},
                                     {"return_indices": True}])
def test_a_pool_with_options_the_fused_op_lacks_is_left_alone(options) -> None:
    model = nn.Sequential(nn.BatchNorm2d(2), nn.MaxPool2d(2, **options))
    fused = nn.fuse(model)
    assert [type(layer).__name__ for layer in fused] == ["BatchNorm2d", "MaxPool2d"]
    x = cr.tensor(np.random.default_rng(0).standard_normal((2, 2, 5, 5)), dtype=np.float32)
    ours, plain = fused(x), model(x)
    if options.get("return_indices"):
        ours, plain = ours[0], plain[0]
    np.testing.assert_array_equal(ours.numpy(), plain.numpy())


def test_batchnorm_then_pool_without_relu_fuses_two_layers() -> None:
    model = nn.fuse(nn.Sequential(*block(relu=False), nn.Tanh()))
    assert ops_on_tape(model(cr.tensor(images())))[:2] == ["tanh", "batch_norm_max_pool2d"]
    assert [type(layer).__name__ for layer in model] == [
        "Conv2d", "BatchNormMaxPool2d", "Fused", "Tanh"]


def test_the_fused_model_prints_what_runs_and_keeps_the_plain_models_state() -> None:
    plain = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), *block(), nn.Flatten(), nn.Linear(3, 2))
    fused = nn.fuse(plain)
    text = repr(fused)
    assert "(0): LinearReLU(in_features=4" in text and "(1): Fused(ReLU())" in text
    assert "(3): BatchNormMaxPool2d(3, " in text and "relu=True" in text
    assert "(4): Fused(MaxPool2d(" in text and "(5): Fused(ReLU())" in text
    assert list(fused.state_dict()) == list(plain.state_dict())
    assert [id(p) for p in fused.parameters()] == [id(p) for p in plain.parameters()]
    assert [id(b) for b in fused.buffers()] == [id(b) for b in plain.buffers()]
    back = nn.unfuse(fused)
    assert repr(back) == repr(plain)
    assert [id(p) for p in back.parameters()] == [id(p) for p in plain.parameters()]


def test_fuse_reaches_nested_sequentials_and_carries_the_mode() -> None:
    inner = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    model = nn.Sequential(inner, nn.Linear(3, 1)).eval()
    fused = nn.fuse(model)
    assert isinstance(fused[0][0], nn.LinearReLU) and not fused.training
    assert nn.fuse(nn.Linear(3, 2)).__class__ is nn.Linear  # nothing to fuse: as it is
    assert isinstance(model[0][0], nn.Linear) and type(model[0][0]) is nn.Linear  # unchanged


def test_an_optimizer_made_on_the_plain_model_trains_the_fused_one() -> None:
    cr.manual_seed(0)
    plain = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    fused = nn.fuse(plain)
    opt = cr.optim.SGD(plain.parameters(), lr=0.1)
    before = plain.state_dict()
    fused(cr.randn(5, 4)).sum().backward()
    opt.step()
    assert not np.array_equal(plain[0].weight.data, before["0.weight"])
    plain.load_state_dict(before)  # and a checkpoint of either loads into the other
    np.testing.assert_array_equal(fused[0].weight.data, before["0.weight"])


def test_a_batch_the_pooling_refuses_leaves_the_running_statistics_alone() -> None:
    for apart in (False, True):
        cr.manual_seed(0)
        model = nn.Sequential(nn.BatchNorm2d(2, momentum=None), nn.MaxPool2d(3))
        x = cr.tensor(np.random.default_rng(0).standard_normal((4, 2, 2, 2)),  # 2x2 < 3x3
                      dtype="float32")
        with pytest.raises(ValueError, match="max_pool2d"):
            model(x) if apart else nn.fuse(model)(x)
        if apart:  # the layers one by one: batch norm ran and counted before pooling refused
            assert int(model[0].num_batches_tracked.data) == 1
        else:  # fused: refused before anything moved
            assert int(model[0].num_batches_tracked.data) == 0
            np.testing.assert_array_equal(model[0].running_mean.data, 0.0)
            np.testing.assert_array_equal(model[0].running_var.data, 1.0)


class Doubled(nn.Sequential):
    """A Sequential subclass with a forward of its own."""

    def forward(self, x):
        return super().forward(x) * 2


class Holder(nn.Module):
    """Not a Sequential, with Sequentials inside: an attribute, a list, a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        self.heads = [nn.Sequential(nn.Linear(4, 3), nn.ReLU())]
        self.extra = {"tail": nn.Linear(3, 2)}

    def forward(self, x):
        return self.extra["tail"](self.heads[0](self.body(x)))


def test_fuse_walks_any_module_and_keeps_types_hooks_and_attributes() -> None:
    cr.manual_seed(0)
    x = cr.randn(5, 4)
    holder = Holder()
    fused = nn.fuse(holder)
    assert type(fused) is Holder and ops_on_tape(fused(x))[1] == "linear_relu"
    assert isinstance(fused.body[0], nn.LinearReLU) and isinstance(fused.heads[0][0], nn.LinearReLU)
    np.testing.assert_array_equal(fused(x).data, holder(x).data)
    assert list(fused.state_dict()) == list(holder.state_dict())

    doubled = Doubled(nn.Linear(4, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 3), nn.ReLU()))
    seen = []
    doubled.register_forward_hook(lambda module, args, out: seen.append(type(module)))
    doubled[0].note = "mine"
    fused = nn.fuse(doubled)
    assert type(fused) is Doubled and type(fused[0]) is nn.Linear  # its own layers stay
    assert isinstance(fused[2][0], nn.LinearReLU)  # a plain Sequential inside it fuses
    np.testing.assert_array_equal(fused(x).data, doubled(x).data)
    assert seen == [Doubled, Doubled] and fused[0].note == "mine"


def test_the_two_models_have_their_own_modules_and_modes() -> None:
    shared = nn.Linear(4, 4)
    plain = nn.Sequential(shared, nn.ReLU(), nn.Dropout(0.5), shared)
    fused = nn.fuse(plain)
    assert type(fused[3]) is nn.Linear and fused[3] is not shared
    assert fused[0].weight is fused[3].weight is shared.weight  # still one set of weights
    assert list(fused.state_dict()) == list(plain.state_dict()) == ["0.weight", "0.bias"]
    fused.eval()
    assert plain.training and plain[2].training and not fused[2].training
    handle = fused[2].register_forward_hook(lambda *args: None)
    assert not plain[2].__dict__.get("_forward_hooks")
    handle.remove()


def test_unfuse_gives_back_the_plain_layers_with_their_attributes() -> None:
    plain = nn.Sequential(*block(), nn.Flatten(), nn.Linear(3, 2), nn.ReLU())
    plain[1].note, plain[5].note = "norm", "linear"
    fused = nn.fuse(plain)
    assert fused[1].note == "norm" and fused[5].note == "linear"
    back = nn.unfuse(fused)
    assert repr(back) == repr(plain) and back[1].note == "norm" and back[5].note == "linear"
    assert [type(m) for m in back.modules()] == [type(m) for m in plain.modules()]
    assert not hasattr(back[1], "kernel_size") and back[1].running_mean is plain[1].running_mean
    assert repr(nn.fuse(fused)) == repr(fused)  # fusing a fused model changes nothing
