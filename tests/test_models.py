"""Registry-wide model checks: shapes, gradients, reference parameter counts and MACs, weights I/O;
the registry itself; the blocks shared by several families (``models/layers.py``)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

import models
from models.complexity import count_macs, count_params
from models.layers import ConvBNAct, LayerNorm2d, Mlp, drop_path
from models.registry import build_index
from models.spec import ModelSpec, Variant
from models.weights import CheckpointMismatchError

ALL = models.list_models()
# Only names whose paper publishes a figure are checked against it (repvit_m0_6 has none).
WITH_PARAMS = [n for n in ALL if models.model_spec(n).params_m is not None]
WITH_MACS = [n for n in ALL if models.model_spec(n).gmacs is not None]


def _small_input(spec: ModelSpec, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, *spec.input_size)


@pytest.mark.parametrize("name", ALL)
def test_forward_shape_and_finite(name):
    spec = models.model_spec(name)
    model = models.create_model(name).eval()
    with torch.no_grad():
        out = model(_small_input(spec))
    assert out.shape == (2, spec.num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_every_parameter_gets_a_gradient(name):
    spec = models.model_spec(name)
    model = models.create_model(name).train()
    out = model(_small_input(spec))
    outputs = out if isinstance(out, tuple) else (out,)
    sum(o.float().pow(2).mean() for o in outputs).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None)]
    assert not missing, f"parameters without gradient: {missing[:10]}"


@pytest.mark.fast
@pytest.mark.parametrize("name", WITH_PARAMS)
def test_params_match_reference(name):
    spec = models.model_spec(name)
    params = count_params(models.create_model(name))
    assert params / 1e6 == pytest.approx(spec.params_m, rel=0.005), f"{name}: {params / 1e6:.3f}M"


@pytest.mark.parametrize("name", WITH_MACS)
def test_macs_match_reference(name):
    spec = models.model_spec(name)
    macs = count_macs(models.create_model(name), spec.input_shape())
    assert macs / 1e9 == pytest.approx(spec.gmacs, rel=0.02), f"{name}: {macs / 1e9:.3f} GMACs"


@pytest.mark.fast
def test_repvit_m0_6_follows_official_channels():
    model = models.create_model("repvit_m0_6")
    widths = sorted({m.out_channels for m in model.modules()
                     if isinstance(m, torch.nn.Conv2d) and m.groups > 1 and m.kernel_size == (3, 3)})
    assert widths == [40, 80, 160, 320]


@pytest.mark.fast
def test_unknown_name_suggests_closest():
    with pytest.raises(models.UnknownModelError) as info:
        models.create_model("repvit_m1_00")
    message = str(info.value)
    assert "repvit_m1_0" in message and "python -m models list" in message


@pytest.mark.fast
def test_import_models_is_lazy():
    code = ("import sys, models; print(sorted(m for m in sys.modules "
            "if m.split('.')[:2] in [['models', f] for f in models.list_families()]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"import models imported family files: {out.stdout}"


@pytest.mark.fast
def test_registry_lists_families_in_order_and_specs_carry_their_key():
    families = [models.model_spec(name).family for name in ALL]
    assert families == sorted(families, key=models.list_families().index), "names not grouped by family in order"
    assert set(families) == set(models.list_families())
    assert [models.model_spec(name).name for name in ALL] == ALL


def _variant(**spec_fields) -> Variant:
    return Variant({}, dict(variant="v", paper="p", reference_impl="r", **spec_fields))


@pytest.mark.fast
def test_a_name_registered_by_two_families_is_an_error():
    index = build_index([("alpha", {"net_a": _variant(), "net_b": _variant(top1=70.0)}),
                         ("beta", {"net_c": _variant()})])
    assert list(index) == ["net_a", "net_b", "net_c"]
    assert (index["net_b"].spec.name, index["net_b"].spec.family, index["net_b"].spec.top1) == ("net_b", "alpha", 70.0)
    with pytest.raises(ValueError, match=r"'net_a' is registered twice: by models/alpha.py and by models/beta.py"):
        build_index([("alpha", {"net_a": _variant()}), ("beta", {"net_a": _variant()})])


@pytest.mark.fast
def test_variant_rejects_fields_the_registry_fills_and_unknown_ones():
    with pytest.raises(TypeError, match="must not set name"):
        _variant(name="net_a")
    with pytest.raises(TypeError, match="unknown ModelSpec field.*top_1"):
        _variant(top_1=70.0)


@pytest.mark.fast
def test_list_pattern():
    assert models.list_models("repvit_m?") == ["repvit_m1", "repvit_m2", "repvit_m3"]


@pytest.mark.fast
@pytest.mark.parametrize("layout", ["bare", "official"])
def test_checkpoint_round_trip(tmp_path, layout):
    source = models.create_model("repvit_m0_6").eval()
    with torch.no_grad():  # move BN statistics off their defaults so the round trip is visible
        for m in source.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    state = source.state_dict()
    path = tmp_path / "ckpt.pth"
    torch.save(state if layout == "bare" else {"model": state, "epoch": 3}, path)
    loaded = models.create_model("repvit_m0_6", weights=path)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)


@pytest.mark.fast
def test_checkpoint_with_wrong_key_lists_it(tmp_path):
    state = models.create_model("repvit_m0_6").state_dict()
    state["features.0.0.c.weight_renamed"] = state.pop("features.0.0.c.weight")
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError) as info:
        models.create_model("repvit_m0_6", weights=path)
    message = str(info.value)
    assert "missing (1): features.0.0.c.weight" in message
    assert "unexpected (1): features.0.0.c.weight_renamed" in message


@pytest.mark.fast
def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        models.create_model("repvit_m0_6", weights=tmp_path / "nope.pth")


@pytest.mark.fast
def test_sample_inputs_are_seeded():
    spec = models.model_spec("repvit_m1")
    a = spec.sample_inputs(3, seed=7)
    b = spec.sample_inputs(3, seed=7)
    assert len(a) == 3 and all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], a[1])


@pytest.mark.fast
def test_cli_info_and_list():
    out = subprocess.run([sys.executable, "-m", "models", "info", "repvit_m1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "5.485" in out.stdout and "0.8" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "models", "info", "repvit_m7"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown model") and bad.stdout == ""


# --------------------------------------------------------------- blocks shared by several families
@pytest.mark.fast
def test_drop_path_drops_whole_samples_and_keeps_the_mean():
    x = torch.ones(4000, 3, 2, 2)
    assert drop_path(x, 0.25, training=False) is x and drop_path(x, 0.0, training=True) is x
    out = drop_path(x, 0.25, training=True)
    per_sample = out.flatten(1)
    assert per_sample.unique().tolist() == pytest.approx([0.0, 1 / 0.75])  # dropped, or scaled by 1 / keep
    assert torch.all(per_sample.min(1).values == per_sample.max(1).values), "a sample was partly dropped"
    assert float(per_sample[:, 0].eq(0).float().mean()) == pytest.approx(0.25, abs=0.03)


@pytest.mark.fast
@pytest.mark.parametrize("decomposed", [False, True])
def test_layernorm2d_normalizes_channels_in_both_forms(decomposed):
    norm = LayerNorm2d(6, decomposed=decomposed).double()
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 6, 5, 3, dtype=torch.float64)
    reference = nn.functional.layer_norm(x.permute(0, 2, 3, 1), (6,), norm.weight, norm.bias, 1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(norm(x), reference, rtol=1e-12, atol=1e-12)
    assert list(norm.state_dict()) == ["weight", "bias"]


@pytest.mark.fast
def test_shared_blocks_keep_each_familys_checkpoint_keys():
    assert list(ConvBNAct(3, 8, 3, act_layer=nn.ReLU).state_dict())[:2] == ["conv.c.weight", "conv.bn.weight"]
    assert list(ConvBNAct(3, 8, 3, act_layer=nn.ReLU, numbered=True).state_dict())[:2] == ["0.c.weight", "0.bn.weight"]
    assert list(Mlp(4, 8).state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    x = torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        out = ConvBNAct(3, 8, 3, stride=2, act_layer=nn.ReLU).eval()(x)
    assert out.shape == (1, 8, 3, 3) and float(out.min()) >= 0.0  # 'same' padding, then the activation
