"""Property tests for the pure folding math in ``reparam.fuse``, each identity on its own, and for
the layers ``reparam.layers`` builds from its results.

Every case runs in float64 so a wrong fold (off by a channel, a group, a padding) shows as an
error many orders of magnitude above rounding; the tolerance is 1e-9 relative.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from reparam.fuse import (bn_affine, fold_bn_into_following_conv, fold_bn_into_following_linear,
                          fold_scale_into_linear, fuse_bn_tensors, fuse_conv_bn, identity_kernel,
                          merge_parallel_branches, pad_kernel)
from reparam.layers import conv2d_from, conv_from, linear_from

pytestmark = pytest.mark.fast
SETTINGS = settings(max_examples=40, deadline=None)


def _bn(channels: int, seed: int, dims: int = 2) -> nn.Module:
    """A BatchNorm in eval mode with statistics and affine terms far from their defaults."""
    generator = torch.Generator().manual_seed(seed)
    bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims](channels).double().eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(channels, generator=generator, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(channels, generator=generator, dtype=torch.float64) * 3 + 0.1)
        bn.weight.copy_(torch.randn(channels, generator=generator, dtype=torch.float64))
        bn.bias.copy_(torch.randn(channels, generator=generator, dtype=torch.float64))
    return bn


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    error = float((actual - expected).detach().abs().max())
    scale = float(expected.detach().abs().max()) or 1.0
    assert error <= 1e-9 * scale, f"max abs error {error:.3g} vs max |expected| {scale:.3g}"


conv_geometry = st.fixed_dictionaries({
    "groups": st.integers(1, 3), "in_per_group": st.integers(1, 3), "out_per_group": st.integers(1, 3),
    "kernel": st.sampled_from([1, 2, 3, 5]), "stride": st.integers(1, 3), "dilation": st.integers(1, 2),
    "padding": st.integers(0, 2), "bias": st.booleans(), "seed": st.integers(0, 10_000),
})


def _conv(g: dict, padding: int) -> nn.Conv2d:
    """A float64 Conv2d with the drawn geometry and the given padding."""
    return nn.Conv2d(g["groups"] * g["in_per_group"], g["groups"] * g["out_per_group"], g["kernel"], g["stride"],
                     padding, g["dilation"], g["groups"], bias=g["bias"]).double()


@SETTINGS
@given(conv_geometry)
def test_fuse_conv_bn_equals_conv_then_bn(g):
    conv = _conv(g, g["padding"])
    bn = _bn(conv.out_channels, g["seed"])
    x = torch.randn(2, conv.in_channels, 12, 11, dtype=torch.float64)
    weight, bias = fuse_conv_bn(conv, bn)
    fused = F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    _close(fused, bn(conv(x)))


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 6), st.booleans(), st.integers(0, 10_000))
def test_fuse_bn_tensors_for_a_linear_and_a_conv1d(in_features, out_features, with_bias, seed):
    linear = nn.Linear(in_features, out_features, bias=with_bias).double()
    bn = _bn(out_features, seed, dims=1)
    x = torch.randn(4, in_features, dtype=torch.float64)
    weight, bias = fuse_bn_tensors(linear.weight, linear.bias, bn)
    _close(F.linear(x, weight, bias), bn(linear(x)))
    conv = nn.Conv1d(in_features, out_features, 3, padding=1, bias=with_bias).double()
    sequence = torch.randn(2, in_features, 7, dtype=torch.float64)
    weight, bias = fuse_conv_bn(conv, bn)
    _close(F.conv1d(sequence, weight, bias, padding=1), bn(conv(sequence)))


@SETTINGS
@given(conv_geometry)
def test_bn_folds_into_a_following_unpadded_conv(g):
    conv = _conv(g, 0)
    bn = _bn(conv.in_channels, g["seed"])
    x = torch.randn(2, conv.in_channels, 11, 10, dtype=torch.float64)
    weight, bias = fold_bn_into_following_conv(bn, conv.weight, conv.bias, groups=conv.groups)
    fused = F.conv2d(x, weight, bias, conv.stride, 0, conv.dilation, conv.groups)
    _close(fused, conv(bn(x)))


def test_bn_before_a_padded_conv_is_not_a_fold():
    """Why the generic passes refuse it: the zero padding would have to be padding of bn(x)."""
    conv = nn.Conv2d(3, 4, 3, padding=1).double()
    bn = _bn(3, 0)
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    weight, bias = fold_bn_into_following_conv(bn, conv.weight, conv.bias)
    error = float((F.conv2d(x, weight, bias, padding=1) - conv(bn(x))).detach().abs().max())
    assert error > 1e-3  # the border differs


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 6), st.booleans(), st.integers(0, 10_000))
def test_bn_folds_into_a_following_linear(in_features, out_features, with_bias, seed):
    linear = nn.Linear(in_features, out_features, bias=with_bias).double()
    bn = _bn(in_features, seed, dims=1)
    x = torch.randn(5, in_features, dtype=torch.float64)
    weight, bias = fold_bn_into_following_linear(bn, linear.weight, linear.bias)
    _close(F.linear(x, weight, bias), linear(bn(x)))


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 10_000))
def test_bn2d_before_pool_and_linear_folds_into_the_linear(channels, out_features, seed):
    """EdgeViT's and EdgeNeXt BN-HS's heads: the pool commutes with a per-channel affine map."""
    linear = nn.Linear(channels, out_features).double()
    bn = _bn(channels, seed)
    x = torch.randn(2, channels, 4, 3, dtype=torch.float64)
    weight, bias = fold_bn_into_following_linear(bn, linear.weight, linear.bias)
    _close(F.linear(x.mean((2, 3)), weight, bias), linear(bn(x).mean((2, 3))))


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 6), st.booleans(), st.booleans(), st.integers(0, 10_000))
def test_scale_folds_into_the_preceding_linear_or_conv(in_features, out_features, with_bias, shaped, seed):
    generator = torch.Generator().manual_seed(seed)
    scale = torch.randn(out_features, generator=generator, dtype=torch.float64)
    linear = nn.Linear(in_features, out_features, bias=with_bias).double()
    x = torch.randn(3, in_features, dtype=torch.float64)
    weight, bias = fold_scale_into_linear(linear.weight, linear.bias, scale)
    assert (bias is None) == (not with_bias)
    _close(F.linear(x, weight, bias), scale * linear(x))
    conv = nn.Conv2d(in_features, out_features, 3, padding=1, bias=with_bias).double()
    layer_scale = scale.reshape(-1, 1, 1) if shaped else scale  # (C, 1, 1) as many layer scales are stored
    image = torch.randn(2, in_features, 5, 5, dtype=torch.float64)
    weight, bias = fold_scale_into_linear(conv.weight, conv.bias, layer_scale)
    _close(F.conv2d(image, weight, bias, padding=1), scale.reshape(1, -1, 1, 1) * conv(image))


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 3), st.sampled_from([1, 3, 5]), st.integers(0, 10_000))
def test_identity_kernel_returns_its_input(groups, per_group, kernel, seed):
    channels = groups * per_group
    x = torch.randn(2, channels, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    weight = identity_kernel(channels, kernel, groups=groups, dtype=torch.float64)
    assert weight.shape == (channels, per_group, kernel, kernel)
    _close(F.conv2d(x, weight, None, padding=kernel // 2, groups=groups), x)


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.lists(st.sampled_from([1, 3, 5]), min_size=1,
       max_size=3), st.booleans(), st.integers(0, 10_000))
def test_parallel_branches_merge_into_one_conv(groups, per_group, stride, kernels, with_identity, seed):
    """Branches of different kernel sizes, 'same' padding, one stride and group count, summed."""
    channels = groups * per_group
    torch.manual_seed(seed)
    convs = [nn.Conv2d(channels, channels, k, stride, k // 2, groups=groups).double() for k in kernels]
    x = torch.randn(2, channels, 9, 9, dtype=torch.float64)
    expected = sum(conv(x) for conv in convs)
    branches = [(conv.weight, conv.bias) for conv in convs]
    if with_identity and stride == 1:
        branches.append((identity_kernel(channels, 1, groups=groups, dtype=torch.float64), None))
        expected = expected + x
    weight, bias = merge_parallel_branches(branches)
    size = max(kernels + [1])
    assert weight.shape[-1] == size
    _close(F.conv2d(x, weight, bias, stride, size // 2, groups=groups), expected)


def test_pad_kernel_centres_the_small_kernel():
    padded = pad_kernel(torch.ones(2, 1, 1, 1), 3)
    assert padded.shape == (2, 1, 3, 3)
    assert padded[:, :, 1, 1].eq(1).all() and padded.sum() == 2


def test_bn_affine_is_the_eval_mode_map():
    bn = _bn(4, 3)
    x = torch.randn(6, 4, 2, 2, dtype=torch.float64)
    scale, shift = bn_affine(bn)
    _close(x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1), bn(x))


@pytest.mark.parametrize("call,message", [
    (lambda: fuse_conv_bn(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(5).eval()), "4 output channels"),
    (lambda: fold_bn_into_following_conv(nn.BatchNorm2d(5).eval(), torch.zeros(4, 3, 1, 1), None), "input channels"),
    (lambda: fold_scale_into_linear(torch.zeros(4, 3), None, torch.ones(5)), "5 entries"),
    (lambda: pad_kernel(torch.zeros(1, 1, 2, 2), 3), "cannot centre"),
    (lambda: identity_kernel(4, 2), "odd"),
    (lambda: fuse_conv_bn(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, track_running_stats=False)), "batch statistics"),
])
def test_bad_input_says_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_dtype_is_kept():
    conv = nn.Conv2d(2, 2, 3).half()
    bn = nn.BatchNorm2d(2).half().eval()
    weight, bias = fuse_conv_bn(conv, bn)
    assert weight.dtype == bias.dtype == torch.float16


def test_conv2d_from_keeps_the_geometry_and_takes_the_kernel_from_the_weight():
    """A merged kernel may be larger than the template's (RepVGG: 1x1 branch into 3x3)."""
    template = nn.Conv2d(6, 4, 1, stride=2, padding=1, dilation=2, groups=2, padding_mode="reflect")
    weight = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    conv = conv2d_from(template, weight, None)
    assert (conv.stride, conv.padding, conv.dilation, conv.groups, conv.padding_mode) == \
        ((2, 2), (1, 1), (2, 2), 2, "reflect")
    assert conv.kernel_size == (3, 3) and conv.bias is None and conv.weight.dtype == torch.float64
    assert torch.equal(conv.weight.detach(), weight)


@pytest.mark.parametrize("kind", [nn.Conv1d, nn.Conv2d, nn.Conv3d])
def test_conv_from_builds_the_template_kind_with_a_bias(kind):
    template = kind(4, 6, 3, stride=2, padding=1, groups=2, bias=False)
    weight, bias = torch.randn(template.weight.shape), torch.randn(6)
    conv = conv_from(template, weight, bias)
    assert type(conv) is kind and conv.stride == template.stride and conv.groups == 2
    assert torch.equal(conv.weight.detach(), weight) and torch.equal(conv.bias.detach(), bias)


def test_linear_from_holds_the_tensors_it_is_given():
    weight = torch.randn(3, 5, dtype=torch.float64)
    linear = linear_from(weight, None)
    assert (linear.in_features, linear.out_features, linear.bias) == (5, 3, None)
    assert torch.equal(linear.weight.detach(), weight) and linear.weight.dtype == torch.float64
    bias = torch.randn(3, dtype=torch.float64)
    assert torch.equal(linear_from(weight, bias).bias.detach(), bias)
