"""The shared export wrapper: options, parity gate, manifest, atomic write, errors.

These tests need no converter: a test format ("torchsave") saves the module with ``torch.save``
and runs it back, registered in the capability and tolerance tables for the test only. Its
``run`` can perturb the outputs to force a parity failure.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys

import numpy as np
import pytest
import torch

import models
import reparam
from export import load_artifact
from export.artifact import sha256_of
from export.capabilities import CAPABILITIES, Capability, check_options, options_for, require
from export.common import artifact_path, export_model, failing_component
from export.errors import (ExportError, InputSizeError, MissingDependencyError, ParityError,
                           UnsupportedOptionError)
from export.formats import HANDLERS
from export.options import CoreMLOptions, ExportOptions, OnnxOptions, TFLiteOptions
from export.parity import TOLERANCES, Tolerance, check_parity, compare
from export_helpers import head_commit, signal_model  # tests/ is on sys.path
from models.complexity import count_macs

pytestmark = pytest.mark.fast

MODEL = "repvit_m0_6"
SIZE = (64, 64)  # small input: the wrapper, not the model, is under test
STEM = f"{MODEL}_64x64"  # a size other than the model's own is in the file name


def _save(model, spec, tmp_path, options):
    torch.save(model, tmp_path)


@dataclasses.dataclass
class TorchSave:
    """The test format: ``torch.save`` the module, run it back, optionally perturb one logit."""

    convert_with: object = _save  # (model, spec, tmp_path, options) -> None
    perturbation: float = 0.0  # added to output[0, 7] of every input
    name: str = "torchsave"

    def convert(self, model, spec, tmp_path, options):
        self.convert_with(model, spec, tmp_path, options)

    def run(self, path, inputs, spec, options):
        model = torch.load(path, weights_only=False)
        with torch.no_grad():
            outputs = [model(torch.from_numpy(x)).numpy() for x in inputs]
        for output in outputs:
            output[0, 7] += self.perturbation
        return outputs

    def tool_versions(self):
        return {"torch": torch.__version__}

    def io_details(self, path):
        return {}

    def input_layout(self, options):
        return "NCHW"

    def temp_paths(self, tmp_path):
        return [tmp_path.with_name(tmp_path.name + ".side")]

    def prepare_command_line(self):
        pass


@pytest.fixture
def torchsave(monkeypatch):
    """Register the test format for one test; returns a handler factory."""
    monkeypatch.setitem(CAPABILITIES, "torchsave", Capability(
        name="torchsave", suffix=".pt", precisions=("fp32",), options_class=ExportOptions,
        requires=("torch",), install_hint="pip install torch"))
    monkeypatch.setitem(TOLERANCES, ("torchsave", "fp32"), Tolerance(rtol=1e-4, atol=1e-5, reason="test"))

    def handler(convert=_save, perturbation=0.0):
        return TorchSave(convert_with=convert, perturbation=perturbation)
    return handler


@pytest.fixture(scope="module")
def model_and_spec():
    return signal_model(MODEL), models.model_spec(MODEL)


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


def test_export_writes_artifact_and_complete_manifest(torchsave, model_and_spec, tmp_path):
    model, spec = model_and_spec
    before = {k: v.clone() for k, v in model.state_dict().items()}
    was_training = model.training
    artifact = export_model(torchsave(), model, spec, tmp_path, ExportOptions(input_size=SIZE, quiet=True))

    # the caller's model is untouched: same tensors, same mode
    assert model.training == was_training
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)

    assert artifact.path == tmp_path / MODEL / f"{STEM}.pt" and artifact.path.is_file()
    manifest = json.loads(artifact.manifest_path.read_text())
    expected_fields = {"path", "model", "format", "precision", "input_name", "input_shape", "input_layout",
                       "output_name", "mean", "std", "params", "macs", "reparameterized", "sha256", "size_bytes",
                       "tool_versions", "git_commit", "parity", "options", "export_seconds", "created_at"}
    assert expected_fields <= manifest.keys()
    assert manifest["sha256"] == hashlib.sha256(artifact.path.read_bytes()).hexdigest()
    assert manifest["size_bytes"] == artifact.path.stat().st_size
    assert manifest["input_shape"] == [1, 3, *SIZE] and manifest["input_layout"] == "NCHW"
    assert manifest["reparameterized"] is True
    assert manifest["git_commit"] == head_commit()
    # deploy params are fewer than training-form params (BN folded); MACs are the deploy form's at 64x64
    deploy = reparam.reparameterize(model)
    assert manifest["params"] == sum(p.numel() for p in deploy.parameters())
    assert manifest["params"] < sum(p.numel() for p in model.parameters())
    assert manifest["macs"] == count_macs(deploy, (1, 3, *SIZE))
    assert manifest["macs"] < count_macs(deploy, (1, 3, 224, 224))
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
    final = artifact_path(tmp_path, MODEL, "torchsave", "fp32", SIZE)
    assert not final.exists() and not final.with_name(final.name + ".manifest.json").exists()
    assert not final.parent.exists()  # no temporary left, and the folder made for it is gone too


def test_failed_export_keeps_previous_artifact(torchsave, model_and_spec, tmp_path):
    model, spec = model_and_spec
    first = export_model(torchsave(), model, spec, tmp_path, ExportOptions(input_size=SIZE, quiet=True))
    with pytest.raises(ParityError):
        export_model(torchsave(perturbation=1.0), model, spec, tmp_path, ExportOptions(input_size=SIZE, quiet=True))
    assert sha256_of(first.path) == first.sha256
    assert load_artifact(first.path).sha256 == first.sha256


def test_zero_tolerance_fails_on_the_training_reference(torchsave, model_and_spec, tmp_path):
    model, spec = model_and_spec
    options = ExportOptions(input_size=SIZE, quiet=True, tolerance=Tolerance(rtol=0.0, atol=0.0, reason="test"))
    with pytest.raises(ParityError) as raised:
        export_model(torchsave(), model, spec, tmp_path, options)
    failed = {c.reference for c in raised.value.report.comparisons if not c.passed}
    assert failed == {"training"}  # folding BN changes rounding: exact equality holds only vs deploy
    assert not artifact_path(tmp_path, MODEL, "torchsave", "fp32", SIZE).exists()


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
    assert list(tmp_path.iterdir()) == []  # the partial file and the folder made for it are gone


class FailsToRun(TorchSave):
    """Converts fine; its runtime then fails on the graph, as LiteRT's int8 DIV does on a zero divisor."""

    def run(self, path, inputs, spec, options):
        raise RuntimeError("tflite/kernels/div.cc:262 data[i] != zero_point was not true."
                           "Node number 93 (DIV) failed to invoke.\nmore detail")


def test_artifact_failing_in_its_runtime_is_a_failed_export(torchsave, model_and_spec, tmp_path):
    model, spec = model_and_spec
    with pytest.raises(ExportError) as raised:
        export_model(FailsToRun(), model, spec, tmp_path, ExportOptions(input_size=SIZE, quiet=True))
    assert raised.value.format == "torchsave"
    assert "fp32 artifact failed to run in its runtime: tflite/kernels/div.cc:262" in str(raised.value)
    assert "more detail" not in str(raised.value) and "--precision" in raised.value.hint
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert list(tmp_path.iterdir()) == []  # nothing written, the folder made for it gone


def test_converter_writing_nothing_is_an_error(torchsave, model_and_spec, tmp_path):
    model, spec = model_and_spec
    with pytest.raises(ExportError, match="wrote nothing"):
        export_model(torchsave(convert=lambda *args: None), model, spec, tmp_path,
                     ExportOptions(input_size=SIZE, quiet=True))


def test_paths_the_handler_names_are_removed(torchsave, model_and_spec, tmp_path):
    model, spec = model_and_spec

    def with_side_package(model, spec, tmp_path, options):  # as Core ML's staging package: a directory
        torch.save(model, tmp_path)
        side = tmp_path.with_name(tmp_path.name + ".side")
        side.mkdir()
        (side / "weights.bin").write_bytes(b"partial")

    expected = [f"{STEM}.pt", f"{STEM}.pt.manifest.json"]
    options = ExportOptions(input_size=SIZE, quiet=True)
    export_model(torchsave(convert=with_side_package), model, spec, tmp_path, options)
    assert sorted(p.name for p in (tmp_path / MODEL).iterdir()) == expected
    with pytest.raises(ParityError):
        export_model(torchsave(convert=with_side_package, perturbation=1.0), model, spec, tmp_path, options)
    assert sorted(p.name for p in (tmp_path / MODEL).iterdir()) == expected


def test_input_size_the_model_cannot_take(torchsave, tmp_path):
    spec = models.model_spec("mobilevit_xxs")
    with pytest.raises(InputSizeError, match="multiples of 32") as raised:
        export_model(torchsave(), models.create_model("mobilevit_xxs"), spec, tmp_path,
                     ExportOptions(input_size=(100, 100), quiet=True))
    assert "100x100" in str(raised.value) and "256x256" in str(raised.value)
    assert not (tmp_path / "mobilevit_xxs").exists() or not any((tmp_path / "mobilevit_xxs").iterdir())


def test_unsupported_options_are_errors():
    # another format's option cannot be set: the keyword path names the flag and the format's own
    with pytest.raises(UnsupportedOptionError, match="onnx export does not take --nhwc; its own options are: "
                                                     "--dynamic-batch, --opset"):
        options_for("onnx", nhwc=True)
    with pytest.raises(UnsupportedOptionError, match="--dynamic-batch"):
        options_for("tflite", dynamic_batch=True)
    # an explicitly given default is refused all the same: "set" no longer means "differs from the default"
    with pytest.raises(UnsupportedOptionError, match="--opset"):
        options_for("tflite", opset=18)
    with pytest.raises(UnsupportedOptionError, match="takes OnnxOptions, got TFLiteOptions"):
        check_options("onnx", TFLiteOptions())
    with pytest.raises(UnsupportedOptionError, match="int8_full"):
        check_options("onnx", OnnxOptions(precision="int8_full"))
    with pytest.raises(UnsupportedOptionError, match="int8_full"):
        check_options("tflite", TFLiteOptions(calibration_dir="/tmp"))
    with pytest.raises(UnsupportedOptionError, match="calibration-count must be positive"):
        check_options("tflite", TFLiteOptions(precision="int8_full", calibration_count=0))
    with pytest.raises(UnsupportedOptionError, match="opset 17 or newer, got opset 13"):
        check_options("onnx", OnnxOptions(opset=13))
    with pytest.raises(UnsupportedOptionError, match="iOS15; use one of iOS16, iOS17, iOS18"):
        check_options("coreml", CoreMLOptions(coreml_target="iOS15"))
    with pytest.raises(UnsupportedOptionError, match="at least 3 seeded inputs"):
        check_options("onnx", OnnxOptions(parity_inputs=2))
    check_options("tflite", TFLiteOptions(precision="int8_full", nhwc=True, calibration_dir="/tmp"))
    check_options("coreml", CoreMLOptions(precision="fp16", image_input=True))


def test_each_format_has_its_options_and_one_handler():
    assert list(HANDLERS) == list(CAPABILITIES)
    for name, handler in HANDLERS.items():
        assert handler.name == name
    own = {name: cap.options for name, cap in CAPABILITIES.items()}
    assert own == {"onnx": {"dynamic_batch", "opset"}, "coreml": {"image_input", "coreml_target"},
                   "tflite": {"nhwc", "calibration_dir", "calibration_count"},
                   "executorch": {"backend", "calibration_dir", "calibration_count"}}
    # the default precision (no suffix in the file name) is the options class's default
    assert {name: cap.default_precision for name, cap in CAPABILITIES.items()} == {
        "onnx": "fp32", "coreml": "fp16", "tflite": "fp32", "executorch": "fp32"}
    common = {f.name for f in dataclasses.fields(ExportOptions)}
    assert common == {"precision", "input_size", "reparameterize", "parity_inputs", "parity_seed", "probe", "probe_seed", "tolerance",
                      "quiet", "weights"}
    for cap in CAPABILITIES.values():  # every field says what it is for
        assert all(f.metadata["help"] for f in dataclasses.fields(cap.options_class))


def test_missing_backend_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxslim", None)  # import of a None entry raises ImportError
    with pytest.raises(MissingDependencyError, match="pip install onnx onnxruntime onnxslim"):
        require("onnxslim", "onnx")


def test_artifact_naming():
    assert artifact_path("a", "m", "onnx", "fp32").as_posix() == "a/m/m.onnx"
    assert artifact_path("a", "m", "tflite", "int8_full").as_posix() == "a/m/m_int8_full.tflite"
    assert artifact_path("a", "m", "coreml", "fp16").as_posix() == "a/m/m.mlpackage"
    assert artifact_path("a", "m", "coreml", "fp32").as_posix() == "a/m/m_fp32.mlpackage"
    # a size other than the model's own is in the name: --input-size 160 never replaces the 224 file
    assert artifact_path("a", "m", "onnx", "fp32", (160, 192)).as_posix() == "a/m/m_160x192.onnx"
    assert artifact_path("a", "m", "tflite", "int8_full", (64, 64)).as_posix() == "a/m/m_int8_full_64x64.tflite"


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
    comparison = compare(output, reference, tolerance, reference_name="deploy", input_index=2, output_name="logits",
                         spread=4.0)
    assert comparison.max_abs_error == pytest.approx(3e-4)
    assert comparison.mean_abs_error == pytest.approx(1e-4)
    assert comparison.where == [0, 2]
    assert comparison.bound == pytest.approx(4e-4)  # rtol x spread = 1e-4 * 4
    assert comparison.passed
    tight = compare(output, reference, Tolerance(rtol=1e-4, atol=0.0), reference_name="deploy", input_index=2,
                    output_name="logits", spread=2.0)
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
