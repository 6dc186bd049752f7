"""The shared export wrapper: options, parity gate, manifest, atomic write, errors.

These tests need no converter: a test format ("torchsave") saves the module with ``torch.save``
and runs it back, registered in the capability and tolerance tables for the test only. Its
``run`` can perturb the outputs to force a parity failure.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

import models
from export_helpers import needs_reparam, signal_model  # tests/ is on sys.path
from export import load_artifact
from export.capabilities import CAPABILITIES, Capability, UnsupportedOptionError, check_options
from export.common import (ExportError, ExportOptions, FormatHandler, InputSizeError, MissingDependencyError,
                           ParityError, artifact_path, export_model, failing_component, require, sha256_of)
from export.parity import TOLERANCES, Tolerance, check_parity, compare

pytestmark = pytest.mark.fast

MODEL = "repvit_m0_6"
SIZE = (64, 64)  # small input: the wrapper, not the model, is under test


def _save(model, spec, tmp_path, options):
    torch.save(model, tmp_path)


def _runner(perturbation: float = 0.0):
    def run(path, inputs, spec, options):
        model = torch.load(path, weights_only=False)
        with torch.no_grad():
            outputs = [model(torch.from_numpy(x)).numpy() for x in inputs]
        for output in outputs:
            output[0, 7] += perturbation
        return outputs
    return run


@pytest.fixture
def torchsave(monkeypatch):
    """Register the test format for one test; returns a handler factory."""
    monkeypatch.setitem(CAPABILITIES, "torchsave", Capability(
        name="torchsave", suffix=".pt", precisions=("fp32",), default_precision="fp32", options=frozenset(),
        requires=("torch",), install_hint="pip install torch"))
    monkeypatch.setitem(TOLERANCES, ("torchsave", "fp32"), Tolerance(rtol=1e-4, atol=1e-5, reason="test"))

    def handler(convert=_save, perturbation=0.0):
        return FormatHandler(name="torchsave", suffix=".pt", convert=convert, run=_runner(perturbation),
                             tool_versions=lambda: {"torch": torch.__version__})
    return handler


@pytest.fixture(scope="module")
def model_and_spec():
    return signal_model(MODEL), models.model_spec(MODEL)


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


@needs_reparam
def test_export_writes_artifact_and_complete_manifest(torchsave, model_and_spec, tmp_path):
    model, spec = model_and_spec
    before = {k: v.clone() for k, v in model.state_dict().items()}
    was_training = model.training
    artifact = export_model(torchsave(), model, spec, tmp_path, ExportOptions(input_size=SIZE, quiet=True))

    # the caller's model is untouched: same tensors, same mode
    assert model.training == was_training
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)

    assert artifact.path == tmp_path / MODEL / f"{MODEL}.pt" and artifact.path.is_file()
    manifest = json.loads(artifact.manifest_path.read_text())
    expected_fields = {"path", "model", "format", "precision", "input_name", "input_shape", "input_layout",
                       "output_name", "mean", "std", "params", "macs", "reparameterized", "sha256", "size_bytes",
                       "tool_versions", "git_commit", "parity", "options", "export_seconds", "created_at"}
    assert expected_fields <= manifest.keys()
    assert manifest["sha256"] == hashlib.sha256(artifact.path.read_bytes()).hexdigest()
    assert manifest["size_bytes"] == artifact.path.stat().st_size
    assert manifest["input_shape"] == [1, 3, *SIZE] and manifest["input_layout"] == "NCHW"
    assert manifest["reparameterized"] is True
    commit = manifest["git_commit"]
    assert commit is None or (len(commit.removesuffix("-dirty")) == 40 and int(commit[:40], 16) >= 0)
    # deploy params are fewer than training-form params (BN folded) and MACs are counted at 64x64
    assert 0 < manifest["params"] < sum(p.numel() for p in model.parameters())
    assert manifest["macs"] > 0
    parity = manifest["parity"]
    assert parity["passed"] and parity["inputs"] == 3
    assert {c["reference"] for c in parity["comparisons"]} == {"deploy", "training"}
    # the deploy form is converted, so the artifact matches it exactly; the training form only closely
    deploy = [c for c in parity["comparisons"] if c["reference"] == "deploy"]
    assert all(c["max_abs_error"] == 0.0 for c in deploy)
    assert load_artifact(artifact.path) == artifact.__class__.from_dict({**manifest, "path": str(artifact.path)})
    assert _leftovers(artifact.path.parent) == []


def test_no_reparam_exports_training_form(torchsave, model_and_spec, tmp_path):
    model, spec = model_and_spec
    artifact = export_model(torchsave(), model, spec, tmp_path,
                            ExportOptions(input_size=SIZE, reparameterize=False, quiet=True))
    assert artifact.reparameterized is False
    assert artifact.params == sum(p.numel() for p in model.parameters())
    assert {c["reference"] for c in artifact.parity["comparisons"]} == {"deploy"}


@needs_reparam
def test_forced_parity_failure_leaves_nothing(torchsave, model_and_spec, tmp_path):
    model, spec = model_and_spec
    with pytest.raises(ParityError) as raised:
        export_model(torchsave(perturbation=0.5), model, spec, tmp_path, ExportOptions(input_size=SIZE, quiet=True))
    report = raised.value.report
    assert not report.passed
    worst = report.worst()
    assert worst.where == [0, 7]  # where the perturbation went
    assert worst.max_abs_error == pytest.approx(0.5, abs=1e-3)
    assert "max_abs" in str(raised.value) and "FAIL" in str(raised.value)
    final = artifact_path(tmp_path, MODEL, "torchsave", "fp32")
    assert not final.exists() and not final.with_name(final.name + ".manifest.json").exists()
    assert _leftovers(final.parent) == []


@needs_reparam
def test_failed_export_keeps_previous_artifact(torchsave, model_and_spec, tmp_path):
    model, spec = model_and_spec
    first = export_model(torchsave(), model, spec, tmp_path, ExportOptions(input_size=SIZE, quiet=True))
    with pytest.raises(ParityError):
        export_model(torchsave(perturbation=1.0), model, spec, tmp_path, ExportOptions(input_size=SIZE, quiet=True))
    assert sha256_of(first.path) == first.sha256
    assert load_artifact(first.path).sha256 == first.sha256


@needs_reparam
def test_zero_tolerance_fails_on_the_training_reference(torchsave, model_and_spec, tmp_path):
    model, spec = model_and_spec
    options = ExportOptions(input_size=SIZE, quiet=True, tolerance=Tolerance(rtol=0.0, atol=0.0, reason="test"))
    with pytest.raises(ParityError) as raised:
        export_model(torchsave(), model, spec, tmp_path, options)
    failed = {c.reference for c in raised.value.report.comparisons if not c.passed}
    assert failed == {"training"}  # folding BN changes rounding: exact equality holds only vs deploy
    assert not artifact_path(tmp_path, MODEL, "torchsave", "fp32").exists()


@needs_reparam
def test_converter_failure_names_format_and_op(torchsave, model_and_spec, tmp_path):
    model, spec = model_and_spec

    def broken(model, spec, tmp_path, options):
        tmp_path.write_bytes(b"partial")
        raise RuntimeError("Unsupported op: aten::_native_multi_head_attention in the graph")

    with pytest.raises(ExportError) as raised:
        export_model(torchsave(convert=broken), model, spec, tmp_path, ExportOptions(input_size=SIZE, quiet=True))
    assert raised.value.format == "torchsave"
    assert raised.value.failing == "aten::_native_multi_head_attention"
    assert "what to try" in str(raised.value)
    assert _leftovers(tmp_path / MODEL) == []


@needs_reparam
def test_converter_writing_nothing_is_an_error(torchsave, model_and_spec, tmp_path):
    model, spec = model_and_spec
    with pytest.raises(ExportError, match="wrote nothing"):
        export_model(torchsave(convert=lambda *args: None), model, spec, tmp_path,
                     ExportOptions(input_size=SIZE, quiet=True))


def test_input_size_the_model_cannot_take(torchsave, tmp_path):
    spec = models.model_spec("mobilevit_xxs")
    with pytest.raises(InputSizeError, match="multiples of 32") as raised:
        export_model(torchsave(), models.create_model("mobilevit_xxs"), spec, tmp_path,
                     ExportOptions(input_size=(100, 100), quiet=True))
    assert "100x100" in str(raised.value) and "256x256" in str(raised.value)
    assert not (tmp_path / "mobilevit_xxs").exists() or not any((tmp_path / "mobilevit_xxs").iterdir())


def test_unsupported_options_are_errors():
    with pytest.raises(UnsupportedOptionError, match="--nhwc"):
        check_options("onnx", ExportOptions(nhwc=True))
    with pytest.raises(UnsupportedOptionError, match="--dynamic-batch"):
        check_options("tflite", ExportOptions(dynamic_batch=True))
    with pytest.raises(UnsupportedOptionError, match="int8_full"):
        check_options("onnx", ExportOptions(precision="int8_full"))
    with pytest.raises(UnsupportedOptionError, match="int8_full"):
        check_options("tflite", ExportOptions(calibration_dir="/tmp"))
    check_options("tflite", ExportOptions(precision="int8_full", nhwc=True, calibration_dir="/tmp"))
    check_options("coreml", ExportOptions(precision="fp16", image_input=True))


def test_missing_backend_names_the_install_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxslim", None)  # import of a None entry raises ImportError
    with pytest.raises(MissingDependencyError, match="pip install onnx onnxruntime onnxslim"):
        require("onnxslim", "onnx")


def test_artifact_naming():
    assert artifact_path("a", "m", "onnx", "fp32").as_posix() == "a/m/m.onnx"
    assert artifact_path("a", "m", "tflite", "int8_full").as_posix() == "a/m/m_int8_full.tflite"
    assert artifact_path("a", "m", "coreml", "fp16").as_posix() == "a/m/m.mlpackage"
    assert artifact_path("a", "m", "coreml", "fp32").as_posix() == "a/m/m_fp32.mlpackage"


def test_directory_hash_covers_names_and_contents(tmp_path):
    package = tmp_path / "x.mlpackage"
    (package / "Data").mkdir(parents=True)
    (package / "Data" / "weights.bin").write_bytes(b"\x00\x01")
    (package / "Manifest.json").write_text("{}")
    digest = sha256_of(package)
    expected = hashlib.sha256()
    for relative, content in (("Data/weights.bin", b"\x00\x01"), ("Manifest.json", b"{}")):
        expected.update(relative.encode() + b"\0" + content)
    assert digest == expected.hexdigest()
    (package / "Manifest.json").rename(package / "Other.json")  # same bytes, another name
    assert sha256_of(package) != digest


def test_failing_component_follows_the_exception_chain():
    try:
        try:
            raise NotImplementedError("Operator 'aten::upsample_bicubic2d' is not supported")
        except NotImplementedError as inner:
            raise RuntimeError("conversion failed") from inner
    except RuntimeError as outer:
        assert failing_component(outer) == "aten::upsample_bicubic2d"
    assert failing_component(RuntimeError("something else entirely")) is None


# --- the parity arithmetic -------------------------------------------------------------------------

def test_compare_reports_max_mean_and_where():
    reference = np.array([[1.0, -4.0, 2.0, 0.5]])
    output = reference + np.array([[0.0, 0.0, 3e-4, -1e-4]])
    tolerance = Tolerance(rtol=1e-4, atol=0.0)
    comparison = compare(output, reference, tolerance, reference_name="deploy", input_index=2, output_name="logits")
    assert comparison.max_abs_error == pytest.approx(3e-4)
    assert comparison.mean_abs_error == pytest.approx(1e-4)
    assert comparison.where == [0, 2]
    assert comparison.bound == pytest.approx(4e-4)  # rtol * max|ref| = 1e-4 * 4
    assert comparison.passed
    tight = compare(output, reference, Tolerance(rtol=5e-5, atol=0.0), reference_name="deploy", input_index=2,
                    output_name="logits")
    assert not tight.passed and tight.bound == pytest.approx(2e-4)


def test_compare_fails_on_nan_and_shape_mismatch():
    reference = np.ones((1, 3))
    assert not compare(np.array([[1.0, np.nan, 1.0]]), reference, Tolerance(rtol=1.0, atol=1.0),
                       reference_name="deploy", input_index=0, output_name="logits").passed
    with pytest.raises(ValueError, match="shape"):
        compare(np.ones((1, 4)), reference, Tolerance(rtol=1.0, atol=1.0), reference_name="deploy",
                input_index=0, output_name="logits")


def test_int8_tolerance_judges_top1_and_cosine():
    rng = np.random.default_rng(0)
    references = [rng.normal(size=(1, 10)) for _ in range(4)]
    int8 = Tolerance(rtol=None, atol=0.0, min_top1_agreement=0.75, min_cosine=0.95)
    noisy = [r + rng.normal(scale=0.05, size=r.shape) for r in references]
    report = check_parity(noisy, {"deploy": references}, int8, format_name="tflite", precision="int8_dynamic")
    assert report.passed and min(c.cosine for c in report.comparisons) > 0.99
    # two of four argmaxes moved: 50% agreement < 75%
    flipped = [r.copy() for r in references]
    for r in flipped[:2]:
        r[0, np.argmin(r)] = r.max() + 1.0
    report = check_parity(flipped, {"deploy": references}, int8, format_name="tflite", precision="int8_dynamic")
    assert report.top1_agreement() == {"deploy": 0.5} and not report.passed
