"""Reparameterization: turn a training-form model into its deploy form with the same outputs.

``reparameterize(model)`` returns a new module in eval mode: BatchNorms folded into the convs and
linears next to them, parallel branches merged (RepViT's RepVGGDW), layer scales folded into the
layer before them. The caller's model is never changed, and reparameterizing a deploy model
returns an equal copy (idempotent).

The protocol: a block that knows how to simplify itself defines ``reparameterize(self) -> nn.Module``
(returning ``self`` when nothing is left to fold). Models with no hand-written hook still get the
generic passes (conv->BN and BN->unpadded conv, by module structure and by ``torch.fx``).
The math lives in ``reparam.fuse`` (pure functions on tensors), the layers built from its results
in ``reparam.layers``, the surgery in ``reparam.passes``, the before/after accounting in
``reparam.summary``. ``python -m reparam NAME`` is the CLI.

reparam sits under ``models``: it imports no model family (the model blocks' hooks import it), so
either can be imported at module top without a cycle. Only the CLI (``reparam/__main__.py``,
imported by nobody) builds registered models.
"""
from __future__ import annotations

import copy
import warnings

from torch import nn

from reparam.passes import apply_hooks, fold_containers, fold_traced
from reparam.summary import ReparamSummary, summary, untrained_batchnorms

__all__ = ["reparameterize", "summary", "ReparamSummary", "UntrainedBatchNormWarning", "untrained_batchnorms"]


class UntrainedBatchNormWarning(UserWarning):
    """A BatchNorm still holds its initial statistics (mean 0, variance 1, no batches tracked)."""


def reparameterize(model: nn.Module, *, warn_untrained: bool = True) -> nn.Module:
    """A deploy-form copy of ``model`` in eval mode, with the same eval-mode outputs, dtype and device.

    A model given in training mode is folded from its running statistics (what eval mode uses).
    ``warn_untrained``: warn when BatchNorm statistics were never updated (a freshly built model, or
    a checkpoint that did not load), since folding them gives a deploy model nobody trained.
    """
    if warn_untrained:
        untrained = untrained_batchnorms(model)
        if untrained:
            shown = ", ".join(untrained[:3]) + (f" and {len(untrained) - 3} more" if len(untrained) > 3 else "")
            warnings.warn(f"{len(untrained)} BatchNorm layer(s) hold their initial statistics ({shown}): "
                          "folding them is exact but the deploy model is untrained; load a checkpoint "
                          "(--weights) or run the model in training mode on data first",
                          UntrainedBatchNormWarning, stacklevel=2)
    deploy = copy.deepcopy(model).eval()
    deploy = apply_hooks(deploy).eval()
    fold_containers(deploy)
    fold_traced(deploy)
    # Hooks build new layers in torch's default dtype and device; give back what came in.
    placements = {(p.dtype, p.device) for p in model.parameters() if p.is_floating_point()}
    if len(placements) == 1:
        dtype, device = placements.pop()
        deploy.to(device=device, dtype=dtype)
    return deploy.eval()
