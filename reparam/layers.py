"""New layers holding folded tensors: how reparameterization turns ``reparam.fuse`` results into modules.

``reparam.fuse`` returns tensors; a block's ``reparameterize`` hook or a generic pass in
``reparam.passes`` builds the layer that replaces the old ones here, with the geometry of the
layer it replaces and the dtype and device of the folded weight.
"""
from __future__ import annotations

import torch
from torch import nn


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
