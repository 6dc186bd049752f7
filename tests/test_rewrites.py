"""Exactness of the cheaper graph forms the models are written in (issue 15): each rewrite against its plain
form in float64, element for element.

The rewrites only move data (reshape/transpose instead of slices, chunks and concats), so the outputs must be
identical, not merely close; the checkpoint oracles (tests/test_weights_oracles.py) then check whole models
against the source repositories' logits.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models import create_model, model_spec
from models.edgenext import FrozenPositionalEncoding, PositionalEncodingFourier
from models.layers import LayerNorm2d, split_qkv
from models.swin import merge_patches
from reparam import reparameterize

pytestmark = pytest.mark.fast


def plain_split_qkv(qkv: torch.Tensor, num_heads: int) -> tuple[torch.Tensor, ...]:
    """The reference form: three chunks, each split into heads by its own reshape and transpose."""
    batch, tokens, _ = qkv.shape
    return tuple(part.reshape(batch, tokens, num_heads, -1).transpose(1, 2) for part in qkv.chunk(3, dim=-1))


def plain_merge_patches(x: torch.Tensor) -> torch.Tensor:
    """The reference's patch merging: (even row, even col), (odd, even), (even, odd), (odd, odd) concatenated."""
    return torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), tokens=st.integers(1, 50), heads=st.integers(1, 4), head_dim=st.integers(1, 8),
       seed=st.integers(0, 2 ** 16))
def test_split_qkv_is_chunk_then_heads(batch, tokens, heads, head_dim, seed):
    qkv = torch.randn(batch, tokens, 3 * heads * head_dim, dtype=torch.float64,
                      generator=torch.Generator().manual_seed(seed))
    for ours, plain in zip(split_qkv(qkv, heads), plain_split_qkv(qkv, heads), strict=True):
        assert ours.shape == (batch, heads, tokens, head_dim)
        assert torch.equal(ours, plain)


def test_split_qkv_keeps_q_k_v_apart():
    """q, k and v are the projection's first, second and third thirds of the channels."""
    qkv = torch.cat([torch.full((1, 5, 6), float(i), dtype=torch.float64) for i in range(3)], dim=-1)
    q, k, v = split_qkv(qkv, num_heads=2)
    assert (q == 0).all() and (k == 1).all() and (v == 2).all()


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), half_h=st.integers(1, 6), half_w=st.integers(1, 6), channels=st.integers(1, 8),
       seed=st.integers(0, 2 ** 16))
def test_merge_patches_is_the_references_concat(batch, half_h, half_w, channels, seed):
    x = torch.randn(batch, 2 * half_h, 2 * half_w, channels, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed))
    merged = merge_patches(x)
    assert merged.shape == (batch, half_h, half_w, 4 * channels)
    assert torch.equal(merged, plain_merge_patches(x))


def test_merge_patches_channel_order_by_position():
    """Each output channel group comes from the pixel the reference takes it from."""
    rows, cols = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    x = torch.stack([rows, cols], dim=-1)[None].double()  # each pixel holds its own (row, col)
    merged = merge_patches(x)[0, 1, 0]  # the output at row 1, col 0: input rows 2-3, cols 0-1
    assert merged.tolist() == [2.0, 0.0, 3.0, 0.0, 2.0, 1.0, 3.0, 1.0]


@pytest.mark.parametrize("name, folded", [("vit_tiny_patch16", 24), ("swin_tiny", 27), ("convnext_atto", 12), ("mobilevit_xxs", 18), ("edgenext_xx_small", 15)])
def test_layernorm_affine_folds_into_the_next_linear_exactly(name, folded):
    """Deploy forms fold each block LayerNorm's weight and bias into the linear that reads it (LiteRT runs the
    affine part as two elementwise ops over the whole tensor): the same function in float64, to rounding."""
    from models import create_model, model_spec
    from reparam import reparameterize

    torch.manual_seed(0)
    model = create_model(name).double().eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # trained-like norms: a weight of ones and a bias of zeros would hide a wrong fold
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=generator, dtype=torch.float64))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator, dtype=torch.float64))
    deploy = reparameterize(model, warn_untrained=False)
    bare = [m for m in deploy.modules() if isinstance(m, torch.nn.LayerNorm) and m.weight is None]
    assert len(bare) == folded
    x = model_spec(name).sample_inputs(count=1, seed=0)[0].double()
    with torch.no_grad():
        reference, ours = model(x), deploy(x)
    assert reference.dtype == ours.dtype == torch.float64
    assert (ours - reference).abs().max().item() <= 1e-12 * reference.abs().max().item()


def test_fold_norm_affine_refuses_what_it_cannot_fold():
    from reparam.layers import fold_norm_affine

    with pytest.raises(ValueError, match="1x1 conv"):
        fold_norm_affine(LayerNorm2d(4), torch.nn.Conv2d(4, 4, 3))
    with pytest.raises(ValueError, match="only an affine LayerNorm"):
        fold_norm_affine(LayerNorm2d(4, decomposed=True), torch.nn.Conv2d(4, 4, 1))
    with pytest.raises(ValueError, match="input channels"):
        fold_norm_affine(torch.nn.LayerNorm(4), torch.nn.Linear(5, 3))


def test_frozen_positional_encoding_is_the_plain_one_and_a_constant_in_graphs():
    """EdgeNeXt's deploy positional encoding: the plain form's values exactly, recomputed when the weights
    change in place, and one constant in an exported graph (LiteRT ran the plain form's FLOOR_DIV, POW,
    STRIDED_SLICE and BROADCAST_TO outside XNNPACK: 5 partitions on edgenext_xx_small, 1 with this)."""
    torch.manual_seed(0)
    plain = PositionalEncodingFourier(48).eval()
    frozen = plain.reparameterize()
    assert isinstance(frozen, FrozenPositionalEncoding) and frozen.reparameterize() is frozen
    assert frozen.token_projection is plain.token_projection
    assert torch.equal(frozen(8, 6), plain(8, 6)) and torch.equal(frozen(4, 4), plain(4, 4))
    with torch.no_grad():
        plain.token_projection.weight.mul_(2.0)  # in place, as load_state_dict does
    assert torch.equal(frozen(8, 6), plain(8, 6))

    class Adds(torch.nn.Module):
        def __init__(self, encoding):
            super().__init__()
            self.encoding = encoding

        def forward(self, x):
            return x + self.encoding(x.shape[2], x.shape[3])

    x = torch.randn(1, 48, 8, 6)
    def ops(module):
        return {str(n.target) for n in torch.export.export(module, (x,)).graph.nodes if n.op == "call_function"}

    assert {"aten.sin.default", "aten.cos.default"} <= ops(Adds(plain))
    assert ops(Adds(frozen)) == {"aten.add.Tensor"}


def test_edgenext_deploy_freezes_its_positional_encoding():
    model = create_model("edgenext_xx_small").double().eval()
    deploy = reparameterize(model, warn_untrained=False)
    assert sum(isinstance(m, FrozenPositionalEncoding) for m in deploy.modules()) == 1
    assert not any(isinstance(m, FrozenPositionalEncoding) for m in model.modules())
    x = model_spec("edgenext_xx_small").sample_inputs(count=1, seed=0)[0].double()
    with torch.no_grad():
        reference, ours = model(x), deploy(x)
    assert (ours - reference).abs().max().item() <= 1e-12 * reference.abs().max().item()
