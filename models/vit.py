"""Vision Transformer (ViT): An Image is Worth 16x16 Words (Dosovitskiy et al., ICLR 2021).

Reference implementation: timm ``models/vision_transformer.py``
(https://github.com/huggingface/pytorch-image-models); ViT-Ti/16 is the DeiT-Tiny shape (Touvron et
al., "Training data-efficient image transformers", ICML 2021) trained with the AugReg recipe
("How to train your ViT?", TMLR 2022).

Pre-norm transformer on 16x16 patches with a class token and learned position embeddings; the
class token's final state feeds the head. Queries, keys and values are split from the fused qkv
projection with tensors of rank 4 at most (export-friendly, exactly the reference's layout).
No reparameterization applies (no BatchNorm, no layer scale).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import split_qkv
from models.spec import Variant
from models.weights import CheckpointLayout, class_count, rename_keys
from reparam.layers import fold_norms

PAPER = "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale (ICLR 2021)"
REFERENCE = "https://github.com/huggingface/pytorch-image-models/blob/main/timm/models/vision_transformer.py"


class Attention(nn.Module):
    """Multi-head self-attention over all tokens."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = split_qkv(self.qkv(x), self.num_heads)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(batch, tokens, dim))


class Block(nn.Module):
    """x + attn(norm1(x)); x + mlp(norm2(x)), with a GELU MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    def reparameterize(self) -> nn.Module:
        """The same block with each LayerNorm's affine part folded into the linear that reads it."""
        return fold_norms(self, ("norm1", "attn.qkv"), ("norm2", "mlp.0"))


class VisionTransformer(nn.Module):
    """Patch embedding, class token, position embedding, transformer blocks, norm, head."""

    def __init__(self, patch_size: int, embed_dim: int, depth: int, num_heads: int, img_size: int = 224,
                 num_classes: int = 1000):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"ViT input size {img_size} is not a multiple of the patch size {patch_size}")
        num_patches = (img_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, embed_dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, embed_dim) * 0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.num_features = embed_dim
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, patches, dim)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.norm(self.blocks(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x)[:, 0])


VARIANTS: dict[str, Variant] = {
    "vit_tiny_patch16": Variant(
        dict(patch_size=16, embed_dim=192, depth=12, num_heads=3),
        dict(variant="ViT-Ti/16", paper=PAPER, reference_impl=REFERENCE, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
             crop_pct=0.9, interpolation="bicubic",  # timm vision_transformer _cfg (augreg)
             params_m=5.717, gmacs=1.26, top1=75.5,
             notes="ViT-Ti/16 is the DeiT-Ti shape (DeiT paper Table 1: 5M params, 1.3G FLOPs, 72.2 top-1 "
                   "without distillation); 1.26 GMACs and 75.5 top-1 are timm's "
                   "vit_tiny_patch16_224.augreg_in21k_ft_in1k (ImageNet-21k pretraining, mean/std 0.5); "
                   "no published mobile latency")),
}


def build(name: str, num_classes: int = 1000, img_size: int = 224) -> VisionTransformer:
    """Build a registered ViT variant for one input size (the position embedding depends on it)."""
    return VisionTransformer(num_classes=num_classes, img_size=img_size, **VARIANTS[name].kwargs)


# --- checkpoints from other sources (read by models.weights) -------------------------------------------

CHECKPOINT_LAYOUTS = (
    CheckpointLayout("ours", "this repository", ("patch_embed.weight", "pos_embed", "blocks.0.mlp.0.weight")),
    CheckpointLayout("timm", "timm 1.0 (huggingface.co/timm/vit_*; also DeiT releases)",
                     ("patch_embed.proj.weight", "pos_embed", "blocks.0.mlp.fc1.weight"),
                     names={"vit_tiny_patch16": "vit_tiny_patch16_224"}),
)


def convert_checkpoint(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """A timm checkpoint with our keys: ``patch_embed.proj`` is our ``patch_embed``, ``mlp.fc1/fc2`` our ``mlp.0/2``."""
    if source != "timm":
        raise ValueError(f"ViT checkpoints come in the layouts ours or timm, not {source!r}")
    return rename_keys(state_dict, [(r"^patch_embed\.proj\.", "patch_embed."), (r"\.mlp\.fc1\.", ".mlp.0."),
                                    (r"\.mlp\.fc2\.", ".mlp.2.")])


def checkpoint_options(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """Constructor arguments a checkpoint in our layout implies: its class count."""
    return class_count(state_dict, "head.weight")


def resample_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int], prefix_tokens: int = 1) -> torch.Tensor:
    """Position embeddings (1, prefix + h*w, C) resampled to a ``grid`` of patches, as timm's
    ``resample_abs_pos_embed``: the class token's entry kept, the square patch grid resized by
    antialiased bicubic interpolation, computed in float32 and returned in the input's dtype.
    """
    prefix, patches = pos_embed[:, :prefix_tokens], pos_embed[:, prefix_tokens:]
    side = math.isqrt(patches.shape[1])
    if side * side != patches.shape[1]:
        raise ValueError(f"position embedding of {patches.shape[1]} patches is not a square grid")
    dim = patches.shape[-1]
    image = patches.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    image = F.interpolate(image, size=grid, mode="bicubic", antialias=True)
    patches = image.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], dim).to(pos_embed.dtype)
    return torch.cat([prefix, patches], dim=1)


def fit_checkpoint(state_dict: dict[str, torch.Tensor], model_state: dict[str, torch.Tensor]
                   ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A checkpoint for another input size, with its position embeddings resampled to the model's grid."""
    source, target = state_dict.get("pos_embed"), model_state.get("pos_embed")
    if source is None or target is None or source.shape == target.shape or source.shape[-1] != target.shape[-1]:
        return state_dict, []
    old, new = math.isqrt(source.shape[1] - 1), math.isqrt(target.shape[1] - 1)
    fitted = dict(state_dict, pos_embed=resample_pos_embed(source, (new, new)))
    return fitted, [f"pos_embed resampled from {old}x{old} to {new}x{new} patches (bicubic, antialiased, as timm does)"]
