"""MobileNetV2 and MobileNetV3.

* MobileNetV2: Inverted Residuals and Linear Bottlenecks (Sandler et al., CVPR 2018).
* MobileNetV3: Searching for MobileNetV3 (Howard et al., ICCV 2019).

Reference implementation: timm ``models/mobilenetv3.py`` and ``models/efficientnet.py`` with
``_efficientnet_builder.py`` (https://github.com/huggingface/pytorch-image-models), whose
``mobilenetv2_100``, ``mobilenetv3_small_100`` and ``mobilenetv3_large_100`` are built here
(same block strings, channel rounding and head). Every conv is followed by a BatchNorm
(``ConvBN``), so the deploy form is the generic conv-BN fold; no block needs a hook.
"""
from __future__ import annotations

import torch
from torch import nn

from models.layers import (ConvBN, ConvBNAct, DepthwiseSeparable, InvertedResidual, SqueezeExciteReduced,
                           make_divisible)
from models.spec import Variant
from models.weights import CheckpointLayout, class_count, timm_efficientnet_blocks

PAPER_V2 = "MobileNetV2: Inverted Residuals and Linear Bottlenecks (CVPR 2018)"
PAPER_V3 = "Searching for MobileNetV3 (ICCV 2019)"
REFERENCE = "https://github.com/huggingface/pytorch-image-models/blob/main/timm/models/mobilenetv3.py"
REFERENCE_V2 = "https://github.com/huggingface/pytorch-image-models/blob/main/timm/models/efficientnet.py"

# activation names used in the block tables
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish}


class MobileNet(nn.Module):
    """A stem conv, stages of MobileNet blocks from a table, and the family's classifier head.

    Table row: (block, repeats, kernel, stride, expansion, out_channels, se_ratio, activation),
    block one of "ds" (depthwise separable), "ir" (inverted residual), "cn" (conv+BN+act).
    ``head_bn``: MobileNetV2's head is conv1x1+BN+act before pooling; MobileNetV3's is pooling,
    then a conv1x1 with bias and an activation (the efficient last stage of the V3 paper).
    """

    def __init__(self, stages: list[list[tuple]], stem_channels: int, stem_act: str, head_channels: int,
                 head_act: str, head_bn: bool, num_classes: int = 1000):
        super().__init__()
        self.stem = ConvBNAct(3, stem_channels, 3, 2, act_layer=ACTIVATIONS[stem_act])
        in_channels = stem_channels
        built_stages = []
        for rows in stages:
            blocks = []
            for block_type, repeats, kernel, stride, expansion, channels, se_ratio, act_name in rows:
                out_channels = make_divisible(channels)
                for index in range(repeats):
                    blocks.append(self._block(block_type, in_channels, out_channels, kernel,
                                              stride if index == 0 else 1, expansion, se_ratio, ACTIVATIONS[act_name]))
                    in_channels = out_channels
            built_stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*built_stages)
        self.head_bn = head_bn
        if head_bn:
            self.conv_head = ConvBN(in_channels, head_channels, 1)
        else:
            self.conv_head = nn.Conv2d(in_channels, head_channels, 1, bias=True)
        self.act_head = ACTIVATIONS[head_act]()
        self.num_features = head_channels
        self.classifier = nn.Linear(head_channels, num_classes) if num_classes > 0 else nn.Identity()

    @staticmethod
    def _block(block_type: str, in_channels: int, out_channels: int, kernel: int, stride: int, expansion: float,
               se_ratio: float, act_layer: type[nn.Module]) -> nn.Module:
        if block_type == "cn":
            return ConvBNAct(in_channels, out_channels, kernel, stride, act_layer=act_layer)
        mid_channels = in_channels if block_type == "ds" else make_divisible(in_channels * expansion)
        # V3's SE squeezes the expanded width to make_divisible(width / 4), ReLU inside, hard-sigmoid gate
        se = (SqueezeExciteReduced(mid_channels, make_divisible(mid_channels * se_ratio), nn.ReLU, nn.Hardsigmoid)
              if se_ratio else None)
        if block_type == "ds":
            return DepthwiseSeparable(in_channels, out_channels, kernel, stride, act_layer, se)
        if block_type == "ir":
            return InvertedResidual(in_channels, mid_channels, out_channels, kernel, stride, act_layer, se)
        raise ValueError(f"unknown MobileNet block type {block_type!r}; expected 'ds', 'ir' or 'cn'")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        if self.head_bn:
            x = self.act_head(self.conv_head(x)).mean((2, 3))
        else:
            x = self.act_head(self.conv_head(x.mean((2, 3), keepdim=True))).flatten(1)
        return self.classifier(x)


# Variants as data: the builder's arguments (timm's arch_def strings written out as rows:
# (block, repeats, kernel, stride, expansion, out_channels, se_ratio, activation)), then the spec.
VARIANTS: dict[str, Variant] = {
    "mobilenetv2_100": Variant(
        dict(stem_channels=32, stem_act="relu6", head_channels=1280, head_act="relu6", head_bn=True,
             stages=[
                 [("ds", 1, 3, 1, 1, 16, 0, "relu6")],
                 [("ir", 2, 3, 2, 6, 24, 0, "relu6")],
                 [("ir", 3, 3, 2, 6, 32, 0, "relu6")],
                 [("ir", 4, 3, 2, 6, 64, 0, "relu6")],
                 [("ir", 3, 3, 1, 6, 96, 0, "relu6")],
                 [("ir", 3, 3, 2, 6, 160, 0, "relu6")],
                 [("ir", 1, 3, 1, 6, 320, 0, "relu6")],
             ]),
        dict(variant="MobileNetV2 1.0", paper=PAPER_V2, reference_impl=REFERENCE_V2, params_m=3.505, gmacs=0.300,
             crop_pct=0.875, interpolation="bicubic",  # timm efficientnet.py _cfg (mobilenetv2_100.ra_in1k)
             top1=72.0, published_latency_ms=75.0,
             published_latency_device="Google Pixel 1, TFLite, single large core (paper Table 4)",
             notes="MACs: paper Table 4 (300M); top-1 72.0 is the paper's, timm's retrained weights reach 72.97")),
    "mobilenetv3_small_100": Variant(
        dict(stem_channels=16, stem_act="hswish", head_channels=1024, head_act="hswish", head_bn=False,
             stages=[
                 [("ds", 1, 3, 2, 1, 16, 0.25, "relu")],
                 [("ir", 1, 3, 2, 4.5, 24, 0, "relu"), ("ir", 1, 3, 1, 3.67, 24, 0, "relu")],
                 [("ir", 1, 5, 2, 4, 40, 0.25, "hswish"), ("ir", 2, 5, 1, 6, 40, 0.25, "hswish")],
                 [("ir", 2, 5, 1, 3, 48, 0.25, "hswish")],
                 [("ir", 3, 5, 2, 6, 96, 0.25, "hswish")],
                 [("cn", 1, 1, 1, 1, 576, 0, "hswish")],
             ]),
        dict(variant="MobileNetV3-Small 1.0", paper=PAPER_V3, reference_impl=REFERENCE, params_m=2.543, gmacs=0.056,
             crop_pct=0.875, interpolation="bilinear",  # timm mobilenetv3.py _cfg (mobilenetv3_small_100.lamb_in1k)
             top1=67.4, published_latency_ms=15.8,
             published_latency_device="Google Pixel 1, TFLite, single large core, float (paper Table 3)",
             notes="paper Table 3: 56M MACs, 2.5M params (timm's count 2.543M); timm's weights reach 67.67")),
    "mobilenetv3_large_100": Variant(
        dict(stem_channels=16, stem_act="hswish", head_channels=1280, head_act="hswish", head_bn=False,
             stages=[
                 [("ds", 1, 3, 1, 1, 16, 0, "relu")],
                 [("ir", 1, 3, 2, 4, 24, 0, "relu"), ("ir", 1, 3, 1, 3, 24, 0, "relu")],
                 [("ir", 3, 5, 2, 3, 40, 0.25, "relu")],
                 [("ir", 1, 3, 2, 6, 80, 0, "hswish"), ("ir", 1, 3, 1, 2.5, 80, 0, "hswish"),
                  ("ir", 2, 3, 1, 2.3, 80, 0, "hswish")],
                 [("ir", 2, 3, 1, 6, 112, 0.25, "hswish")],
                 [("ir", 3, 5, 2, 6, 160, 0.25, "hswish")],
                 [("cn", 1, 1, 1, 1, 960, 0, "hswish")],
             ]),
        dict(variant="MobileNetV3-Large 1.0", paper=PAPER_V3, reference_impl=REFERENCE, params_m=5.483, gmacs=0.219,
             crop_pct=0.875, interpolation="bicubic",  # timm mobilenetv3_large_100.ra_in1k cfg
             top1=75.2, published_latency_ms=51.0,
             published_latency_device="Google Pixel 1, TFLite, single large core, float (paper Table 3)",
             notes="paper Table 3: 219M MACs, 5.4M params; timm's weights reach 75.77")),
}


def build(name: str, num_classes: int = 1000) -> MobileNet:
    """Build a registered MobileNetV2/V3 variant in training form."""
    return MobileNet(num_classes=num_classes, **VARIANTS[name].kwargs)


# --- checkpoints from other sources (read by models.weights) -------------------------------------------

CHECKPOINT_LAYOUTS = (
    CheckpointLayout("ours", "this repository", ("stem.conv.c.weight", "blocks.0.0.conv_dw.c.weight")),
    CheckpointLayout("timm", "timm 1.0 (huggingface.co/timm/mobilenetv*; _efficientnet_builder names)",
                     ("conv_stem.weight", "bn1.weight", "blocks.0.0.conv_dw.weight"),
                     names={name: name for name in VARIANTS}),
)


def convert_checkpoint(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """A timm checkpoint with our keys: each conv and its ``bnN`` become one ``ConvBN``."""
    if source != "timm":
        raise ValueError(f"MobileNet checkpoints come in the layouts ours or timm, not {source!r}")
    return timm_efficientnet_blocks(state_dict, stem="stem.conv")


def checkpoint_options(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """Constructor arguments a checkpoint in our layout implies: its class count."""
    return class_count(state_dict, "classifier.weight")
