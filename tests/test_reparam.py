"""``reparam.reparameterize`` over the registry and on hand-made models; the summary; the CLI.

Exactness: BatchNorm statistics and layer scales are randomized far from their defaults (a fresh
model zero-initializes some BN weights, which would hide whole branches), then on seeded inputs
the deploy output must equal the training-form eval output within 1e-5 x max |output| in fp32,
and within 1e-10 in float64 (rounding cannot hide a wrong fold there).
"""
from __future__ import annotations

import copy
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

import models
import reparam
from export_helpers import randomize_batchnorm  # tests/ is on sys.path
from models.layers import ConvBN

ALL = models.list_models()
REPVIT = models.list_models("repvit_*")
WITH_DEPLOY_PARAMS = [n for n in ALL if models.model_spec(n).deploy_params_m is not None]
_BatchNorm = nn.modules.batchnorm._BatchNorm


def randomized(name: str) -> nn.Module:
    """A registered model in eval mode with randomized BatchNorms and layer scales."""
    model = randomize_batchnorm(models.create_model(name), seed=7)
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for parameter_name, parameter in model.named_parameters():
            if parameter_name.rsplit(".", 1)[-1].startswith(("gamma", "layer_scale")):
                parameter.copy_(torch.rand(parameter.shape, generator=generator) + 0.5)
    return model.eval()


def _max_error(reference: nn.Module, deploy: nn.Module, inputs: list[torch.Tensor]) -> tuple[float, float]:
    with torch.no_grad():
        pairs = [(reference(x), deploy(x)) for x in inputs]
    return (max(float((b - a).abs().max()) for a, b in pairs), max(float(a.abs().max()) for a, _ in pairs))


@pytest.mark.parametrize("name", ALL)
def test_deploy_output_equals_training_output(name):
    """Exact in float64; in fp32 within 1e-5 x max |output|, or within the training form's own fp32
    rounding where that is larger (deep random-weight nets such as repvit_m2_3 amplify rounding
    past 1e-5 in the training form itself)."""
    model = randomized(name)
    deploy = reparam.reparameterize(model)
    deploy64 = reparam.reparameterize(copy.deepcopy(model).double())
    model64 = copy.deepcopy(model).double()
    with torch.no_grad():
        for x in models.model_spec(name).sample_inputs(2, seed=5):
            truth = model64(x.double())
            scale = float(truth.abs().max())
            exact_error = float((deploy64(x.double()) - truth).abs().max())
            assert exact_error <= 1e-10 * scale, f"{name}: float64 deploy error {exact_error:.3g} (max |output| {scale:.3g})"
            training, deployed = model(x), deploy(x)
            rounding = float((training.double() - truth).abs().max())  # the training form's own fp32 error
            error = float((deployed - training).abs().max())
            allowed = max(1e-5 * scale, 2 * rounding)
            assert error <= allowed, (f"{name}: fp32 deploy error {error:.3g} > {allowed:.3g} (1e-5 x max |output| "
                                      f"{scale:.3g}; training form's own fp32 rounding {rounding:.3g})")
    assert not deploy.training


@pytest.mark.parametrize("name", REPVIT)
def test_repvit_deploy_form_has_no_batchnorm_and_one_conv_per_token_mixer(name):
    model = models.create_model(name)
    deploy = reparam.reparameterize(model, warn_untrained=False)
    kinds = {type(m).__name__ for m in deploy.modules()}
    assert not [m for m in deploy.modules() if isinstance(m, _BatchNorm)]
    assert not kinds & {"ConvBN", "BNLinear", "RepVGGDW", "RepVGGDWLegacy", "DistillationClassifier"}, kinds
    assert isinstance(deploy.classifier, nn.Linear)
    mixers = [b.token_mixer[0] for b in deploy.features if type(b).__name__ == "RepViTBlock"
              and isinstance(b.token_mixer[0], nn.Conv2d) and b.token_mixer[0].stride == (1, 1)]
    assert mixers and all(m.kernel_size == (3, 3) and m.groups == m.in_channels and m.bias is not None
                          for m in mixers)
    result = reparam.summary(model, deploy)
    assert result.batchnorms_after == 0 and result.batchnorms_folded == result.batchnorms_before > 0
    assert result.conv_branches_merged == len(mixers)


@pytest.mark.parametrize("name", WITH_DEPLOY_PARAMS)
def test_deploy_parameter_count_matches_the_reference(name):
    expected = models.model_spec(name).deploy_params_m * 1e6
    deploy = reparam.reparameterize(models.create_model(name), warn_untrained=False)
    params = sum(p.numel() for p in deploy.parameters())
    assert abs(params - expected) <= 0.005 * expected, f"{name}: {params / 1e6:.3f}M vs reference {expected / 1e6:.3f}M"


@pytest.mark.fast
def test_caller_model_is_untouched_and_the_copy_is_idempotent():
    model = randomized("repvit_m0_6").train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    module_ids = [id(m) for m in model.modules()]
    deploy = reparam.reparameterize(model)
    assert model.training, "the caller's mode changed"
    assert [id(m) for m in model.modules()] == module_ids
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    again = reparam.reparameterize(deploy)
    assert again is not deploy
    assert list(again.state_dict()) == list(deploy.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), deploy.state_dict().values()))
    assert [type(m) for m in again.modules()] == [type(m) for m in deploy.modules()]


@pytest.mark.fast
def test_training_mode_model_is_folded_from_running_statistics():
    model = randomized("repvit_m0_6").train()
    deploy = reparam.reparameterize(model)
    x = models.model_spec("repvit_m0_6").sample_inputs(1, seed=2)
    reference = copy.deepcopy(model).eval()
    error, scale = _max_error(reference, deploy, x)
    assert error <= 1e-5 * scale
    result = reparam.summary(model, deploy)
    assert result.from_training_mode
    assert any("running statistics" in note for note in result.notes())


@pytest.mark.fast
def test_untrained_statistics_warn_and_trained_ones_do_not():
    with pytest.warns(reparam.UntrainedBatchNormWarning, match=r"72 BatchNorm layer\(s\) hold their initial"):
        reparam.reparameterize(models.create_model("repvit_m0_6"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", reparam.UntrainedBatchNormWarning)
        reparam.reparameterize(randomized("repvit_m0_6"))
        reparam.reparameterize(models.create_model("repvit_m0_6"), warn_untrained=False)
    trained = models.create_model("repvit_m0_6").train()
    with torch.no_grad():
        trained(torch.randn(2, 3, 64, 64))  # one training step's worth of statistics
    assert reparam.untrained_batchnorms(trained) == []


class _ForwardCodeConvBN(nn.Module):
    """conv->BN and BN->1x1 conv written in forward code, plus patterns that must stay."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.bn_before = nn.BatchNorm2d(8)
        self.project = nn.Conv2d(8, 8, 1)
        self.shared_conv = nn.Conv2d(8, 8, 3, padding=1)
        self.shared_bn = nn.BatchNorm2d(8)  # its input is also the residual: folding would change x
        self.bn_padded = nn.BatchNorm2d(8)
        self.padded = nn.Conv2d(8, 4, 3, padding=1)  # zero padding after a BN: not exact, left alone

    def forward(self, x):
        x = self.bn(self.conv(x))
        x = self.project(self.bn_before(x))
        y = self.shared_conv(x)
        x = y + self.shared_bn(y)
        return self.padded(self.bn_padded(x))


class _Untraceable(nn.Module):
    """Data-dependent control flow: fx cannot trace it, so only containers are folded."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.conv = nn.Conv2d(4, 4, 1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        x = self.body(x)
        if x.sum() > 0:
            return self.bn(self.conv(x))
        return self.bn(self.conv(-x))


def _randomize_all(model: nn.Module) -> nn.Module:
    return randomize_batchnorm(model, seed=3).eval()


@pytest.mark.fast
def test_generic_passes_fold_forward_code_and_leave_inexact_patterns():
    torch.manual_seed(1)
    model = _randomize_all(_ForwardCodeConvBN())
    deploy = reparam.reparameterize(model)
    assert type(deploy) is _ForwardCodeConvBN, "the model keeps its class (no GraphModule)"
    assert isinstance(deploy.bn, nn.Identity) and deploy.conv.bias is not None
    assert isinstance(deploy.bn_before, nn.Identity)
    assert isinstance(deploy.shared_bn, nn.BatchNorm2d), "a conv output with two users was folded"
    assert isinstance(deploy.bn_padded, nn.BatchNorm2d), "a BN before a padded conv was folded"
    error, scale = _max_error(model, deploy, [torch.randn(2, 3, 10, 10) for _ in range(3)])
    assert error <= 1e-5 * scale
    assert reparam.summary(model, deploy).batchnorms_folded == 2


@pytest.mark.fast
def test_untraceable_model_still_gets_the_container_pass():
    model = _randomize_all(_Untraceable())
    deploy = reparam.reparameterize(model)
    assert isinstance(deploy.body[1], nn.Identity) and isinstance(deploy.body[0], nn.Conv2d)
    assert isinstance(deploy.bn, nn.BatchNorm2d)  # only reachable through forward code fx cannot trace
    error, scale = _max_error(model, deploy, [torch.randn(1, 3, 8, 8) for _ in range(2)])
    assert error <= 1e-5 * scale


@pytest.mark.fast
def test_a_hook_that_returns_something_else_is_an_error():
    class Broken(nn.Module):
        def reparameterize(self):
            return "not a module"

    with pytest.raises(TypeError, match="Broken.reparameterize"):
        reparam.reparameterize(nn.Sequential(Broken()))


@pytest.mark.fast
def test_convbn_hook_keeps_the_conv_geometry():
    block = randomize_batchnorm(ConvBN(6, 12, 3, stride=2, padding=2, dilation=2, groups=3)).eval()
    fused = block.reparameterize()
    assert isinstance(fused, nn.Conv2d)
    assert (fused.stride, fused.padding, fused.dilation, fused.groups) == ((2, 2), (2, 2), (2, 2), 3)
    x = torch.randn(2, 6, 11, 11)
    error, scale = _max_error(block, fused, [x])
    assert error <= 1e-5 * scale


@pytest.mark.fast
def test_summary_counts_what_changed_in_repvit_m1():
    model = models.create_model("repvit_m1")
    deploy = reparam.reparameterize(model, warn_untrained=False)
    result = reparam.summary(model, deploy)
    assert (result.batchnorms_before, result.batchnorms_after) == (108, 0)
    assert result.conv_branches_merged == 23  # one per stride-1 block: the legacy 1x1 branch
    assert result.params_before == 5_485_248 and result.params_after == 5_067_056
    assert result.layers_after < result.layers_before
    assert result.layer_scales_folded == 0


@pytest.mark.fast
def test_summary_counts_layer_scales():
    model = models.create_model("convnext_atto")
    result = reparam.summary(model, reparam.reparameterize(model))
    assert result.layer_scales_folded == 12  # one per block: depths 2, 2, 6, 2
    assert result.batchnorms_before == 0


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "reparam", *args], capture_output=True, text=True, cwd=cwd,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_cli_saves_a_deploy_checkpoint_that_loads_again(tmp_path):
    training = randomized("repvit_m0_6")
    torch.save({"model": training.state_dict()}, tmp_path / "train.pth")
    out = tmp_path / "deploy" / "repvit_m0_6.pt"
    result = _cli("repvit_m0_6", "--weights", str(tmp_path / "train.pth"), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "exact" in result.stdout and "BatchNorm layers" in result.stdout
    assert "72" in result.stdout and "initial statistics" not in result.stdout
    loaded = models.create_model("repvit_m0_6", deploy=True, weights=out)
    error, scale = _max_error(training, loaded, models.model_spec("repvit_m0_6").sample_inputs(2, seed=9))
    assert error <= 1e-5 * scale
    assert [p.name for p in out.parent.iterdir()] == ["repvit_m0_6.pt"], "a temporary file was left behind"


def test_cli_rejects_bad_input_clearly(tmp_path):
    unknown = _cli("repvit_m9")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: ") and "repvit_m" in unknown.stderr
    torch.save({"nonsense": torch.zeros(1)}, tmp_path / "bad.pth")
    mismatch = _cli("repvit_m0_6", "--weights", str(tmp_path / "bad.pth"), "--out", str(tmp_path / "x.pt"))
    assert mismatch.returncode == 2 and "unexpected" in mismatch.stderr.lower()
    assert not (tmp_path / "x.pt").exists()
    missing = _cli("repvit_m0_6", "--weights", str(tmp_path / "absent.pth"))
    assert missing.returncode == 2 and "absent.pth" in missing.stderr


def test_cli_writes_nothing_when_the_check_fails(tmp_path, monkeypatch, capsys):
    from reparam import __main__ as cli

    real = reparam.reparameterize

    def broken(model, **kwargs):
        deploy = real(model, **kwargs)
        with torch.no_grad():
            deploy.classifier.bias.add_(1.0)  # a wrong fold
        return deploy

    monkeypatch.setattr(reparam, "reparameterize", broken)
    out = tmp_path / "deploy.pt"
    assert cli.main(["repvit_m0_6", "--out", str(out)]) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert "NOT exact" in capsys.readouterr().out
