"""ConvNeXt: A ConvNet for the 2020s (Liu et al., CVPR 2022).

Reference implementation: https://github.com/facebookresearch/ConvNeXt (``models/convnext.py``)
for ConvNeXt-T; the small variants atto, femto, pico and nano exist only in timm
(``timm/models/convnext.py``), which builds them with 1x1-conv MLPs and channels-first
LayerNorms (``conv_mlp=True``); ConvNeXt-T keeps the official channels-last Linear MLP.

Block: 7x7 depthwise conv, LayerNorm, MLP (4x, GELU), per-channel layer scale ``gamma``, residual.
Reparameterization folds ``gamma`` into the MLP's last linear layer (``fc2``), which is exact
(``gamma * (W x + b) = (gamma W) x + gamma b``); the LayerNorms are left alone.
"""
from __future__ import annotations

import torch
from torch import nn

from models.layers import LayerNorm2d
from models.spec import Variant
from models.weights import CheckpointLayout, class_count, rename_keys
from reparam.fuse import fold_scale_into_linear
from reparam.layers import fold_norms

PAPER = "A ConvNet for the 2020s (CVPR 2022)"
REFERENCE = "https://github.com/facebookresearch/ConvNeXt"
REFERENCE_TIMM = "https://github.com/huggingface/pytorch-image-models/blob/main/timm/models/convnext.py"


class ConvNeXtBlock(nn.Module):
    """dw7x7 -> LayerNorm -> fc1 -> GELU -> fc2 -> layer scale, plus the input.

    ``conv_mlp``: the MLP is 1x1 convs on NCHW (timm's small variants) instead of Linear layers
    on NHWC (the official form). ``ls_init_value=None`` builds the block without layer scale,
    which is the deploy form ``reparameterize`` returns.
    """

    def __init__(self, dim: int, conv_mlp: bool, ls_init_value: float | None = 1e-6, mlp_ratio: int = 4):
        super().__init__()
        self.dim = dim
        self.conv_mlp = conv_mlp
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim, bias=True)
        if conv_mlp:
            self.norm = LayerNorm2d(dim, eps=1e-6)
            self.fc1 = nn.Conv2d(dim, mlp_ratio * dim, 1)
            self.fc2 = nn.Conv2d(mlp_ratio * dim, dim, 1)
        else:
            self.norm = nn.LayerNorm(dim, eps=1e-6)
            self.fc1 = nn.Linear(dim, mlp_ratio * dim)
            self.fc2 = nn.Linear(mlp_ratio * dim, dim)
        self.act = nn.GELU()
        self.gamma = nn.Parameter(torch.full((dim,), ls_init_value)) if ls_init_value is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_dw(x)
        if self.conv_mlp:
            x = self.fc2(self.act(self.fc1(self.norm(x))))
            if self.gamma is not None:
                x = x * self.gamma.reshape(1, -1, 1, 1)
        else:
            x = self.fc2(self.act(self.fc1(self.norm(x.permute(0, 2, 3, 1)))))
            if self.gamma is not None:
                x = x * self.gamma
            x = x.permute(0, 3, 1, 2)
        return shortcut + x

    def reparameterize(self) -> nn.Module:
        """The same block with ``gamma`` folded into ``fc2`` (no layer scale left) and the norm's affine part
        into ``fc1`` (``reparam.layers.fold_norm_affine``)."""
        if self.gamma is None:
            return fold_norms(self, ("norm", "fc1"))
        fused = ConvNeXtBlock(self.dim, self.conv_mlp, ls_init_value=None, mlp_ratio=self._mlp_ratio())
        fused.to(device=self.fc2.weight.device, dtype=self.fc2.weight.dtype)
        state = {k: v for k, v in self.state_dict().items() if k != "gamma"}
        with torch.no_grad():
            state["fc2.weight"], state["fc2.bias"] = fold_scale_into_linear(self.fc2.weight, self.fc2.bias, self.gamma)
        fused.load_state_dict(state)
        return fold_norms(fused.train(self.training), ("norm", "fc1"))

    def _mlp_ratio(self) -> int:
        return self.fc2.weight.shape[1] // self.dim


class ConvNeXtStage(nn.Module):
    """Optional downsampling (LayerNorm + 2x2 stride-2 conv), then ``depth`` blocks."""

    def __init__(self, in_dim: int, out_dim: int, depth: int, conv_mlp: bool, downsample: bool):
        super().__init__()
        if downsample:
            self.downsample = nn.Sequential(LayerNorm2d(in_dim, eps=1e-6), nn.Conv2d(in_dim, out_dim, 2, stride=2))
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*[ConvNeXtBlock(out_dim, conv_mlp) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class ConvNeXt(nn.Module):
    """4x4 patchify stem, four stages, global average pool, LayerNorm and a linear head."""

    def __init__(self, depths: tuple[int, ...], dims: tuple[int, ...], conv_mlp: bool, num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0], eps=1e-6))
        stages = []
        in_dim = dims[0]
        for index, (depth, dim) in enumerate(zip(depths, dims)):
            stages.append(ConvNeXtStage(in_dim, dim, depth, conv_mlp, downsample=index > 0))
            in_dim = dim
        self.stages = nn.Sequential(*stages)
        self.num_features = in_dim
        self.norm = nn.LayerNorm(in_dim, eps=1e-6)
        self.head = nn.Linear(in_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x).mean((2, 3))
        return self.head(self.norm(x))


_TIMM_ONLY = ("a timm variant, not in the paper: params, MACs and top-1 are timm's published figures "
              "(d2 / d1 ImageNet-1k recipe, evaluated at 224)")


def _timm_variant(kwargs: dict, label: str, params_m: float, gmacs: float, top1: float) -> Variant:
    return Variant(kwargs, dict(variant=label, paper=PAPER, reference_impl=REFERENCE_TIMM, params_m=params_m,
                                gmacs=gmacs, top1=top1, crop_pct=0.875, interpolation="bicubic",  # timm convnext _cfg
                                notes=_TIMM_ONLY))


VARIANTS: dict[str, Variant] = {
    "convnext_atto": _timm_variant(dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320), conv_mlp=True),
                                   "atto", 3.696, 0.55, 75.7),
    "convnext_femto": _timm_variant(dict(depths=(2, 2, 6, 2), dims=(48, 96, 192, 384), conv_mlp=True),
                                    "femto", 5.218, 0.79, 77.5),
    "convnext_pico": _timm_variant(dict(depths=(2, 2, 6, 2), dims=(64, 128, 256, 512), conv_mlp=True),
                                   "pico", 9.046, 1.37, 79.5),
    "convnext_nano": _timm_variant(dict(depths=(2, 2, 8, 2), dims=(80, 160, 320, 640), conv_mlp=True),
                                   "nano", 15.594, 2.46, 80.8),
    "convnext_tiny": Variant(
        dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), conv_mlp=False),
        dict(variant="T", paper=PAPER, reference_impl=REFERENCE, params_m=28.589, gmacs=4.5, top1=82.1,
             crop_pct=0.875, interpolation="bicubic",  # official eval (--crop_pct 0.875) and timm's cfg
             notes="paper Table 1 (ImageNet-1k, 224): 28M params, 4.5G FLOPs (multiply-adds); "
                   "the paper gives A100 throughput, not a mobile latency")),
}


def build(name: str, num_classes: int = 1000) -> ConvNeXt:
    """Build a registered ConvNeXt variant in training form (with layer scale)."""
    return ConvNeXt(num_classes=num_classes, **VARIANTS[name].kwargs)


# --- checkpoints from other sources (read by models.weights) -------------------------------------------

CHECKPOINT_LAYOUTS = (
    CheckpointLayout("ours", "this repository", ("stem.0.weight", "stages.0.blocks.0.fc1.weight", "norm.weight")),
    CheckpointLayout("timm", "timm 1.0 (huggingface.co/timm/convnext_*)",
                     ("stem.0.weight", "stages.0.blocks.0.mlp.fc1.weight", "head.fc.weight"),
                     names={name: name for name in VARIANTS}),
    CheckpointLayout("official", "facebookresearch/ConvNeXt releases (convnext_tiny_1k_224*.pth)",
                     ("downsample_layers.0.0.weight", "stages.0.0.pwconv1.weight", "head.weight"),
                     names={"convnext_tiny": "convnext_tiny"}),
)


def convert_checkpoint(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """A checkpoint in the ``timm`` or ``official`` layout, with our keys.

    timm: the MLP is ``mlp.fc1/fc2`` and the head ``head.norm``/``head.fc``. official (as timm's
    ``checkpoint_filter_fn`` reads it): ``downsample_layers``, ``stages.N.M``, ``dwconv``, ``pwconv1/2``
    (Linear, as in our ConvNeXt-T; the official repository has no ``conv_mlp`` variant).
    """
    if source == "timm":
        return rename_keys(state_dict, [(r"\.mlp\.fc(\d)\.", r".fc\1."), (r"^head\.norm\.", "norm."),
                                        (r"^head\.fc\.", "head.")])
    if source != "official":
        raise ValueError(f"ConvNeXt checkpoints come in the layouts ours, timm or official, not {source!r}")
    return rename_keys(state_dict, [
        (r"^downsample_layers\.0\.", "stem."),
        (r"^downsample_layers\.(\d+)\.", r"stages.\1.downsample."),
        (r"^stages\.(\d+)\.(\d+)\.", r"stages.\1.blocks.\2."),
        (r"\.dwconv\.", ".conv_dw."),
        (r"\.pwconv(\d)\.", r".fc\1."),
    ])


def checkpoint_options(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """Constructor arguments a checkpoint in our layout implies: its class count."""
    return class_count(state_dict, "head.weight")
