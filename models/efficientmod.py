"""Efficient Modulation for Vision Networks (EfficientMod; Ma et al., ICLR 2024).

Reference implementation: https://github.com/ma-xu/EfficientMod (``models/EfficientMod.py``).

A four-stage channel-last network built from efficient modulation blocks: a context branch
(linear ``f``, depthwise 7x7 conv, GELU, linear ``g``) multiplies, element-wise, the output of an
MLP's first projection (repeated ``conv_group_dim`` times along channels when it expands), and the
second projection maps back. The last two stages of ``xxs``, ``xs`` and ``s`` end with vanilla
attention blocks; ``s_conv`` has none.

Built as the official code builds them (where the paper's description differs, the code wins):

* block MLP ratios alternate per block within a stage, ``1, 6, 1, 6, ...`` (``1, 4, ...`` for
  ``xs``), and ``conv_group_dim`` equals the block's ratio, so the context branch is always
  ``dim`` wide; a ratio-1 block has no activation after ``fc1``;
* the attention blocks use ``num_heads = 8`` with ``head_dim = max(dim // 8, 32)``, so their qkv
  width can exceed ``dim`` (stage 3 of ``xxs``: dim 128, qkv 3 x 256); no qkv bias, no layer scale;
* the modulation blocks carry layer scale (init 1e-4); all norms are LayerNorm (eps 1e-5) over
  channels; the stem is a 7x7 stride-4 conv and the downsamplings are 3x3 stride-2 convs, each
  followed by a LayerNorm.

Official module names are kept. Attention is written as explicit matmuls (the official code calls
``F.scaled_dot_product_attention``, the same function). Deploy form (``reparameterize`` hook):
the layer scale folds into ``mlp.fc2``.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from models.layers import Mlp, drop_path, split_qkv
from models.spec import Variant
from models.weights import CheckpointLayout, class_count
from reparam.fuse import fold_scale_into_linear

PAPER = "Efficient Modulation for Vision Networks (ICLR 2024)"
REFERENCE = "https://github.com/ma-xu/EfficientMod"


class PatchEmbed(nn.Module):
    """Strided conv on an NHWC map (permuted to NCHW and back), then a LayerNorm over channels."""

    def __init__(self, in_channels: int, dim: int, patch_size: int, stride: int, padding: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch_size, stride, padding)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


class ContextLayer(nn.Module):
    """Context branch on NHWC: linear ``f``, depthwise kxk conv, GELU, linear ``g``."""

    def __init__(self, dim: int, conv_dim: int, kernel_size: int = 7):
        super().__init__()
        self.f = nn.Linear(dim, conv_dim)
        self.g = nn.Linear(conv_dim, dim)
        self.act = nn.GELU()
        self.context_list = nn.ModuleList(
            [nn.Conv2d(conv_dim, conv_dim, kernel_size, padding=kernel_size // 2, groups=conv_dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.f(x).permute(0, 3, 1, 2)
        out = self.act(self.context_list[0](x))
        return self.g(out.permute(0, 2, 3, 1))


class ModulationMlp(nn.Module):
    """``fc2(act(fc1(x)) * repeat(context(x)))`` (official ``Mlp`` with ``conv_in_mlp=True``)."""

    def __init__(self, dim: int, mlp_ratio: int, conv_group_dim: int, kernel_size: int = 7):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.conv_group_dim = conv_group_dim
        self.context_layer = ContextLayer(dim, hidden // conv_group_dim, kernel_size)
        self.fc2 = nn.Linear(hidden, dim)
        self.expand_dim = not (hidden == dim and conv_group_dim == 1)
        self.act = nn.GELU() if self.expand_dim else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.context_layer(x)
        x = self.act(self.fc1(x))
        if self.expand_dim:  # the official ``repeat``, written as a concat: litert lowers repeat to an 8-D reshape
            context = torch.cat([context] * self.conv_group_dim, dim=-1)
        return self.fc2(x * context)


class BasicBlock(nn.Module):
    """Efficient modulation block: ``x + gamma * mlp(norm(x))`` on NHWC."""

    def __init__(self, dim: int, mlp_ratio: int, kernel_size: int = 7, layerscale_value: float = 1e-4,
                 deploy: bool = False, drop_path: float = 0.0):
        super().__init__()
        self.drop_path = drop_path
        self.norm = nn.LayerNorm(dim)
        self.mlp = ModulationMlp(dim, mlp_ratio, mlp_ratio, kernel_size)
        use_gamma = layerscale_value > 0 and not deploy
        self.gamma_1 = nn.Parameter(layerscale_value * torch.ones(dim)) if use_gamma else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(x))
        if self.gamma_1 is not None:
            y = self.gamma_1 * y
        return x + drop_path(y, self.drop_path, self.training)

    def reparameterize(self) -> nn.Module:
        """Fold the layer scale into ``mlp.fc2``."""
        if self.gamma_1 is None:
            return self
        fused = copy.deepcopy(self)
        weight, bias = fold_scale_into_linear(self.mlp.fc2.weight, self.mlp.fc2.bias, self.gamma_1)
        with torch.no_grad():
            fused.mlp.fc2.weight.copy_(weight)
            fused.mlp.fc2.bias.copy_(bias)
        fused.gamma_1 = None
        return fused.eval()


class Attention(nn.Module):
    """Multi-head self-attention on (B, N, C) with ``head_dim = max(dim // heads, 32)``."""

    def __init__(self, dim: int, num_heads: int = 8):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = max(dim // num_heads, 32)
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, num_heads * self.head_dim * 3, bias=False)
        self.proj = nn.Linear(num_heads * self.head_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        q, k, v = split_qkv(self.qkv(x), self.num_heads)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(batch, tokens, self.num_heads * self.head_dim)
        return self.proj(x)


class AttentionBlock(nn.Module):
    """Pre-norm transformer block on an NHWC map (flattened to tokens and back)."""

    def __init__(self, dim: int, mlp_ratio: float, drop_path: float = 0.0):
        super().__init__()
        self.drop_path = drop_path
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        x = x.reshape(batch, height * width, channels)
        x = x + drop_path(self.attn(self.norm1(x)), self.drop_path, self.training)
        x = x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)
        return x.reshape(batch, height, width, channels)


class BasicLayer(nn.Module):
    """One stage: modulation blocks, then attention blocks, then the next stage's downsampling."""

    def __init__(self, dim: int, out_dim: int | None, mlp_ratios: tuple[int, ...], attention_depth: int,
                 att_ratio: float, drop_paths: list[float]):
        super().__init__()
        depth = len(mlp_ratios)
        blocks: list[nn.Module] = [BasicBlock(dim, ratio, drop_path=drop_paths[i]) for i, ratio in enumerate(mlp_ratios)]
        blocks += [AttentionBlock(dim, att_ratio, drop_paths[depth + j]) for j in range(attention_depth)]
        self.blocks = nn.ModuleList(blocks)
        self.downsample = PatchEmbed(dim, out_dim, 3, 2, 1) if out_dim is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class EfficientMod(nn.Module):
    """EfficientMod: a 7x7/4 patch embedding, four channel-last stages, LayerNorm, pool, linear."""

    def __init__(self, dims: tuple[int, ...], mlp_ratios: tuple[tuple[int, ...], ...],
                 attention_depths: tuple[int, ...], att_ratios: tuple[float, ...], num_classes: int = 1000,
                 drop_path_rate: float = 0.0):
        super().__init__()
        self.patch_embed = PatchEmbed(3, dims[0], 7, 4, 3)
        total = sum(len(r) for r in mlp_ratios) + sum(attention_depths)
        rates = torch.linspace(0, drop_path_rate, total).tolist()
        self.layers = nn.ModuleList()
        start = 0
        for i, dim in enumerate(dims):
            count = len(mlp_ratios[i]) + attention_depths[i]
            out_dim = dims[i + 1] if i < len(dims) - 1 else None
            self.layers.append(BasicLayer(dim, out_dim, mlp_ratios[i], attention_depths[i], att_ratios[i],
                                          rates[start:start + count]))
            start += count
        self.num_features = dims[-1]
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x.permute(0, 2, 3, 1))
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x).mean((1, 2)))


def _alternating(pattern: tuple[int, ...], depths: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Per-block MLP ratios: the official lists are the pattern repeated, cut to each stage's depth."""
    return tuple(tuple(pattern[i % len(pattern)] for i in range(depth)) for depth in depths)


_DISTILLED = "official README top-1, trained with distillation"
_MACS = "; torch.utils.flop_counter counts {} GMACs at 224x224"


def _variant(kwargs: dict, label: str, params_m: float, gmacs: float | None, top1: float, notes: str) -> Variant:
    # evaluation transform: the official scripts use timm's create_transform defaults (0.875, bicubic)
    return Variant(kwargs, dict(variant=label, paper=PAPER, reference_impl=REFERENCE, params_m=params_m,
                                gmacs=gmacs, top1=top1, crop_pct=0.875, interpolation="bicubic", notes=notes))


# Variants as data (official ``models/EfficientMod.py``): widths, per-block MLP ratios, attention
# blocks per stage and their MLP ratios, and the figures of the official README.
VARIANTS: dict[str, Variant] = {
    # The README's 4.7M is rounded; the official code builds 4.736M parameters (0.8% more), and the
    # registry check allows 0.5%, so the exact count of the code is recorded.
    "efficientmod_xxs": _variant(dict(dims=(32, 64, 128, 256), mlp_ratios=_alternating((1, 6), (2, 2, 6, 2)),
                                      attention_depths=(0, 0, 1, 2), att_ratios=(0, 0, 4, 4)),
                                 "xxs", 4.736, None, 77.1,
                                 "README: 4.7M (rounded); " + _DISTILLED + _MACS.format(0.579)),
    "efficientmod_xs": _variant(dict(dims=(32, 64, 144, 288), mlp_ratios=_alternating((1, 4), (3, 3, 4, 2)),
                                     attention_depths=(0, 0, 3, 3), att_ratios=(4, 4, 4, 4)),
                                "xs", 6.6, None, 79.4, _DISTILLED + _MACS.format(0.773)),
    "efficientmod_s": _variant(dict(dims=(32, 64, 144, 312), mlp_ratios=_alternating((1, 6), (4, 4, 8, 4)),
                                    attention_depths=(0, 0, 4, 4), att_ratios=(4, 4, 4, 5)),
                               "s", 12.9, 1.4, 81.9,
                               _DISTILLED + " (paper, without: 81.0); paper: 1.4 GFLOPs" + _MACS.format(1.402)),
    "efficientmod_s_conv": _variant(dict(dims=(40, 80, 160, 344), mlp_ratios=_alternating((1, 6), (4, 4, 12, 8)),
                                         attention_depths=(0, 0, 0, 0), att_ratios=(4, 4, 4, 4)),
                                    "s-Conv", 12.9, None, 80.5,
                                    "official README top-1 without distillation; no attention blocks"
                                    + _MACS.format(1.471)),
}


def build(name: str, num_classes: int = 1000, drop_path_rate: float = 0.0) -> EfficientMod:
    """Build a registered EfficientMod variant in training form."""
    return EfficientMod(**VARIANTS[name].kwargs, num_classes=num_classes, drop_path_rate=drop_path_rate)


# --- checkpoints from other sources (read by models.weights) -------------------------------------------

# The official checkpoints have our keys (module names were kept), so "ours" covers them.
CHECKPOINT_LAYOUTS = (
    CheckpointLayout("ours", "this repository and ma-xu/EfficientMod releases (same keys)",
                     ("patch_embed.proj.weight", "layers.0.blocks.0.mlp.context_layer.f.weight"),
                     names={"efficientmod_xxs": "efficientMod_xxs", "efficientmod_xs": "efficientMod_xs",
                            "efficientmod_s": "efficientMod_s", "efficientmod_s_conv": "efficientMod_s_Conv"}),
)


def convert_checkpoint(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Official checkpoints already have our keys; there is nothing to convert."""
    if source != "ours":
        raise ValueError(f"EfficientMod checkpoints come in our (= the official) layout, not {source!r}")
    return dict(state_dict)


def checkpoint_options(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """Constructor arguments a checkpoint in our layout implies: its class count."""
    return class_count(state_dict, "head.weight")
