"""Family-specific checks for EdgeNeXt, EdgeViT, EfficientMod and MobileViT.

The registry-wide tests (shapes, gradients, parameter counts, MACs, reparameterization, export
parity) cover every name; these check what is particular to each family against independent,
deliberately naive formulations of the same math.
"""
from __future__ import annotations

import math

import onnx
import pytest
import torch
from torch import nn

import models
from models import edgenext, edgevit, efficientmod, mobilevit
from models.complexity import count_macs
from models.layers import LayerNorm2d

pytestmark = pytest.mark.fast


def _seeded(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --- EdgeNeXt -------------------------------------------------------------------------------------

def _naive_xca(module: edgenext.XCA, x: torch.Tensor) -> torch.Tensor:
    """XCA head by head, sample by sample, from the paper's formula (attention over channels)."""
    batch, tokens, channels = x.shape
    heads = module.num_heads
    width = channels // heads
    qkv = module.qkv(x)
    q_all, k_all, v_all = qkv[..., :channels], qkv[..., channels:2 * channels], qkv[..., 2 * channels:]
    out = torch.zeros(batch, tokens, channels)
    for b in range(batch):
        for h in range(heads):
            cols = slice(h * width, (h + 1) * width)
            q, k, v = q_all[b, :, cols], k_all[b, :, cols], v_all[b, :, cols]  # (N, d)
            q = q / q.norm(dim=0, keepdim=True).clamp_min(1e-12)  # L2 over tokens, per channel
            k = k / k.norm(dim=0, keepdim=True).clamp_min(1e-12)
            attn = torch.softmax(q.T @ k * module.temperature[h, 0, 0], dim=-1)  # (d, d)
            out[b, :, cols] = (attn @ v.T).T
    return module.proj(out)


def test_xca_matches_channel_attention_formula():
    torch.manual_seed(0)
    module = edgenext.XCA(dim=24, num_heads=4).eval()
    with torch.no_grad():
        module.temperature.uniform_(0.5, 2.0)
        x = _seeded(2, 37, 24)
        torch.testing.assert_close(module(x), _naive_xca(module, x), rtol=1e-5, atol=1e-5)


def test_xca_cost_is_linear_in_tokens():
    """The attention map is (C/h x C/h): doubling the tokens doubles the matmul MACs, not quadruples them."""
    module = edgenext.XCA(dim=32, num_heads=4)
    macs = [count_macs(module, (1, tokens, 32)) for tokens in (64, 128)]
    assert macs[1] == 2 * macs[0]


def _official_fourier(hidden_dim: int, height: int, width: int, temperature: float = 10000.0) -> torch.Tensor:
    """The reference construction: cumsum over a mask of ones, then interleaved sin/cos."""
    not_mask = torch.ones(1, height, width)
    y_embed = not_mask.cumsum(1, dtype=torch.float32)
    x_embed = not_mask.cumsum(2, dtype=torch.float32)
    y_embed = y_embed / (y_embed[:, -1:, :] + 1e-6) * 2 * math.pi
    x_embed = x_embed / (x_embed[:, :, -1:] + 1e-6) * 2 * math.pi
    dim_t = torch.arange(hidden_dim, dtype=torch.float32)
    dim_t = temperature ** (2 * (dim_t // 2) / hidden_dim)
    pos_x = x_embed[:, :, :, None] / dim_t
    pos_y = y_embed[:, :, :, None] / dim_t
    pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


@pytest.mark.parametrize("size", [(32, 32), (16, 24)])
def test_fourier_positions_equal_reference_cumsum_form(size):
    encoding = edgenext.PositionalEncodingFourier(dim=48)
    torch.testing.assert_close(encoding.features(*size), _official_fourier(32, *size), rtol=0, atol=0)


def test_sdta_split_convs_follow_res2net_order():
    """Group i is conv_i(group_i + output_{i-1}); the last group passes through untouched."""
    block = edgenext.SDTAEncoder(dim=88, num_heads=4, scales=3).eval()
    assert block.width == 30 and len(block.convs) == 2  # 88 channels -> groups of 30, 30, 28
    x = _seeded(1, 88, 8, 8)
    with torch.no_grad():
        out = block._split_convs(x)
        first = block.convs[0](x[:, :30])
        second = block.convs[1](x[:, 30:60] + first)
        torch.testing.assert_close(out, torch.cat((first, second, x[:, 60:]), 1), rtol=0, atol=0)


def test_every_variant_has_one_sdta_per_late_stage_and_positions_in_stage_two():
    model = models.create_model("edgenext_xx_small")
    kinds = [[type(b).__name__ for b in stage] for stage in model.stages]
    assert [k.count("SDTAEncoder") for k in kinds] == [0, 1, 1, 1]
    assert all(k[-1] == "SDTAEncoder" for k in kinds[1:])
    with_pos = [i for i, stage in enumerate(model.stages) for b in stage
                if isinstance(b, edgenext.SDTAEncoder) and b.pos_embd is not None]
    assert with_pos == [1]


@pytest.mark.parametrize("name", ["edgenext_xx_small_bn_hs", "edgenext_x_small_bn_hs", "edgenext_small_bn_hs"])
def test_bn_hs_variants_use_batchnorm_and_hardswish_only(name):
    model = models.create_model(name)
    types = {type(m) for m in model.modules()}
    assert nn.BatchNorm2d in types and nn.Hardswish in types
    assert not types & {nn.LayerNorm, LayerNorm2d, nn.GELU}, types
    plain = {type(m) for m in models.create_model(name.removesuffix("_bn_hs")).modules()}
    assert not plain & {nn.BatchNorm2d, nn.Hardswish} and nn.GELU in plain


# --- EdgeViT --------------------------------------------------------------------------------------

@pytest.mark.parametrize("sr", [2, 4])
def test_local_propagation_equals_depthwise_transposed_conv(sr):
    prop = edgevit.LocalProp(12, sr)
    with torch.no_grad():
        prop.weight.normal_()
        prop.bias.normal_()
        reference = nn.ConvTranspose2d(12, 12, sr, stride=sr, groups=12)
        reference.load_state_dict(prop.state_dict())
        x = _seeded(2, 12, 7, 5)
        torch.testing.assert_close(prop(x), reference(x), rtol=0, atol=0)


def test_sparse_attention_subsamples_like_a_strided_unit_pool():
    """Delegate tokens are what ``nn.AvgPool2d(1, sr)`` (the official sampler) keeps."""
    attn = edgevit.GlobalSparseAttn(dim=16, num_heads=2, sr=2).eval()
    x = _seeded(1, 16, 8, 8)
    seen = {}
    attn.qkv.register_forward_pre_hook(lambda _m, args: seen.update(tokens=args[0]))
    with torch.no_grad():
        attn(x.flatten(2).transpose(1, 2), 8, 8)
    expected = nn.AvgPool2d(1, 2)(x).flatten(2).transpose(1, 2)
    torch.testing.assert_close(seen["tokens"], expected, rtol=0, atol=0)


def test_edgevit_last_stage_has_no_local_aggregation():
    model = models.create_model("edgevit_xxs")
    assert all(isinstance(b.LocalAgg, edgevit.LocalAgg) for b in model.blocks3)
    assert all(isinstance(b.LocalAgg, nn.Identity) for b in model.blocks4)
    assert [b.SelfAttn.attn.num_heads for b in (model.blocks1[0], model.blocks2[0], model.blocks3[0],
                                                model.blocks4[0])] == [1, 2, 4, 8]


# --- EfficientMod ---------------------------------------------------------------------------------

def test_modulation_concat_equals_official_repeat():
    mlp = efficientmod.ModulationMlp(dim=16, mlp_ratio=6, conv_group_dim=6).eval()
    x = _seeded(1, 7, 7, 16)
    with torch.no_grad():
        context = mlp.context_layer(x)
        expected = mlp.fc2(mlp.act(mlp.fc1(x)) * context.repeat(1, 1, 1, 6))
        torch.testing.assert_close(mlp(x), expected, rtol=0, atol=0)


def test_efficientmod_follows_the_code_not_the_table():
    model = models.create_model("efficientmod_xxs")
    stage3 = model.layers[2].blocks
    ratios = [b.mlp.fc1.out_features // 128 for b in stage3 if isinstance(b, efficientmod.BasicBlock)]
    assert ratios == [1, 6, 1, 6, 1, 6]
    assert [isinstance(b.mlp.act, nn.Identity) for b in stage3[:2]] == [True, False]
    attention = [b for b in stage3 if isinstance(b, efficientmod.AttentionBlock)]
    assert len(attention) == 1 and attention[0].attn.qkv.out_features == 3 * 8 * 32  # head_dim = max(128 // 8, 32)
    assert not any(isinstance(b, efficientmod.AttentionBlock)
                   for layer in models.create_model("efficientmod_s_conv").layers for b in layer.blocks)


# --- MobileViT ------------------------------------------------------------------------------------

def _naive_unfold(x: torch.Tensor, patch: int) -> torch.Tensor:
    """patches[b * P + i * p + j, nh * NW + nw, c] = x[b, c, nh * p + i, nw * p + j], by loops."""
    batch, channels, height, width = x.shape
    num_h, num_w = height // patch, width // patch
    out = torch.empty(batch * patch * patch, num_h * num_w, channels)
    for b in range(batch):
        for i in range(patch):
            for j in range(patch):
                for nh in range(num_h):
                    for nw in range(num_w):
                        out[b * patch * patch + i * patch + j, nh * num_w + nw] = x[b, :, nh * patch + i, nw * patch + j]
    return out


def test_static_unfold_matches_reference_order_and_fold_inverts_it():
    x = _seeded(2, 3, 6, 8)
    patches = mobilevit.unfold_patches(x, 2, 2)
    torch.testing.assert_close(patches, _naive_unfold(x, 2), rtol=0, atol=0)
    torch.testing.assert_close(mobilevit.fold_patches(patches, 2, 6, 8, 2, 2), x, rtol=0, atol=0)


def test_unfold_rejects_maps_that_are_not_patch_multiples():
    with pytest.raises(ValueError, match="multiple of 32"):
        mobilevit.unfold_patches(torch.zeros(1, 4, 7, 8), 2, 2)


def test_mobilevit_onnx_graph_has_no_runtime_shape_arithmetic(tmp_path):
    """Unfold/fold and attention reshape with constants: no Shape/Gather-of-shape ops in the graph."""
    block = mobilevit.MobileViTBlock(16, 24, 48, depth=1).eval()
    path = tmp_path / "block.onnx"
    torch.onnx.export(block, (torch.zeros(1, 16, 8, 8),), str(path), dynamo=False)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "Reshape" in ops and "Shape" not in ops, sorted(ops)


def test_mobilevit_uses_unnormalized_pixels():
    spec = models.model_spec("mobilevit_xxs")
    assert spec.mean == (0.0, 0.0, 0.0) and spec.std == (1.0, 1.0, 1.0) and spec.input_size == (3, 256, 256)
    x = spec.sample_inputs(1, seed=3)[0]
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


# --- Reparameterization hooks, block by block ----------------------------------------------------

def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Move BatchNorm statistics, affine parameters and layer scales far from their defaults."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.rand(m.num_features, generator=generator) * 2 - 1)
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=generator) - 0.5)
        for name, p in module.named_parameters():
            if name.split(".")[-1] in ("gamma", "gamma_xca", "gamma_1"):
                p.copy_(torch.rand(p.shape, generator=generator) + 0.5)
    return module.eval()


def _hook_cases():
    return [
        ("edgenext conv encoder", lambda: edgenext.ConvEncoder(16, 5), (2, 16, 8, 8), ()),
        ("edgenext conv encoder bn-hs", lambda: edgenext.ConvEncoder(16, 5, bn_hs=True), (2, 16, 8, 8),
         (nn.BatchNorm2d,)),
        ("edgenext sdta", lambda: edgenext.SDTAEncoder(24, 4, 3, use_pos_emb=True), (2, 24, 8, 8), ()),
        ("edgenext sdta bn-hs", lambda: edgenext.SDTAEncoder(24, 4, 3, bn_hs=True), (2, 24, 8, 8), ()),
        ("edgenext bn+conv downsample", lambda: edgenext.BNConv(16, 24, 2, 2), (2, 16, 8, 8), (nn.BatchNorm2d,)),
        ("edgenext bn-hs head", lambda: edgenext.ClassifierHead(16, 10, bn_hs=True), (2, 16, 4, 4), (nn.BatchNorm2d,)),
        ("edgevit local aggregation", lambda: edgevit.LocalAgg(16, 4.0), (2, 16, 8, 8), (nn.BatchNorm2d,)),
        ("edgevit head", lambda: edgevit.ClassifierHead(16, 10), (2, 16, 4, 4), (nn.BatchNorm2d,)),
        ("efficientmod block", lambda: efficientmod.BasicBlock(16, 6), (2, 7, 7, 16), ()),
    ]


@pytest.mark.parametrize("make,shape,gone", [c[1:] for c in _hook_cases()], ids=[c[0] for c in _hook_cases()])
def test_block_reparameterize_hook_is_exact_and_removes_what_it_folds(make, shape, gone):
    torch.manual_seed(0)
    block = _randomize(make())
    x = _seeded(*shape, seed=1)
    with torch.no_grad():
        before = block(x)
        fused = block.reparameterize()
        after = fused(x)
    assert fused is not block
    scale = float(before.abs().max())
    assert float((after - before).abs().max()) <= 1e-5 * scale, "deploy block differs from training block"
    types = {type(m) for m in fused.modules()}
    assert not types & set(gone), types
    layer_scales = [n for n, _ in fused.named_parameters() if n.split(".")[-1] in ("gamma", "gamma_xca", "gamma_1")]
    assert not layer_scales
    hook = getattr(fused, "reparameterize", None)  # a plain nn.Conv2d result has no hook: nothing left to fold
    assert hook is None or hook() is fused  # idempotent
