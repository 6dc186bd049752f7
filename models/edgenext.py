"""EdgeNeXt: Efficiently Amalgamated CNN-Transformer Architecture for Mobile Vision Applications
(Maaz et al., ECCV Workshops 2022).

Reference implementation: https://github.com/mmaaz60/EdgeNeXt (``models/edgenext.py``,
``models/edgenext_bn_hs.py``, ``models/conv_encoder.py``, ``models/sdta_encoder.py``).

A four-stage ConvNeXt-like network. Every stage but the first ends with one split depth-wise
transposed attention (SDTA) encoder: the channels are split into groups, a chain of 3x3 depthwise
convs runs over them (each group adding the previous group's output, as in Res2Net), and then
channel-wise transposed attention (XCA: a C/h x C/h attention map per head, built from
L2-normalized queries and keys and a learned per-head temperature) mixes them globally; an
inverted-bottleneck MLP follows. The other blocks are conv encoders: a kxk depthwise conv, a norm
and an inverted-bottleneck MLP. Both carry layer scale.

Two block generations exist in the official code: LayerNorm + GELU (``edgenext_*``) and
BatchNorm + Hardswish (``edgenext_*_bn_hs``), whose norms can all be folded away except the one
in front of XCA (its output also feeds the residual). Official module names are kept so official
checkpoints load as they are.

Deploy form (``reparameterize`` hooks): layer scales are folded into the projection before them
(``pwconv2``, ``xca.proj``); in the BN-HS variants every conv-BN, the BN before a 1x1 projection,
the BN before each 2x2 downsampling conv and the BN before the classifier are folded too.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import ConvBN, LayerNorm2d, drop_path
from models.spec import Variant
from models.weights import CheckpointLayout, class_count, rename_keys
from reparam.fuse import (fold_bn_into_following_conv, fold_bn_into_following_linear, fold_scale_into_linear,
                          fuse_conv_bn)
from reparam.layers import conv2d_from, fold_norms, linear_from

PAPER = ("EdgeNeXt: Efficiently Amalgamated CNN-Transformer Architecture for Mobile Vision "
         "Applications (ECCV Workshops 2022)")
REFERENCE = "https://github.com/mmaaz60/EdgeNeXt"
LATENCY_DEVICE = "NVIDIA Jetson Nano, batch 1 (1000 / FPS quoted in the official models/model.py)"


class PositionalEncodingFourier(nn.Module):
    """Fixed sine/cosine features of the (row, column) position, projected by a 1x1 conv.

    The official code builds the positions with ``cumsum`` over a mask of ones; ``arange`` gives
    the same float32 values and exports as a constant of the static feature-map size.
    """

    def __init__(self, dim: int, hidden_dim: int = 32, temperature: float = 10000.0):
        super().__init__()
        self.token_projection = nn.Conv2d(hidden_dim * 2, dim, kernel_size=1)
        self.hidden_dim = hidden_dim
        self.temperature = temperature

    def features(self, height: int, width: int) -> torch.Tensor:
        """The (1, 2 * hidden_dim, height, width) Fourier features before the projection."""
        scale, eps = 2 * math.pi, 1e-6
        device = self.token_projection.weight.device
        y_embed = torch.arange(1, height + 1, dtype=torch.float32, device=device) / (height + eps) * scale
        x_embed = torch.arange(1, width + 1, dtype=torch.float32, device=device) / (width + eps) * scale
        dim_t = torch.arange(self.hidden_dim, dtype=torch.float32, device=device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.hidden_dim)
        pos_y = y_embed[:, None] / dim_t  # (H, hidden)
        pos_x = x_embed[:, None] / dim_t  # (W, hidden)
        pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)
        pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)
        pos_y = pos_y[:, None, :].expand(height, width, self.hidden_dim)
        pos_x = pos_x[None, :, :].expand(height, width, self.hidden_dim)
        return torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1).unsqueeze(0)

    def forward(self, height: int, width: int) -> torch.Tensor:
        # features are float32 (the official values); the projection may run in another dtype
        return self.token_projection(self.features(height, width).to(self.token_projection.weight.dtype))

    def reparameterize(self) -> nn.Module:
        """The deploy form: the same embedding, computed once per size and exported as a constant."""
        frozen = FrozenPositionalEncoding(self.token_projection.out_channels, self.hidden_dim, self.temperature)
        frozen.token_projection = self.token_projection
        return frozen


class FrozenPositionalEncoding(PositionalEncodingFourier):
    """``PositionalEncodingFourier`` whose output, which depends only on (height, width) and the
    projection's weights, is computed eagerly once per size and handed to tracers as a constant.

    The plain form exports its ~20 ops on constants into every graph; LiteRT does not fold them, and
    runs FLOOR_DIV, POW, STRIDED_SLICE and BROADCAST_TO outside XNNPACK, splitting the graph into
    partitions. Here a graph holds one tensor. The values are the plain form's (the same ops, run
    eagerly). The cache is keyed by size, dtype and device and stamped with the projection's version
    counters, so weights changed in place are recomputed on the next eager call; a tracer sees the
    value of the last eager call at that size (exports run the model eagerly for the parity gate
    first) or, without one, the plain ops.
    """

    def __init__(self, dim: int, hidden_dim: int = 32, temperature: float = 10000.0):
        super().__init__(dim, hidden_dim, temperature)
        self._cache: dict[tuple, tuple[tuple, torch.Tensor]] = {}

    def forward(self, height: int, width: int) -> torch.Tensor:
        weight, bias = self.token_projection.weight, self.token_projection.bias
        key = (height, width, weight.dtype, weight.device)
        cached = self._cache.get(key)
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return cached[1] if cached is not None else super().forward(height, width)
        stamp = (id(weight), weight._version, id(bias), bias._version if bias is not None else 0)
        if cached is None or cached[0] != stamp:
            with torch.no_grad():
                cached = self._cache[key] = (stamp, super().forward(height, width))
        return cached[1]

    def reparameterize(self) -> nn.Module:
        return self


class XCA(nn.Module):
    """Cross-covariance (channel-wise transposed) attention over tokens (B, N, C).

    Each head attends over its C/h channels: the attention map is (C/h x C/h), so the cost is
    linear in the number of tokens.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"XCA: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, channels // self.num_heads)
        qkv = qkv.permute(2, 0, 3, 4, 1)  # (3, B, heads, C/h, N): channels are the attention axis
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        attn = attn.softmax(dim=-1)
        x = (attn @ v).permute(0, 3, 1, 2).reshape(batch, tokens, channels)
        return self.proj(x)


def _scaled_linear(linear: nn.Linear, scale: torch.Tensor) -> nn.Linear:
    """A copy of ``linear`` whose output is multiplied by a per-output-channel ``scale``."""
    return linear_from(*fold_scale_into_linear(linear.weight, linear.bias, scale))


def _bn_then_linear(bn: nn.BatchNorm2d, linear: nn.Linear) -> nn.Linear:
    """One Linear equal to ``linear`` applied (channel-last) to the output of ``bn``."""
    return linear_from(*fold_bn_into_following_linear(bn, linear.weight, linear.bias))


class ConvEncoder(nn.Module):
    """Conv encoder: kxk depthwise conv, norm, 4x MLP, layer scale, residual.

    ``bn_hs`` selects the BatchNorm + Hardswish generation (the depthwise conv then has no bias,
    the norm is a BatchNorm before the permute). ``deploy`` is the folded form: a biased
    depthwise conv, no norm, no layer scale.
    """

    def __init__(self, dim: int, kernel_size: int = 7, expan_ratio: int = 4, layer_scale_init_value: float = 1e-6,
                 bn_hs: bool = False, deploy: bool = False, drop_path: float = 0.0):
        super().__init__()
        self.bn_hs, self.deploy, self.drop_path = bn_hs, deploy, drop_path
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim,
                                bias=deploy or not bn_hs)
        if deploy:
            self.norm = nn.Identity()
        else:
            self.norm = nn.BatchNorm2d(dim) if bn_hs else nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, expan_ratio * dim)
        self.act = nn.Hardswish() if bn_hs else nn.GELU()
        self.pwconv2 = nn.Linear(expan_ratio * dim, dim)
        use_gamma = layer_scale_init_value > 0 and not deploy
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim)) if use_gamma else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.dwconv(x)
        if self.bn_hs:
            x = self.norm(x).permute(0, 2, 3, 1)
        else:
            x = self.norm(x.permute(0, 2, 3, 1))
        x = self.pwconv2(self.act(self.pwconv1(x)))
        if self.gamma is not None:
            x = self.gamma * x
        return shortcut + drop_path(x.permute(0, 3, 1, 2), self.drop_path, self.training)

    def reparameterize(self) -> nn.Module:
        """Fold layer scale into ``pwconv2`` and, for BN-HS, the BatchNorm into the depthwise conv; a LayerNorm's
        affine part into ``pwconv1`` (``reparam.layers.fold_norms``)."""
        if self.deploy or (self.gamma is None and not self.bn_hs):
            return self if self.bn_hs else fold_norms(self, ("norm", "pwconv1"))
        dim = self.dwconv.in_channels
        fused = ConvEncoder(dim, self.dwconv.kernel_size[0], self.pwconv1.out_features // dim,
                            bn_hs=self.bn_hs, deploy=self.bn_hs, drop_path=self.drop_path)
        fused.to(device=self.pwconv1.weight.device, dtype=self.pwconv1.weight.dtype)
        with torch.no_grad():
            if self.bn_hs:
                weight, bias = fuse_conv_bn(self.dwconv, self.norm)
                fused.dwconv.weight.copy_(weight)
                fused.dwconv.bias.copy_(bias)
            else:
                fused.dwconv.load_state_dict(self.dwconv.state_dict())
                fused.norm.load_state_dict(self.norm.state_dict())
            fused.pwconv1.load_state_dict(self.pwconv1.state_dict())
            fused.pwconv2 = self.pwconv2 if self.gamma is None else _scaled_linear(self.pwconv2, self.gamma)
        fused.gamma = None
        return (fused if self.bn_hs else fold_norms(fused, ("norm", "pwconv1"))).eval()


class SDTAEncoder(nn.Module):
    """Split depth-wise transposed attention encoder: Res2Net-style depthwise convs, XCA, 4x MLP.

    ``bn_hs`` selects the BatchNorm + Hardswish generation (the norm before XCA is applied to the
    feature map and its output feeds the residual; the norm before the MLP is a BatchNorm).
    """

    def __init__(self, dim: int, num_heads: int = 8, scales: int = 1, expan_ratio: int = 4, use_pos_emb: bool = False,
                 layer_scale_init_value: float = 1e-6, bn_hs: bool = False, deploy: bool = False,
                 drop_path: float = 0.0):
        super().__init__()
        self.bn_hs, self.deploy, self.drop_path = bn_hs, deploy, drop_path
        self.dim, self.scales, self.num_heads = dim, scales, num_heads
        self.width = max(math.ceil(dim / scales), dim // scales)
        self.nums = 1 if scales == 1 else scales - 1
        self.convs = nn.ModuleList(
            nn.Conv2d(self.width, self.width, 3, padding=1, groups=self.width) for _ in range(self.nums))
        self.pos_embd = PositionalEncodingFourier(dim) if use_pos_emb else None
        self.norm_xca = nn.BatchNorm2d(dim) if bn_hs else nn.LayerNorm(dim, eps=1e-6)
        self.xca = XCA(dim, num_heads)
        if deploy and bn_hs:
            self.norm = nn.Identity()
        else:
            self.norm = nn.BatchNorm2d(dim) if bn_hs else nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, expan_ratio * dim)
        self.act = nn.Hardswish() if bn_hs else nn.GELU()
        self.pwconv2 = nn.Linear(expan_ratio * dim, dim)
        use_gamma = layer_scale_init_value > 0 and not deploy
        self.gamma_xca = nn.Parameter(layer_scale_init_value * torch.ones(dim)) if use_gamma else None
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim)) if use_gamma else None

    def _split_convs(self, x: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(x, self.width, 1)
        outs = []
        sp = chunks[0]
        for i, conv in enumerate(self.convs):
            sp = conv(chunks[0] if i == 0 else sp + chunks[i])
            outs.append(sp)
        return torch.cat(outs + [chunks[self.nums]], 1) if len(chunks) > self.nums else torch.cat(outs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self._split_convs(x)
        batch, channels, height, width = x.shape
        if self.bn_hs:
            x = self.norm_xca(x)
        x = x.reshape(batch, channels, height * width).permute(0, 2, 1)  # (B, N, C)
        if self.pos_embd is not None:
            x = x + self.pos_embd(height, width).reshape(1, channels, height * width).permute(0, 2, 1)
        attn = self.xca(x if self.bn_hs else self.norm_xca(x))
        if self.gamma_xca is not None:
            attn = self.gamma_xca * attn
        x = x + drop_path(attn, self.drop_path, self.training)
        if self.bn_hs:
            x = self.norm(x.reshape(batch, height, width, channels).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        else:
            x = self.norm(x.reshape(batch, height, width, channels))
        x = self.pwconv2(self.act(self.pwconv1(x)))
        if self.gamma is not None:
            x = self.gamma * x
        return shortcut + drop_path(x.permute(0, 3, 1, 2), self.drop_path, self.training)

    def reparameterize(self) -> nn.Module:
        """Fold both layer scales into ``xca.proj`` and ``pwconv2``; for BN-HS the MLP's BatchNorm into ``pwconv1``,
        otherwise each LayerNorm's affine part into the linear that reads it (``reparam.layers.fold_norms``)."""
        norm_pairs = (("norm_xca", "xca.qkv"), ("norm", "pwconv1"))
        if self.deploy or (self.gamma is None and not self.bn_hs):
            return self if self.bn_hs else fold_norms(self, *norm_pairs)
        fused = copy.deepcopy(self)
        fused.deploy = True
        with torch.no_grad():
            if self.gamma_xca is not None:
                fused.xca.proj = _scaled_linear(self.xca.proj, self.gamma_xca)
            if self.gamma is not None:
                fused.pwconv2 = _scaled_linear(self.pwconv2, self.gamma)
            if self.bn_hs:
                fused.pwconv1 = _bn_then_linear(self.norm, self.pwconv1)
                fused.norm = nn.Identity()
        fused.gamma_xca = None
        fused.gamma = None
        return (fused if self.bn_hs else fold_norms(fused, *norm_pairs)).eval()


class BNConv(nn.Sequential):
    """BatchNorm2d then an unpadded Conv2d (children ``0`` and ``1``): the BN-HS downsampling layer."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__(nn.BatchNorm2d(in_channels),
                         nn.Conv2d(in_channels, out_channels, kernel_size, stride, bias=False))

    def reparameterize(self) -> nn.Module:
        """One Conv2d with bias: exact because the conv has no padding."""
        bn, conv = self[0], self[1]
        return conv2d_from(conv, *fold_bn_into_following_conv(bn, conv.weight, conv.bias)).eval()


class ClassifierHead(nn.Module):
    """Global average pool, norm, linear. The BN-HS form normalizes the feature map before pooling."""

    def __init__(self, dim: int, num_classes: int, bn_hs: bool = False, deploy: bool = False):
        super().__init__()
        self.bn_hs = bn_hs
        if deploy:
            self.norm = nn.Identity()
        else:
            self.norm = nn.BatchNorm2d(dim) if bn_hs else nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bn_hs:
            return self.head(self.norm(x).mean((-2, -1)))
        return self.head(self.norm(x.mean((-2, -1))))

    def reparameterize(self) -> nn.Module:
        """BN-HS: the BatchNorm commutes with the average pool, so it folds into the linear."""
        if not self.bn_hs or isinstance(self.norm, nn.Identity) or not isinstance(self.head, nn.Linear):
            return self
        fused = ClassifierHead(self.head.in_features, self.head.out_features, bn_hs=True, deploy=True)
        fused.head = _bn_then_linear(self.norm, self.head)
        return fused.eval()


class EdgeNeXt(nn.Module):
    """EdgeNeXt: a 4x4 patchify stem, four stages separated by 2x2 strided convs, a norm+linear head."""

    def __init__(self, depths: tuple[int, ...], dims: tuple[int, ...], global_blocks: tuple[int, ...],
                 kernel_sizes: tuple[int, ...], heads: tuple[int, ...], d2_scales: tuple[int, ...],
                 use_pos_embd_xca: tuple[bool, ...], expan_ratio: int = 4, bn_hs: bool = False,
                 num_classes: int = 1000, layer_scale_init_value: float = 1e-6, drop_path_rate: float = 0.0):
        super().__init__()
        if bn_hs:
            stem = ConvBN(3, dims[0], 4, 4)
        else:
            stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], decomposed=True))
        self.downsample_layers = nn.ModuleList([stem])
        for i in range(3):
            if bn_hs:
                self.downsample_layers.append(BNConv(dims[i], dims[i + 1], 2, 2))
            else:
                self.downsample_layers.append(nn.Sequential(LayerNorm2d(dims[i], decomposed=True),
                                                            nn.Conv2d(dims[i], dims[i + 1], 2, 2)))
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        block_index = 0
        for i, depth in enumerate(depths):
            blocks = []
            for j in range(depth):
                rate = rates[block_index + j]
                if j >= depth - global_blocks[i]:
                    blocks.append(SDTAEncoder(dims[i], heads[i], d2_scales[i], expan_ratio, use_pos_embd_xca[i],
                                              layer_scale_init_value, bn_hs, drop_path=rate))
                else:
                    blocks.append(ConvEncoder(dims[i], kernel_sizes[i], expan_ratio, layer_scale_init_value,
                                              bn_hs, drop_path=rate))
            block_index += depth
            self.stages.append(nn.Sequential(*blocks))
        self.num_features = dims[-1]
        self.classifier = ClassifierHead(dims[-1], num_classes, bn_hs)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for downsample, stage in zip(self.downsample_layers, self.stages):
            x = stage(downsample(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


# Variants as data (the official ``models/model.py``): every variant has one SDTA encoder at the
# end of stages 2-4, positional encoding in stage 2's, kernels 3/5/7/9 and Res2Net scales 2/2/3/4.
_COMMON = dict(global_blocks=(0, 1, 1, 1), kernel_sizes=(3, 5, 7, 9), d2_scales=(2, 2, 3, 4),
               use_pos_embd_xca=(False, True, False, False))
_XX_SMALL = dict(depths=(2, 2, 6, 2), dims=(24, 48, 88, 168), heads=(4, 4, 4, 4), **_COMMON)
_X_SMALL = dict(depths=(3, 3, 9, 3), dims=(32, 64, 100, 192), heads=(4, 4, 4, 4), **_COMMON)
_SMALL = dict(depths=(3, 3, 9, 3), dims=(48, 96, 160, 304), heads=(8, 8, 8, 8), **_COMMON)
_MACS_NOTE = ("official MAC count {} M at 256x256 (fvcore, which also counts normalization layers); "
              "torch.utils.flop_counter, counting convs, linears and the XCA matmuls only, gives about 1% less")
_OFFICIAL_TOP1 = "top-1 as quoted in the official models/model.py (no distillation); "
_BN_HS = "BatchNorm + Hardswish instead of LayerNorm + GELU (official models/model.py); "


def _variant(kwargs: dict, label: str, params_m: float, gmacs: float | None, top1: float,
             latency_ms: float | None, notes: str, crop_pct: float = 0.9) -> Variant:
    # evaluation transform: timm's edgenext cfgs (0.9 bicubic; 0.95 for the USI-trained small and base weights)
    return Variant(kwargs, dict(variant=label, paper=PAPER, reference_impl=REFERENCE, input_size=(3, 256, 256),
                                crop_pct=crop_pct, interpolation="bicubic",
                                params_m=params_m, gmacs=gmacs, top1=top1, published_latency_ms=latency_ms,
                                published_latency_device=LATENCY_DEVICE if latency_ms is not None else None,
                                notes=notes))


VARIANTS: dict[str, Variant] = {
    "edgenext_xx_small": _variant(_XX_SMALL, "XX-S", 1.327, 0.261, 71.2, round(1000 / 51.66, 2),
                                  _OFFICIAL_TOP1 + _MACS_NOTE.format(260.58)),
    "edgenext_x_small": _variant(_X_SMALL, "X-S", 2.337, 0.538, 75.0, round(1000 / 31.61, 2),
                                 _OFFICIAL_TOP1 + _MACS_NOTE.format(538.0)),
    "edgenext_small": _variant(_SMALL, "S", 5.587, 1.261, 79.4, round(1000 / 20.47, 2),
                               _OFFICIAL_TOP1 + _MACS_NOTE.format(1260.59), crop_pct=0.95),
    "edgenext_base": _variant(dict(depths=(3, 3, 9, 3), dims=(80, 160, 288, 584), heads=(8, 8, 8, 8), **_COMMON),
                              "B", 18.511, 3.841, 82.5, None,
                              "released after the paper; 83.7 with USI distillation; " + _MACS_NOTE.format(3840.93),
                              crop_pct=0.95),
    "edgenext_xx_small_bn_hs": _variant(dict(_XX_SMALL, bn_hs=True), "XX-S BN-HS", 1.33, 0.260, 70.3, None,
                                        _BN_HS + _MACS_NOTE.format(259.53)),
    "edgenext_x_small_bn_hs": _variant(dict(_X_SMALL, bn_hs=True), "X-S BN-HS", 2.34, 0.536, 74.9, None,
                                       _BN_HS + _MACS_NOTE.format(535.84)),
    "edgenext_small_bn_hs": _variant(dict(_SMALL, bn_hs=True), "S BN-HS", 5.58, 1.257, 78.4, None,
                                     _BN_HS + _MACS_NOTE.format(1257.28)),
}


def build(name: str, num_classes: int = 1000, drop_path_rate: float = 0.0) -> EdgeNeXt:
    """Build a registered EdgeNeXt variant in training form."""
    return EdgeNeXt(**VARIANTS[name].kwargs, num_classes=num_classes, drop_path_rate=drop_path_rate)


# --- checkpoints from other sources (read by models.weights) -------------------------------------------

_LN_NAMES = ("edgenext_xx_small", "edgenext_x_small", "edgenext_small", "edgenext_base")
CHECKPOINT_LAYOUTS = (
    CheckpointLayout("ours", "this repository", ("downsample_layers.0.0.weight", "classifier.head.weight")),
    CheckpointLayout("official", "mmaaz60/EdgeNeXt releases (final norm and head at the top level)",
                     ("downsample_layers.0.0.weight", "stages.0.0.dwconv.weight", "head.weight"),
                     names={name: name for name in VARIANTS}),
    CheckpointLayout("timm", "timm 1.0 (huggingface.co/timm/edgenext_*)",
                     ("stem.0.weight", "stages.*.blocks.*.xca.qkv.weight", "head.fc.weight"),
                     names={name: name for name in _LN_NAMES}),
)


def convert_checkpoint(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """A checkpoint in the ``official`` or ``timm`` layout, with our keys (values untouched).

    official: our module tree with the final norm and head at the top level. timm (the reverse of
    its ``checkpoint_filter_fn``): ``stem``, ``stages.N.downsample``, ``stages.N.blocks.M``,
    ``conv_dw`` and ``mlp.fc1/fc2`` for the official ``downsample_layers``, ``dwconv`` and ``pwconv1/2``,
    and ``head.norm``/``head.fc``.
    """
    if source == "official":
        return rename_keys(state_dict, [(r"^norm\.", "classifier.norm."), (r"^head\.", "classifier.head.")])
    if source != "timm":
        raise ValueError(f"EdgeNeXt checkpoints come in the layouts ours, official or timm, not {source!r}")
    return rename_keys(state_dict, [
        (r"^stem\.", "downsample_layers.0."),
        (r"^stages\.(\d+)\.downsample\.", r"downsample_layers.\1."),
        (r"^stages\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.\2."),
        (r"\.conv_dw\.", ".dwconv."),
        (r"\.mlp\.fc(\d)\.", r".pwconv\1."),
        (r"^head\.norm\.", "classifier.norm."),
        (r"^head\.fc\.", "classifier.head."),
    ])


def checkpoint_options(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """Constructor arguments a checkpoint in our layout implies: its class count."""
    return class_count(state_dict, "classifier.head.weight")
