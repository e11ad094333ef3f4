"""PyTorch's torch.nn.functional, in one place: ``from chainrule.nn import functional as F``.
Activations, convolution, pooling, padding, resizing, normalisation, dropout, embedding and the
losses; each is a registered op (or a composite of ops) from chainrule.ops."""

from chainrule.ops.activation import (
    celu,
    elu,
    glu,
    hardsigmoid,
    hardswish,
    hardtanh,
    logsigmoid,
    mish,
    prelu,
    relu6,
    selu,
    softmin,
    softplus,
    softsign,
)
from chainrule.ops.attention import scaled_dot_product_attention, self_attention
from chainrule.ops.conv import (
    avg_pool2d,
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    max_pool2d,
)
from chainrule.ops.elementwise import dropout, gelu, leaky_relu, relu, sigmoid, silu, tanh
from chainrule.ops.embedding import bilinear, embedding
from chainrule.ops.linalg import linear
from chainrule.ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cosine_similarity,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    log_softmax,
    mse,
    nll_loss,
    normalize,
    smooth_l1_loss,
    softmax,
)
from chainrule.ops.norm import batch_norm, group_norm, instance_norm, layer_norm, rms_norm
from chainrule.ops.pad import pad
from chainrule.ops.pool import (
    PoolResult,
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    adaptive_max_pool3d,
    avg_pool1d,
    avg_pool3d,
    max_pool1d,
    max_pool3d,
    max_unpool1d,
    max_unpool2d,
    max_unpool3d,
)
from chainrule.ops.resize import (
    interpolate,
    pixel_shuffle,
    pixel_unshuffle,
    upsample,
    upsample_bilinear,
    upsample_nearest,
)
from chainrule.ops.shape import one_hot

mse_loss = mse

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "adaptive_max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "batch_norm", "bilinear", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "celu", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "cosine_similarity", "cross_entropy", "dropout", "elu", "embedding",
    "gelu", "glu", "group_norm", "hardsigmoid", "hardswish", "hardtanh", "huber_loss",
    "instance_norm", "interpolate", "kl_div", "l1_loss", "layer_norm", "leaky_relu", "linear",
    "log_softmax", "logsigmoid", "max_pool1d", "max_pool2d", "max_pool3d", "max_unpool1d",
    "max_unpool2d", "max_unpool3d", "mish", "mse", "mse_loss", "nll_loss", "normalize",
    "one_hot", "pad", "pixel_shuffle", "pixel_unshuffle", "PoolResult", "prelu", "relu",
    "relu6", "rms_norm", "scaled_dot_product_attention", "self_attention", "selu", "sigmoid",
    "silu", "smooth_l1_loss", "softmax", "softmin", "softplus", "softsign", "tanh", "upsample",
    "upsample_bilinear", "upsample_nearest",
]
