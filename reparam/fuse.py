"""Pure folding math: functions that take weights and BatchNorm statistics and return tensors.

Nothing here changes a module. Blocks (their ``reparameterize`` hooks) and the generic passes in
``reparam.passes`` call these and build the new layers themselves, so every identity below is
tested on its own (tests/test_reparam_fuse.py) apart from any model surgery.

Conventions: a conv weight is ``(out, in // groups, *kernel)``, a linear weight ``(out, in)``.
A BatchNorm in eval mode is the per-channel affine map ``x * scale + shift`` (``bn_affine``).
Every function returns new tensors, detached from autograd, in the dtype of the weight it folds into.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_BatchNorm = nn.modules.batchnorm._BatchNorm


def bn_affine(bn: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` with ``bn(x) == x * scale + shift`` per channel, from the running statistics."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"{type(bn).__name__} has no running statistics (track_running_stats=False): "
                         "it normalizes with batch statistics at inference and cannot be folded")
    with torch.no_grad():
        std = torch.sqrt(bn.running_var.detach().double() + bn.eps)
        weight = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(std)
        bias = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(std)
        scale = weight / std
        shift = bias - bn.running_mean.detach().double() * scale
    return scale, shift


def _per_output(vector: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Reshape a per-output-channel vector to broadcast against ``weight``."""
    return vector.reshape(-1, *([1] * (weight.dim() - 1)))


def fuse_bn_tensors(weight: torch.Tensor, bias: torch.Tensor | None, bn: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of one layer equal to ``bn(layer(x))`` for a conv or linear ``layer``.

    Exact for any groups, stride, dilation and padding: the BatchNorm acts per output channel of
    the layer, after everything the layer does spatially.
    """
    if weight.shape[0] != bn.num_features:
        raise ValueError(f"layer has {weight.shape[0]} output channels but the BatchNorm has {bn.num_features}")
    scale, shift = bn_affine(bn)
    with torch.no_grad():
        base = bias.detach().double() if bias is not None else torch.zeros_like(shift)
        fused_weight = weight.detach().double() * _per_output(scale, weight)
        fused_bias = base * scale + shift
    return fused_weight.to(weight.dtype), fused_bias.to(weight.dtype)


def fuse_conv_bn(conv: nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear, bn: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight, bias)`` of ``conv`` with the BatchNorm that follows it folded in (see ``fuse_bn_tensors``)."""
    return fuse_bn_tensors(conv.weight, conv.bias, bn)


def fold_bn_into_following_conv(bn: _BatchNorm, weight: torch.Tensor, bias: torch.Tensor | None,
                                groups: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of a conv equal to ``conv(bn(x))``.

    Exact only when the conv has no padding (zero padding after the BatchNorm would be padding of
    the normalized map, which no folded weight reproduces); the caller checks that. ``groups`` is
    the conv's group count: input channel ``c`` of group ``g`` meets weights ``[g*per_group:(g+1)*per_group, c]``.
    """
    in_per_group = weight.shape[1]
    if in_per_group * groups != bn.num_features:
        raise ValueError(f"conv takes {in_per_group * groups} input channels but the BatchNorm has {bn.num_features}")
    return fold_affine_into_following_conv(*bn_affine(bn), weight, bias, groups)


def fold_affine_into_following_conv(scale: torch.Tensor, shift: torch.Tensor, weight: torch.Tensor,
                                    bias: torch.Tensor | None, groups: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of a conv (or a linear: ``weight`` (out, in)) equal to ``conv(x * scale + shift)``, the
    affine map acting per input channel; the same padding caveat as ``fold_bn_into_following_conv``."""
    in_per_group = weight.shape[1]
    if in_per_group * groups != scale.numel() or scale.shape != shift.shape:
        raise ValueError(f"the layer takes {in_per_group * groups} input channels but the affine map has "
                         f"{scale.numel()} scales and {shift.numel()} shifts")
    if weight.shape[0] % groups:
        raise ValueError(f"{weight.shape[0]} output channels do not split into {groups} groups")
    scale, shift = scale.detach().double().reshape(-1), shift.detach().double().reshape(-1)
    out_per_group = weight.shape[0] // groups
    with torch.no_grad():
        w = weight.detach().double()
        # For output channel o (group g = o // out_per_group), input slot j is channel g*in_per_group + j.
        group_of_output = torch.arange(weight.shape[0], device=weight.device) // out_per_group
        slots = torch.arange(in_per_group, device=weight.device)
        channel = group_of_output[:, None] * in_per_group + slots[None, :]  # (out, in/groups)
        spatial = [1] * (weight.dim() - 2)
        fused_weight = w * scale[channel].reshape(*channel.shape, *spatial)
        base = (bias.detach().double() if bias is not None
                else torch.zeros(weight.shape[0], dtype=torch.float64, device=weight.device))
        fused_bias = base + (w * shift[channel].reshape(*channel.shape, *spatial)).flatten(1).sum(1)
    return fused_weight.to(weight.dtype), fused_bias.to(weight.dtype)


def fold_bn_into_following_linear(bn: _BatchNorm, weight: torch.Tensor,
                                  bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of a Linear equal to ``linear(bn(x))``, the BatchNorm acting on the linear's
    input features (a BatchNorm1d before a Linear, or a BatchNorm2d before a channel-last Linear or a
    global average pool and a Linear: the pool commutes with a per-channel affine map)."""
    if weight.dim() != 2:
        raise ValueError(f"expected a linear weight (out, in), got shape {tuple(weight.shape)}")
    return fold_bn_into_following_conv(bn, weight, bias, groups=1)


def fold_scale_into_linear(weight: torch.Tensor, bias: torch.Tensor | None,
                           scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weight and bias of a layer equal to ``scale * layer(x)`` (a layer scale after a linear or conv).

    ``scale`` is per output channel; it may carry broadcast dimensions (``(C, 1, 1)``) as layer
    scales often do. A layer without bias stays without bias.
    """
    scale = scale.detach().reshape(-1)
    if scale.numel() != weight.shape[0]:
        raise ValueError(f"scale has {scale.numel()} entries but the layer has {weight.shape[0]} output channels")
    with torch.no_grad():
        fused_weight = weight.detach().double() * _per_output(scale.double(), weight)
        fused_bias = bias.detach().double() * scale.double() if bias is not None else None
    return fused_weight.to(weight.dtype), None if fused_bias is None else fused_bias.to(weight.dtype)


def pad_kernel(weight: torch.Tensor, kernel_size: tuple[int, int] | int) -> torch.Tensor:
    """A smaller (odd-sized) 2-d kernel zero-padded to ``kernel_size``, centred.

    A 1x1 branch with padding 0 equals a 3x3 branch with padding 1 whose kernel is the 1x1 weight
    in the centre, so parallel branches of different sizes can be summed.
    """
    size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    height, width = weight.shape[-2:]
    extra_h, extra_w = size[0] - height, size[1] - width
    if extra_h < 0 or extra_w < 0 or extra_h % 2 or extra_w % 2:
        raise ValueError(f"cannot centre a {height}x{width} kernel in {size[0]}x{size[1]}")
    return F.pad(weight.detach(), (extra_w // 2, extra_w // 2, extra_h // 2, extra_h // 2))


def identity_kernel(channels: int, kernel_size: tuple[int, int] | int, groups: int = 1,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The kernel of a ``channels -> channels`` conv (stride 1, 'same' padding) that returns its input.

    For ``groups`` groups each output channel ``o`` reads input slot ``o % (channels // groups)``
    of its group; a depthwise conv (``groups == channels``) gets a single centred 1.
    """
    size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if size[0] % 2 == 0 or size[1] % 2 == 0:
        raise ValueError(f"an identity kernel needs odd sizes, got {size}")
    if channels % groups:
        raise ValueError(f"{channels} channels do not split into {groups} groups")
    per_group = channels // groups
    kernel = torch.zeros(channels, per_group, *size, dtype=dtype)
    kernel[torch.arange(channels), torch.arange(channels) % per_group, size[0] // 2, size[1] // 2] = 1
    return kernel


def merge_parallel_branches(branches: list[tuple[torch.Tensor, torch.Tensor | None]]) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``(weight, bias)`` equal to the sum of parallel convs with the same stride, groups and
    'same' padding. Smaller kernels are padded (``pad_kernel``) to the largest one."""
    if not branches:
        raise ValueError("nothing to merge")
    height = max(weight.shape[-2] for weight, _ in branches)
    width = max(weight.shape[-1] for weight, _ in branches)
    out_channels = branches[0][0].shape[0]
    dtype = branches[0][0].dtype
    with torch.no_grad():
        device = branches[0][0].device
        weight_sum = torch.zeros(branches[0][0].shape[:2] + (height, width), dtype=torch.float64, device=device)
        bias_sum = torch.zeros(out_channels, dtype=torch.float64, device=device)
        for weight, bias in branches:
            if weight.shape[:2] != weight_sum.shape[:2]:
                raise ValueError(f"branch weights disagree: {tuple(weight.shape)} vs {tuple(weight_sum.shape)}")
            weight_sum += pad_kernel(weight.double(), (height, width))
            if bias is not None:
                bias_sum += bias.detach().double()
    return weight_sum.to(dtype), bias_sum.to(dtype)
