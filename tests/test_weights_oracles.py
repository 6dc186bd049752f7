"""Every checkpoint oracle loads through the user's path and gives the source model's logits.

For each of the 44 oracles (timm 1.0 and the official RepViT, EdgeViT and EfficientMod code) the
source state dict is rebuilt by the fill rule, written to disk as .pth and as .safetensors, loaded
with ``create_model(name, weights=PATH, dtype=torch.float64)`` and run on the fixed input; the
logits must match the source's to 1e-9 of the largest one. In float64 a wrong key, a transposed
weight, another epsilon or another padding shows far above that; rounding stays far below it.
"""
from __future__ import annotations

import pytest
import torch

from checkpoint_oracles import (FAST_ORACLES, ORACLE_FILES, ORACLE_IDS, RELATIVE_TOLERANCE, image,  # tests/ on path
                                oracle, relative_error, source_state_dict, write_checkpoint)

import models
from models import registry
from models.weights import read_checkpoint, to_our_layout


def _marks(oracle_id: str):
    return [pytest.mark.fast] if oracle_id in FAST_ORACLES else [pytest.mark.slow]


def test_all_oracles_are_here():
    # 28 timm names shared with ours + 16 official checkpoints; none may go missing silently
    assert len(ORACLE_FILES) == 44
    assert sum(i.startswith("timm/") for i in ORACLE_IDS) == 28
    families = {registry.family_module(registry.resolve_name(oracle(i)["ours"], note=False)).__name__
                for i in FAST_ORACLES}
    assert len(families) == len(registry.list_families()), "the fast subset must cover every family"


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("oracle_id", [pytest.param(i, marks=_marks(i)) for i in ORACLE_IDS])
def test_checkpoint_gives_the_source_logits(oracle_id, suffix, tmp_path):
    fixture = oracle(oracle_id)
    path = write_checkpoint(source_state_dict(oracle_id), tmp_path / f"checkpoint{suffix}")
    model = models.create_model(fixture["ours"], weights=path, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    with torch.no_grad():
        logits = model(image(tuple(fixture["input_shape"])))
    error = relative_error(logits, oracle_id)
    assert error <= RELATIVE_TOLERANCE, f"{oracle_id} via {suffix}: max relative error {error:.3e}"


@pytest.mark.fast
@pytest.mark.parametrize("oracle_id", ORACLE_IDS)
def test_layout_is_recognised(oracle_id, tmp_path):
    """timm files are read as timm's layout, official ones as the official layout (EfficientMod's is ours)."""
    fixture = oracle(oracle_id)
    name = registry.resolve_name(fixture["ours"], note=False)
    state = {key: torch.zeros(shape) for key, shape, _ in fixture["keys"]}
    converted, layout = to_our_layout(state, registry.family_module(name))
    expected = "timm" if oracle_id.startswith("timm/") else ("ours" if "efficientmod" in oracle_id else "official")
    assert layout == expected
    assert set(converted) == set(models.create_model(name).state_dict())


@pytest.mark.fast
def test_safetensors_and_pth_read_the_same_tensors(tmp_path):
    state = source_state_dict("timm/convnext_atto")
    a = read_checkpoint(write_checkpoint(state, tmp_path / "a.pth"))
    b = read_checkpoint(write_checkpoint(state, tmp_path / "b.safetensors"))
    assert (a.file_format, b.file_format) == ("torch zip", "safetensors")
    assert list(a.state_dict) == list(state) and set(b.state_dict) == set(state)  # safetensors sorts its keys
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in state)
