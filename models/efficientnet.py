"""EfficientNet-B0 and EfficientNetV2 (B0, S).

* EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks (Tan & Le, ICML 2019).
* EfficientNetV2: Smaller Models and Faster Training (Tan & Le, ICML 2021).

Reference implementation: timm ``models/efficientnet.py`` with ``_efficientnet_builder.py`` and
``_efficientnet_blocks.py`` (https://github.com/huggingface/pytorch-image-models); the builds
match timm's ``efficientnet_b0``, ``efficientnetv2_b0`` (as ``tf_efficientnetv2_b0``) and
``efficientnetv2_s``. EfficientNetV2 uses Fused-MBConv (one kxk expand conv replacing the 1x1
expand + depthwise pair) in its early stages, MBConv with SE later. Every conv carries a
BatchNorm (``ConvBN``), so the deploy form is the generic conv-BN fold; no block needs a hook.

``efficientnetv2_b0`` is the official (TensorFlow) model, as timm's ``tf_efficientnetv2_b0``:
TensorFlow "SAME" padding (a strided conv pads ``ceil(size / stride)`` worth, the odd pixel at the
bottom/right, computed from the input it sees) and BatchNorm eps 1e-3. Its weights give different
outputs with symmetric padding, so the variant declares ``same_padding`` and ``bn_eps``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import (ConvBN, ConvBNAct, DepthwiseSeparable, InvertedResidual, SqueezeExciteReduced,
                           make_divisible)
from models.spec import Variant
from models.weights import CheckpointLayout, class_count, timm_efficientnet_blocks

PAPER_B0 = "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks (ICML 2019)"
PAPER_V2 = "EfficientNetV2: Smaller Models and Faster Training (ICML 2021)"
REFERENCE = "https://github.com/huggingface/pytorch-image-models/blob/main/timm/models/efficientnet.py"


class PadSame(nn.Module):
    """TensorFlow "SAME" padding for a strided kxk conv: the output is ``ceil(size / stride)``.

    The total padding depends on the input size (static for any given shape); the odd pixel goes
    to the bottom/right, as TensorFlow and timm's ``Conv2dSame`` do.
    """

    def __init__(self, kernel_size: int, stride: int):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def _total(self, size: int) -> int:
        return max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel_size - size, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # int(): a traced graph gets constant pads (exports are static; onnxslim mis-folds the traced arithmetic)
        pad_h, pad_w = self._total(int(x.shape[-2])), self._total(int(x.shape[-1]))
        return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


class ConvBNSame(nn.Sequential):
    """A strided conv + BN with TensorFlow "SAME" padding (children ``pad``, ``c``, ``bn``: ``ConvBN``'s keys).

    The generic conv->BN pass folds ``c`` and ``bn`` and keeps ``pad`` in front.
    """

    def __init__(self, like: ConvBN):
        conv = like.c
        super().__init__()
        self.add_module("pad", PadSame(conv.kernel_size[0], conv.stride[0]))
        self.add_module("c", nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0,
                                       conv.dilation, conv.groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(conv.out_channels))
        self.load_state_dict(like.state_dict())


def _use_same_padding(model: nn.Module) -> None:
    """Give every strided ``ConvBN`` TensorFlow "SAME" padding, in place.

    Stride-1 convs with odd kernels pad symmetrically under "SAME" too, so they stay as built; the
    blocks shared with MobileNet (``models.layers``) are built as usual and their strided convs swapped.
    """
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, ConvBN) and child.c.stride[0] > 1:
                setattr(parent, child_name, ConvBNSame(child))


class ConvBNActSkip(ConvBNAct):
    """kxk conv + BN + SiLU, with a residual when the shape is kept (``cn..._skip`` in timm)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, skip: bool):
        super().__init__(in_channels, out_channels, kernel_size, stride, act_layer=nn.SiLU)
        self.has_skip = skip and stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return x + out if self.has_skip else out


class FusedMBConv(nn.Module):
    """Fused-MBConv (timm's ``EdgeResidual``): kxk expand+BN+SiLU, optional SE, 1x1 project+BN."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, kernel_size: int, stride: int,
                 se: nn.Module | None = None):
        super().__init__()
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_exp = ConvBN(in_channels, mid_channels, kernel_size, stride, kernel_size // 2)
        self.act = nn.SiLU()
        self.se = se if se is not None else nn.Identity()
        self.conv_pwl = ConvBN(mid_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_pwl(self.se(self.act(self.conv_exp(x))))
        return x + out if self.has_skip else out


class EfficientNet(nn.Module):
    """Stem conv, stages from a block table, conv1x1 head, pooling and a linear classifier.

    Table row: (block, repeats, kernel, stride, expansion, out_channels, se_ratio), block one of
    "cn" (conv+BN+SiLU with skip), "ds" (depthwise separable), "er" (Fused-MBConv), "ir" (MBConv).
    ``same_padding`` and ``bn_eps``: the TensorFlow form of the official EfficientNetV2 models.
    """

    def __init__(self, stages: list[list[tuple]], stem_channels: int, head_channels: int = 1280,
                 num_classes: int = 1000, same_padding: bool = False, bn_eps: float = 1e-5):
        super().__init__()
        self.stem = ConvBNAct(3, stem_channels, 3, 2, act_layer=nn.SiLU, numbered=True)
        in_channels = stem_channels
        built_stages = []
        for rows in stages:
            blocks = []
            for block_type, repeats, kernel, stride, expansion, channels, se_ratio in rows:
                out_channels = make_divisible(channels)
                for index in range(repeats):
                    blocks.append(self._block(block_type, in_channels, out_channels, kernel,
                                              stride if index == 0 else 1, expansion, se_ratio))
                    in_channels = out_channels
            built_stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*built_stages)
        self.conv_head = ConvBN(in_channels, head_channels, 1)
        self.act_head = nn.SiLU()
        self.num_features = head_channels
        self.classifier = nn.Linear(head_channels, num_classes) if num_classes > 0 else nn.Identity()
        if same_padding:
            _use_same_padding(self)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eps = bn_eps

    @staticmethod
    def _block(block_type: str, in_channels: int, out_channels: int, kernel: int, stride: int, expansion: float,
               se_ratio: float) -> nn.Module:
        if block_type == "cn":
            return ConvBNActSkip(in_channels, out_channels, kernel, stride, skip=True)
        mid_channels = in_channels if block_type == "ds" else make_divisible(in_channels * expansion)
        # EfficientNet's SE squeezes to round(block input width * ratio), SiLU inside, sigmoid gate
        se = (SqueezeExciteReduced(mid_channels, round(in_channels * se_ratio), nn.SiLU, nn.Sigmoid)
              if se_ratio else None)
        if block_type == "ds":
            return DepthwiseSeparable(in_channels, out_channels, kernel, stride, nn.SiLU, se)
        if block_type == "er":
            return FusedMBConv(in_channels, mid_channels, out_channels, kernel, stride, se)
        if block_type == "ir":
            return InvertedResidual(in_channels, mid_channels, out_channels, kernel, stride, nn.SiLU, se)
        raise ValueError(f"unknown EfficientNet block type {block_type!r}; expected 'cn', 'ds', 'er' or 'ir'")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.act_head(self.conv_head(self.blocks(self.stem(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x).mean((2, 3)))


# Variants as data (timm's arch_def strings written out as rows):
# (block, repeats, kernel, stride, expansion, out_channels, se_ratio)
VARIANTS: dict[str, Variant] = {
    "efficientnet_b0": Variant(
        dict(stem_channels=32, stages=[
            [("ds", 1, 3, 1, 1, 16, 0.25)],
            [("ir", 2, 3, 2, 6, 24, 0.25)],
            [("ir", 2, 5, 2, 6, 40, 0.25)],
            [("ir", 3, 3, 2, 6, 80, 0.25)],
            [("ir", 3, 5, 1, 6, 112, 0.25)],
            [("ir", 4, 5, 2, 6, 192, 0.25)],
            [("ir", 1, 3, 1, 6, 320, 0.25)],
        ]),
        dict(variant="B0", paper=PAPER_B0, reference_impl=REFERENCE, params_m=5.289, gmacs=0.39, top1=77.1,
             crop_pct=0.875, interpolation="bicubic",  # timm efficientnet.py _cfg
             notes="paper Table 2: 5.3M params, 0.39B FLOPs (multiply-adds); the paper gives no device latency "
                   "for B0 (Table 5 is B1/B7 on a CPU); timm's retrained weights reach 77.7")),
    "efficientnetv2_b0": Variant(
        dict(stem_channels=32, same_padding=True, bn_eps=1e-3, stages=[
            [("cn", 1, 3, 1, 1, 16, 0)],
            [("er", 2, 3, 2, 4, 32, 0)],
            [("er", 2, 3, 2, 4, 48, 0)],
            [("ir", 3, 3, 2, 4, 96, 0.25)],
            [("ir", 5, 3, 1, 6, 112, 0.25)],
            [("ir", 8, 3, 2, 6, 192, 0.25)],
        ]),
        dict(variant="V2-B0", paper=PAPER_V2, reference_impl=REFERENCE, input_size=(3, 192, 192), params_m=7.140,
             gmacs=None, top1=78.7, crop_pct=0.875, interpolation="bicubic",  # timm tf_efficientnetv2_b0 cfg
             notes="V2-B0 is in the official repo (google/automl, efficientnetv2 effnetv2_configs), not in the "
                   "paper's tables; 192 is its training size (evaluated at 224: 78.7 top-1, 0.72B FLOPs there); "
                   "timm's tf_efficientnetv2_b0 has the same 7.14M parameters; count_macs gives 0.528 GMACs at "
                   "192, which is the published 0.72B scaled by (192/224)^2 = 0.529; TensorFlow 'SAME' padding and "
                   "BatchNorm eps 1e-3, as the official model and tf_efficientnetv2_b0")),
    "efficientnetv2_s": Variant(
        dict(stem_channels=24, stages=[
            [("cn", 2, 3, 1, 1, 24, 0)],
            [("er", 4, 3, 2, 4, 48, 0)],
            [("er", 4, 3, 2, 4, 64, 0)],
            [("ir", 6, 3, 2, 4, 128, 0.25)],
            [("ir", 9, 3, 1, 6, 160, 0.25)],
            [("ir", 15, 3, 2, 6, 256, 0.25)],
        ]),
        dict(variant="V2-S", paper=PAPER_V2, reference_impl=REFERENCE, input_size=(3, 300, 300), params_m=21.458,
             gmacs=None, top1=83.9, crop_pct=1.0, interpolation="bicubic",  # timm tf_efficientnetv2_s cfg
             notes="paper Table 7: 22M params, 8.8B FLOPs at 384, 83.9 top-1; count_macs gives 5.31 GMACs at 300, "
                   "and the paper publishes no figure at 300 (an intermediate size of its progressive-resizing "
                   "recipe), so gmacs is unset; params match timm's efficientnetv2_s / tf_efficientnetv2_s")),
}


def build(name: str, num_classes: int = 1000) -> EfficientNet:
    """Build a registered EfficientNet / EfficientNetV2 variant in training form."""
    return EfficientNet(num_classes=num_classes, **VARIANTS[name].kwargs)


# --- checkpoints from other sources (read by models.weights) -------------------------------------------

CHECKPOINT_LAYOUTS = (
    CheckpointLayout("ours", "this repository", ("stem.0.c.weight", "conv_head.c.weight")),
    CheckpointLayout("timm", "timm 1.0 (huggingface.co/timm/efficientnet*; _efficientnet_builder names)",
                     ("conv_stem.weight", "bn1.weight", "blocks.0.0.*.weight"),
                     names={"efficientnet_b0": "efficientnet_b0", "efficientnetv2_b0": "tf_efficientnetv2_b0",
                            "efficientnetv2_s": "efficientnetv2_s"}),
)


def convert_checkpoint(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """A timm checkpoint with our keys: each conv and its ``bnN`` become one ``ConvBN``."""
    if source != "timm":
        raise ValueError(f"EfficientNet checkpoints come in the layouts ours or timm, not {source!r}")
    return timm_efficientnet_blocks(state_dict, stem="stem.0")


def checkpoint_options(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """Constructor arguments a checkpoint in our layout implies: its class count."""
    return class_count(state_dict, "classifier.weight")
