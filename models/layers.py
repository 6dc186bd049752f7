"""Small building blocks shared by several model families (as timm's ``layers/``).

Only blocks used by more than one family live here, each once; a block particular to one family
stays in that family's file. Where families used to name a block's children differently, the
block takes an argument that keeps each family's state-dict keys (checkpoints load unchanged).
Blocks that fold at deploy time call ``reparam`` (which sits under ``models`` and imports no model).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reparam.fuse import fold_bn_into_following_linear, fuse_conv_bn
from reparam.layers import conv2d_from, linear_from


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round a channel count to a multiple of ``divisor`` without dropping more than 10%.

    This is the rounding of the TensorFlow MobileNet code that most mobile backbones inherit.
    """
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Per-sample stochastic depth on a residual branch: zero a sample's branch with probability
    ``rate`` and scale the kept ones by ``1 / (1 - rate)``; the identity at eval time."""
    if not training or rate == 0.0:
        return x
    keep = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device).ge_(rate).div(1 - rate)
    return x * keep


def split_qkv(qkv: torch.Tensor, num_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, N, 3 * D) -> q, k, v, each (B, heads, N, D / heads): the fused projection's three parts split into
    heads with one rank-5 transpose (q's channels come first, then k's, then v's: ``chunk(3)`` order)."""
    batch, tokens, channels = qkv.shape
    parts = qkv.reshape(batch, tokens, 3, num_heads, channels // (3 * num_heads)).permute(2, 0, 3, 1, 4)
    return parts[0], parts[1], parts[2]


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor (parameters ``weight`` and ``bias``, one per channel).

    ``decomposed=False`` permutes to NHWC and calls ``F.layer_norm`` (timm's form; exports as one
    LayerNormalization op). ``decomposed=True`` computes mean and variance over the channel axis
    with elementwise ops, as EdgeNeXt's official ``channels_first`` LayerNorm does: the same
    function, but its float rounding and its exported graph are that code's, so EdgeNeXt keeps them.
    """

    def __init__(self, channels: int, eps: float = 1e-6, decomposed: bool = False):
        super().__init__(channels, eps=eps)
        self.decomposed = decomposed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.decomposed:
            mean = x.mean(1, keepdim=True)
            var = (x - mean).pow(2).mean(1, keepdim=True)
            x = (x - mean) / torch.sqrt(var + self.eps)
            return self.weight[:, None, None] * x + self.bias[:, None, None]
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Mlp(nn.Module):
    """Token MLP on the last axis: Linear -> GELU -> Linear (children ``fc1``, ``act``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ConvBN(nn.Sequential):
    """Conv2d without bias followed by BatchNorm2d (children ``c`` and ``bn``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, bn_weight_init: float = 1.0):
        super().__init__()
        self.add_module("c", nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                       dilation, groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_channels))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.constant_(self.bn.bias, 0.0)

    def reparameterize(self) -> nn.Module:
        """One Conv2d with bias: the BatchNorm folded into the conv (exact for any padding and groups)."""
        return conv2d_from(self.c, *fuse_conv_bn(self.c, self.bn))


class BNLinear(nn.Sequential):
    """BatchNorm1d followed by Linear (children ``bn`` and ``l``), a LeViT-style head."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, std: float = 0.02):
        super().__init__()
        self.add_module("bn", nn.BatchNorm1d(in_features))
        self.add_module("l", nn.Linear(in_features, out_features, bias=bias))
        nn.init.trunc_normal_(self.l.weight, std=std)
        if bias:
            nn.init.constant_(self.l.bias, 0.0)

    def reparameterize(self) -> nn.Module:
        """One Linear with bias: the BatchNorm folded into the linear's input side."""
        return linear_from(*fold_bn_into_following_linear(self.bn, self.l.weight, self.l.bias))


class ConvBNAct(nn.Sequential):
    """``ConvBN`` ('same' padding for odd kernels) then an activation.

    The children are ``conv`` and ``act`` (timm's names, MobileNet's and EfficientNet's keys);
    ``numbered=True`` names them ``0`` and ``1``, the keys of the families that wrote this block as
    a plain ``nn.Sequential`` (MobileViT, EfficientNet's stem), so their checkpoints keep loading.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 groups: int = 1, *, act_layer: type[nn.Module], numbered: bool = False):
        super().__init__()
        conv_name, act_name = ("0", "1") if numbered else ("conv", "act")
        self.add_module(conv_name, ConvBN(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                                          groups=groups))
        self.add_module(act_name, act_layer())


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation with a ReLU bottleneck and a sigmoid gate (timm's default form)."""

    def __init__(self, channels: int, rd_ratio: float = 0.25, rd_divisor: int = 8,
                 act_layer: type[nn.Module] = nn.ReLU, gate_layer: type[nn.Module] = nn.Sigmoid):
        super().__init__()
        reduced = make_divisible(channels * rd_ratio, rd_divisor, round_limit=0.0)
        self.conv_reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = act_layer()
        self.conv_expand = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = gate_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = self.conv_expand(self.act(self.conv_reduce(scale)))
        return x * self.gate(scale)


class SqueezeExciteReduced(nn.Module):
    """Squeeze-and-excitation whose bottleneck width is given by the caller.

    MobileNetV3 and EfficientNet round the bottleneck differently (``make_divisible`` of the
    expanded width versus ``round`` of the block's input width), so the family computes it.
    """

    def __init__(self, channels: int, reduced_channels: int, act_layer: type[nn.Module] = nn.ReLU,
                 gate_layer: type[nn.Module] = nn.Sigmoid):
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, reduced_channels, 1, bias=True)
        self.act = act_layer()
        self.conv_expand = nn.Conv2d(reduced_channels, channels, 1, bias=True)
        self.gate = gate_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = self.conv_expand(self.act(self.conv_reduce(scale)))
        return x * self.gate(scale)


class DepthwiseSeparable(nn.Module):
    """MobileNet's depthwise-separable block: dw kxk+BN+act, optional SE, 1x1+BN (no act).

    The residual is added when the block keeps its shape (stride 1, same channels).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 act_layer: type[nn.Module], se: nn.Module | None = None):
        super().__init__()
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_dw = ConvBN(in_channels, in_channels, kernel_size, stride, kernel_size // 2, groups=in_channels)
        self.act = act_layer()
        self.se = se if se is not None else nn.Identity()
        self.conv_pw = ConvBN(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_pw(self.se(self.act(self.conv_dw(x))))
        return x + out if self.has_skip else out


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 and EfficientNet's MBConv: 1x1 expand+BN+act, dw kxk+BN+act, optional SE,
    1x1 project+BN (linear bottleneck), residual when the block keeps its shape."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, kernel_size: int, stride: int,
                 act_layer: type[nn.Module], se: nn.Module | None = None):
        super().__init__()
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_pw = ConvBN(in_channels, mid_channels, 1)
        self.act1 = act_layer()
        self.conv_dw = ConvBN(mid_channels, mid_channels, kernel_size, stride, kernel_size // 2, groups=mid_channels)
        self.act2 = act_layer()
        self.se = se if se is not None else nn.Identity()
        self.conv_pwl = ConvBN(mid_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act2(self.conv_dw(self.act1(self.conv_pw(x))))
        out = self.conv_pwl(self.se(out))
        return x + out if self.has_skip else out
