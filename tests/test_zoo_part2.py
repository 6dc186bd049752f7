"""Family-specific checks for model zoo part 2 (MobileNet, ConvNeXt, EfficientNet, Swin, ViT).

Shapes, gradients, parameter and MAC counts, reparameterization exactness and export parity are
covered registry-wide elsewhere; here each family's own construction is checked against an
independent, reference-style computation.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import models
from models import convnext, efficientnet, swin, vit
from models.layers import InvertedResidual, SqueezeExciteReduced

pytestmark = pytest.mark.fast


# ---------------------------------------------------------------------------------------- Swin
def _reference_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """The reference implementation's rank-6 window partition."""
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, channels)


def _mask_by_rule(height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """The shifted-window mask from the rule the Swin paper states, token pair by token pair.

    After the cyclic shift by ``-shift`` the token at (i, j) holds the pixel
    ((i + shift) % H, (j + shift) % W). Two tokens of one window may attend to each other only if
    their pixels were neighbours in the unshifted map: less than a window apart in both axes (a
    pair split by the wrap-around is H - window or more apart). -100 marks the forbidden pairs.
    """
    rows, cols = height // window, width // window
    mask = torch.zeros(rows * cols, window * window, window * window)
    for window_row in range(rows):
        for window_col in range(cols):
            pixels = [((window_row * window + i + shift) % height, (window_col * window + j + shift) % width)
                      for i in range(window) for j in range(window)]
            for a, (row_a, col_a) in enumerate(pixels):
                for b, (row_b, col_b) in enumerate(pixels):
                    if abs(row_a - row_b) >= window or abs(col_a - col_b) >= window:
                        mask[window_row * cols + window_col, a, b] = -100.0
    return mask


@pytest.mark.parametrize("shift", [-3, 3, -1, 0, 7, 10])
def test_swin_slicing_shift_equals_roll(shift):
    x = torch.randn(2, 14, 21, 5)
    torch.testing.assert_close(swin.cyclic_shift(x, shift), torch.roll(x, (shift, shift), dims=(1, 2)),
                               rtol=0, atol=0)


def test_swin_window_partition_matches_reference_and_inverts():
    x = torch.randn(2, 14, 21, 5)
    windows = swin.window_partition(x, 7)
    torch.testing.assert_close(windows, _reference_partition(x, 7), rtol=0, atol=0)
    torch.testing.assert_close(swin.window_reverse(windows, 7, 14, 21), x, rtol=0, atol=0)


def test_swin_attention_mask_of_a_4x4_map_written_out():
    """Window 2, shift 1 on a 4x4 map: the last row and column wrapped around, so the right windows
    split their columns, the bottom windows their rows, and the corner window every token."""
    o, x = 0.0, -100.0
    expected = torch.tensor([
        [[o, o, o, o], [o, o, o, o], [o, o, o, o], [o, o, o, o]],  # top left: one region
        [[o, x, o, x], [x, o, x, o], [o, x, o, x], [x, o, x, o]],  # top right: column 3 wrapped
        [[o, o, x, x], [o, o, x, x], [x, x, o, o], [x, x, o, o]],  # bottom left: row 3 wrapped
        [[o, x, x, x], [x, o, x, x], [x, x, o, x], [x, x, x, o]],  # corner: four regions
    ])
    mask = swin.shifted_window_mask(4, 4, window=2, shift=1)
    torch.testing.assert_close(mask, expected, rtol=0, atol=0)
    torch.testing.assert_close(_mask_by_rule(4, 4, 2, 1), expected, rtol=0, atol=0)


@pytest.mark.parametrize("size,window,shift", [((56, 56), 7, 3), ((14, 28), 7, 3), ((12, 8), 4, 2)])
def test_swin_attention_mask_follows_the_neighbour_rule(size, window, shift):
    mask = swin.shifted_window_mask(*size, window=window, shift=shift)
    torch.testing.assert_close(mask, _mask_by_rule(*size, window, shift), rtol=0, atol=0)
    # only windows on the bottom row or right column mix regions: (H/w + W/w - 1) of them
    masked_windows = int((mask != 0).flatten(1).any(1).sum())
    assert masked_windows == size[0] // window + size[1] // window - 1


def _reference_swin_block(block: swin.SwinBlock, x: torch.Tensor) -> torch.Tensor:
    """The reference block: torch.roll, rank-6 partition, rank-5 qkv and mask views."""
    height, width = block.resolution
    window, shift, attn = block.window, block.shift, block.attn
    shortcut = x
    x = block.norm1(x)
    if shift:
        x = torch.roll(x, (-shift, -shift), dims=(1, 2))
    windows = _reference_partition(x, window)
    count, tokens, dim = windows.shape
    qkv = attn.qkv(windows).reshape(count, tokens, 3, attn.num_heads, dim // attn.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    scores = (q * attn.scale) @ k.transpose(-2, -1)
    bias = attn.relative_position_bias_table[attn.relative_position_index.view(-1)]
    scores = scores + bias.view(tokens, tokens, -1).permute(2, 0, 1).unsqueeze(0)
    if shift:
        mask = _mask_by_rule(height, width, window, shift)
        scores = scores.view(-1, mask.shape[0], attn.num_heads, tokens, tokens) + mask.unsqueeze(1).unsqueeze(0)
        scores = scores.view(-1, attn.num_heads, tokens, tokens)
    out = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(count, tokens, dim))
    out = out.view(-1, height // window, width // window, window, window, dim)
    out = out.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, dim)
    if shift:
        out = torch.roll(out, (shift, shift), dims=(1, 2))
    x = shortcut + out
    return x + block.mlp(block.norm2(x))


@pytest.mark.parametrize("shift", [0, 3])
def test_swin_block_equals_reference_forward(shift):
    torch.manual_seed(0)
    block = swin.SwinBlock(dim=24, num_heads=3, resolution=(14, 21), window=7, shift=shift).eval()
    with torch.no_grad():
        block.attn.relative_position_bias_table.normal_()  # a visible bias
        x = torch.randn(2, 14, 21, 24)
        torch.testing.assert_close(block(x), _reference_swin_block(block, x), rtol=1e-5, atol=1e-5)


def test_swin_tiny_shifts_every_second_block_except_last_stage():
    model = models.create_model("swin_tiny")
    shifts = [[b.shift for b in stage.blocks] for stage in model.stages]
    # stage 4 is 7x7 = one window: the reference turns the shift off there
    assert shifts == [[0, 3], [0, 3], [0, 3, 0, 3, 0, 3], [0, 0]]
    assert all((b.attn_mask is not None) == (b.shift > 0) for stage in model.stages for b in stage.blocks)


def test_swin_rejects_size_not_divisible_by_32():
    with pytest.raises(ValueError, match="divisible by 32"):
        swin.build("swin_tiny", img_size=200)


# ----------------------------------------------------------------------------------------- ViT
def test_vit_attention_equals_sdpa():
    torch.manual_seed(0)
    attn = vit.Attention(dim=48, num_heads=3).eval()
    x = torch.randn(2, 10, 48)
    with torch.no_grad():
        qkv = attn.qkv(x).reshape(2, 10, 3, 3, 16).permute(2, 0, 3, 1, 4)
        ref = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(2, 10, 48)
        torch.testing.assert_close(attn(x), attn.proj(ref), rtol=1e-5, atol=1e-6)


def test_vit_uses_class_token_and_position_embedding():
    model = models.create_model("vit_tiny_patch16").eval()
    assert model.pos_embed.shape == (1, 197, 192)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        before = model(x)
        model.cls_token.add_(1.0)
        assert not torch.allclose(model(x), before)


# ------------------------------------------------------------------------------------ ConvNeXt
@pytest.mark.parametrize("name", ["convnext_atto", "convnext_tiny"])
def test_convnext_layer_scale_present(name):
    model = models.create_model(name)
    blocks = [m for m in model.modules() if isinstance(m, convnext.ConvNeXtBlock)]
    assert len(blocks) == sum(convnext.VARIANTS[name].kwargs["depths"])
    for block in blocks:
        assert block.gamma is not None and block.gamma.shape == (block.dim,)
        torch.testing.assert_close(block.gamma.detach(), torch.full((block.dim,), 1e-6))


@pytest.mark.parametrize("conv_mlp", [True, False])
def test_convnext_block_reparameterize_folds_gamma_exactly(conv_mlp):
    torch.manual_seed(0)
    block = convnext.ConvNeXtBlock(16, conv_mlp).eval()
    with torch.no_grad():
        block.gamma.copy_(torch.randn(16))  # far from the 1e-6 init, so the fold is visible
    fused = block.reparameterize()
    assert fused is not block and fused.gamma is None and block.gamma is not None
    assert fused.norm.weight is None and block.norm.weight is not None  # the norm's affine part is in fc1
    assert sum(p.numel() for p in fused.parameters()) == sum(p.numel() for p in block.parameters()) - 3 * 16
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), block(x), rtol=1e-5, atol=1e-5)
    assert fused.reparameterize() is fused  # idempotent


# -------------------------------------------------------------------------------- EfficientNet
@pytest.mark.parametrize("name,fused_stages", [("efficientnetv2_b0", 2), ("efficientnetv2_s", 2),
                                               ("efficientnet_b0", 0)])
def test_efficientnetv2_early_stages_are_fused_mbconv(name, fused_stages):
    model = models.create_model(name)
    kinds = [{type(block) for block in stage} for stage in model.blocks]
    # stage 0 is a conv (V2) or depthwise-separable (B0) stage, then Fused-MBConv, then MBConv+SE
    fused = [index for index, types in enumerate(kinds) if efficientnet.FusedMBConv in types]
    assert fused == list(range(1, 1 + fused_stages))
    for stage in list(model.blocks)[1 + fused_stages:]:
        for block in stage:
            assert isinstance(block, InvertedResidual) and isinstance(block.se, SqueezeExciteReduced)
    for index in fused:  # Fused-MBConv has no depthwise conv: a full kxk expansion conv
        for block in model.blocks[index]:
            assert block.conv_exp.c.groups == 1 and block.conv_exp.c.kernel_size == (3, 3)


def test_efficientnet_se_squeezes_block_input_width():
    model = models.create_model("efficientnet_b0")
    block = model.blocks[1][0]  # 16 -> 24, expansion 6: SE on 96 channels squeezed to round(16 / 4)
    assert block.conv_dw.c.in_channels == 96
    assert block.se.conv_reduce.out_channels == 4


# ----------------------------------------------------------------------------------- MobileNet
def test_mobilenetv3_se_and_activations():
    model = models.create_model("mobilenetv3_large_100")
    block = model.blocks[2][0]  # 24 -> 40, expansion 3: SE on 72 channels squeezed to 24
    assert block.conv_dw.c.in_channels == 72
    assert block.se.conv_reduce.out_channels == 24 and isinstance(block.se.gate, nn.Hardsigmoid)
    assert isinstance(model.blocks[3][0].act1, nn.Hardswish) and isinstance(model.blocks[1][0].act1, nn.ReLU)
    assert model.conv_head.bias is not None and model.conv_head.out_channels == 1280


def test_mobilenetv2_residual_only_when_shape_is_kept():
    model = models.create_model("mobilenetv2_100")
    skips = [block.has_skip for stage in model.blocks for block in stage]
    # first block of every stage changes channels or stride; the rest keep the shape
    assert skips == [False, False, True, False, True, True, False, True, True, True,
                     False, True, True, False, True, True, False]
