"""Core ML export: parity of the RepViT family through the reference evaluator, image input,
metadata, the unknown-op error, and the CLI end to end.

Models get seeded, non-trivial BatchNorm statistics and a unit-scale classifier so logits are
O(1): the relative bounds below then measure the export, not a near-zero output.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import coremltools as ct
import numpy as np
import pytest
import torch

import models
from export_helpers import signal_model  # tests/ is on sys.path
import reparam
from export import coreml, load_artifact
from export.coreml import MIL_OPS, MILEvaluator, UnsupportedMILOpError
from export.errors import ExportError
from export.options import CoreMLOptions
from export_helpers import head_commit  # tests/ is on sys.path
from zoo_xfails import zoo_xfail_marks  # tests/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
# max |artifact - eager| / max |eager| allowed: fp32 is one rounding order away; fp16 rounds every op
RELATIVE_BOUND = {"fp32": 1e-4, "fp16": 2e-2}


def nontrivial(name: str) -> torch.nn.Module:
    """A registered model on its probe weights (``export_helpers.signal_model``): BatchNorm away from
    identity, every layer reaching the logits, the seed the gate's own probe uses (one conversion)."""
    return signal_model(name)


def _relative_errors(artifact) -> dict[str, float]:
    """Per reference: the worst max-abs error over the inputs divided by that input's max |ref|."""
    worst: dict[str, float] = {}
    for c in artifact.parity["comparisons"]:
        worst[c["reference"]] = max(worst.get(c["reference"], 0.0), c["max_abs_error"] / c["ref_max_abs"])
    return worst


@pytest.fixture(scope="module")
def cli_export(tmp_path_factory):
    """``python -m export.coreml repvit_m0_6`` run as a user would, once for the module."""
    out_dir = tmp_path_factory.mktemp("coreml_cli")
    result = subprocess.run([sys.executable, "-m", "export.coreml", "repvit_m0_6", "--out", str(out_dir)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    return out_dir, result


def test_cli_end_to_end(cli_export):
    out_dir, result = cli_export
    assert result.returncode == 0, result.stderr[-3000:]
    package = out_dir / "repvit_m0_6" / "repvit_m0_6.mlpackage"  # fp16 is the default: no suffix
    assert (package / "Manifest.json").is_file()
    assert sorted(p.name for p in (out_dir / "repvit_m0_6").iterdir()) == [
        "repvit_m0_6.mlpackage", "repvit_m0_6.mlpackage.manifest.json"]  # no temporary left behind
    artifact = load_artifact(package)
    assert (artifact.format, artifact.precision, artifact.model) == ("coreml", "fp16", "repvit_m0_6")
    assert artifact.input_shape == [1, 3, 224, 224] and artifact.input_layout == "NCHW"
    assert artifact.reparameterized is True
    assert artifact.parity["passed"] and artifact.parity["inputs"] >= 3
    assert {c["reference"] for c in artifact.parity["comparisons"]} == {"deploy", "training"}
    assert artifact.tool_versions["coremltools"] == ct.__version__
    # what the gate ran on is stated: the numpy evaluator, fp16 storage emulated, fp32 accumulation
    runtime = artifact.options["parity_runtime"]
    assert "not Core ML" in runtime["runtime"] and "float32 inside every op" in runtime["accumulation"]
    assert artifact.size_bytes > 1_000_000 and len(artifact.sha256) == 64
    assert "repvit_m0_6 -> coreml (fp16)" in result.stdout  # the one-screen summary, on stdout
    # the command quiets coremltools' per-pass progress bars (TQDM_DISABLE before torch imports tqdm)
    assert "Running MIL" not in result.stderr and "Converting PyTorch Frontend" not in result.stderr


def test_metadata(cli_export):
    out_dir, _ = cli_export
    package = out_dir / "repvit_m0_6" / "repvit_m0_6.mlpackage"
    description = ct.utils.load_spec(str(package)).description
    meta = description.metadata
    assert meta.author == "mobilelat"
    assert "repvit_m0_6" in meta.shortDescription and "fp16" in meta.shortDescription
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", meta.versionString)
    user = dict(meta.userDefined)
    spec = models.model_spec("repvit_m0_6")
    assert user["mobilelat.model"] == "repvit_m0_6"
    assert [float(v) for v in user["mobilelat.mean"].split(",")] == pytest.approx(spec.mean)
    assert [float(v) for v in user["mobilelat.std"].split(",")] == pytest.approx(spec.std)
    assert user["mobilelat.reparameterized"] == "true"
    # the checkout's commit (-dirty: tracked files had local changes), as the manifest records it
    assert user["mobilelat.source_commit"] == (head_commit() or "unknown")
    assert user["mobilelat.source_commit"] == (load_artifact(package).git_commit or "unknown")
    inputs = {i.name: i for i in description.input}
    outputs = {o.name: o for o in description.output}
    assert list(inputs) == ["image"] and list(outputs) == ["logits"]
    assert "normalized" in inputs["image"].shortDescription
    assert "logits" in outputs["logits"].shortDescription
    assert inputs["image"].type.multiArrayType.dataType == ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32


def test_program_computes_in_fp16(cli_export):
    out_dir, _ = cli_export
    evaluator = MILEvaluator(out_dir / "repvit_m0_6" / "repvit_m0_6.mlpackage")
    assert evaluator.holds_fp16 and "cast" in evaluator.op_types
    # the deploy form has no BatchNorm left: reparameterization reached the artifact
    assert "batch_norm" not in evaluator.op_types


def test_unknown_op_is_named(cli_export, monkeypatch):
    out_dir, _ = cli_export
    package = out_dir / "repvit_m0_6" / "repvit_m0_6.mlpackage"
    spec = models.model_spec("repvit_m0_6")
    monkeypatch.delitem(MIL_OPS, "gelu")
    with pytest.raises(ExportError, match="'gelu'") as raised:
        coreml.HANDLER.run(package, [x.numpy() for x in spec.sample_inputs(1)], spec, CoreMLOptions())
    assert raised.value.failing == "gelu" and "MIL_OPS" in str(raised.value)
    assert isinstance(raised.value.__cause__, UnsupportedMILOpError)


def test_cli_help_and_refused_option(tmp_path):
    help_text = subprocess.run([sys.executable, "-m", "export.coreml", "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60).stdout
    for flag in ("--image-input", "--coreml-target", "--precision", "--no-reparam"):
        assert flag in help_text
    refused = subprocess.run([sys.executable, "-m", "export.coreml", "repvit_m0_6", "--nhwc", "--out", str(tmp_path)],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--nhwc" in refused.stderr
    assert not any(tmp_path.iterdir())


# (model, precision): m0_6 runs on every `make test`; the rest of the family is slow
FAMILY = [("repvit_m0_6", "fp32")] + [
    pytest.param(name, precision, marks=[pytest.mark.slow, *zoo_xfail_marks(name, "coreml")])
    for name, precision in [("repvit_m1", "fp32"), ("repvit_m1", "fp16")]
    + [(name, "fp32") for name in models.list_models("repvit*") if name not in ("repvit_m0_6", "repvit_m1")]]


@pytest.mark.parametrize("name, precision", FAMILY)
def test_family_parity(name, precision, tmp_path):
    spec = models.model_spec(name)
    model = nontrivial(name)
    artifact = coreml.export(model, spec, tmp_path, precision=precision, quiet=True)
    assert set(_relative_errors(artifact)) == {"deploy", "training"}
    evaluator = MILEvaluator(artifact.path)
    if precision == "fp32":  # fp32 is not silently computed in fp16
        assert not evaluator.holds_fp16
    # an input the gate did not see, against both eager forms, within the precision's bound
    image = spec.sample_inputs(1, seed=9)[0]
    got = evaluator.run({"image": image.numpy()})["logits"]
    with torch.no_grad():
        for reference in (reparam.reparameterize(model), model):
            want = reference(image).numpy()
            assert np.max(np.abs(got - want)) <= RELATIVE_BOUND[precision] * np.max(np.abs(want))


def test_fp16_differs_from_fp32_as_fp16_does(cli_export):
    """The emulation is visible: fp16 error is orders above fp32 error (the gate bounds it from above)."""
    out_dir, _ = cli_export
    artifact = load_artifact(out_dir / "repvit_m0_6" / "repvit_m0_6.mlpackage")
    relative = max(c["max_abs_error"] / c["ref_max_abs"] for c in artifact.parity["comparisons"])
    assert relative > 1e-4  # fp32 computation would be within 1e-6


def test_image_preprocessing_is_exact():
    pixels = np.random.default_rng(0).uniform(0, 255, size=(2, 3, 5, 5)).astype(np.float64)
    for mean, std in [((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]:
        scale, bias, factors = coreml.image_preprocessing(mean, std)
        preprocessed = scale * pixels + np.reshape(bias, (1, 3, 1, 1))
        if factors is not None:
            preprocessed = preprocessed * np.reshape(factors, (1, 3, 1, 1))
        expected = (pixels / 255 - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1))
        np.testing.assert_allclose(preprocessed, expected, rtol=1e-12, atol=1e-12)
        assert (factors is None) == (len(set(std)) == 1)
        round_trip = coreml.pixels_from_normalized(expected.astype(np.float32), mean, std)
        np.testing.assert_allclose(round_trip, pixels, rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="positive"):
        coreml.image_preprocessing((0, 0, 0), (0.2, 0.0, 0.2))


def test_image_input_parity(tmp_path):
    """An image input at fp32 passes the fp32 gate: the folded normalization is exact.

    Also exports for a newer deployment target (iOS 17: Core ML specification version 8).
    """
    model = nontrivial("repvit_m0_6")
    artifact = coreml.export(model, models.model_spec("repvit_m0_6"), tmp_path, precision="fp32", quiet=True,
                             image_input=True, input_size=(96, 96), coreml_target="iOS17")
    assert artifact.options["image_input"] and artifact.input_shape == [1, 3, 96, 96]
    assert ct.utils.load_spec(str(artifact.path)).specificationVersion == 8
    spec_input = ct.utils.load_spec(str(artifact.path)).description.input[0]
    assert spec_input.type.WhichOneof("Type") == "imageType"
    assert spec_input.type.imageType.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB
    # the evaluator runs the program's own preprocessing ops on 0..255 pixels
    evaluator = MILEvaluator(artifact.path)
    assert {"mul", "add"} <= set(evaluator.op_types)
    spec = models.model_spec("repvit_m0_6").with_input_size(96)
    image = spec.sample_inputs(1, seed=7)[0]
    pixels = coreml.pixels_from_normalized(image.numpy(), spec.mean, spec.std)
    got = evaluator.run({"image": pixels})["logits"]
    with torch.no_grad():  # the training form: export converted a copy of it
        want = model(image).numpy()
    assert np.max(np.abs(got - want)) <= RELATIVE_BOUND["fp32"] * np.max(np.abs(want))
    meta = json.loads(artifact.manifest_path.read_text())
    assert meta["options"]["image_input"] is True


class _TanhGelu(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.head(torch.nn.functional.gelu(self.conv(x) * 3, approximate="tanh").mean((2, 3)))


def test_tanh_gelu_keeps_its_approximation(tmp_path):
    """A model with GELU(approximate="tanh") must compute the tanh approximation in Core ML too
    (coremltools drops the keyword ``approximate``; the converter writes the tanh formula out)."""
    spec = models.spec.ModelSpec(name="tanh_gelu", family="test", variant="-", paper="-", reference_impl="-",
                                 input_size=(3, 16, 16), num_classes=10)
    model = _TanhGelu().eval()
    path = tmp_path / "tanh_gelu.mlpackage"
    with torch.no_grad():
        coreml.HANDLER.convert(model, spec, path, CoreMLOptions(precision="fp32"))
    image = spec.sample_inputs(1)[0]
    got = MILEvaluator(path).run({"image": image.numpy()})["logits"]
    with torch.no_grad():
        want = model(image).numpy()
    assert np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want))
