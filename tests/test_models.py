"""Registry-wide model checks: shapes, gradients, reference parameter counts and MACs, weights I/O."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import models
from models.complexity import count_macs, count_params
from models.weights import CheckpointMismatchError

ALL = models.list_models()
# Only names whose paper publishes a figure are checked against it (repvit_m0_6 has none).
WITH_PARAMS = [n for n in ALL if models.model_spec(n).params_m is not None]
WITH_MACS = [n for n in ALL if models.model_spec(n).gmacs is not None]


def _small_input(spec, batch=2):
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
    code = "import sys, models; print(any(m.startswith('models.repvit') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


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
    assert bad.returncode == 2 and "unknown model" in bad.stdout
