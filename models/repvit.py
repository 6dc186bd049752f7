"""RepViT: Revisiting Mobile CNN From ViT Perspective (Wang et al., CVPR 2024).

Reference implementation: https://github.com/THU-MIG/RepViT (``model/repvit.py``).

A MobileNetV3-style CNN whose token mixer (a structurally reparameterizable depthwise conv) is
separated from its channel mixer (a 1x1 FFN), as in a MetaFormer. Two generations of the
token mixer exist in the official code:

* the current one (``M0.6`` to ``M2.3``): 3x3 depthwise conv+BN, a 1x1 depthwise conv with bias,
  and the identity, summed and followed by a BatchNorm;
* the earlier one (the first paper version's ``M1``, ``M2``, ``M3``): 3x3 depthwise conv+BN,
  1x1 depthwise conv+BN and the identity, summed, with no BatchNorm after the sum.

Both are built here in training form with the distillation head (two BN+Linear classifiers
whose eval-mode outputs are averaged).
"""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import BNLinear, ConvBN, SqueezeExcite, drop_path, make_divisible
from models.spec import Variant
from models.weights import CheckpointLayout, rename_keys
from reparam.fuse import fuse_bn_tensors, fuse_conv_bn, identity_kernel, merge_parallel_branches
from reparam.layers import conv2d_from, linear_from

PAPER = "RepViT: Revisiting Mobile CNN From ViT Perspective (CVPR 2024)"
REFERENCE = "https://github.com/THU-MIG/RepViT"
LATENCY_DEVICE = "iPhone 12, iOS 16, Core ML (Xcode 14 performance report)"


class Residual(nn.Module):
    """``x + m(x)``, with per-sample stochastic depth while training."""

    def __init__(self, m: nn.Module, drop: float = 0.0):
        super().__init__()
        self.m = m
        self.drop = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + drop_path(self.m(x), self.drop, self.training)


class RepVGGDW(nn.Module):
    """Current token mixer: ``bn(dw3x3_bn(x) + dw1x1(x) + x)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = ConvBN(channels, channels, 3, 1, 1, groups=channels)
        self.conv1 = nn.Conv2d(channels, channels, 1, 1, 0, groups=channels)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn((self.conv(x) + self.conv1(x)) + x)

    def reparameterize(self) -> nn.Module:
        """One depthwise 3x3 conv with bias: the three branches summed, then the outer BatchNorm folded."""
        conv = self.conv.c
        weight, bias = merge_parallel_branches([
            fuse_conv_bn(conv, self.conv.bn),
            (self.conv1.weight, self.conv1.bias),
            (identity_kernel(conv.out_channels, 1, groups=conv.groups, dtype=conv.weight.dtype), None),
        ])
        return conv2d_from(conv, *fuse_bn_tensors(weight, bias, self.bn)).eval()


class RepVGGDWLegacy(nn.Module):
    """Earlier token mixer (RepViT-M1/M2/M3): ``dw3x3_bn(x) + dw1x1_bn(x) + x``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = ConvBN(channels, channels, 3, 1, 1, groups=channels)
        self.conv1 = ConvBN(channels, channels, 1, 1, 0, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.conv1(x) + x

    def reparameterize(self) -> nn.Module:
        """One depthwise 3x3 conv with bias: both conv+BN branches and the identity summed."""
        conv = self.conv.c
        weight, bias = merge_parallel_branches([
            fuse_conv_bn(conv, self.conv.bn),
            fuse_conv_bn(self.conv1.c, self.conv1.bn),
            (identity_kernel(conv.out_channels, 1, groups=conv.groups, dtype=conv.weight.dtype), None),
        ])
        return conv2d_from(conv, weight, bias).eval()


class RepViTBlock(nn.Module):
    """Token mixer (depthwise, optionally with SE) then a residual 1x1 FFN channel mixer."""

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, kernel_size: int,
                 stride: int, use_se: bool, legacy_dw: bool = False):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"RepViTBlock stride must be 1 or 2, got {stride}")
        if hidden_channels != 2 * in_channels:
            raise ValueError("RepViTBlock expects an expansion ratio of 2")
        se = SqueezeExcite(in_channels, 0.25) if use_se else nn.Identity()
        if stride == 2:
            self.token_mixer = nn.Sequential(
                ConvBN(in_channels, in_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=in_channels),
                se,
                ConvBN(in_channels, out_channels, 1, 1, 0),
            )
            ffn_channels = 2 * out_channels
        else:
            if in_channels != out_channels:
                raise ValueError("a stride-1 RepViTBlock keeps its channel count")
            dw = RepVGGDWLegacy(in_channels) if legacy_dw else RepVGGDW(in_channels)
            self.token_mixer = nn.Sequential(dw, se)
            ffn_channels = hidden_channels
        # The GELU is used whether or not the config asks for hard-swish, as in the official code.
        self.channel_mixer = Residual(nn.Sequential(
            ConvBN(out_channels, ffn_channels, 1, 1, 0),
            nn.GELU(),
            ConvBN(ffn_channels, out_channels, 1, 1, 0, bn_weight_init=0.0),
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel_mixer(self.token_mixer(x))


class DistillationClassifier(nn.Module):
    """Two BN+Linear heads; eval mode returns their average, training mode both."""

    def __init__(self, dim: int, num_classes: int, distillation: bool = True):
        super().__init__()
        self.distillation = distillation
        self.classifier = BNLinear(dim, num_classes) if num_classes > 0 else nn.Identity()
        if distillation:
            self.classifier_dist = BNLinear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not self.distillation:
            return self.classifier(x)
        logits, logits_dist = self.classifier(x), self.classifier_dist(x)
        if self.training:
            return logits, logits_dist
        return (logits + logits_dist) / 2

    def reparameterize(self) -> nn.Module:
        """One Linear: the eval-mode average of the two heads, each with its BatchNorm folded in.

        The deploy form returns the averaged logits in training mode too (it has no second head).
        """
        heads = [self.classifier] + ([self.classifier_dist] if self.distillation else [])
        if any(isinstance(head, nn.Identity) for head in heads):
            return nn.Identity()
        linears = [_as_linear(head) for head in heads]
        with torch.no_grad():
            weight = sum(linear.weight for linear in linears) / len(linears)
            bias = sum(linear.bias for linear in linears) / len(linears)
        return linear_from(weight, bias).eval()


def _as_linear(head: nn.Module) -> nn.Linear:
    """A classifier head (BNLinear or an already folded Linear) as one Linear with bias."""
    linear = head.reparameterize() if isinstance(head, BNLinear) else head
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"cannot fold a {type(head).__name__} classifier head into a Linear")
    if linear.bias is None:
        return linear_from(linear.weight, torch.zeros(linear.out_features, dtype=linear.weight.dtype))
    return linear


class RepViT(nn.Module):
    """RepViT backbone: a two-conv stem, then RepViT blocks configured row by row."""

    def __init__(self, cfgs: list[tuple[int, int, int, int, int, int]], num_classes: int = 1000,
                 distillation: bool = True, legacy_dw: bool = False, drop_path_rate: float = 0.0):
        super().__init__()
        in_channels = cfgs[0][2]
        stem = nn.Sequential(
            ConvBN(3, in_channels // 2, 3, 2, 1), nn.GELU(),
            ConvBN(in_channels // 2, in_channels, 3, 2, 1),
        )
        layers: list[nn.Module] = [stem]
        for kernel_size, expansion, channels, use_se, _use_hs, stride in cfgs:
            out_channels = make_divisible(channels, 8)
            hidden = make_divisible(in_channels * expansion, 8)
            layers.append(RepViTBlock(in_channels, hidden, out_channels, kernel_size, stride, bool(use_se), legacy_dw))
            in_channels = out_channels
        if drop_path_rate > 0:
            blocks = [m for m in layers if isinstance(m, RepViTBlock)]
            for index, block in enumerate(blocks):
                block.channel_mixer.drop = drop_path_rate * index / max(len(blocks) - 1, 1)
        self.features = nn.ModuleList(layers)
        self.num_features = in_channels
        self.classifier = DistillationClassifier(in_channels, num_classes, distillation)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.features:
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits in eval mode; in training mode with distillation, the (class, distillation) logits."""
        x = self.forward_features(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


def _stages(widths: tuple[int, ...], se_flags: tuple[str, ...]) -> list[tuple[int, int, int, int, int, int]]:
    """Expand per-stage widths and SE flag strings into the official per-block config rows.

    Row: (kernel, expansion, channels, use_se, use_hs, stride). The first block of every stage
    after the first downsamples; stages three and four use the "HS" flag (GELU either way).
    ``se_flags[i][j]`` is "1" where block j of stage i has squeeze-excitation.
    """
    rows = []
    for stage, (width, flags) in enumerate(zip(widths, se_flags)):
        for index, flag in enumerate(flags):
            stride = 2 if stage > 0 and index == 0 else 1
            rows.append((3, 2, width, int(flag), int(stage >= 2), stride))
    return rows


# Variants as data: per-stage widths, the SE pattern of every stage (its first character is the
# downsampling block for stages 2-4), which token mixer generation the variant uses, and the
# figures the paper (or the official README) gives.
_SE_M0_9 = ("100", "0100", "0101010101010100", "010")
_SE_M1_1 = ("100", "0100", "01010101010100", "010")
_CURRENT = "top-1 with distillation, 300 epochs (official README)"
_LEGACY = "first paper version; earlier RepVGGDW token mixer; top-1 with distillation, 300 epochs"


def _variant(kwargs: dict, label: str, params_m: float | None, deploy_params_m: float | None, gmacs: float | None,
             top1: float, latency_ms: float, notes: str) -> Variant:
    return Variant(kwargs, dict(variant=label, paper=PAPER, reference_impl=REFERENCE, params_m=params_m,
                                deploy_params_m=deploy_params_m, gmacs=gmacs, top1=top1,
                                published_latency_ms=latency_ms, published_latency_device=LATENCY_DEVICE,
                                crop_pct=0.95, interpolation="bicubic",  # timm repvit _cfg
                                notes=notes))


VARIANTS: dict[str, Variant] = {
    "repvit_m0_6": _variant(dict(widths=(40, 80, 160, 320), se=("10", "010", "0101010100", "01")),
                            "M0.6", None, None, None, 74.1, 0.6,
                            "released after the paper with no published parameter or MAC count; "
                            "official config with channels 40, 80, 160, 320; " + _CURRENT),
    "repvit_m0_9": _variant(dict(widths=(48, 96, 192, 384), se=_SE_M0_9),
                            "M0.9", 5.489, 5.067, 0.82, 78.7, 0.9, _CURRENT),
    "repvit_m1_0": _variant(dict(widths=(56, 112, 224, 448), se=_SE_M0_9),
                            "M1.0", 7.303, 6.810, 1.11, 80.0, 1.0, _CURRENT),
    "repvit_m1_1": _variant(dict(widths=(64, 128, 256, 512), se=_SE_M1_1),
                            "M1.1", 8.803, 8.244, 1.34, 80.7, 1.1, _CURRENT),
    "repvit_m1_5": _variant(dict(widths=(64, 128, 256, 512),
                                 se=("10100", "010100", "01010101010101010101010100", "01010")),
                            "M1.5", 14.644, 14.050, 2.27, 82.3, 1.5, _CURRENT),
    "repvit_m2_3": _variant(dict(widths=(80, 160, 320, 640), se=("1010100", "01010100", "01" * 17 + "00", "010")),
                            "M2.3", 23.689, 22.927, 4.52, 83.3, 2.3, _CURRENT),
    "repvit_m1": _variant(dict(widths=(48, 96, 192, 384), se=_SE_M0_9, legacy_dw=True),
                          "M1", 5.485, 5.067, 0.82, 78.5, 0.87, _LEGACY),
    "repvit_m2": _variant(dict(widths=(64, 128, 256, 512), se=_SE_M1_1, legacy_dw=True),
                          "M2", 8.798, 8.244, 1.34, 80.6, 1.17, _LEGACY),
    "repvit_m3": _variant(dict(widths=(64, 128, 256, 512), se=("10100", "010100", "01" * 9 + "00", "010"),
                               legacy_dw=True),
                          "M3", 10.683, 10.116, 1.86, 81.4, 1.37, _LEGACY),
}


def build(name: str, num_classes: int = 1000, distillation: bool = True, drop_path_rate: float = 0.0) -> RepViT:
    """Build a registered RepViT variant in training form."""
    variant = VARIANTS[name].kwargs
    cfgs = _stages(variant["widths"], variant["se"])
    return RepViT(cfgs, num_classes=num_classes, distillation=distillation,
                  legacy_dw=variant.get("legacy_dw", False), drop_path_rate=drop_path_rate)


# --- checkpoints from other sources (read by models.weights) -------------------------------------------

_TIMM_NAMES = ("repvit_m0_9", "repvit_m1_0", "repvit_m1_1", "repvit_m1_5", "repvit_m2_3", "repvit_m1", "repvit_m2",
               "repvit_m3")
CHECKPOINT_LAYOUTS = (
    CheckpointLayout("ours", "this repository",
                     ("features.0.0.c.weight", "features.*.token_mixer.1.conv_reduce.weight")),
    CheckpointLayout("official", "THU-MIG/RepViT releases (timm 0.5.4 SqueezeExcite: fc1/fc2)",
                     ("features.0.0.c.weight", "features.*.token_mixer.1.fc1.weight"),
                     names={name: name for name in VARIANTS}),
    CheckpointLayout("timm", "timm 1.0 (huggingface.co/timm/repvit_*)",
                     ("stem.conv1.c.weight", "stages.0.blocks.0.token_mixer.conv.c.weight"),
                     names={name: name for name in _TIMM_NAMES}),
)

# timm names inside one block (or the downsampling block) -> ours, relative to the block
_TIMM_BLOCK = (("token_mixer.", "token_mixer.0."), ("se.fc1.", "token_mixer.1.conv_reduce."),
               ("se.fc2.", "token_mixer.1.conv_expand."), ("channel_mixer.conv1.", "channel_mixer.m.0."),
               ("channel_mixer.conv2.", "channel_mixer.m.2."))
_TIMM_DOWNSAMPLE = (("spatial_downsample.", "token_mixer.0."), ("channel_downsample.", "token_mixer.2."),
                    ("ffn.conv1.", "channel_mixer.m.0."), ("ffn.conv2.", "channel_mixer.m.2."))
_TIMM_TOP = (("stem.conv1.", "features.0.0."), ("stem.conv2.", "features.0.2."),
             ("head.head.", "classifier.classifier."), ("head.head_dist.", "classifier.classifier_dist."))
_TIMM_UNIT = re.compile(r"stages\.(\d+)\.(?:downsample\.(pre_block)\.|(downsample)\.|blocks\.(\d+)\.)(.*)")


def _replace_prefix(key: str, table: tuple[tuple[str, str], ...]) -> str:
    for old, new in table:
        if key.startswith(old):
            return new + key[len(old):]
    return key


def convert_checkpoint(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """A checkpoint in the ``official`` or ``timm`` layout, with our keys (values untouched).

    official: the same module tree, with timm 0.5.4's SE names (``fc1``/``fc2``). timm: stages of
    blocks, where each downsampling stage starts with ``pre_block`` (the official list's previous
    stride-1 block) then ``spatial_downsample``/``channel_downsample``/``ffn`` (the official
    stride-2 block); the official flat ``features`` list is those units in order after the stem.
    """
    if source == "official":
        return rename_keys(state_dict, [(r"(token_mixer\.1\.)fc1\.", r"\1conv_reduce."),
                                        (r"(token_mixer\.1\.)fc2\.", r"\1conv_expand.")])
    if source != "timm":
        raise ValueError(f"RepViT checkpoints come in the layouts ours, official or timm, not {source!r}")
    parsed = {}  # key -> ((stage, 0 pre_block / 1 downsample / 2 block, block index), rest of the key)
    for key in state_dict:
        match = _TIMM_UNIT.fullmatch(key)
        if match:
            stage, pre, down, block, rest = match.groups()
            parsed[key] = ((int(stage), 0 if pre else (1 if down else 2), int(block or 0)), rest)
    index = {unit: position + 1 for position, unit in enumerate(sorted({unit for unit, _ in parsed.values()}))}
    out = {}
    for key, value in state_dict.items():
        if key in parsed:  # features.0 is the stem; the units follow in order
            unit, rest = parsed[key]
            key = f"features.{index[unit]}.{_replace_prefix(rest, _TIMM_DOWNSAMPLE if unit[1] == 1 else _TIMM_BLOCK)}"
        else:
            key = _replace_prefix(key, _TIMM_TOP)
        out[key] = value
    return out


def checkpoint_options(state_dict: dict[str, torch.Tensor]) -> dict:
    """Constructor arguments a checkpoint in our layout implies: its class count and distillation head."""
    head = state_dict.get("classifier.classifier.l.weight")
    if head is None:
        return {}
    return {"num_classes": head.shape[0], "distillation": "classifier.classifier_dist.l.weight" in state_dict}
