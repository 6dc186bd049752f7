"""EdgeViTs: Competing Light-weight CNNs on Mobile Devices with Vision Transformers
(Pan et al., ECCV 2022).

Reference implementation: https://github.com/saic-fi/edgevit (``src/edgevit.py``).

A four-stage pyramid; each block is the local-global-local (LGL) bottleneck:

* local aggregation: a depthwise 3x3 positional conv, then ``1x1 -> depthwise 5x5 -> 1x1`` behind
  a BatchNorm, and a BatchNorm + 1x1 conv MLP (absent in the last stage, as in the official code);
* sparse global attention: the feature map is sub-sampled by ``sr`` (a stride-``sr`` 1x1 average
  pool, i.e. one delegate token per ``sr x sr`` window), the delegates attend to each other,
* local propagation: a depthwise transposed conv (kernel = stride = ``sr``) spreads the delegates
  back over their windows, followed by a LayerNorm and the output projection; then a LayerNorm +
  MLP.

Official module names are kept. The transposed conv is evaluated as a nearest-neighbour upsample
times the kernel tiled over the map plus the bias: with kernel equal to stride the windows do not
overlap, so each output is one product and one sum, the same arithmetic as the transposed conv,
and every converter takes it.

Deploy form (``reparameterize`` hooks): the BatchNorms in front of the 1x1 convs of local
aggregation fold into those convs, and the final BatchNorm folds into the classifier (it commutes
with the global average pool).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import Mlp, drop_path, split_qkv
from models.spec import Variant
from models.weights import CheckpointLayout, class_count, rename_keys
from reparam.fuse import fold_bn_into_following_conv, fold_bn_into_following_linear
from reparam.layers import conv2d_from

PAPER = "EdgeViTs: Competing Light-weight CNNs on Mobile Devices with Vision Transformers (ECCV 2022)"
REFERENCE = "https://github.com/saic-fi/edgevit"


def _bn_then_conv1x1(bn: nn.BatchNorm2d, conv: nn.Conv2d) -> nn.Conv2d:
    """One 1x1 Conv2d equal to ``conv(bn(x))`` (exact: a 1x1 conv has no padding)."""
    return conv2d_from(conv, *fold_bn_into_following_conv(bn, conv.weight, conv.bias))


class ConvMlp(nn.Module):
    """1x1 conv MLP with GELU (official ``CMlp``)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LocalProp(nn.ConvTranspose2d):
    """Depthwise transposed conv with kernel == stride, evaluated as upsample * tiled kernel + bias.

    The parameters are those of ``nn.ConvTranspose2d(dim, dim, sr, stride=sr, groups=dim)``.
    """

    def __init__(self, dim: int, sr: int):
        super().__init__(dim, dim, sr, stride=sr, groups=dim)
        self.sr = sr

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        _, channels, height, width = x.shape
        up = F.interpolate(x, scale_factor=float(self.sr), mode="nearest")
        kernel = self.weight.reshape(1, channels, self.sr, self.sr).repeat(1, 1, height, width)
        return up * kernel + self.bias.reshape(1, channels, 1, 1)


class GlobalSparseAttn(nn.Module):
    """Self-attention among delegate tokens (one per ``sr x sr`` window), propagated back locally."""

    def __init__(self, dim: int, num_heads: int, sr: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.sr = sr
        if sr > 1:
            self.LocalProp = LocalProp(dim, sr)
            self.norm = nn.LayerNorm(dim)
        else:
            self.norm = nn.Identity()

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        batch, _, channels = x.shape
        if self.sr > 1:  # a 1x1 average pool with stride sr keeps one pixel per window
            x = x.transpose(1, 2).reshape(batch, channels, height, width)[:, :, ::self.sr, ::self.sr]
            x = x.flatten(2).transpose(1, 2)
        tokens = x.shape[1]
        q, k, v = split_qkv(self.qkv(x), self.num_heads)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(batch, tokens, channels)
        if self.sr > 1:
            x = x.permute(0, 2, 1).reshape(batch, channels, height // self.sr, width // self.sr)
            x = self.LocalProp(x).reshape(batch, channels, height * width).permute(0, 2, 1)
            x = self.norm(x)
        return self.proj(x)


class LocalAgg(nn.Module):
    """Local aggregation: positional dw3x3, then BN -> 1x1 -> dw5x5 -> 1x1, then BN -> conv MLP."""

    def __init__(self, dim: int, mlp_ratio: float, deploy: bool = False, drop_path: float = 0.0):
        super().__init__()
        self.drop_path = drop_path
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.Identity() if deploy else nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.norm2 = nn.Identity() if deploy else nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        x = x + drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))), self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)

    def reparameterize(self) -> nn.Module:
        """Fold ``norm1`` into ``conv1`` and ``norm2`` into ``mlp.fc1``."""
        if isinstance(self.norm1, nn.Identity):
            return self
        fused = copy.deepcopy(self)
        fused.conv1 = _bn_then_conv1x1(self.norm1, self.conv1)
        fused.mlp.fc1 = _bn_then_conv1x1(self.norm2, self.mlp.fc1)
        fused.norm1, fused.norm2 = nn.Identity(), nn.Identity()
        return fused.eval()


class SelfAttn(nn.Module):
    """Positional dw3x3, then pre-norm sparse global attention and pre-norm MLP on tokens."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr: int, drop_path: float = 0.0):
        super().__init__()
        self.drop_path = drop_path
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = GlobalSparseAttn(dim, num_heads, sr)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        batch, channels, height, width = x.shape
        x = x.flatten(2).transpose(1, 2)
        x = x + drop_path(self.attn(self.norm1(x), height, width), self.drop_path, self.training)
        x = x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)
        return x.transpose(1, 2).reshape(batch, channels, height, width)


class LGLBlock(nn.Module):
    """Local-global-local bottleneck: local aggregation (stages with ``sr > 1``), then sparse attention."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr: int, drop_path: float = 0.0):
        super().__init__()
        self.LocalAgg = LocalAgg(dim, mlp_ratio, drop_path=drop_path) if sr > 1 else nn.Identity()
        self.SelfAttn = SelfAttn(dim, num_heads, mlp_ratio, sr, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.SelfAttn(self.LocalAgg(x))


class PatchEmbed(nn.Module):
    """Strided patchify conv followed by a LayerNorm over channels (the map stays NCHW)."""

    def __init__(self, in_channels: int, dim: int, patch_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch_size, patch_size)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ClassifierHead(nn.Module):
    """BatchNorm on the final map, global average pool, linear."""

    def __init__(self, dim: int, num_classes: int, deploy: bool = False):
        super().__init__()
        self.norm = nn.Identity() if deploy else nn.BatchNorm2d(dim)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(x).flatten(2).mean(-1))

    def reparameterize(self) -> nn.Module:
        """The BatchNorm commutes with the average pool, so it folds into the linear."""
        if isinstance(self.norm, nn.Identity) or not isinstance(self.head, nn.Linear):
            return self
        weight, bias = fold_bn_into_following_linear(self.norm, self.head.weight, self.head.bias)
        fused = ClassifierHead(self.head.in_features, self.head.out_features, deploy=True)
        fused.to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            fused.head.weight.copy_(weight)
            fused.head.bias.copy_(bias)
        return fused.eval()


class EdgeViT(nn.Module):
    """EdgeViT: four patch embeddings (4x, then 2x) each followed by a stage of LGL blocks."""

    def __init__(self, depths: tuple[int, ...], dims: tuple[int, ...], head_dim: int,
                 mlp_ratio: float = 4.0, sr_ratios: tuple[int, ...] = (4, 2, 2, 1), num_classes: int = 1000,
                 drop_path_rate: float = 0.0):
        super().__init__()
        in_channels = (3,) + tuple(dims[:-1])
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        for i in range(4):
            setattr(self, f"patch_embed{i + 1}", PatchEmbed(in_channels[i], dims[i], 4 if i == 0 else 2))
            first = sum(depths[:i])
            setattr(self, f"blocks{i + 1}", nn.ModuleList(
                LGLBlock(dims[i], dims[i] // head_dim, mlp_ratio, sr_ratios[i], rates[first + j])
                for j in range(depths[i])))
        self.num_features = dims[-1]
        self.classifier = ClassifierHead(dims[-1], num_classes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 5):
            x = getattr(self, f"patch_embed{i}")(x)
            for block in getattr(self, f"blocks{i}"):
                x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


# The paper gives GFLOPs to one decimal; torch.utils.flop_counter agrees within that rounding but
# not within 2% for XXS and XS, so only S records the paper's figure as ``gmacs``.
_NOTES = ("paper Table 2: {} GFLOPs (multiply-adds, one decimal); torch.utils.flop_counter counts {} GMACs "
          "(convs, linears and attention matmuls; the transposed conv, evaluated as upsample x kernel, "
          "is not counted); no published latency is recorded here")


def _variant(kwargs: dict, label: str, params_m: float, gmacs: float | None, top1: float, notes: str) -> Variant:
    # evaluation transform: the official repo's DeiT-style eval (resize 256 for 224, i.e. 0.875, bicubic)
    return Variant(kwargs, dict(variant=label, paper=PAPER, reference_impl=REFERENCE, params_m=params_m,
                                gmacs=gmacs, top1=top1, crop_pct=0.875, interpolation="bicubic", notes=notes))


# Variants as data (official ``src/edgevit.py``); heads = dim // head_dim per stage.
VARIANTS: dict[str, Variant] = {
    "edgevit_xxs": _variant(dict(depths=(1, 1, 3, 2), dims=(36, 72, 144, 288), head_dim=36),
                            "XXS", 4.07, None, 74.4, _NOTES.format(0.6, 0.551)),
    "edgevit_xs": _variant(dict(depths=(1, 1, 3, 1), dims=(48, 96, 240, 384), head_dim=48),
                           "XS", 6.77, None, 77.5, _NOTES.format(1.1, 1.127)),
    "edgevit_s": _variant(dict(depths=(1, 2, 5, 3), dims=(48, 96, 240, 384), head_dim=48),
                          "S", 13.1, 1.9, 81.0,
                          _NOTES.format(1.9, 1.910) + "; parameter count of the official code (13.1M)"),
}


def build(name: str, num_classes: int = 1000, drop_path_rate: float = 0.0) -> EdgeViT:
    """Build a registered EdgeViT variant in training form."""
    return EdgeViT(**VARIANTS[name].kwargs, num_classes=num_classes, drop_path_rate=drop_path_rate)


# --- checkpoints from other sources (read by models.weights) -------------------------------------------

CHECKPOINT_LAYOUTS = (
    CheckpointLayout("ours", "this repository", ("patch_embed1.proj.weight", "classifier.norm.running_mean")),
    CheckpointLayout("official", "saic-fi/edgevit (final BatchNorm and head at the top level)",
                     ("patch_embed1.proj.weight", "norm.running_mean", "head.weight"),
                     names={name: name for name in VARIANTS}),
)


def convert_checkpoint(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """An official checkpoint with our keys: its top-level ``norm``/``head`` live in our ``classifier``."""
    if source != "official":
        raise ValueError(f"EdgeViT checkpoints come in the layouts ours or official, not {source!r}")
    return rename_keys(state_dict, [(r"^norm\.", "classifier.norm."), (r"^head\.", "classifier.head.")])


def checkpoint_options(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """Constructor arguments a checkpoint in our layout implies: its class count."""
    return class_count(state_dict, "classifier.head.weight")
