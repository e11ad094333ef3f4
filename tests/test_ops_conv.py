"""Area D: convolution, pooling, padding and resizing against PyTorch: options and defaults,
return_indices, unpooling, dtypes, the layers' torch.nn twins and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from layer_twins import F64, check_finite_differences, check_torch_twin

import chainrule as cr
from chainrule import nn
from chainrule.engine.function import registry
from chainrule.nn import functional as F

RNG = np.random.default_rng(0)


def run_both(ours, theirs, *arrays):
    """Forward and every float input's gradient of both, with one upstream gradient."""
    mine = [cr.tensor(a, requires_grad=True) for a in arrays]
    ref = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, expected = ours(*mine), theirs(*ref)
    upstream = np.random.default_rng(1).standard_normal(expected.shape)
    out.backward(upstream.astype(out.dtype))
    expected.backward(torch.tensor(upstream, dtype=expected.dtype))
    assert out.shape == tuple(expected.shape) and out.dtype == expected.detach().numpy().dtype
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(mine, ref):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- the fast paths
def test_default_2d_pooling_and_conv_keep_their_kernel_ops() -> None:
    x = cr.tensor(RNG.standard_normal((2, 3, 6, 6)), requires_grad=True)
    w = cr.tensor(RNG.standard_normal((4, 3, 3, 3)), requires_grad=True)
    assert F.max_pool2d(x, 2).grad_fn is registry()["max_pool2d"]
    assert F.avg_pool2d(x, 2).grad_fn is registry()["avg_pool2d"]
    assert F.conv2d(x, w, padding=1).grad_fn is registry()["conv2d"]
    assert nn.Conv2d(3, 4, 3, dtype="float64")(x).grad_fn is registry()["conv2d"]
    # New options take the general ops; the 1-d convolution is conv2d over a 1-pixel height.
    assert F.max_pool2d(x, 2, ceil_mode=True).grad_fn is registry()["max_pool"]
    assert F.avg_pool2d(x, 2, count_include_pad=False).grad_fn is registry()["avg_pool"]
    assert F.conv1d(x[:, :, 0], w[:, :, 0]).grad_fn is registry()["squeeze"]
    assert F.conv3d(x[:, :, None], w[:, :, None]).grad_fn is registry()["conv_nd"]


# ----------------------------------------------------------------------------- pad
@pytest.mark.parametrize("shape, pad, mode", [
    ((2, 3, 6), (1, 2), "reflect"), ((2, 3, 6), (-1, 2), "reflect"),
    ((2, 3, 6), (2, -1), "circular"), ((2, 3, 6), (6, 3), "circular"),
    ((2, 3, 4, 5), (1, 2, 3, 1), "replicate"), ((2, 3, 4, 5), (4, 2, 5, 1), "replicate"),
    ((3, 4, 5), (1, 2, 3, 1), "reflect"), ((1, 2, 3, 4, 5), (1, 2, 3, 1, 2, 2), "circular"),
    ((3, 4, 5), (1, -2, 0, 3, 2, 2), "constant"), ((5,), (-2, -1), "constant"),
    ((2, 1, 2, 3, 2), (1, 0, 0, 1, 1, 1, 0, 1), "constant"),
])
def test_pad_matches_torch(shape, pad, mode) -> None:
    run_both(lambda t: F.pad(t, pad, mode), lambda t: TF.pad(t, pad, mode=mode),
             RNG.standard_normal(shape))


def test_pad_value_and_integer_dtypes() -> None:
    x = np.arange(6).reshape(2, 3)
    out = F.pad(cr.tensor(x), (1, 2, 1, 0), value=7)
    np.testing.assert_array_equal(out.data, TF.pad(torch.tensor(x), (1, 2, 1, 0), value=7))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(F.pad(cr.tensor(x), [1, 1], mode="reflect").data,
                                  TF.pad(torch.tensor(x), [1, 1], mode="reflect"))
    run_both(lambda t: F.pad(t, (2, 1), value=-1.5), lambda t: TF.pad(t, (2, 1), value=-1.5),
             RNG.standard_normal((3, 2)))


@pytest.mark.parametrize("call, error, match", [
    (lambda x: F.pad(x, (1, 2, 3)), ValueError, "even number"),
    (lambda x: F.pad(x, (1,) * 8), ValueError, "pads 4 dims but the input has only 3"),
    (lambda x: F.pad(x, (1.5, 1)), TypeError, "tuple of ints"),
    (lambda x: F.pad(x, (4, 0), mode="reflect"), ValueError, "smaller than the dim"),
    (lambda x: F.pad(x, (5, 0), mode="circular"), ValueError, "at most the dim"),
    (lambda x: F.pad(x, (1, 1) * 3, mode="reflect"), ValueError, r"4-D or 5-D input, got 3-D"),
    (lambda x: F.pad(x, (1, 1), mode="reflect", value=1.0), ValueError, "value= is for"),
    (lambda x: F.pad(x, (1, 1), mode="wrap"), ValueError, "mode must be"),
    (lambda x: F.pad(x, (-3, -2)), ValueError, "negative size"),
])
def test_pad_errors(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call(cr.zeros(2, 3, 4))


# ----------------------------------------------------------------------------- convolutions
@pytest.mark.parametrize("fn, x_shape, w_shape, kwargs", [
    ("conv1d", (2, 4, 9), (6, 2, 3), dict(stride=2, padding=1, dilation=2, groups=2)),
    ("conv1d", (4, 9), (3, 4, 2), dict(padding="same")),      # unbatched, even kernel
    ("conv1d", (2, 4, 9), (3, 4, 4), dict(padding="same", dilation=3)),
    ("conv2d", (2, 3, 7, 6), (4, 3, 4, 3), dict(padding="same")),
    ("conv2d", (2, 3, 7, 6), (4, 3, 2, 2), dict(padding="valid", stride=2)),
    ("conv3d", (2, 4, 5, 6, 4), (6, 2, 2, 3, 2), dict(stride=(1, 2, 1), padding=(1, 0, 1),
                                                       dilation=(2, 1, 1), groups=2)),
    ("conv3d", (4, 5, 6, 4), (3, 4, 2, 2, 3), dict(padding="same")),
])
def test_convolutions_match_torch(fn, x_shape, w_shape, kwargs) -> None:
    run_both(lambda x, w, b: getattr(F, fn)(x, w, b, **kwargs),
             lambda x, w, b: getattr(TF, fn)(x, w, b, **kwargs),
             RNG.standard_normal(x_shape), RNG.standard_normal(w_shape),
             RNG.standard_normal(w_shape[0]))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_transposed_convolutions_match_torch(dims) -> None:
    x_shape, w_shape = (2, 4) + (4, 3, 3)[:dims], (4, 3) + (3, 2, 2)[:dims]
    kwargs = dict(stride=2, padding=1, output_padding=1, groups=2, dilation=(1, 2, 1)[:dims])
    run_both(lambda x, w, b: getattr(F, f"conv_transpose{dims}d")(x, w, b, **kwargs),
             lambda x, w, b: getattr(TF, f"conv_transpose{dims}d")(x, w, b, **kwargs),
             RNG.standard_normal(x_shape), RNG.standard_normal(w_shape),
             RNG.standard_normal(6))
    # torch's positional order: stride, padding, output_padding, groups, dilation.
    run_both(lambda x, w: getattr(F, f"conv_transpose{dims}d")(x, w, None, 1, 0, 0, 2, 1),
             lambda x, w: getattr(TF, f"conv_transpose{dims}d")(x, w, None, 1, 0, 0, 2, 1),
             RNG.standard_normal(x_shape[1:]), RNG.standard_normal(w_shape))


@pytest.mark.parametrize("call, error, match", [
    (lambda: F.conv2d(cr.zeros(1, 2, 5, 5), cr.zeros(3, 2, 3, 3), padding="same", stride=2),
     ValueError, "padding='same' needs stride 1"),
    (lambda: F.conv2d(cr.zeros(1, 2, 5, 5), cr.zeros(3, 2, 3, 3), padding="full"),
     ValueError, "padding must be 'same' or 'valid'"),
    (lambda: F.conv3d(cr.zeros(1, 2, 5, 5, 5), cr.zeros(3, 4, 3, 3, 3)), ValueError,
     "expects 4 input channels, got 2"),
    (lambda: F.conv3d(cr.zeros(2, 5, 5), cr.zeros(3, 2, 3, 3, 3)), ValueError,
     "expects input shaped"),
    (lambda: F.conv3d(cr.tensor(np.zeros((1, 2, 3, 3, 3), np.int64)),
                      cr.tensor(np.zeros((3, 2, 1, 1, 1), np.int64))), TypeError, "floating"),
    (lambda: F.conv_transpose2d(cr.zeros(1, 2, 3, 3), cr.zeros(2, 3, 3, 3), stride=2,
                                output_padding=2), ValueError, "output_padding"),
    (lambda: F.conv_transpose1d(cr.zeros(1, 2, 3), cr.zeros(2, 3, 3), padding=3), ValueError,
     "leaves an output of size"),
    (lambda: F.conv1d(cr.zeros(1, 2, 3), cr.zeros(3, 2, 3, 3)), ValueError,
     "weight must be"),
])
def test_convolution_errors(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


# ----------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("dims, kwargs", [
    (1, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (1, dict(kernel_size=2, dilation=3)),
    (2, dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)),
    (2, dict(kernel_size=(2, 3), stride=(1, 2), ceil_mode=True)),
    (3, dict(kernel_size=(2, 3, 2), stride=(1, 2, 2), padding=(1, 1, 0), dilation=(1, 1, 2),
             ceil_mode=True)),
])
def test_max_pool_values_indices_and_gradients_match_torch(dims, kwargs) -> None:
    shape = (2, 3) + (5, 9, 8)[3 - dims:]
    x = RNG.standard_normal(shape)
    ours = getattr(F, f"max_pool{dims}d")(cr.tensor(x), return_indices=True, **kwargs)
    theirs = getattr(TF, f"max_pool{dims}d")(torch.tensor(x), return_indices=True, **kwargs)
    assert isinstance(ours, cr.ops.PoolResult) and ours.indices.dtype == np.int64
    np.testing.assert_array_equal(ours.values.data, theirs[0].numpy())
    np.testing.assert_array_equal(ours.indices.data, theirs[1].numpy())
    run_both(lambda t: getattr(F, f"max_pool{dims}d")(t, **kwargs),
             lambda t: getattr(TF, f"max_pool{dims}d")(t, **kwargs), x)


def test_max_pool_ties_go_to_the_first_and_an_all_padding_window_is_minus_inf() -> None:
    x = np.maximum(RNG.standard_normal((2, 3, 7, 6)), 0).round(1)  # many ties at 0
    run_both(lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True),
             lambda t: TF.max_pool2d(t, 3, 2, 1, ceil_mode=True), x)
    run_both(lambda t: F.max_pool1d(t, 2, 1, 1, dilation=2),  # a window all in the padding
             lambda t: TF.max_pool1d(t, 2, 1, 1, dilation=2), np.array([[[3.0]]]))


def test_max_pool_keeps_integer_dtypes() -> None:
    x = RNG.integers(-50, 50, (2, 2, 5, 6))
    out = F.max_pool2d(cr.tensor(x), 2, ceil_mode=True)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out.data, TF.max_pool2d(torch.tensor(x), 2, ceil_mode=True))


@pytest.mark.parametrize("dims, kwargs", [
    (1, dict(kernel_size=4, stride=3, padding=2, ceil_mode=True, count_include_pad=False)),
    (2, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (2, dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    (2, dict(kernel_size=(2, 3), padding=(1, 1), ceil_mode=True, divisor_override=5)),
    (3, dict(kernel_size=(2, 3, 2), stride=(1, 2, 2), padding=(1, 1, 0), ceil_mode=True,
             count_include_pad=False)),
])
def test_avg_pool_options_match_torch(dims, kwargs) -> None:
    shape = (2, 3) + (5, 9, 8)[3 - dims:]
    run_both(lambda t: getattr(F, f"avg_pool{dims}d")(t, **kwargs),
             lambda t: getattr(TF, f"avg_pool{dims}d")(t, **kwargs), RNG.standard_normal(shape))


def test_avg_pool_keeps_a_nan_or_inf_inside_its_windows() -> None:
    x = RNG.standard_normal((1, 1, 6, 6))
    x[0, 0, 0, 0], x[0, 0, 5, 5] = np.nan, np.inf
    for kwargs in (dict(ceil_mode=True), dict(count_include_pad=False, padding=1)):
        np.testing.assert_allclose(F.avg_pool2d(cr.tensor(x), 3, 2, **kwargs).data,
                                   TF.avg_pool2d(torch.tensor(x), 3, 2, **kwargs).numpy(),
                                   rtol=1e-12)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(cr.tensor(x), 4).data,
                               TF.adaptive_avg_pool2d(torch.tensor(x), 4).numpy(), rtol=1e-12)


@pytest.mark.parametrize("dims, size", [(1, 4), (1, 13), (2, (3, 4)), (2, (11, 5)),
                                        (2, (None, 3)), (2, 1), (3, (2, 3, 5))])
def test_adaptive_pooling_matches_torch(dims, size) -> None:
    x = RNG.standard_normal((2, 3) + (5, 9, 8)[3 - dims:])
    run_both(lambda t: getattr(F, f"adaptive_avg_pool{dims}d")(t, size),
             lambda t: getattr(TF, f"adaptive_avg_pool{dims}d")(t, size), x)
    run_both(lambda t: getattr(F, f"adaptive_max_pool{dims}d")(t, size),
             lambda t: getattr(TF, f"adaptive_max_pool{dims}d")(t, size), x)
    ours = getattr(F, f"adaptive_max_pool{dims}d")(cr.tensor(x), size, return_indices=True)
    theirs = getattr(TF, f"adaptive_max_pool{dims}d")(torch.tensor(x), size, True)
    np.testing.assert_array_equal(ours.indices.data, theirs[1].numpy())


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_max_unpool_inverts_max_pool_like_torch(dims) -> None:
    x = RNG.standard_normal((2, 3) + (5, 7, 6)[3 - dims:])
    values, indices = getattr(TF, f"max_pool{dims}d")(torch.tensor(x), 2, return_indices=True)
    size = x.shape[2:]
    for output_size in (size, x.shape):
        run_both(lambda v: getattr(F, f"max_unpool{dims}d")(v, indices.numpy(), 2,
                                                           output_size=output_size),
                 lambda v: getattr(TF, f"max_unpool{dims}d")(v, indices, 2,
                                                            output_size=output_size),
                 values.numpy())
    ours = getattr(F, f"max_pool{dims}d")(cr.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(
        getattr(F, f"max_unpool{dims}d")(*ours, 2, output_size=size).data,
        getattr(TF, f"max_unpool{dims}d")(values, indices, 2, output_size=size).numpy())


@pytest.mark.parametrize("call, error, match", [
    (lambda x: F.max_pool2d(x, 2, padding=2), ValueError, "at most half the kernel"),
    (lambda x: F.max_pool2d(x, 2, ceil_mode=1), TypeError, "ceil_mode must be True or False"),
    (lambda x: F.max_pool1d(x, 2), ValueError, r"expects input shaped .* got shape"),
    (lambda x: F.max_pool3d(x, 5), ValueError, "window spans 5 elements"),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda x: F.avg_pool2d(cr.tensor(np.ones((1, 1, 4, 4), np.int32)), 2, ceil_mode=True),
     TypeError, "floating"),  # PyTorch averages int64 only
    (lambda x: F.adaptive_avg_pool2d(x, (2, -1)), ValueError, "output_size must be >= 0"),
    (lambda x: F.max_unpool2d(x, np.full(x.shape, 99), 2), ValueError, r"must lie in \[0, 64\)"),
    (lambda x: F.max_unpool2d(x, np.zeros(x.shape), 2), TypeError, "indices must be integers"),
    (lambda x: F.max_unpool2d(x, np.zeros(x.shape, int), 2, output_size=(2, 2)), ValueError,
     "within a stride"),
])
def test_pooling_errors(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call(cr.zeros(1, 2, 4, 4))


# ----------------------------------------------------------------------------- interpolate
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode, dims, align", [
    ("nearest", 1, None), ("nearest", 2, None), ("nearest", 3, None), ("nearest-exact", 2, None),
    ("linear", 1, False), ("linear", 1, True), ("bilinear", 2, False), ("bilinear", 2, True),
    ("bicubic", 2, False), ("bicubic", 2, True), ("trilinear", 3, False), ("area", 2, None),
])
@pytest.mark.parametrize("kwargs", [dict(size=(7, 3, 4)), dict(scale_factor=1.7),
                                    dict(scale_factor=0.6), dict(scale_factor=(2.0, 3.0, 0.5)),
                                    dict(scale_factor=2.3, recompute_scale_factor=True)])
def test_interpolate_matches_torch(mode, dims, align, kwargs, dtype) -> None:
    kwargs = {k: v[:dims] if isinstance(v, tuple) else v for k, v in kwargs.items()}
    x = RNG.standard_normal((2, 3) + (5, 9, 6)[:dims]).astype(dtype)
    a, b = cr.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = F.interpolate(a, mode=mode, align_corners=align, **kwargs)
    expected = TF.interpolate(b, mode=mode, align_corners=align, **kwargs)
    upstream = RNG.standard_normal(expected.shape).astype(dtype)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert out.shape == tuple(expected.shape) and out.dtype == dtype
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nearest_picks_torchs_pixels_for_every_size(dtype) -> None:
    for n in range(1, 30):
        x = np.arange(n, dtype=dtype)[None, None]
        for mode in ("nearest", "nearest-exact"):
            for kwargs in [dict(size=s) for s in range(1, 30)] + [
                    dict(scale_factor=f) for f in (0.3, 0.7, 1.1, 2.3, 3.7, 7 / 3)]:
                if np.floor(n * kwargs.get("scale_factor", 1)) < 1:
                    continue
                np.testing.assert_array_equal(
                    F.interpolate(cr.tensor(x), mode=mode, **kwargs).data,
                    TF.interpolate(torch.tensor(x), mode=mode, **kwargs).numpy(),
                    err_msg=f"{mode} {n} {kwargs}")


@pytest.mark.parametrize("call, error, match", [
    (lambda x: F.interpolate(x, size=3, scale_factor=2), ValueError, "exactly one"),
    (lambda x: F.interpolate(x), ValueError, "exactly one"),
    (lambda x: F.interpolate(x, 3, align_corners=True), ValueError, "align_corners is for"),
    (lambda x: F.interpolate(x, 3, mode="linear"), ValueError, "needs a 3-D input"),
    (lambda x: F.interpolate(x, 3, mode="cubic"), ValueError, "mode must be"),
    (lambda x: F.interpolate(x, 3, mode="nearest", antialias=True), ValueError, "antialias"),
    (lambda x: F.interpolate(cr.tensor(np.ones((1, 1, 2, 2), np.uint8)), 3, mode="bilinear"),
     TypeError, "needs a floating input"),
    (lambda x: F.interpolate(x, (3, 4, 5)), ValueError, "one entry per spatial dim"),
    (lambda x: F.interpolate(x, scale_factor=-1.0), ValueError, "scale_factor must be > 0"),
    (lambda x: F.interpolate(x[0, 0], 3), ValueError, "expects a batched input"),
    (lambda x: F.interpolate(cr.tensor(np.ones((1, 1, 2, 2), int)), 3), TypeError, "floating"),
])
def test_interpolate_errors(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call(cr.zeros(1, 2, 4, 4))


def test_pixel_shuffle_and_unshuffle_match_torch() -> None:
    run_both(lambda t: F.pixel_shuffle(t, 2), lambda t: TF.pixel_shuffle(t, 2),
             RNG.standard_normal((2, 1, 8, 3, 4)))
    run_both(lambda t: F.pixel_unshuffle(t, 3), lambda t: TF.pixel_unshuffle(t, 3),
             RNG.standard_normal((2, 6, 9)))
    with pytest.raises(ValueError, match="divisible by upscale_factor"):
        F.pixel_shuffle(cr.zeros(1, 3, 2, 2), 2)


# ----------------------------------------------------------------------------- layers
def _conv(cls, *args, **kwargs):
    return (lambda: getattr(nn, cls)(*args, **kwargs, **F64),
            lambda: getattr(torch.nn, cls)(*args, **kwargs).double())


def _layer(cls, *args, **kwargs):
    return lambda: getattr(nn, cls)(*args, **kwargs), lambda: getattr(torch.nn, cls)(*args,
                                                                                       **kwargs)


LAYERS = [
    ("Conv1d grouped", *_conv("Conv1d", 4, 6, 3, stride=2, padding=1, groups=2), (2, 4, 9)),
    ("Conv1d same, reflect", *_conv("Conv1d", 2, 3, 4, padding="same", padding_mode="reflect"),
     (2, 2, 7)),
    ("Conv2d circular", *_conv("Conv2d", 2, 3, 3, padding=1, padding_mode="circular"),
     (2, 2, 5, 6)),
    ("Conv2d same, replicate, even", *_conv("Conv2d", 2, 3, (2, 3), padding="same",
                                            padding_mode="replicate", bias=False), (1, 2, 5, 6)),
    ("Conv2d same, zeros, dilated", *_conv("Conv2d", 2, 3, 2, padding="same", dilation=3),
     (1, 2, 6, 6)),
    ("Conv3d", *_conv("Conv3d", 2, 4, (2, 3, 2), stride=(1, 2, 1), padding=1,
                      dilation=(1, 1, 2)), (2, 2, 4, 5, 5)),
    ("Conv3d replicate", *_conv("Conv3d", 2, 2, 3, padding=(1, 0, 1),
                                padding_mode="replicate"), (1, 2, 3, 4, 3)),
    ("ConvTranspose1d", *_conv("ConvTranspose1d", 4, 6, 3, stride=2, padding=1,
                               output_padding=1, groups=2), (2, 4, 5)),
    ("ConvTranspose2d", *_conv("ConvTranspose2d", 3, 4, 3, stride=2, padding=1,
                               output_padding=1, dilation=2), (2, 3, 4, 3)),
    ("ConvTranspose3d", *_conv("ConvTranspose3d", 2, 3, 2, stride=2, bias=False),
     (1, 2, 2, 3, 2)),
    ("MaxPool1d", *_layer("MaxPool1d", 3, 2, 1, ceil_mode=True), (2, 3, 8)),
    ("MaxPool2d options", *_layer("MaxPool2d", 3, 2, 1, dilation=2, ceil_mode=True),
     (2, 2, 9, 8)),
    ("MaxPool3d", *_layer("MaxPool3d", 2, ceil_mode=True), (1, 2, 3, 5, 4)),
    ("AvgPool1d", *_layer("AvgPool1d", 3, 2, 1, ceil_mode=True, count_include_pad=False),
     (2, 3, 8)),
    ("AvgPool2d options", *_layer("AvgPool2d", 3, 2, 1, ceil_mode=True,
                                  count_include_pad=False, divisor_override=2), (2, 2, 7, 8)),
    ("AvgPool3d", *_layer("AvgPool3d", 2, 1, 1), (1, 2, 3, 4, 3)),
    ("AdaptiveAvgPool1d", *_layer("AdaptiveAvgPool1d", 3), (2, 3, 8)),
    ("AdaptiveAvgPool2d", *_layer("AdaptiveAvgPool2d", (3, None)), (2, 3, 7, 5)),
    ("AdaptiveAvgPool3d", *_layer("AdaptiveAvgPool3d", 2), (1, 2, 3, 5, 4)),
    ("AdaptiveMaxPool1d", *_layer("AdaptiveMaxPool1d", 4), (2, 3, 9)),
    ("AdaptiveMaxPool2d", *_layer("AdaptiveMaxPool2d", (2, 3)), (2, 3, 7, 5)),
    ("Upsample bilinear corners", *_layer("Upsample", scale_factor=2, mode="bilinear",
                                          align_corners=True), (1, 2, 3, 4)),
    ("Upsample bicubic", *_layer("Upsample", size=(5, 7), mode="bicubic"), (1, 2, 3, 4)),
    ("Upsample nearest", *_layer("Upsample", scale_factor=1.5), (1, 2, 3, 4)),
    ("ZeroPad1d", *_layer("ZeroPad1d", (2, -1)), (2, 3, 4)),
    ("ZeroPad2d", *_layer("ZeroPad2d", (1, 2, 0, -1)), (2, 3, 4, 5)),
    ("ConstantPad2d", *_layer("ConstantPad2d", 2, 1.5), (2, 3, 4, 5)),
    ("ConstantPad3d", *_layer("ConstantPad3d", (1, 0, 0, 1, 1, 1), -1.0), (2, 3, 2, 2)),
    ("ReflectionPad1d", *_layer("ReflectionPad1d", 2), (2, 3, 4)),
    ("ReflectionPad2d", *_layer("ReflectionPad2d", (1, 1, 2, 0)), (2, 3, 4, 5)),
    ("ReplicationPad2d", *_layer("ReplicationPad2d", 2), (2, 3, 4, 5)),
    ("ReplicationPad3d", *_layer("ReplicationPad3d", 1), (1, 2, 3, 4, 5)),
    ("CircularPad2d", *_layer("CircularPad2d", (1, 2, 2, 1)), (2, 3, 4, 5)),
    ("PixelShuffle", *_layer("PixelShuffle", 2), (2, 8, 3, 2)),
    ("PixelUnshuffle", *_layer("PixelUnshuffle", 2), (2, 3, 4, 6)),
]


@pytest.mark.parametrize("name, make, make_torch, shape", LAYERS, ids=[r[0] for r in LAYERS])
def test_layers_match_their_torch_twins(name, make, make_torch, shape) -> None:
    check_torch_twin(name, make, make_torch, shape)
    assert repr(make()) == repr(make_torch())


@pytest.mark.parametrize("name, make, make_torch, shape", LAYERS[:10] + LAYERS[13:14],
                         ids=[r[0] for r in LAYERS[:10] + LAYERS[13:14]])
def test_layers_pass_finite_differences(name, make, make_torch, shape) -> None:
    check_finite_differences(make, shape)


def test_transposed_layer_weight_layout_and_output_size_like_torch() -> None:
    layer = nn.ConvTranspose2d(4, 6, (3, 2), stride=2, groups=2, **F64)
    twin = torch.nn.ConvTranspose2d(4, 6, (3, 2), stride=2, groups=2).double()
    assert layer.weight.shape == tuple(twin.weight.shape) == (4, 3, 3, 2)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    x = RNG.standard_normal((1, 4, 3, 3))
    for size in [(8, 7), (1, 6, 7, 6)]:
        np.testing.assert_allclose(layer(cr.tensor(x), output_size=size).data,
                                   twin(torch.tensor(x), output_size=size).detach().numpy(),
                                   rtol=1e-12)
    with pytest.raises(ValueError, match="output_size .* is not reachable"):
        layer(cr.tensor(x), output_size=(10, 6))


def test_pool_layers_with_indices_feed_unpool_layers_like_torch() -> None:
    x = RNG.standard_normal((2, 3, 6, 7))
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    values, indices = pool(cr.tensor(x))
    twin_values, twin_indices = torch.nn.MaxPool2d(2, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(indices.data, twin_indices.numpy())
    np.testing.assert_array_equal(
        unpool(values, indices, output_size=x.shape).data,
        torch.nn.MaxUnpool2d(2)(twin_values, twin_indices, output_size=x.shape).numpy())
    ours = nn.AdaptiveMaxPool2d(3, return_indices=True)(cr.tensor(x))
    theirs = torch.nn.AdaptiveMaxPool2d(3, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(ours.indices.data, theirs[1].numpy())
    ours = nn.MaxPool1d(2, return_indices=True)(cr.tensor(x[0]))
    np.testing.assert_array_equal(
        nn.MaxUnpool1d(2)(*ours, output_size=(7,)).data,
        TF.max_unpool1d(*TF.max_pool1d(torch.tensor(x[0]), 2, return_indices=True), 2,
                        output_size=(7,)).numpy())


@pytest.mark.parametrize("make, error, match", [
    (lambda: nn.Conv2d(2, 3, 3, padding_mode="mirror"), ValueError, "padding_mode must be"),
    (lambda: nn.Conv2d(2, 3, 3, padding="1"), TypeError, "padding must be an int"),
    (lambda: nn.Conv1d(2, 3, 3, padding="same", stride=2), ValueError, "needs stride 1"),
    (lambda: nn.Conv3d(2, 3, (3, 3)), ValueError, "tuple of 3 ints"),
    (lambda: nn.ConvTranspose2d(2, 3, 3, padding_mode="reflect"), ValueError,
     "only padding_mode='zeros'"),
    (lambda: nn.ConvTranspose1d(2, 3, 3, stride=2, output_padding=2), ValueError,
     "output_padding"),
    (lambda: nn.ConvTranspose2d(2, 3, 3, padding="same"), TypeError, "padding must be"),
    (lambda: nn.MaxPool3d(2, padding=2), ValueError, "at most half"),
    (lambda: nn.MaxPool2d(2, return_indices=1), TypeError, "return_indices"),
    (lambda: nn.AvgPool2d(2, divisor_override=1.5), TypeError, "divisor_override"),
    (lambda: nn.AvgPool1d(2, count_include_pad=None), TypeError, "count_include_pad"),
    (lambda: nn.AdaptiveAvgPool2d((2, 2, 2)), ValueError, "tuple of 2 ints"),
    (lambda: nn.Upsample(), ValueError, "exactly one"),
    (lambda: nn.Upsample(size=2, mode="box"), ValueError, "mode must be"),
    (lambda: nn.PixelShuffle(0), ValueError, "upscale_factor must be >= 1"),
    (lambda: nn.ReflectionPad2d((1, 2, 3)), ValueError, "tuple of 4 ints"),
])
def test_layer_settings_are_checked_where_built(make, error, match) -> None:
    with pytest.raises(error, match=match):
        make()


def test_conv_layers_explain_bad_input() -> None:
    with pytest.raises(ValueError, match=r"Conv1d\(2, 3\): expected input \(N, 2, L\)"):
        nn.Conv1d(2, 3, 3)(cr.zeros(1, 3, 5))
    with pytest.raises(ValueError, match=r"Conv3d\(2, 3\): expected input \(N, 2, D, H, W\)"):
        nn.Conv3d(2, 3, 3)(cr.zeros(1, 2, 5, 5))


# ----------------------------------------------------------------------------- review fixes
@pytest.mark.parametrize("fn, x_shape, w_shape", [
    ("conv2d", (3, 7, 6), (4, 3, 3, 2)), ("conv_transpose2d", (3, 4, 5), (3, 2, 3, 3)),
])
def test_functional_conv2d_takes_unbatched_images(fn, x_shape, w_shape) -> None:
    run_both(lambda x, w: getattr(F, fn)(x, w, None, 1, 1),
             lambda x, w: getattr(TF, fn)(x, w, None, 1, 1),
             RNG.standard_normal(x_shape), RNG.standard_normal(w_shape))


@pytest.mark.parametrize("make, shape, kwargs", [
    (lambda t, **d: t.Conv1d(3, 4, 3, padding=1, padding_mode="reflect", **d), (3, 9), {}),
    (lambda t, **d: t.Conv2d(3, 4, 3, **d), (3, 6, 7), {}),
    (lambda t, **d: t.Conv3d(2, 3, 2, **d), (2, 4, 5, 4), {}),
    (lambda t, **d: t.ConvTranspose1d(3, 4, 3, stride=3, **d), (3, 5), {"output_size": (4, 17)}),
    (lambda t, **d: t.ConvTranspose2d(3, 4, 3, stride=2, **d), (3, 4, 5),
     {"output_size": [10, 12]}),
])
def test_conv_layers_take_unbatched_input(make, shape, kwargs) -> None:
    theirs = make(torch.nn, dtype=torch.float64)
    ours = make(nn, dtype="float64")
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    run_both(lambda x: ours(x, **kwargs), lambda x: theirs(x, **kwargs),
             RNG.standard_normal(shape))


@pytest.mark.parametrize("fn, args", [("max_pool2d", (2,)), ("max_pool2d", (3, 2, 1)),
                                      ("avg_pool2d", (2,)), ("avg_pool2d", (3, 2, 1))])
def test_default_2d_pooling_takes_unbatched_images(fn, args) -> None:
    run_both(lambda t: getattr(F, fn)(t, *args), lambda t: getattr(TF, fn)(t, *args),
             RNG.standard_normal((3, 7, 8)))
    layer = {"max_pool2d": nn.MaxPool2d, "avg_pool2d": nn.AvgPool2d}[fn](*args)
    assert layer(cr.zeros(3, 7, 8)).shape == getattr(TF, fn)(torch.zeros(3, 7, 8), *args).shape


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_default_max_pool2d_on_integers_and_bools_pads_with_the_lowest_value(dtype) -> None:
    x = (RNG.integers(-9, 9, (2, 3, 7, 8)) if dtype is not np.bool_
         else np.zeros((2, 3, 7, 8), bool)).astype(dtype)
    for args in [(2,), (3, 2, 1)]:
        out = F.max_pool2d(cr.tensor(x), *args)
        expected = torch.tensor(x.astype(np.int64)).to(torch.int64)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out.data, TF.max_pool2d(expected, *args).numpy())


def test_avg_pool_on_int64_truncates_like_torch() -> None:
    x = RNG.integers(-9, 9, (2, 3, 7, 8))
    for args in [(2,), (3, 2, 1, True, False), (2, 2, 0, False, True, 3)]:
        out = F.avg_pool2d(cr.tensor(x), *args)
        assert out.dtype == np.int64
        np.testing.assert_array_equal(out.data, TF.avg_pool2d(torch.tensor(x), *args).numpy())
    np.testing.assert_array_equal(F.avg_pool1d(cr.tensor(x[0]), 3).data,
                                  TF.avg_pool1d(torch.tensor(x[0]), 3).numpy())


def test_an_empty_stride_means_the_kernel_size() -> None:
    x = RNG.standard_normal((1, 2, 6, 6))
    for fn in ("max_pool2d", "avg_pool2d"):
        for stride in ([], ()):
            run_both(lambda t: getattr(F, fn)(t, 3, stride),
                     lambda t: getattr(TF, fn)(t, 3, stride), x)


def test_pool_layers_keep_torchs_default_stride() -> None:
    for name in ("MaxPool2d", "AvgPool2d"):
        assert getattr(nn, name)(3).stride == getattr(torch.nn, name)(3).stride == 3
        assert repr(getattr(nn, name)(3)) == repr(getattr(torch.nn, name)(3))


def test_pad_takes_a_zero_value_in_every_mode() -> None:
    for mode in ("reflect", "replicate", "circular"):
        run_both(lambda t: F.pad(t, (1, 2), mode, 0.0), lambda t: TF.pad(t, (1, 2), mode, 0.0),
                 RNG.standard_normal((2, 3, 5)))


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("kwargs", [dict(size=(5, 4)), dict(size=(20, 3)),
                                    dict(scale_factor=0.37), dict(size=(4, 3), align_corners=True),
                                    dict(size=(12, 10))])
def test_interpolate_antialias_matches_torch(mode, kwargs) -> None:
    run_both(lambda t: F.interpolate(t, mode=mode, antialias=True, **kwargs),
             lambda t: TF.interpolate(t, mode=mode, antialias=True, **kwargs),
             RNG.standard_normal((2, 3, 12, 10)))


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_interpolate_resizes_uint8_images_like_torch(mode) -> None:
    x = RNG.integers(0, 255, (1, 3, 5, 6)).astype(np.uint8)
    for kwargs in (dict(size=(9, 4)), dict(scale_factor=1.7), dict(size=(3, 11))):
        out = F.interpolate(cr.tensor(x), mode=mode, **kwargs)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out.data, TF.interpolate(torch.tensor(x), mode=mode,
                                                               **kwargs).numpy())


def test_upsample_functions_and_layers_match_torch() -> None:
    from chainrule.nn import pool as layers
    from chainrule.ops import resize

    x = RNG.standard_normal((2, 3, 4, 5))
    run_both(lambda t: resize.upsample(t, scale_factor=2, mode="bilinear"),
             lambda t: TF.interpolate(t, scale_factor=2, mode="bilinear"), x)
    run_both(lambda t: resize.upsample_nearest(t, (7, 9)),
             lambda t: TF.interpolate(t, (7, 9), mode="nearest"), x)
    run_both(lambda t: resize.upsample_bilinear(t, scale_factor=2),
             lambda t: TF.interpolate(t, scale_factor=2, mode="bilinear", align_corners=True),
             x)
    run_both(layers.UpsamplingNearest2d(scale_factor=2),
             torch.nn.UpsamplingNearest2d(scale_factor=2), x)
    run_both(layers.UpsamplingBilinear2d(size=(5, 7)),
             torch.nn.UpsamplingBilinear2d(size=(5, 7)), x)


def test_the_3d_layers_torch_has_match_torch() -> None:
    from chainrule.nn import pool as layers

    x = RNG.standard_normal((2, 2, 4, 6, 6))
    run_both(layers.ZeroPad3d((1, 0, 2, 1, 0, 1)), torch.nn.ZeroPad3d((1, 0, 2, 1, 0, 1)), x)
    run_both(layers.AdaptiveMaxPool3d((2, 3, 2)), torch.nn.AdaptiveMaxPool3d((2, 3, 2)), x)
    ours = layers.AdaptiveMaxPool3d(2, return_indices=True)(cr.tensor(x))
    theirs = torch.nn.AdaptiveMaxPool3d(2, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(ours.indices.data, theirs[1].numpy())
    run_both(lambda t: layers.MaxUnpool3d(2)(*nn.MaxPool3d(2, return_indices=True)(t)),
             lambda t: torch.nn.MaxUnpool3d(2)(*torch.nn.MaxPool3d(2, return_indices=True)(t)),
             x)
