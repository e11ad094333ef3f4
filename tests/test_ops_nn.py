"""Area E (losses, normalisation, embedding, small layers): options, defaults, dtypes, errors
and torch.nn twins, beyond what the verification matrix draws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from layer_twins import F64, check_finite_differences, check_torch_twin, randomised

import chainrule as cr
from chainrule import nn
from chainrule.nn import functional as F
from chainrule.validate import AxisError

RNG = np.random.default_rng(0)


def t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, requires_grad=grad)


def close(ours: cr.Tensor | np.ndarray, theirs: torch.Tensor, rtol: float = 1e-10) -> None:
    mine = ours.data if isinstance(ours, cr.Tensor) else ours
    np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=rtol, atol=1e-12)


def both(fn_ours, fn_theirs, *arrays: np.ndarray, rtol: float = 1e-10) -> None:
    """Value and the gradient of every float input, against torch."""
    ours = [cr.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    theirs = [t(a, a.dtype.kind == "f") if a.dtype.kind == "f" else torch.from_numpy(a)
              for a in arrays]
    out, expected = fn_ours(*ours), fn_theirs(*theirs)
    close(out, expected, rtol)
    assert out.dtype == expected.detach().numpy().dtype
    weights = RNG.standard_normal(out.shape)
    out.backward(weights)
    expected.backward(torch.from_numpy(weights))
    for mine, theirs_t in zip(ours, theirs):
        if mine.requires_grad:
            close(mine.grad, theirs_t.grad, rtol)


# ----------------------------------------------------------------------------- layer twins
LAYERS = [
    ("GroupNorm", lambda: randomised(nn.GroupNorm(2, 4, **F64)),
     lambda: torch.nn.GroupNorm(2, 4).double(), (3, 4, 5)),
    ("GroupNorm no affine, (N, C)", lambda: nn.GroupNorm(3, 6, affine=False, **F64),
     lambda: torch.nn.GroupNorm(3, 6, affine=False).double(), (2, 6)),
    ("InstanceNorm1d", lambda: nn.InstanceNorm1d(3, **F64),
     lambda: torch.nn.InstanceNorm1d(3).double(), (2, 3, 5)),
    ("InstanceNorm2d affine, running stats (train)",
     lambda: randomised(nn.InstanceNorm2d(3, affine=True, track_running_stats=True, **F64)),
     lambda: torch.nn.InstanceNorm2d(3, affine=True, track_running_stats=True).double(),
     (2, 3, 4, 3)),
    ("InstanceNorm2d running stats (eval)",
     lambda: randomised(nn.InstanceNorm2d(3, affine=True, track_running_stats=True,
                                          **F64)).eval(),
     lambda: torch.nn.InstanceNorm2d(3, affine=True, track_running_stats=True).double().eval(),
     (2, 3, 4, 3)),
    ("InstanceNorm2d unbatched", lambda: nn.InstanceNorm2d(3, momentum=0.3, **F64),
     lambda: torch.nn.InstanceNorm2d(3, momentum=0.3).double(), (3, 4, 3)),
    ("InstanceNorm3d", lambda: randomised(nn.InstanceNorm3d(2, affine=True, **F64)),
     lambda: torch.nn.InstanceNorm3d(2, affine=True).double(), (2, 2, 3, 2, 2)),
    ("RMSNorm", lambda: randomised(nn.RMSNorm(4, **F64)),
     lambda: torch.nn.RMSNorm(4).double(), (3, 4)),
    ("RMSNorm 2 axes, eps", lambda: randomised(nn.RMSNorm((2, 3), eps=1e-3, **F64)),
     lambda: torch.nn.RMSNorm((2, 3), eps=1e-3).double(), (4, 2, 3)),
    ("RMSNorm no weight", lambda: nn.RMSNorm(3, elementwise_affine=False, **F64),
     lambda: torch.nn.RMSNorm(3, elementwise_affine=False).double(), (2, 3)),
    ("BatchNorm3d", lambda: randomised(nn.BatchNorm3d(2, **F64)),
     lambda: torch.nn.BatchNorm3d(2).double(), (2, 2, 3, 2, 2)),
    ("BatchNorm3d eval", lambda: randomised(nn.BatchNorm3d(2, **F64)).eval(),
     lambda: torch.nn.BatchNorm3d(2).double().eval(), (2, 2, 3, 2, 2)),
    ("Identity", lambda: nn.Identity(54, unused="x"), lambda: torch.nn.Identity(54), (2, 3)),
    ("Unflatten", lambda: nn.Unflatten(1, (2, -1)), lambda: torch.nn.Unflatten(1, (2, -1)),
     (3, 6, 2)),
]


@pytest.mark.parametrize("name, make, make_torch, shape", LAYERS, ids=[r[0] for r in LAYERS])
def test_layer_matches_its_torch_twin(name, make, make_torch, shape) -> None:
    check_torch_twin(name, make, make_torch, shape)


@pytest.mark.parametrize("name, make, make_torch, shape", LAYERS, ids=[r[0] for r in LAYERS])
def test_layer_passes_finite_differences(name, make, make_torch, shape) -> None:
    check_finite_differences(make, shape)


def test_two_input_layers_match_torch() -> None:
    layer = nn.Bilinear(3, 2, 4, **F64)
    twin = torch.nn.Bilinear(3, 2, 4).double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    a, b = RNG.standard_normal((5, 3)), RNG.standard_normal((5, 2))
    both(layer, twin, a, b)
    assert list(layer.state_dict()) == list(twin.state_dict()) == ["weight", "bias"]
    assert repr(layer) == repr(twin)
    both(nn.CosineSimilarity(dim=0), torch.nn.CosineSimilarity(dim=0), a, a[:, :1] * 2)


def test_bilinear_init_and_no_bias() -> None:
    layer = nn.Bilinear(400, 2, 50, bias=False)
    assert layer.bias is None and layer.weight.dtype == np.float32
    assert np.abs(layer.weight.data).max() <= 1 / 20
    assert layer.weight.data.std() == pytest.approx(1 / 20 / math.sqrt(3), rel=0.05)


def test_reprs_match_torch() -> None:
    pairs = [(nn.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4)),
             (nn.GroupNorm(2, 4, bias=False), torch.nn.GroupNorm(2, 4, bias=False)),
             (nn.InstanceNorm2d(3), torch.nn.InstanceNorm2d(3)),
             (nn.InstanceNorm1d(3, affine=True), torch.nn.InstanceNorm1d(3, affine=True)),
             (nn.RMSNorm((2, 3)), torch.nn.RMSNorm((2, 3))),
             (nn.Embedding(7, 2, padding_idx=-1), torch.nn.Embedding(7, 2, padding_idx=-1)),
             (nn.Unflatten(-1, (2, 3)), torch.nn.Unflatten(-1, (2, 3))),
             (nn.Identity(), torch.nn.Identity())]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


def test_batch_norm_takes_torchs_bias_keyword_and_repr() -> None:
    x = RNG.standard_normal((4, 3, 2, 2))
    for cls in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d"):
        for kwargs in ({}, {"bias": False}, {"affine": False}):
            ours, theirs = getattr(nn, cls)(3, **kwargs), getattr(torch.nn, cls)(3, **kwargs)
            assert repr(ours) == repr(theirs)
            assert list(ours.state_dict()) == list(theirs.state_dict())
    ours = randomised(nn.BatchNorm2d(3, bias=False, **F64))
    theirs = torch.nn.BatchNorm2d(3, bias=False).double()
    theirs.weight.data = torch.from_numpy(ours.weight.data.copy())
    assert ours.bias is None and ours.weight is not None
    both(ours, theirs, x)
    for ours, theirs in ((nn.LayerNorm(4), torch.nn.LayerNorm(4)),
                         (nn.LayerNorm(4, bias=False), torch.nn.LayerNorm(4, bias=False)),
                         (nn.LayerNorm(4, elementwise_affine=False),
                          torch.nn.LayerNorm(4, elementwise_affine=False))):
        assert repr(ours) == repr(theirs)


def test_norms_take_torchs_input_keyword() -> None:
    x = RNG.standard_normal((2, 4, 3))
    both(lambda v: F.layer_norm(input=v, normalized_shape=(3,)),
         lambda v: TF.layer_norm(input=v, normalized_shape=(3,)), x)
    both(lambda v: F.batch_norm(input=v, running_mean=None, running_var=None, training=True),
         lambda v: TF.batch_norm(input=v, running_mean=None, running_var=None, training=True), x)
    both(lambda v: F.group_norm(input=v, num_groups=2), lambda v: TF.group_norm(
        input=v, num_groups=2), x)
    both(lambda v, t: F.mse_loss(input=v, target=t), lambda v, t: TF.mse_loss(input=v, target=t),
         x, x[::-1].copy())


def test_loss_and_small_layer_reprs_match_torch() -> None:
    pairs = [(nn.CrossEntropyLoss(label_smoothing=0.1), torch.nn.CrossEntropyLoss(
        label_smoothing=0.1)), (nn.NLLLoss(reduction="sum"), torch.nn.NLLLoss(reduction="sum")),
        (nn.MSELoss(), torch.nn.MSELoss()), (nn.HuberLoss("sum", 2.0),
                                              torch.nn.HuberLoss("sum", 2.0)),
        (nn.KLDivLoss(reduction="batchmean"), torch.nn.KLDivLoss(reduction="batchmean")),
        (nn.BCEWithLogitsLoss(), torch.nn.BCEWithLogitsLoss()),
        (nn.Unflatten(1, [3, 2, 2]), torch.nn.Unflatten(1, [3, 2, 2]))]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)
    assert nn.Unflatten(1, [3, -1])(cr.zeros((2, 12))).shape == (2, 3, 4)


def test_norm_state_dict_keys_and_defaults_are_torchs() -> None:
    pairs = [(nn.InstanceNorm2d(3), torch.nn.InstanceNorm2d(3)),
             (nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
              torch.nn.InstanceNorm2d(3, affine=True, track_running_stats=True)),
             (nn.GroupNorm(1, 2, affine=False), torch.nn.GroupNorm(1, 2, affine=False)),
             (nn.InstanceNorm1d(2, affine=True, bias=False),
              torch.nn.InstanceNorm1d(2, affine=True, bias=False)),
             (nn.RMSNorm(3), torch.nn.RMSNorm(3))]
    for ours, theirs in pairs:
        assert list(ours.state_dict()) == list(theirs.state_dict())
        for key, value in theirs.state_dict().items():
            np.testing.assert_array_equal(ours.state_dict()[key], value.numpy())


def test_instance_norm_in_training_leaves_num_batches_tracked_at_zero_like_torch() -> None:
    layer = nn.InstanceNorm1d(2, track_running_stats=True)
    layer(cr.randn(3, 2, 4))
    assert int(layer.num_batches_tracked.data) == 0
    assert not np.allclose(layer.running_mean.data, 0)


# ----------------------------------------------------------------------------- functional norms
def test_instance_norm_function_matches_torch_with_and_without_input_stats() -> None:
    x = RNG.standard_normal((2, 3, 5))
    mean, var = RNG.standard_normal(3), RNG.uniform(0.5, 2, 3)
    w, b = RNG.standard_normal(3), RNG.standard_normal(3)
    for use_input_stats in (True, False):
        ours_mean, ours_var = mean.copy(), var.copy()
        theirs_mean, theirs_var = t(mean), t(var)
        both(lambda x, w, b: F.instance_norm(x, ours_mean, ours_var, w, b, use_input_stats,
                                             0.2, 1e-3),
             lambda x, w, b: TF.instance_norm(x, theirs_mean, theirs_var, w, b,
                                              use_input_stats, 0.2, 1e-3), x, w, b)
        close(ours_mean, theirs_mean)
        close(ours_var, theirs_var)
    both(lambda x: cr.instance_norm(x), lambda x: TF.instance_norm(x), x)


def test_instance_norm_refusals() -> None:
    with pytest.raises(ValueError, match="instance_norm: Expected more than 1 spatial element"):
        F.instance_norm(cr.randn(2, 3, 1))
    with pytest.raises(ValueError, match="use_input_stats=False.*running_mean and running_var"):
        F.instance_norm(cr.randn(2, 3, 4), use_input_stats=False)
    with pytest.raises(ValueError, match=r"instance_norm: expects \(N, C, L\)"):
        F.instance_norm(cr.randn(2, 3))
    with pytest.raises(ValueError, match=r"InstanceNorm2d\(3\): expected input \(N, C, H, W\)"):
        nn.InstanceNorm2d(3)(cr.randn(2, 4, 3, 3))


def test_group_norm_refusals() -> None:
    with pytest.raises(ValueError, match="GroupNorm: num_channels=5 must be divisible by "
                                         "num_groups=2"):
        nn.GroupNorm(2, 5)
    with pytest.raises(ValueError, match="group_norm: num_groups=2 must divide the 3 channels"):
        F.group_norm(cr.randn(2, 3, 4), 2)
    with pytest.raises(TypeError, match="group_norm: num_groups must be an int"):
        F.group_norm(cr.randn(2, 4), 2.0)
    with pytest.raises(ValueError, match=r"GroupNorm\(2, 4\): expected input \(N, 4, \.\.\.\)"):
        nn.GroupNorm(2, 4)(cr.randn(2, 6))


def test_rms_norm_default_eps_is_the_dtypes_epsilon_like_torch() -> None:
    x = (RNG.standard_normal((3, 4)) * 1e-5).astype(np.float32)
    for dtype in (np.float32, np.float64):
        a = x.astype(dtype)
        close(F.rms_norm(cr.tensor(a), (4,)), TF.rms_norm(torch.from_numpy(a), (4,)),
              rtol=1e-6)
    with pytest.raises(ValueError, match="rms_norm: input shape .* does not end with"):
        F.rms_norm(cr.randn(3, 4), 3)


def test_norms_refuse_mixed_dtypes() -> None:
    with pytest.raises(cr.engine.function.DtypeMismatchError):
        nn.GroupNorm(1, 2)(cr.randn(2, 2, 3).astype(np.float64))


# ----------------------------------------------------------------------------- cross_entropy
def test_cross_entropy_options_match_torch() -> None:
    logits = RNG.standard_normal((4, 3, 2))
    targets = np.array([[0, 2], [1, -100], [2, 2], [0, 1]])
    weight = RNG.uniform(0.5, 2, 3)
    for reduction in ("mean", "sum", "none"):
        for smoothing in (0.0, 0.3):
            both(lambda x, y: F.cross_entropy(x, y, cr.tensor(weight), reduction=reduction,
                                              label_smoothing=smoothing),
                 lambda x, y: TF.cross_entropy(x, y, t(weight), reduction=reduction,
                                               label_smoothing=smoothing), logits, targets)
    both(lambda x, y: F.cross_entropy(x, y, ignore_index=2),
         lambda x, y: TF.cross_entropy(x, y, ignore_index=2), logits, targets.clip(0))


def test_cross_entropy_unbatched_and_probabilities_match_torch() -> None:
    both(lambda x, y: F.cross_entropy(x, y), lambda x, y: TF.cross_entropy(x, y),
         RNG.standard_normal(4), np.array(2))
    probs = RNG.dirichlet(np.ones(3), 5)
    weight = RNG.uniform(0.5, 2, 3)
    for reduction in ("mean", "sum", "none"):
        both(lambda x, p: F.cross_entropy(x, p, weight, reduction=reduction,
                                          label_smoothing=0.2),
             lambda x, p: TF.cross_entropy(x, p, t(weight), reduction=reduction,
                                           label_smoothing=0.2),
             RNG.standard_normal((5, 3)), probs)


def test_cross_entropy_with_every_target_ignored_is_nan_with_zero_gradient_like_torch() -> None:
    for fn, tfn in ((F.cross_entropy, TF.cross_entropy), (F.nll_loss, TF.nll_loss)):
        logits = cr.tensor(RNG.standard_normal((3, 4)), requires_grad=True)
        loss = fn(logits, np.full(3, -100))
        assert math.isnan(loss.item())
        assert math.isnan(tfn(torch.zeros(3, 4), torch.full((3,), -100)).item())
        loss.backward()
        np.testing.assert_array_equal(logits.grad, 0)
        assert fn(logits, np.full(3, -100), reduction="sum").item() == 0


def test_cross_entropy_keeps_the_hot_path_value() -> None:
    logits = RNG.standard_normal((8, 10)).astype(np.float32)
    targets = RNG.integers(0, 10, 8)
    both(lambda x, y: F.cross_entropy(x, y), lambda x, y: TF.cross_entropy(x, y), logits,
         targets, rtol=1e-6)


@pytest.mark.parametrize("call, error, words", [
    (lambda: F.cross_entropy(cr.randn(3, 4), np.array([0, 4, 1])), ValueError,
     r"class indices must lie in \[0, 4\) or equal ignore_index=-100, got 4"),
    (lambda: F.cross_entropy(cr.randn(3, 4), np.array([0, -1, 1])), ValueError,
     r"must lie in \[0, 4\).*got -1"),
    (lambda: F.cross_entropy(cr.randn(3, 4), np.zeros(3)), ValueError,
     "float targets are class probabilities and must have the logits' shape"),
    (lambda: F.cross_entropy(cr.randn(3, 4), np.zeros((3, 4), np.int64)), ValueError,
     "class probabilities and must be floating"),
    (lambda: F.cross_entropy(cr.randn(3, 4), np.zeros(2, np.int64)), ValueError,
     r"targets must be integer class indices of shape \(3,\)"),
    (lambda: F.cross_entropy(cr.randn(3, 4), cr.rand(3, 4), ignore_index=1), ValueError,
     "ignore_index applies to class indices"),
    (lambda: F.cross_entropy(cr.randn(3, 4), np.zeros(3, np.int64), label_smoothing=1.5),
     ValueError, r"label_smoothing must be in \[0, 1\]"),
    (lambda: F.cross_entropy(cr.randn(3, 4), np.zeros(3, np.int64), np.ones(3)), ValueError,
     r"weight must hold one number per class, shape \(4,\)"),
    (lambda: F.cross_entropy(cr.randn(3, 4), np.zeros(3, np.int64),
                             cr.ones(4, requires_grad=True)), ValueError,
     r"weight takes no gradient .*weight\.detach\(\)"),
    (lambda: F.cross_entropy(cr.randn(3, 4), np.zeros(3, np.int64), "sum"), TypeError,
     "weight must be a tensor or None, got 'sum'"),
    (lambda: F.cross_entropy(cr.randn(3, 4), np.zeros(3, np.int64), reduction="avg"),
     ValueError, "cross_entropy: reduction must be 'mean', 'sum' or 'none', got 'avg'"),
    (lambda: F.cross_entropy(cr.randn(3, 4), np.zeros(3, np.int64), size_average=True),
     ValueError, "size_average is deprecated in PyTorch"),
    (lambda: F.cross_entropy(cr.randn(()), np.array(0)), ValueError, "got a 0-d tensor"),
    (lambda: F.nll_loss(cr.randn(2, 3, 4), np.zeros((2, 3), np.int64)), ValueError,
     r"nll_loss: targets must be integer class indices of shape \(2, 4\)"),
])
def test_classification_refusals(call, error, words) -> None:
    with pytest.raises(error, match=words):
        call()


def test_nll_loss_options_match_torch() -> None:
    log_probs = np.log(RNG.dirichlet(np.ones(3), (4, 2)).transpose(0, 2, 1).copy())
    targets = np.array([[0, 2], [1, 1], [2, 0], [0, 1]])
    weight = RNG.uniform(0.5, 2, 3)
    for reduction in ("mean", "sum", "none"):
        both(lambda x, y: F.nll_loss(x, y, weight, ignore_index=1, reduction=reduction),
             lambda x, y: TF.nll_loss(x, y, t(weight), ignore_index=1, reduction=reduction),
             log_probs, targets)


# ----------------------------------------------------------------------------- other losses
def test_binary_cross_entropy_clamps_its_logs_like_torch() -> None:
    probs = np.array([0.0, 1.0, 0.5, 0.3, 1.0, 0.0])
    targets = np.array([0.4, 0.1, 0.7, 0.2, 1.0, 0.0])
    weight = RNG.uniform(0.5, 2, 6)
    for reduction in ("mean", "sum", "none"):
        ours = [cr.tensor(probs, requires_grad=True), cr.tensor(targets, requires_grad=True)]
        theirs = [t(probs, True), t(targets, True)]
        out = F.binary_cross_entropy(*ours, weight, reduction=reduction)
        expected = TF.binary_cross_entropy(*theirs, t(weight), reduction=reduction)
        close(out, expected)
        out.sum().backward()
        expected.sum().backward()
        for mine, theirs_t in zip(ours, theirs):  # 1e11 at x = 0 and 1: rounding differs
            np.testing.assert_allclose(mine.grad, theirs_t.grad.numpy(), rtol=1e-8)


def test_binary_cross_entropy_refusals() -> None:
    with pytest.raises(ValueError, match=r"every input must lie in \[0, 1\]"):
        F.binary_cross_entropy(cr.tensor([1.5]), cr.tensor([1.0]))
    with pytest.raises(ValueError, match="input shape .* and target shape .* differ"):
        F.binary_cross_entropy(cr.rand(3, 2), cr.rand(3))
    with pytest.raises(ValueError, match="weight of shape .* does not broadcast"):
        F.binary_cross_entropy(cr.rand(3, 2), cr.rand(3, 2), weight=np.ones(3))


def test_bce_with_logits_weights_and_integer_targets() -> None:
    x, y = RNG.standard_normal((4, 3)) * 3, RNG.integers(0, 2, (4, 3))
    w, pw = RNG.uniform(0.5, 2, 3), RNG.uniform(0.5, 3, 3)
    for reduction in ("mean", "sum", "none"):
        both(lambda x: F.binary_cross_entropy_with_logits(x, y, w, reduction=reduction,
                                                          pos_weight=pw),
             lambda x: TF.binary_cross_entropy_with_logits(
                 x, torch.from_numpy(y).double(), t(w), reduction=reduction, pos_weight=t(pw)),
             x)


def test_regression_losses_match_torch_options_and_promote_dtypes() -> None:
    a = RNG.standard_normal((3, 4)).astype(np.float32)
    b = RNG.standard_normal((3, 4))
    for ours, theirs, extra in ((F.l1_loss, TF.l1_loss, {}),
                                (F.smooth_l1_loss, TF.smooth_l1_loss, {"beta": 0.3}),
                                (F.smooth_l1_loss, TF.smooth_l1_loss, {"beta": 0.0}),
                                (F.kl_div, TF.kl_div, {"log_target": True})):
        for reduction in ("mean", "sum", "none"):
            both(lambda x, y: ours(x, y, reduction=reduction, **extra),
                 lambda x, y: theirs(x, y, reduction=reduction, **extra), a, b, rtol=1e-6)
    both(lambda x, y: F.huber_loss(x, y, delta=0.4),
         lambda x, y: TF.huber_loss(x, y, delta=0.4), a.astype(np.float64), b)
    # torch's huber_loss keeps the input's dtype where its other losses promote
    assert F.huber_loss(cr.tensor(a), cr.tensor(b)).dtype == np.float32
    assert F.huber_loss(cr.tensor(b), cr.tensor(a)).dtype == np.float64
    out = F.l1_loss(cr.tensor(a), np.arange(12).reshape(3, 4))  # integer targets: a's dtype
    assert out.dtype == np.float32
    assert F.l1_loss(cr.tensor(a), cr.tensor(b)).dtype == np.float64


def test_mse_loss_takes_reduction_none() -> None:
    a, b = RNG.standard_normal((3, 1)), RNG.standard_normal(3)
    out = nn.MSELoss(reduction="none")(cr.tensor(a), b)
    np.testing.assert_allclose(out.data, (a[:, 0] - b) ** 2)


def test_kl_div_batchmean_and_zero_targets_like_torch() -> None:
    x = np.log(RNG.dirichlet(np.ones(4), 3))
    target = RNG.dirichlet(np.ones(4), 3)
    target[0, 1] = 0.0  # contributes 0, as xlogy does
    both(lambda x: F.kl_div(x, target, reduction="batchmean"),
         lambda x: TF.kl_div(x, t(target), reduction="batchmean"), x)
    close(F.kl_div(cr.tensor(np.array(0.3)), np.array(0.5), reduction="batchmean"),
          TF.kl_div(torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.5,
                    dtype=torch.float64), reduction="batchmean"))
    with pytest.raises(ValueError, match="kl_div: reduction must be 'mean', 'batchmean'"):
        F.kl_div(cr.tensor(x), target, reduction="avg")


def test_loss_parameter_refusals() -> None:
    with pytest.raises(ValueError, match=r"smooth_l1_loss: beta must be >= 0"):
        F.smooth_l1_loss(cr.randn(3), cr.randn(3), beta=-1)
    with pytest.raises(ValueError, match=r"huber_loss: delta must be > 0"):
        F.huber_loss(cr.randn(3), cr.randn(3), delta=0)
    with pytest.raises(ValueError, match="l1_loss: input shape .* differ"):
        F.l1_loss(cr.randn(3, 1), cr.randn(3))


# ----------------------------------------------------------------------------- loss layers
LOSS_LAYERS = [
    (lambda: nn.CrossEntropyLoss(cr.tensor([1.0, 2.0, 0.5]), ignore_index=1,
                                 label_smoothing=0.1),
     lambda: torch.nn.CrossEntropyLoss(torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64),
                                       ignore_index=1, label_smoothing=0.1), "classes"),
    (lambda: nn.NLLLoss(np.array([1.0, 2.0, 0.5]), reduction="sum"),
     lambda: torch.nn.NLLLoss(torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64),
                              reduction="sum"), "classes"),
    (lambda: nn.BCEWithLogitsLoss(pos_weight=np.array([1.0, 3.0, 0.5])),
     lambda: torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0, 3.0, 0.5],
                                                                dtype=torch.float64)),
     "probs"),
    (lambda: nn.BCELoss(np.array([1.0, 3.0, 0.5]), reduction="none"),
     lambda: torch.nn.BCELoss(torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64),
                              reduction="none"), "sigmoid"),
    (lambda: nn.L1Loss(reduction="sum"), lambda: torch.nn.L1Loss(reduction="sum"), "values"),
    (lambda: nn.SmoothL1Loss(beta=0.5), lambda: torch.nn.SmoothL1Loss(beta=0.5), "values"),
    (lambda: nn.HuberLoss(delta=0.5), lambda: torch.nn.HuberLoss(delta=0.5), "values"),
    (lambda: nn.KLDivLoss(reduction="batchmean", log_target=True),
     lambda: torch.nn.KLDivLoss(reduction="batchmean", log_target=True), "values"),
    (lambda: nn.MSELoss(reduction="none"), lambda: torch.nn.MSELoss(reduction="none"),
     "values"),
]


@pytest.mark.parametrize("make, make_torch, kind", LOSS_LAYERS)
def test_loss_layers_match_torch_and_keep_its_state_dict(make, make_torch, kind) -> None:
    layer, twin = make(), make_torch()
    x = RNG.standard_normal((4, 3))
    target = {"classes": np.array([0, 2, 1, 1]), "probs": RNG.random((4, 3)),
              "sigmoid": RNG.random((4, 3)), "values": RNG.standard_normal((4, 3))}[kind]
    if kind == "sigmoid":
        x = 1 / (1 + np.exp(-x))
    both(layer, lambda a, b: twin(a, b), x, target)
    assert list(layer.state_dict()) == list(twin.state_dict())
    for key, value in twin.state_dict().items():
        np.testing.assert_array_equal(layer.state_dict()[key], value.numpy())


def test_loss_layers_take_torchs_positional_order_and_defaults() -> None:
    ce = nn.CrossEntropyLoss(np.ones(3), None, 2, None, "sum", 0.25)
    assert (ce.ignore_index, ce.reduction, ce.label_smoothing) == (2, "sum", 0.25)
    default = nn.CrossEntropyLoss()
    twin = torch.nn.CrossEntropyLoss()
    assert (default.weight, default.ignore_index, default.reduction,
            default.label_smoothing) == (None, twin.ignore_index, twin.reduction,
                                         twin.label_smoothing)
    assert nn.BCEWithLogitsLoss(None, None, None, "sum", np.ones(2)).reduction == "sum"
    assert nn.SmoothL1Loss(None, None, "none", 0.2).beta == 0.2
    assert nn.HuberLoss("sum", 2.0).delta == 2.0
    with pytest.raises(ValueError, match="CrossEntropyLoss: reduce is deprecated"):
        nn.CrossEntropyLoss(reduce=False)
    with pytest.raises(ValueError, match="KLDivLoss: reduction must be"):
        nn.KLDivLoss(reduction="avg")
    with pytest.raises(ValueError, match="BCELoss: weight takes no gradient"):
        nn.BCELoss(cr.ones(3, requires_grad=True))


# ----------------------------------------------------------------------------- similarity
def test_cosine_similarity_and_normalize_options_and_zero_vectors() -> None:
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((1, 4))
    both(lambda x, y: F.cosine_similarity(x, y, dim=-1),
         lambda x, y: TF.cosine_similarity(x, y, dim=-1), a, b)
    zero = np.zeros((2, 3))
    both(lambda x, y: cr.cosine_similarity(x, y), lambda x, y: TF.cosine_similarity(x, y),
         zero, a[:2, :3])
    for p in (2.0, 1.0, math.inf, 3.0):
        both(lambda x: F.normalize(x, p=p, dim=0), lambda x: TF.normalize(x, p=p, dim=0), a)
    both(lambda x: F.normalize(x), lambda x: TF.normalize(x), zero)
    assert F.cosine_similarity(cr.tensor([1, 2]), cr.tensor([2, 4]), dim=0).dtype == \
        cr.get_default_dtype()
    with pytest.raises(AxisError, match="cosine_similarity: axis 1 is out of range"):
        F.cosine_similarity(cr.randn(3), cr.randn(3))
    with pytest.raises(ValueError, match=r"normalize: p must be > 0"):
        F.normalize(cr.randn(3), p=0, dim=0)


def test_normalize_takes_p_below_one_like_torch() -> None:
    a = np.array([[1.0, 0.0, -2.0], [0.5, 3.0, 0.0]])
    for p in (0.5, 0.25):
        both(lambda x: F.normalize(x, p=p), lambda x: TF.normalize(x, p=p), a)


def test_softmax_family_on_an_empty_axis_gives_the_empty_result_like_torch() -> None:
    empty = np.zeros((0, 4))
    for ours, theirs in ((F.softmax, TF.softmax), (F.log_softmax, TF.log_softmax),
                         (F.softmin, TF.softmin)):
        for dim in (0, 1):
            both(lambda x: ours(x, dim=dim), lambda x: theirs(x, dim=dim), empty)


def test_softmax_dtype_and_integer_inputs() -> None:
    x = cr.tensor(RNG.standard_normal(4).astype(np.float32), requires_grad=True)
    out = F.softmax(x, dim=0, dtype=np.float64)
    assert out.dtype == np.float64
    close(out, TF.softmax(torch.from_numpy(x.data), 0, dtype=torch.float64))
    out.sum().backward()
    assert x.grad.dtype == np.float32
    assert F.log_softmax(cr.tensor([1, 2, 3]), dim=0).dtype == cr.get_default_dtype()
    assert F.log_softmax(np.arange(3), dim=0, dtype="float64").dtype == np.float64


# ----------------------------------------------------------------------------- embedding
def test_embedding_matches_torch_with_padding_and_frequency_scaling() -> None:
    weight = RNG.standard_normal((5, 3))
    indices = np.array([[0, 2, 2], [4, 2, 0]])
    for padding_idx in (None, 2, -1):
        for scale in (False, True):
            both(lambda w, i: F.embedding(i, w, padding_idx, scale_grad_by_freq=scale),
                 lambda w, i: TF.embedding(i, w, padding_idx, scale_grad_by_freq=scale),
                 weight, indices)


def test_embedding_layer_init_padding_and_state_like_torch() -> None:
    layer = nn.Embedding(2000, 8, padding_idx=3)
    twin = torch.nn.Embedding(2000, 8, padding_idx=3)
    assert list(layer.state_dict()) == list(twin.state_dict()) == ["weight"]
    assert layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.data[3], 0)
    rest = np.delete(layer.weight.data, 3, axis=0)
    assert abs(rest.mean()) < 0.03 and rest.std() == pytest.approx(1.0, abs=0.03)
    out = layer(np.array([3, 1, 3]))
    out.sum().backward()
    np.testing.assert_array_equal(layer.weight.grad[3], 0)
    np.testing.assert_array_equal(layer.weight.grad[1], 1)
    frozen = nn.Embedding.from_pretrained(cr.tensor(RNG.standard_normal((4, 2))))
    assert not frozen.weight.requires_grad and frozen.num_embeddings == 4
    assert nn.Embedding(3, 2, dtype="float64").weight.dtype == np.float64


def test_embedding_refusals() -> None:
    weight = cr.randn(3, 2)
    with pytest.raises(IndexError, match="embedding: index 3 is out of range for 3 embeddings"):
        F.embedding(np.array([0, 3]), weight)
    with pytest.raises(IndexError, match="index -1 is out of range"):
        F.embedding(np.array([-1]), weight)
    with pytest.raises(TypeError, match="embedding: input must hold integer indices"):
        F.embedding(np.array([0.0]), weight)
    with pytest.raises(ValueError, match="embedding: max_norm is not supported"):
        F.embedding(np.array([0]), weight, max_norm=1.0)
    with pytest.raises(ValueError, match=r"Embedding: padding_idx must be in \[-3, 2\]"):
        nn.Embedding(3, 2, padding_idx=3)
    with pytest.raises(ValueError, match="Embedding: sparse=True is not supported"):
        nn.Embedding(3, 2, sparse=True)


# ----------------------------------------------------------------------------- small layers
def test_unflatten_and_identity() -> None:
    x = cr.randn(2, 12)
    assert nn.Unflatten(-1, (3, 4))(x).shape == (2, 3, 4)
    assert nn.Unflatten(1, [2, -1, 3])(x).shape == (2, 2, 2, 3)
    assert nn.Identity()(x) is x
    with pytest.raises(ValueError, match=r"Unflatten: sizes \(5, 2\) do not split axis 1 of "
                                         "size 12"):
        nn.Unflatten(1, (5, 2))(x)
    with pytest.raises(ValueError, match="only one size in unflattened_size may be -1"):
        nn.Unflatten(1, (-1, -1))
    with pytest.raises(AxisError, match="Unflatten: dim 2 is out of range"):
        nn.Unflatten(2, (3, 4))(x)
