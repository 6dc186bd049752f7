"""New layers holding folded tensors: how reparameterization turns ``reparam.fuse`` results into modules.

``reparam.fuse`` returns tensors; a block's ``reparameterize`` hook or a generic pass in
``reparam.passes`` builds the layer that replaces the old ones here, with the geometry of the
layer it replaces and the dtype and device of the folded weight.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from reparam.fuse import fold_affine_into_following_conv


def conv2d_from(template: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Conv2d:
    """A Conv2d with ``template``'s geometry (stride, padding, dilation, groups) holding ``weight`` and ``bias``."""
    conv = nn.Conv2d(template.in_channels, template.out_channels, tuple(weight.shape[-2:]), template.stride,
                     template.padding, template.dilation, template.groups, bias=bias is not None,
                     padding_mode=template.padding_mode, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return conv


def linear_from(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """A Linear holding ``weight`` (out, in) and ``bias``."""
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device,
                       dtype=weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias is not None:
            linear.bias.copy_(bias)
    return linear


def fold_norm_affine(norm: nn.LayerNorm, layer: nn.Linear | nn.Conv2d) -> tuple[nn.LayerNorm, nn.Module]:
    """``(bare, folded)`` with ``folded(bare(x)) == layer(norm(x))``: the norm's per-channel weight and bias move
    into the layer that reads the normalized channels, and the norm keeps only the normalization.

    ``layer``: a Linear over the normalized (last) axis, or a 1x1 conv over a channel-first LayerNorm's
    channels, reading the norm's output directly or through ops that only move elements (permutes, window
    partitions, shifts), which commute with a per-channel affine map. LiteRT runs a LayerNorm's affine
    part as two more elementwise ops over the whole tensor; folded, they cost nothing.
    """
    if len(norm.normalized_shape) != 1 or norm.weight is None or getattr(norm, "decomposed", False):
        raise ValueError(f"{type(norm).__name__}{tuple(norm.normalized_shape)}: only an affine LayerNorm over one "
                         "axis, computed by F.layer_norm, folds into the next layer")
    is_conv = isinstance(layer, nn.Conv2d)
    if is_conv and (layer.kernel_size != (1, 1) or layer.groups != 1):
        raise ValueError(f"a LayerNorm folds into a 1x1 conv with groups=1, not {layer}")
    shift = norm.bias if norm.bias is not None else torch.zeros_like(norm.weight)
    weight, bias = fold_affine_into_following_conv(norm.weight, shift, layer.weight, layer.bias)
    bare = copy.deepcopy(norm)
    bare.weight, bare.bias, bare.elementwise_affine = None, None, False
    return bare, conv2d_from(layer, weight, bias) if is_conv else linear_from(weight, bias)


def fold_norms(block: nn.Module, *pairs: tuple[str, str]) -> nn.Module:
    """A copy of ``block`` with each ``(norm, layer)`` pair of submodule paths folded by ``fold_norm_affine``
    (a norm already without affine parameters is left as it is). ``block`` itself is not changed; with nothing
    to fold it is returned as it is (the hook is idempotent)."""
    if all(block.get_submodule(norm_path).weight is None for norm_path, _ in pairs):
        return block
    folded = copy.deepcopy(block)
    for norm_path, layer_path in pairs:
        norm = folded.get_submodule(norm_path)
        if norm.weight is None:
            continue
        bare, layer = fold_norm_affine(norm, folded.get_submodule(layer_path))
        for path, module in ((norm_path, bare), (layer_path, layer)):
            parent, _, name = path.rpartition(".")
            setattr(folded.get_submodule(parent), name, module)
    return folded


def conv_from(template: nn.Conv1d | nn.Conv2d | nn.Conv3d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    """A conv of ``template``'s kind and geometry holding ``weight`` and ``bias`` (what the generic passes build)."""
    if isinstance(template, nn.Conv2d):
        return conv2d_from(template, weight, bias)
    layer = type(template)(template.in_channels, template.out_channels, template.kernel_size, template.stride,
                           template.padding, template.dilation, template.groups, bias=True,
                           padding_mode=template.padding_mode, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer
