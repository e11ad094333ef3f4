"""BatchNorm, LayerNorm, Dropout and the activation layers: behaviour against PyTorch, errors,
check(), LayerStats and checkpoints. (Outputs and gradients of every layer are compared with
their torch.nn twins in test_nn.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule import nn, optim
from chainrule.check import check
from chainrule.data import ArrayDataset, DataLoader
from chainrule.ops.elementwise import DropoutOp
from chainrule.train import CheckpointCallback, LayerStats, Learner

RNG = np.random.default_rng(0)


def torch_state(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in module.state_dict().items()}


# ----------------------------------------------------------------------------- BatchNorm
@pytest.mark.parametrize("make, make_torch, shape", [
    (lambda: nn.BatchNorm1d(4), lambda: torch.nn.BatchNorm1d(4), (8, 4)),
    (lambda: nn.BatchNorm1d(4, momentum=None), lambda: torch.nn.BatchNorm1d(4, momentum=None),
     (5, 4, 3)),
    (lambda: nn.BatchNorm2d(3, momentum=0.3), lambda: torch.nn.BatchNorm2d(3, momentum=0.3),
     (2, 3, 4, 4)),
])
def test_running_statistics_follow_torch_step_by_step(make, make_torch, shape) -> None:
    ours, theirs = make(), make_torch()
    for step in range(4):
        x = (RNG.standard_normal(shape) * (step + 1) + step).astype(np.float32)
        np.testing.assert_allclose(ours(cr.tensor(x)).data, theirs(torch.from_numpy(x))
                                   .detach().numpy(), rtol=1e-4, atol=1e-5)
        state, expected = ours.state_dict(), torch_state(theirs)
        assert list(state) == list(expected)
        for key in expected:
            np.testing.assert_allclose(state[key], expected[key], rtol=1e-5, err_msg=key)
    assert int(ours.num_batches_tracked.data) == 4
    ours.eval(), theirs.eval()
    x = RNG.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(ours(cr.tensor(x)).data, theirs(torch.from_numpy(x))
                               .detach().numpy(), rtol=1e-4, atol=1e-5)
    assert ours.state_dict()["num_batches_tracked"] == 4  # eval changes nothing


@pytest.mark.parametrize("layer, twin, shape", [
    (nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3), (1, 3)),
    (nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3), (1, 3, 1)),
    (nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3), (1, 3, 1, 1)),
])
def test_one_value_per_channel_in_training_raises_as_in_torch(layer, twin, shape) -> None:
    x = np.ones(shape, np.float32)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when "
                                         "training, got input size"):
        twin(torch.from_numpy(x))
    size = str(shape).replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ValueError, match="batch_norm: Expected more than 1 value per channel "
                                         f"when training, got input size {size}"):
        layer(cr.tensor(x))
    assert int(layer.num_batches_tracked.data) == 0  # a refused batch is not counted
    # One sample with several positions is enough, and eval mode takes a single value.
    if len(shape) == 3:
        longer = np.arange(6, dtype=np.float32).reshape(1, 3, 2)
        np.testing.assert_allclose(layer(cr.tensor(longer)).data,
                                   twin(torch.from_numpy(longer)).detach().numpy(), atol=1e-5)
    layer.eval(), twin.eval()
    np.testing.assert_allclose(layer(cr.tensor(x)).data,
                               twin(torch.from_numpy(x)).detach().numpy(), atol=1e-6)


def test_norm_layers_explain_bad_input() -> None:
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): expected input \(N, C\) or "
                                         r"\(N, C, L\) with C = num_features, got shape "
                                         r"\(2, 4\)"):
        nn.BatchNorm1d(3)(cr.zeros(2, 4))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): .* got shape \(2, 3, 4, 4\)"):
        nn.BatchNorm1d(3)(cr.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): expected input \(N, C, H, W\) "
                                         r"with C = num_features, got shape \(2, 3, 4\)"):
        nn.BatchNorm2d(3)(cr.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"LayerNorm\(\(3, 4\)\): expected input \(\.\.\., 3, "
                                         r"4\), got shape \(2, 4, 3\)"):
        nn.LayerNorm((3, 4))(cr.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="BatchNorm2d: num_features must be >= 1, got 0"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\] or None, got 1\.5"):
        nn.BatchNorm2d(2, momentum=1.5)
    with pytest.raises(ValueError, match="batch_norm: weight must have shape"):
        cr.batch_norm(cr.zeros(2, 3), weight=cr.ones(4), training=True)
    with pytest.raises(ValueError, match="layer_norm: input shape .* does not end with"):
        cr.layer_norm(cr.zeros(2, 3), (2,))


def test_batch_norm_state_dict_exchanges_with_torch() -> None:
    ours = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    theirs(torch.randn(8, 4))  # moves torch's running statistics and counter
    ours.load_state_dict(theirs.state_dict())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[key], value.numpy())
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert len(ours.parameters()) == len(list(theirs.parameters())) == 4
    back = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    back.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    assert int(back[1].num_batches_tracked) == 1


def test_batch_norm_without_running_statistics_has_no_buffers() -> None:
    layer = nn.BatchNorm2d(2, track_running_stats=False, affine=False)
    assert layer.state_dict() == {} and layer.buffers() == []
    assert list(torch.nn.BatchNorm2d(2, track_running_stats=False, affine=False).state_dict()
                ) == []


# ----------------------------------------------------------------------------- Dropout
def test_dropout_with_torchs_own_mask_matches_torch() -> None:
    x = RNG.uniform(0.5, 2.0, (6, 7))  # nonzero, so torch's output shows its mask
    for p in (0.2, 0.5):
        theirs = torch.tensor(x, requires_grad=True)
        torch.manual_seed(0)
        expected = torch.nn.functional.dropout(theirs, p)
        mask = expected.detach().numpy() != 0
        ours = cr.tensor(x, requires_grad=True)
        out = DropoutOp.apply(ours, mask, scale=1 / (1 - p))
        np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-15)
        upstream = RNG.standard_normal(x.shape)
        out.backward(upstream)
        expected.backward(torch.from_numpy(upstream))
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-15)


def test_dropout_layer_drops_scales_and_is_repeatable() -> None:
    layer = nn.Dropout(0.3)
    x = cr.ones(200, 500, requires_grad=True)
    cr.manual_seed(5)
    out = layer(x)
    kept = out.data != 0
    assert abs(1 - kept.mean() - 0.3) < 0.01
    np.testing.assert_allclose(out.data[kept], 1 / 0.7, rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(x.grad, kept / 0.7, rtol=1e-6)
    cr.manual_seed(5)
    np.testing.assert_array_equal(layer(x).data, out.data)
    seeded = nn.Dropout(0.3, generator=np.random.default_rng(1))
    again = nn.Dropout(0.3, generator=np.random.default_rng(1))
    np.testing.assert_array_equal(seeded(x).data, again(x).data)
    assert layer.eval()(x) is x  # eval: the identity, as in torch
    assert repr(layer) == "Dropout(p=0.3)"


def test_dropout_probability_is_checked_and_one_gives_zeros() -> None:
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="probability has to be between 0 and 1, but got"):
            torch.nn.Dropout(p)
        with pytest.raises(ValueError, match=rf"Dropout: p must be in \[0, 1\], got {p}"):
            nn.Dropout(p)
        with pytest.raises(ValueError, match="dropout: probability has to be between 0 and 1"):
            cr.dropout(cr.ones(2), p)
    x = cr.ones(3, 4, requires_grad=True)
    out = nn.Dropout(1.0)(x)
    assert not np.any(out.data) and not torch.nn.Dropout(1.0)(torch.ones(3, 4)).any()
    out.sum().backward()
    assert not np.any(x.grad)
    with pytest.raises(ValueError, match="dropout: mask must be a boolean array"):
        DropoutOp.apply(cr.ones(2), np.ones(2), scale=1.0)


# ----------------------------------------------------------------------------- activations
def test_activation_layers_repr_and_options() -> None:
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got 'fast'"):
        nn.GELU("fast")
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh'"):
        cr.gelu(cr.ones(2), approximate="fast")
    x = cr.tensor([-1.0, 2.0])
    np.testing.assert_allclose(x.leaky_relu(0.1).data, [-0.1, 2.0])
    np.testing.assert_allclose(x.silu().data, torch.nn.functional.silu(torch.tensor(
        [-1.0, 2.0])).numpy(), rtol=1e-6)
    np.testing.assert_allclose(x.gelu().data, torch.nn.functional.gelu(torch.tensor(
        [-1.0, 2.0])).numpy(), rtol=1e-6)


def test_leaky_relu_slope_at_zero_is_torchs() -> None:
    ours = cr.tensor(np.zeros(3), requires_grad=True)
    theirs = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    nn.LeakyReLU(0.3)(ours).sum().backward()
    torch.nn.LeakyReLU(0.3)(theirs).sum().backward()
    np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())


def test_float32_activations_and_norms_stay_float32() -> None:
    x = cr.randn(4, 3, 5)
    for layer in (nn.GELU(), nn.GELU("tanh"), nn.SiLU(), nn.LeakyReLU(), nn.BatchNorm1d(3),
                  nn.LayerNorm(5), nn.Dropout(0.5)):
        assert layer(x).dtype == np.float32, repr(layer)
    assert nn.BatchNorm1d(3).eval()(x).dtype == np.float32


# ----------------------------------------------------------------------------- check()
NEW_LAYERS = [
    ("BatchNorm1d training", lambda: nn.BatchNorm1d(3), (5, 3)),
    ("BatchNorm1d (N, C, L) training", lambda: nn.BatchNorm1d(2, affine=False), (3, 2, 4)),
    ("BatchNorm2d training", lambda: nn.BatchNorm2d(2), (2, 2, 3, 3)),
    ("BatchNorm2d eval", lambda: nn.BatchNorm2d(2).eval(), (2, 2, 3, 3)),
    ("LayerNorm", lambda: nn.LayerNorm((2, 3)), (4, 2, 3)),
    ("Tanh", nn.Tanh, (3, 4)),
    ("Sigmoid", nn.Sigmoid, (3, 4)),
    ("LeakyReLU", lambda: nn.LeakyReLU(0.1), (3, 4)),
    ("SiLU", nn.SiLU, (3, 4)),
    ("GELU", nn.GELU, (3, 4)),
    ("GELU tanh", lambda: nn.GELU("tanh"), (3, 4)),
    ("Dropout eval", lambda: nn.Dropout(0.5).eval(), (3, 4)),
    ("Dropout p=0", lambda: nn.Dropout(0.0), (3, 4)),
    ("ResidualBlock training", lambda: nn.ResidualBlock(2, 2), (2, 2, 4, 4)),
    ("ResidualBlock strided, eval", lambda: nn.ResidualBlock(2, 3, stride=2).eval(),
     (2, 2, 5, 4)),
    ("GlobalAvgPool2d", nn.GlobalAvgPool2d, (2, 3, 4, 4)),
    # The recipes too, with Dropout off: check compares against a torch twin, whose masks
    # would differ.
    ("cnn recipe, eval", lambda: cr.models.cnn(channels=(2, 3), hidden=4, size=8).eval(),
     (2, 1, 8, 8)),
    ("resnet recipe, training", lambda: cr.models.resnet(widths=(2, 3), blocks=(1, 1)),
     (2, 1, 6, 6)),
]


@pytest.mark.parametrize("name, make, shape", NEW_LAYERS, ids=[t[0] for t in NEW_LAYERS])
def test_check_passes_on_every_new_layer_and_torch_agrees(name, make, shape) -> None:
    layer = make()
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)) and layer.weight \
            is not None:
        layer.weight.data[...] = RNG.uniform(0.5, 2, layer.weight.shape)
        layer.bias.data[...] = RNG.standard_normal(layer.bias.shape)
    if isinstance(layer, nn.BatchNorm2d):
        layer.running_mean.data[...] = RNG.standard_normal(layer.num_features)
        layer.running_var.data[...] = RNG.uniform(0.5, 2, layer.num_features)
    report = check(layer, RNG.standard_normal(shape), torch=True)
    assert report.passed and any("PyTorch agrees" in n for n in report.notes), str(report)


def test_check_passes_on_the_dropout_op_with_a_fixed_mask() -> None:
    mask = RNG.random((4, 5)) >= 0.5
    assert check(DropoutOp, RNG.standard_normal((4, 5)), mask, scale=2.0).passed


def test_training_mode_dropout_disagrees_with_torch_only_through_the_mask() -> None:
    # Each library draws its own mask: a training-mode Dropout cannot match torch's outputs,
    # which is why check() and the twins compare it in eval mode or through a given mask.
    report = cr.check.parity_report(nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5)),
                                    RNG.standard_normal((64, 4)))
    assert report.flagged == ["1"]


# ----------------------------------------------------------------------------- training
def test_layer_stats_records_a_batch_norm_layer() -> None:
    model = nn.Sequential(nn.Linear(5, 4, dtype="float64"), nn.BatchNorm1d(4, dtype="float64"),
                          nn.ReLU())
    stats = LayerStats(bins=8).attach(model)
    out = model(cr.tensor(RNG.standard_normal((16, 5)) * 3 + 2))
    out.backward(np.ones(out.shape))
    stats.remove()
    normed = stats.activations["1 BatchNorm1d"]
    assert normed.mean == [pytest.approx(0.0, abs=1e-12)]
    assert normed.std == [pytest.approx(1.0, rel=1e-3)]  # every channel: mean 0, var 1
    assert normed.histograms[0].sum() == 64
    gradient = stats.gradients["1 BatchNorm1d"]
    assert len(gradient.mean) == 1 and np.isfinite(gradient.std[0])


def make_bn_learner(seed: int, callbacks=()) -> Learner:
    cr.manual_seed(seed)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    data = ArrayDataset(x, (x[:, 0] > 0).astype(np.int64))
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    return Learner(model, DataLoader(data, batch_size=16, shuffle=True, seed=3),
                   optim.SGD(model.parameters(), lr=0.1), valid_data=DataLoader(data, 32),
                   callbacks=list(callbacks))


def test_checkpoints_resume_batch_norm_running_statistics_exactly(tmp_path) -> None:
    straight = make_bn_learner(0)
    straight.fit(2)
    first = make_bn_learner(0, [CheckpointCallback(tmp_path / "c.safetensors")])
    first.fit(1)
    resumed = make_bn_learner(7)
    resumed.load_checkpoint(tmp_path / "c.safetensors")
    assert int(resumed.model[1].num_batches_tracked.data) == 4
    resumed.fit(2)
    assert resumed.recorder.losses == straight.recorder.losses
    for key, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[key], value, err_msg=key)
    before = resumed.model.state_dict()
    resumed.lr_find(steps=5)  # restores the running statistics too
    for key, value in before.items():
        np.testing.assert_array_equal(resumed.model.state_dict()[key], value, err_msg=key)


def test_batch_norm_on_an_empty_batch_is_empty_and_leaves_statistics_alone() -> None:
    layer = nn.BatchNorm2d(3)
    x = cr.zeros(0, 3, 4, 4, requires_grad=True)
    out = layer(x)
    out.sum().backward()
    twin = torch.nn.BatchNorm2d(3)
    assert out.shape == tuple(twin(torch.zeros(0, 3, 4, 4)).shape) == (0, 3, 4, 4)
    np.testing.assert_array_equal(layer.running_mean.data, twin.running_mean.numpy())
    np.testing.assert_array_equal(layer.weight.grad, np.zeros(3))
    assert x.grad.shape == (0, 3, 4, 4)


def test_batch_norm_with_no_channels_is_empty_like_torch() -> None:
    x = cr.zeros(2, 0, 3, 3, requires_grad=True)
    out = cr.batch_norm(x, training=True)
    out.sum().backward()
    assert out.shape == tuple(torch.nn.functional.batch_norm(
        torch.zeros(2, 0, 3, 3), None, None, training=True).shape)
    assert x.grad.shape == (2, 0, 3, 3)


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_float32_batch_norm_is_as_accurate_as_torch(offset: float) -> None:
    """Output and input gradient against the float64 truth of the same float32 numbers, no
    worse than torch's float32; statistics from several cache-sized blocks. A large mean is
    the hard case: normalising as x scale + (bias - mean scale) gave 3.6e-5 here."""
    rng = np.random.default_rng(0)
    memory = (offset + rng.standard_normal((64, 16, 16, 8)) * 3).astype(np.float32)
    x = memory.transpose(0, 3, 1, 2)  # channels-last, as the conv ops hand it on
    upstream = rng.standard_normal(x.shape).astype(np.float32)
    ours_x = cr.tensor(x, requires_grad=True)
    ours = cr.ops.batch_norm(ours_x, training=True)
    ours.backward(upstream)

    def run_torch(dtype: type) -> tuple[np.ndarray, np.ndarray]:
        tx = torch.tensor(x.astype(dtype), requires_grad=True)
        out = torch.nn.functional.batch_norm(tx, None, None, training=True)
        out.backward(torch.from_numpy(upstream.astype(dtype)))
        return out.detach().numpy(), tx.grad.numpy()

    truth, theirs = run_torch(np.float64), run_torch(np.float32)
    # Outputs are about 4 in size: float32 rounding of the mean near 1000 alone is 1e-5 there.
    for mine, reference, exact, bound in zip((ours.data, ours_x.grad), theirs, truth,
                                             (1.5e-5, 2e-6)):
        our_error, torch_error = np.abs(mine - exact).max(), np.abs(reference - exact).max()
        assert our_error <= bound and our_error <= 1.5 * torch_error, (our_error, torch_error)
