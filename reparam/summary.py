"""What reparameterization changed: BatchNorms folded, branches merged, scales folded, sizes.

``summary(before, after)`` compares a training-form model with its deploy form by structure only
(it runs nothing), so it can describe any pair, including a deploy model loaded from disk.
"""
from __future__ import annotations

import dataclasses
import re

import torch
from torch import nn

_BatchNorm = nn.modules.batchnorm._BatchNorm
# Layer-scale parameters by the names the zoo's families (and timm) give them.
_LAYER_SCALE = re.compile(r"^(gamma(_\w+)?|layer_scale(_\w+)?|ls\d)$")
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclasses.dataclass(frozen=True)
class ReparamSummary:
    """Before/after figures of one reparameterization."""

    batchnorms_before: int  # BatchNorm modules in the training form
    batchnorms_after: int  # BatchNorm modules left in the deploy form (0 for a fully folded model)
    conv_branches_merged: int  # convs that disappeared into a parallel branch (RepVGGDW: 1 per block)
    layer_scales_folded: int  # layer-scale parameters folded into the layer before them
    params_before: int  # parameter count, training form
    params_after: int  # parameter count, deploy form
    layers_before: int  # leaf modules doing work (nn.Identity and nn.Dropout not counted), training form
    layers_after: int  # the same, deploy form
    from_training_mode: bool  # the model came in training mode: folded from its running statistics
    untrained_batchnorms: int  # BatchNorms of the training form whose statistics were never updated

    @property
    def batchnorms_folded(self) -> int:
        return self.batchnorms_before - self.batchnorms_after

    def rows(self) -> list[tuple[str, str, str]]:
        """(quantity, before, after) rows for a table."""
        return [
            ("parameters", f"{self.params_before:,}", f"{self.params_after:,}"),
            ("layers (leaf modules)", str(self.layers_before), str(self.layers_after)),
            ("BatchNorm layers", str(self.batchnorms_before), str(self.batchnorms_after)),
            ("conv branches", "", f"-{self.conv_branches_merged} merged"),
            ("layer scales", str(self.layer_scales_folded), "0 (folded)" if self.layer_scales_folded else "0"),
        ]

    def notes(self) -> list[str]:
        notes = []
        if self.from_training_mode:
            notes.append("the model was in training mode: folded from its BatchNorm running statistics "
                         "(what eval mode uses); training-mode outputs use batch statistics and differ")
        if self.untrained_batchnorms:
            notes.append(f"{self.untrained_batchnorms} BatchNorm layer(s) hold their initial statistics "
                         "(never updated): the deploy model is exact but untrained")
        if self.batchnorms_after:
            notes.append(f"{self.batchnorms_after} BatchNorm layer(s) could not be folded exactly and stay")
        return notes


def untrained_batchnorms(model: nn.Module) -> list[str]:
    """Names of BatchNorms with initial statistics: no batch tracked, mean all 0, variance all 1."""
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, _BatchNorm) or module.running_mean is None:
            continue
        tracked = module.num_batches_tracked
        if tracked is not None and int(tracked) > 0:
            continue
        if torch.all(module.running_mean == 0) and torch.all(module.running_var == 1):
            names.append(name or type(module).__name__)
    return names


def _layers(model: nn.Module) -> int:
    return sum(1 for m in model.modules()
               if not list(m.children()) and not isinstance(m, (nn.Identity, nn.Dropout)))


def _layer_scales(model: nn.Module) -> int:
    return sum(1 for name, _ in model.named_parameters() if _LAYER_SCALE.match(name.rsplit(".", 1)[-1]))


def summary(before: nn.Module, after: nn.Module) -> ReparamSummary:
    """Compare a training-form model with its deploy form (see ``ReparamSummary``)."""
    def count(model: nn.Module, kind: type | tuple[type, ...]) -> int:
        return sum(1 for m in model.modules() if isinstance(m, kind))

    return ReparamSummary(
        batchnorms_before=count(before, _BatchNorm), batchnorms_after=count(after, _BatchNorm),
        conv_branches_merged=max(count(before, _CONV) - count(after, _CONV), 0),
        layer_scales_folded=max(_layer_scales(before) - _layer_scales(after), 0),
        params_before=sum(p.numel() for p in before.parameters()),
        params_after=sum(p.numel() for p in after.parameters()),
        layers_before=_layers(before), layers_after=_layers(after),
        from_training_mode=before.training, untrained_batchnorms=len(untrained_batchnorms(before)))
