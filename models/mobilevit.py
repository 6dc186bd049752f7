"""MobileViT: Light-weight, General-purpose, and Mobile-friendly Vision Transformer
(Mehta & Rastegari, ICLR 2022).

Reference implementation: https://github.com/apple/ml-cvnets (``cvnets/models/classification/
mobilevit.py``, ``cvnets/modules/mobilevit_block.py``, config ``mobilevit.py``).

A MobileNetV2 backbone whose last three stages each end with a MobileViT block: a local 3x3
conv+BN+SiLU and a 1x1 projection to the transformer width, then *unfold* into 2x2 patches (the
pixels at the same position in every patch form one sequence), transformer layers over each
sequence, *fold* back, a 1x1 conv+BN+SiLU back to the stage width, and a 3x3 conv+BN+SiLU fusing
the block input with the result.

Unfold and fold are written with static reshapes and permutes (at most 4-D) computed from the
feature-map size, in exactly the reference order, so every converter sees fixed shapes. Inputs whose
feature maps are not multiples of the patch size are rejected (the reference resizes them with
bilinear interpolation; at 256x256 and every multiple of 32 no resize happens).

Deploy form: every conv+BN folds through the generic Conv+BN pass (``ConvBN`` children); each transformer
LayerNorm's affine part folds into the linear that reads it (``TransformerEncoder.reparameterize``).
"""
from __future__ import annotations

import re

import torch
from torch import nn

from models.layers import ConvBN, ConvBNAct, make_divisible, split_qkv
from models.spec import Variant
from models.weights import CheckpointLayout, class_count, rename_keys
from reparam.layers import fold_norms

PAPER = "MobileViT: Light-weight, General-purpose, and Mobile-friendly Vision Transformer (ICLR 2022)"
REFERENCE = "https://github.com/apple/ml-cvnets"


def _conv_bn_silu(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                  groups: int = 1) -> ConvBNAct:
    """cvnets ``ConvLayer`` with norm and activation: ``ConvBN`` then SiLU, children ``0`` and ``1``."""
    return ConvBNAct(in_channels, out_channels, kernel_size, stride, groups, act_layer=nn.SiLU, numbered=True)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (+BN+SiLU), 3x3 depthwise (+BN+SiLU), 1x1 project (+BN)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: float):
        super().__init__()
        hidden = make_divisible(round(in_channels * expand_ratio), 8)
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_silu(in_channels, hidden, 1))
        layers += [_conv_bn_silu(hidden, hidden, 3, stride, groups=hidden), ConvBN(hidden, out_channels, 1)]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_residual else self.block(x)


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention on (B, N, C) with a fused qkv projection."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scaling = self.head_dim ** -0.5
        self.qkv_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, channels = x.shape
        q, k, v = split_qkv(self.qkv_proj(x), self.num_heads)
        q = q * self.scaling
        attn = (q @ k.transpose(-1, -2)).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(batch, tokens, channels)
        return self.out_proj(x)


class TransformerEncoder(nn.Module):
    """Pre-norm transformer layer with a SiLU feed-forward network."""

    def __init__(self, dim: int, ffn_dim: int, num_heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.SiLU(), nn.Linear(ffn_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))

    def reparameterize(self) -> nn.Module:
        """The same layer with each LayerNorm's affine part folded into the linear that reads it."""
        return fold_norms(self, ("norm1", "attn.qkv_proj"), ("norm2", "ffn.0"))


def unfold_patches(x: torch.Tensor, patch_h: int, patch_w: int) -> torch.Tensor:
    """(B, C, H, W) -> (B * ph * pw, N, C): one sequence per position inside a patch.

    Same element order as the reference ``unfolding``; H and W must be multiples of the patch.
    """
    batch, channels, height, width = x.shape
    if height % patch_h or width % patch_w:
        raise ValueError(f"MobileViT: feature map {height}x{width} is not a multiple of the {patch_h}x{patch_w} "
                         f"patch; use an input size that is a multiple of 32 (e.g. 256)")
    num_h, num_w = height // patch_h, width // patch_w
    x = x.reshape(batch * channels * num_h, patch_h, num_w, patch_w).transpose(1, 2)
    x = x.reshape(batch, channels, num_h * num_w, patch_h * patch_w).transpose(1, 3)
    return x.reshape(batch * patch_h * patch_w, num_h * num_w, channels)


def fold_patches(x: torch.Tensor, batch: int, height: int, width: int, patch_h: int, patch_w: int) -> torch.Tensor:
    """Inverse of ``unfold_patches``: (B * ph * pw, N, C) -> (B, C, H, W)."""
    channels = x.shape[-1]
    num_h, num_w = height // patch_h, width // patch_w
    x = x.reshape(batch, patch_h * patch_w, num_h * num_w, channels).transpose(1, 3)
    x = x.reshape(batch * channels * num_h, num_w, patch_h, patch_w).transpose(1, 2)
    return x.reshape(batch, channels, height, width)


class MobileViTBlock(nn.Module):
    """Local conv representation, unfold, transformer layers + LayerNorm, fold, project, fuse."""

    def __init__(self, channels: int, transformer_dim: int, ffn_dim: int, depth: int, num_heads: int = 4,
                 patch_size: int = 2):
        super().__init__()
        self.local_rep = nn.Sequential(_conv_bn_silu(channels, channels, 3),
                                       nn.Conv2d(channels, transformer_dim, 1, bias=False))
        self.global_rep = nn.Sequential(*[TransformerEncoder(transformer_dim, ffn_dim, num_heads) for _ in range(depth)],
                                        nn.LayerNorm(transformer_dim))
        self.conv_proj = _conv_bn_silu(transformer_dim, channels, 1)
        self.fusion = _conv_bn_silu(2 * channels, channels, 3)
        self.patch_size = patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        patches = unfold_patches(self.local_rep(x), self.patch_size, self.patch_size)
        y = fold_patches(self.global_rep(patches), batch, height, width, self.patch_size, self.patch_size)
        return self.fusion(torch.cat((x, self.conv_proj(y)), dim=1))


class MobileViT(nn.Module):
    """MobileViT: stem, two MobileNetV2 stages, three MobileNetV2 + MobileViT stages, 1x1 expansion, head."""

    def __init__(self, stem_channels: int, mv2_stages: tuple[tuple[int, int, int], ...],
                 vit_stages: tuple[tuple[int, int, int, int], ...], expand_ratio: float, num_heads: int = 4,
                 last_layer_exp_factor: int = 4, num_classes: int = 1000, dropout: float = 0.1):
        super().__init__()
        self.stem = _conv_bn_silu(3, stem_channels, 3, 2)
        in_channels = stem_channels
        stages: list[nn.Module] = []
        for out_channels, blocks, stride in mv2_stages:
            layers = []
            for index in range(blocks):
                layers.append(InvertedResidual(in_channels, out_channels, stride if index == 0 else 1, expand_ratio))
                in_channels = out_channels
            stages.append(nn.Sequential(*layers))
        for out_channels, transformer_dim, ffn_dim, depth in vit_stages:
            stages.append(nn.Sequential(
                InvertedResidual(in_channels, out_channels, 2, expand_ratio),
                MobileViTBlock(out_channels, transformer_dim, ffn_dim, depth, num_heads)))
            in_channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.num_features = min(last_layer_exp_factor * in_channels, 960)
        self.conv_1x1_exp = _conv_bn_silu(in_channels, self.num_features, 1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_1x1_exp(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x).mean((2, 3))
        return self.classifier(self.dropout(x))


# Variants as data (ml-cvnets ``config/mobilevit.py``). MobileNetV2 stages: (channels, blocks,
# stride); MobileViT stages: (channels, transformer width, FFN width, transformer layers).
_NOTES = ("inputs are 0..1 pixels without mean/std normalization (ml-cvnets); paper Table 1 top-1; "
          "torch.utils.flop_counter counts {} GMACs at 256x256 (the paper gives no MAC count)")


def _variant(kwargs: dict, label: str, params_m: float, top1: float, notes: str) -> Variant:
    return Variant(kwargs, dict(variant=label, paper=PAPER, reference_impl=REFERENCE, input_size=(3, 256, 256),
                                mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), params_m=params_m, top1=top1,
                                crop_pct=0.9, interpolation="bicubic",  # timm mobilevit _cfg
                                notes=notes))


VARIANTS: dict[str, Variant] = {
    "mobilevit_xxs": _variant(dict(stem_channels=16, expand_ratio=2, mv2_stages=((16, 1, 1), (24, 3, 2)),
                                   vit_stages=((48, 64, 128, 2), (64, 80, 160, 4), (80, 96, 192, 3))),
                              "XXS", 1.272, 69.0, _NOTES.format(0.407)),
    "mobilevit_xs": _variant(dict(stem_channels=16, expand_ratio=4, mv2_stages=((32, 1, 1), (48, 3, 2)),
                                  vit_stages=((64, 96, 192, 2), (80, 120, 240, 4), (96, 144, 288, 3))),
                             "XS", 2.318, 74.8, _NOTES.format(1.026)),
    "mobilevit_s": _variant(dict(stem_channels=16, expand_ratio=4, mv2_stages=((32, 1, 1), (64, 3, 2)),
                                 vit_stages=((96, 144, 288, 2), (128, 192, 384, 4), (160, 240, 480, 3))),
                            "S", 5.579, 78.4, _NOTES.format(2.001)),
}


def build(name: str, num_classes: int = 1000, dropout: float = 0.1) -> MobileViT:
    """Build a registered MobileViT variant in training form."""
    return MobileViT(**VARIANTS[name].kwargs, num_classes=num_classes, dropout=dropout)


# --- checkpoints from other sources (read by models.weights) -------------------------------------------

CHECKPOINT_LAYOUTS = (
    CheckpointLayout("ours", "this repository", ("stem.0.c.weight", "stages.2.1.global_rep.0.attn.qkv_proj.weight")),
    CheckpointLayout("timm", "timm 1.0 (huggingface.co/timm/mobilevit_*; byobnet names)",
                     ("stem.conv.weight", "stages.2.1.transformer.0.attn.qkv.weight", "final_conv.conv.weight"),
                     names={name: name for name in VARIANTS}),
)

# timm's conv+norm(+act) names -> ours (a ``ConvBN`` is ``c`` + ``bn``; ``ConvBNAct`` wraps it as ``0``)
_TIMM_CONVS = (("conv1_1x1", "block.0.0"), ("conv2_kxk", "block.1.0"), ("conv3_1x1", "block.2"),
               ("conv_kxk", "local_rep.0.0"), ("conv_proj", "conv_proj.0"), ("conv_fusion", "fusion.0"))


def convert_checkpoint(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """A timm (byobnet) checkpoint with our keys (values untouched).

    timm names conv+norm pairs ``conv``/``bn`` under ``conv1_1x1``, ``conv_kxk``, ...; its transformer
    layers are ``transformer.N`` with ``attn.qkv``/``attn.proj`` and ``mlp.fc1/fc2``, and the
    LayerNorm after them ``norm`` (ours: the last entry of ``global_rep``).
    """
    if source != "timm":
        raise ValueError(f"MobileViT checkpoints come in the layouts ours or timm, not {source!r}")
    depths: dict[str, int] = {}
    for key in state_dict:
        match = re.match(r"^(stages\.\d+\.\d+)\.transformer\.(\d+)\.", key)
        if match:
            depths[match.group(1)] = max(depths.get(match.group(1), 0), int(match.group(2)) + 1)
    rules = [(r"^stem\.conv\.", "stem.0.c."), (r"^stem\.bn\.", "stem.0.bn."),
             (r"^final_conv\.conv\.", "conv_1x1_exp.0.c."), (r"^final_conv\.bn\.", "conv_1x1_exp.0.bn."),
             (r"^head\.fc\.", "classifier.")]
    for timm_name, ours in _TIMM_CONVS:
        rules += [(rf"\.{timm_name}\.conv\.", f".{ours}.c."), (rf"\.{timm_name}\.bn\.", f".{ours}.bn.")]
    rules += [(r"\.conv_1x1\.", ".local_rep.1."), (r"\.transformer\.(\d+)\.", r".global_rep.\1."),
              (r"\.attn\.qkv\.", ".attn.qkv_proj."), (r"\.attn\.proj\.", ".attn.out_proj."),
              (r"\.mlp\.fc1\.", ".ffn.0."), (r"\.mlp\.fc2\.", ".ffn.2.")]
    rules += [(rf"^{re.escape(prefix)}\.norm\.", f"{prefix}.global_rep.{depth}.") for prefix, depth in depths.items()]
    return rename_keys(state_dict, rules)


def checkpoint_options(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """Constructor arguments a checkpoint in our layout implies: its class count."""
    return class_count(state_dict, "classifier.weight")
