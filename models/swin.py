"""Swin Transformer: Hierarchical Vision Transformer using Shifted Windows (Liu et al., ICCV 2021).

Reference implementation: https://github.com/microsoft/Swin-Transformer
(``models/swin_transformer.py``), as restructured by timm ``models/swin_transformer.py``
(NHWC stage tensors, patch merging at the start of stages 2-4).

Written for export with static shapes, in forms that are exactly equal to the reference:

* the cyclic shift ``torch.roll(x, -s, (1, 2))`` is two slice+concat pairs (``cyclic_shift``);
* the shifted-window attention mask is computed once for the model's input size and kept as a
  buffer (so a model is built for one resolution: ``build(name, img_size=...)``);
* window partition/reverse and mask addition use tensors of rank 4 at most (some converters reject
  rank-6 transposes); q/k/v splitting and patch merging each take one rank-5 transpose (one
  ``TRANSPOSE`` for XNNPACK instead of three transposes or four strided slices and a concat:
  ``models.layers.split_qkv``, ``merge_patches``), which every converter here and Core ML accept.

Reparameterization folds each LayerNorm's affine part into the linear that reads it (``fold_norms``).
"""
from __future__ import annotations

import math
import re

import torch
from torch import nn

from models.layers import Mlp, split_qkv
from models.spec import Variant
from models.weights import CheckpointLayout, class_count, rename_keys
from reparam.layers import fold_norms

PAPER = "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows (ICCV 2021)"
REFERENCE = "https://github.com/microsoft/Swin-Transformer"


def cyclic_shift(x: torch.Tensor, shift: int) -> torch.Tensor:
    """``torch.roll(x, (shift, shift), dims=(1, 2))`` on an NHWC tensor, as slicing and concat."""
    height, width = x.shape[1], x.shape[2]
    shift_h, shift_w = shift % height, shift % width
    if shift_h:
        x = torch.cat([x[:, height - shift_h:], x[:, :height - shift_h]], dim=1)
    if shift_w:
        x = torch.cat([x[:, :, width - shift_w:], x[:, :, :width - shift_w]], dim=2)
    return x


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/w * W/w, w*w, C), windows in row-major order, rank 4 at most."""
    batch, height, width, channels = x.shape
    x = x.reshape(batch * (height // window), window, width // window, window * channels)
    x = x.transpose(1, 2)  # (B * H/w, W/w, w rows, w * C)
    return x.reshape(-1, window * window, channels)


def window_reverse(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """Inverse of ``window_partition``: (B * nW, w*w, C) -> (B, H, W, C)."""
    channels = windows.shape[-1]
    x = windows.reshape(-1, width // window, window, window * channels)
    x = x.transpose(1, 2)  # (B * H/w, w rows, W/w, w * C)
    return x.reshape(-1, height, width, channels)


def merge_patches(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> (B, H/2, W/2, 4C), the reference's channel order (even row, even col), (odd, even),
    (even, odd), (odd, odd): one rank-5 transpose instead of four strided slices and a concat."""
    batch, height, width, channels = x.shape
    x = x.reshape(batch * (height // 2), 2, width // 2, 2, channels)  # (B*H/2, row parity, W/2, col parity, C)
    return x.permute(0, 2, 3, 1, 4).reshape(batch, height // 2, width // 2, 4 * channels)


def relative_position_index(window: int) -> torch.Tensor:
    """(w*w, w*w) index into the ((2w-1)^2, heads) relative position bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return relative[:, :, 0] * (2 * window - 1) + relative[:, :, 1]


def shifted_window_mask(height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """(nW, w*w, w*w) additive mask: -100 between tokens that came from different regions.

    After the cyclic shift, a window at the border holds tokens from up to four regions of the
    unshifted image; they must not attend to each other (the reference's construction).
    """
    region = torch.zeros(1, height, width, 1)
    label = 0
    for rows in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for cols in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            region[:, rows, cols, :] = label
            label += 1
    labels = window_partition(region, window).squeeze(-1)  # (nW, w*w)
    mask = labels[:, None, :] - labels[:, :, None]
    return mask.ne(0).float() * -100.0


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias."""

    def __init__(self, dim: int, num_heads: int, window: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.window = window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        windows, tokens, dim = x.shape
        q, k, v = split_qkv(self.qkv(x), self.num_heads)
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (B*nW, heads, N, N)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.reshape(tokens, tokens, self.num_heads).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:  # (nW, N, N), broadcast over batch and heads in rank 4
            num_windows = mask.shape[0]
            attn = attn.reshape(-1, num_windows, self.num_heads, tokens * tokens)
            attn = attn + mask.reshape(1, num_windows, 1, tokens * tokens)
            attn = attn.reshape(windows, self.num_heads, tokens, tokens)
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(windows, tokens, dim)
        return self.proj(out)


class SwinBlock(nn.Module):
    """LayerNorm -> (shifted) window attention -> residual; LayerNorm -> MLP -> residual."""

    def __init__(self, dim: int, num_heads: int, resolution: tuple[int, int], window: int, shift: int,
                 mlp_ratio: float = 4.0):
        super().__init__()
        height, width = resolution
        if min(resolution) <= window:  # a single window covers the map: no shift (reference rule)
            window, shift = min(resolution), 0
        if height % window or width % window:
            raise ValueError(f"Swin feature map {height}x{width} is not a multiple of the window size {window}; "
                             f"use an input size whose /32 feature map is a multiple of {window} (e.g. 224)")
        self.resolution = (height, width)
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        mask = shifted_window_mask(height, width, window, shift) if shift else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = self.resolution
        shortcut = x
        x = self.norm1(x)
        if self.shift:
            x = cyclic_shift(x, -self.shift)
        x = self.attn(window_partition(x, self.window), self.attn_mask)
        x = window_reverse(x, self.window, height, width)
        if self.shift:
            x = cyclic_shift(x, self.shift)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))

    def reparameterize(self) -> nn.Module:
        """The same block with each LayerNorm's affine part folded into the linear that reads it (the shift and
        window partition between ``norm1`` and ``qkv`` only move tokens, which a per-channel map commutes with)."""
        return fold_norms(self, ("norm1", "attn.qkv"), ("norm2", "mlp.fc1"))


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat (C -> 4C), LayerNorm, linear 4C -> 2C (halves H and W)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(self.norm(merge_patches(x)))

    def reparameterize(self) -> nn.Module:
        """The same merge with the LayerNorm's affine part folded into ``reduction`` (which gains a bias)."""
        return fold_norms(self, ("norm", "reduction"))


class SwinStage(nn.Module):
    """Optional patch merging, then blocks alternating regular and shifted windows."""

    def __init__(self, in_dim: int, depth: int, num_heads: int, resolution: tuple[int, int], window: int,
                 downsample: bool):
        super().__init__()
        self.downsample = PatchMerging(in_dim) if downsample else nn.Identity()
        dim = 2 * in_dim if downsample else in_dim
        self.blocks = nn.Sequential(*[
            SwinBlock(dim, num_heads, resolution, window, shift=0 if index % 2 == 0 else window // 2)
            for index in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class SwinTransformer(nn.Module):
    """4x4 patch embedding (+LayerNorm), four stages on NHWC maps, LayerNorm, average pool, head."""

    def __init__(self, embed_dim: int, depths: tuple[int, ...], num_heads: tuple[int, ...], window: int = 7,
                 img_size: int = 224, num_classes: int = 1000):
        super().__init__()
        if img_size % 32:
            raise ValueError(f"Swin needs an input size divisible by 32, got {img_size}")
        self.patch_embed = nn.Conv2d(3, embed_dim, 4, stride=4)
        self.patch_norm = nn.LayerNorm(embed_dim)
        stages = []
        dim, size = embed_dim, img_size // 4
        for index, (depth, heads) in enumerate(zip(depths, num_heads)):
            if index > 0:
                size //= 2
            stages.append(SwinStage(dim, depth, heads, (size, size), window, downsample=index > 0))
            dim = dim * 2 if index > 0 else dim
        self.stages = nn.Sequential(*stages)
        self.num_features = dim
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_norm(self.patch_embed(x).permute(0, 2, 3, 1))
        return self.norm(self.stages(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x).mean((1, 2)))


VARIANTS: dict[str, Variant] = {
    "swin_tiny": Variant(
        dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window=7),
        dict(variant="Swin-T", paper=PAPER, reference_impl=REFERENCE, params_m=28.288, gmacs=4.5, top1=81.3,
             crop_pct=0.9, interpolation="bicubic",  # timm swin_transformer _cfg (swin_tiny_patch4_window7_224)
             notes="paper Table 1(a): 29M params, 4.5G FLOPs (multiply-adds), 81.3 top-1 at 224, window 7; "
                   "the paper reports V100 throughput, not a mobile latency; the attention mask is built for "
                   "224 (build(name, img_size=...) for another size)")),
}


def build(name: str, num_classes: int = 1000, img_size: int = 224, window: int | None = None) -> SwinTransformer:
    """Build a registered Swin variant for one input size (the shifted-window mask depends on it).

    ``window`` replaces the variant's window size (e.g. 12 for 384x384 inputs, as timm's ``*_window12_384``).
    """
    variant = dict(VARIANTS[name].kwargs, **({"window": window} if window is not None else {}))
    return SwinTransformer(num_classes=num_classes, img_size=img_size, **variant)


# --- checkpoints from other sources (read by models.weights) -------------------------------------------

CHECKPOINT_LAYOUTS = (
    CheckpointLayout("ours", "this repository",
                     ("patch_embed.weight", "stages.0.blocks.0.attn.relative_position_bias_table")),
    CheckpointLayout("timm", "timm 1.0 (huggingface.co/timm/swin_*)",
                     ("patch_embed.proj.weight", "layers.0.blocks.0.attn.relative_position_bias_table",
                      "head.fc.weight"),
                     names={"swin_tiny": "swin_tiny_patch4_window7_224"}),
    CheckpointLayout("official", "microsoft/Swin-Transformer releases (patch merging at the end of a stage)",
                     ("patch_embed.proj.weight", "layers.0.downsample.reduction.weight", "head.weight"),
                     names={"swin_tiny": "swin_tiny_patch4_window7_224"}),
)


def convert_checkpoint(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """A timm or official checkpoint with our keys (as timm's ``checkpoint_filter_fn`` reads them).

    Both name the stages ``layers`` and the patch embedding ``patch_embed.proj``/``patch_embed.norm``;
    the official code merges patches at the end of a stage (ours and timm's at the start of the next)
    and saves the relative position index and attention masks, which are rebuilt here.
    """
    if source not in ("timm", "official"):
        raise ValueError(f"Swin checkpoints come in the layouts ours, timm or official, not {source!r}")
    state_dict = {k: v for k, v in state_dict.items()
                  if not k.endswith(("relative_position_index", "attn_mask"))}
    rules = [(r"^patch_embed\.proj\.", "patch_embed."), (r"^patch_embed\.norm\.", "patch_norm.")]
    if source == "official":
        out = {}
        for key, value in rename_keys(state_dict, rules).items():
            match = re.match(r"^layers\.(\d+)\.downsample\.(.*)$", key)
            out[f"stages.{int(match.group(1)) + 1}.downsample.{match.group(2)}" if match else key] = value
        return rename_keys(out, [(r"^layers\.", "stages.")])
    return rename_keys(state_dict, rules + [(r"^layers\.", "stages."), (r"^head\.fc\.", "head.")])


def checkpoint_options(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """Constructor arguments a checkpoint in our layout implies: its class count."""
    return class_count(state_dict, "head.weight")


def _progression_positions(source: int, target: int) -> list[float]:
    """Where timm places a ``source``-wide table's entries to cover ``target`` positions: spacing grows
    geometrically from the centre, the ratio found by bisection (BEiT's rule)."""
    left, right = 1.01, 1.5
    while right - left > 1e-6:
        ratio = (left + right) / 2.0
        if (1.0 - ratio ** (source // 2)) / (1.0 - ratio) > target // 2:
            right = ratio
        else:
            left = ratio
    distances, current = [], 1.0
    for index in range(source // 2):
        distances.append(current)
        current += ratio ** (index + 1)
    return [-d for d in reversed(distances)] + [0.0] + distances


def _linear_corners(points: torch.Tensor, targets: torch.Tensor):
    """Left/right neighbour indices and distances of ``targets`` on sorted ``points`` (edges clamped)."""
    right = torch.bucketize(targets, points).clamp(max=len(points) - 1)
    left = (right - 1).clamp(min=0)
    to_left = (targets - points[left]).clamp(min=0)
    to_right = (points[right] - targets).clamp(min=0)
    on_point = (to_left == 0) & (to_right == 0)
    to_left[on_point], to_right[on_point] = 1.0, 1.0
    return left, right, to_left, to_right


def resize_relative_position_table(table: torch.Tensor, window: int) -> torch.Tensor:
    """A ((2w'-1)^2, heads) relative position bias table resized for ``window``, as timm's
    ``resize_rel_pos_bias_table`` does without scipy: the source entries placed at geometric-progression
    offsets, bilinear interpolation at the integer offsets of the new window, in float32.
    """
    side = math.isqrt(table.shape[0])
    new_side = 2 * window - 1
    if side == new_side:
        return table
    points = torch.tensor(_progression_positions(side, new_side), dtype=torch.float32)
    half = new_side // 2
    targets = torch.arange(-half, half + 0.1, 1.0, dtype=torch.float32)
    left, right, to_left, to_right = _linear_corners(points, targets)
    grid = table.float().T.reshape(-1, side, side)  # (heads, rows, columns)
    rows_l, rows_r = grid[:, left], grid[:, right]  # (heads, new rows, columns)
    value = (rows_l[:, :, left] * to_right[:, None] * to_right[None, :]
             + rows_l[:, :, right] * to_right[:, None] * to_left[None, :]
             + rows_r[:, :, left] * to_left[:, None] * to_right[None, :]
             + rows_r[:, :, right] * to_left[:, None] * to_left[None, :])
    value = value / ((to_left + to_right)[:, None] * (to_left + to_right)[None, :])
    return value.reshape(-1, new_side * new_side).T.contiguous()


def fit_checkpoint(state_dict: dict[str, torch.Tensor], model_state: dict[str, torch.Tensor]
                   ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A checkpoint for another window size, with its relative position tables resized to the model's."""
    fitted, resized = dict(state_dict), set()
    for key, value in state_dict.items():
        target = model_state.get(key)
        if (key.endswith("relative_position_bias_table") and target is not None and value.shape != target.shape
                and value.shape[1] == target.shape[1]):
            window = (math.isqrt(target.shape[0]) + 1) // 2
            fitted[key] = resize_relative_position_table(value, window)
            resized.add(((math.isqrt(value.shape[0]) + 1) // 2, window))
    notes = [f"relative position tables resized from window {old} to {new} (timm's geometric-progression "
             f"interpolation)" for old, new in sorted(resized)]
    return fitted, notes
