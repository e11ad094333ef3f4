"""Layers, the Module base, initialisation and losses."""

from chainrule.nn import functional, init
from chainrule.nn.activation import (
    CELU,
    ELU,
    GELU,
    GLU,
    SELU,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    Mish,
    PReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softmin,
    Softplus,
    Softsign,
    Tanh,
)
from chainrule.nn.attention import MultiheadAttention
from chainrule.nn.container import Sequential
from chainrule.nn.conv import (
    AvgPool2d,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    Flatten,
    GlobalAvgPool2d,
    MaxPool2d,
)
from chainrule.nn.dropout import Dropout
from chainrule.nn.embedding import Embedding
from chainrule.nn.fused import BatchNormMaxPool2d, Fused, LinearReLU, fuse, unfuse
from chainrule.nn.linear import Bilinear, Linear
from chainrule.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from chainrule.nn.misc import CosineSimilarity, Identity, Unflatten
from chainrule.nn.module import Module, Parameter
from chainrule.nn.norm import (
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    GroupNorm,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    LayerNorm,
    RMSNorm,
)
from chainrule.nn.pool import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
    AvgPool1d,
    AvgPool3d,
    CircularPad1d,
    CircularPad2d,
    CircularPad3d,
    ConstantPad1d,
    ConstantPad2d,
    ConstantPad3d,
    MaxPool1d,
    MaxPool3d,
    MaxUnpool1d,
    MaxUnpool2d,
    MaxUnpool3d,
    PixelShuffle,
    PixelUnshuffle,
    ReflectionPad1d,
    ReflectionPad2d,
    ReflectionPad3d,
    ReplicationPad1d,
    ReplicationPad2d,
    ReplicationPad3d,
    Upsample,
    UpsamplingBilinear2d,
    UpsamplingNearest2d,
    ZeroPad1d,
    ZeroPad2d,
    ZeroPad3d,
)
from chainrule.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from chainrule.nn.residual import ResidualBlock
from chainrule.nn.transformer import GPT, CausalSelfAttention, TransformerBlock
from chainrule.ops.loss import mse

__all__ = [
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "BatchNormMaxPool2d", "BCELoss",
    "BCEWithLogitsLoss", "Bilinear", "CausalSelfAttention", "CELU", "CircularPad1d",
    "CircularPad2d", "CircularPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "CosineSimilarity", "CrossEntropyLoss", "Dropout", "ELU", "Embedding", "Flatten",
    "functional", "fuse", "Fused", "GELU", "GlobalAvgPool2d", "GLU", "GPT", "GroupNorm", "GRU",
    "GRUCell", "Hardsigmoid", "Hardswish", "Hardtanh", "HuberLoss", "Identity", "init",
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "KLDivLoss", "L1Loss", "LayerNorm",
    "LeakyReLU", "Linear", "LinearReLU", "LogSigmoid", "LogSoftmax", "LSTM", "LSTMCell",
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d", "Mish",
    "Module", "mse", "MSELoss", "MultiheadAttention", "NLLLoss", "Parameter", "PixelShuffle",
    "PixelUnshuffle", "PReLU", "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReLU",
    "ReLU6", "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d", "ResidualBlock",
    "RMSNorm", "RNN", "RNNCell", "SELU", "Sequential", "Sigmoid", "SiLU", "SmoothL1Loss",
    "Softmax", "Softmin", "Softplus", "Softsign", "Tanh", "TransformerBlock", "Unflatten",
    "unfuse", "Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d", "ZeroPad1d",
    "ZeroPad2d", "ZeroPad3d",
]
