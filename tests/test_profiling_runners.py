"""Host runners on tiny artifacts made here (no dependency on the exporters' speed)."""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from export.artifact import Artifact, load_artifact
from models.spec import IMAGENET_MEAN, IMAGENET_STD
from profiling.protocol import MeasureSettings
from profiling.runners import artifact_input, onnxruntime as ort_runner

TINY_SHAPE = [1, 3, 32, 32]


def tiny_module() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()


def write_manifest(path: Path, format_name: str, model: str = "tiny", input_shape=None, layout: str = "NCHW",
                   precision: str = "fp32") -> Artifact:
    """A manifest beside ``path`` as the exporters write it, so runners can load the artifact."""
    artifact = Artifact(
        path=path, model=model, format=format_name, precision=precision, input_name="image",
        input_shape=list(input_shape or TINY_SHAPE), input_layout=layout, output_name="logits",
        mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), params=1000, macs=200_000, reparameterized=True,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(), size_bytes=path.stat().st_size,
        tool_versions={"torch": torch.__version__}, git_commit=None, parity={}, created_at="2026-11-22T00:00:00Z")
    artifact.manifest_path.write_text(json.dumps(artifact.to_dict()))
    return load_artifact(path)


def tiny_onnx(folder: Path, model: str = "tiny") -> Artifact:
    path = folder / f"{model}.onnx"
    torch.onnx.export(tiny_module(), (torch.randn(*TINY_SHAPE),), str(path), input_names=["image"],
                      output_names=["logits"], dynamo=False)
    return write_manifest(path, "onnx", model)


@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory) -> Artifact:
    return tiny_onnx(tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="module")
def tflite_artifact(tmp_path_factory) -> Artifact:
    litert_torch = pytest.importorskip("litert_torch", reason="litert-torch converts the tiny test model")
    path = tmp_path_factory.mktemp("tflite") / "tiny.tflite"
    litert_torch.convert(tiny_module(), (torch.randn(*TINY_SHAPE),)).export(str(path))
    return write_manifest(path, "tflite", layout="NCHW")


QUICK = MeasureSettings.quick(min_runs=20, rounds=2)


@pytest.mark.fast
def test_artifact_input_is_normalized_in_its_layout(onnx_artifact):
    image = artifact_input(onnx_artifact)
    assert image.shape == tuple(TINY_SHAPE) and image.dtype == np.float32
    pixels = image * np.asarray(IMAGENET_STD).reshape(1, 3, 1, 1) + np.asarray(IMAGENET_MEAN).reshape(1, 3, 1, 1)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6  # de-normalizes back to [0, 1] pixels
    assert np.array_equal(image, artifact_input(onnx_artifact))  # seeded


@pytest.mark.fast
def test_onnxruntime_runner_reports_what_it_timed(onnx_artifact):
    result = ort_runner.measure(onnx_artifact, QUICK)
    assert [len(r) for r in result.samples_ms] == [20, 20]
    assert result.stats.count == 40 and result.warmup_runs == 2
    assert result.stats.median_ms == pytest.approx(np.median(np.concatenate(result.samples_ms)))
    assert 0 < result.stats.min_ms <= result.stats.median_ms <= result.stats.max_ms < 1000
    assert result.runtime == "onnxruntime" and result.threads == 1 and result.input_shape == TINY_SHAPE
    assert result.artifact_sha256 == onnx_artifact.sha256 and result.params == 1000 and result.reparameterized
    assert result.device.kind == "host" and result.device.cores and result.settings["min_runs"] == 20


@pytest.mark.fast
def test_onnxruntime_op_profile_sums_by_op_type(onnx_artifact):
    options = ort_runner.OrtOptions(graph_optimization="basic", op_profile=True, op_profile_runs=5)
    result = ort_runner.measure(onnx_artifact, MeasureSettings.quick(), options)
    profile = result.extra["op_profile"]
    by_type = {row["op_type"]: row for row in profile["by_op_type"]}
    assert profile["runs"] == 5
    assert by_type["Conv"]["nodes"] == 2  # the tiny model has two convolutions
    assert {"Conv", "Relu", "Gemm"} <= set(by_type)
    assert sum(row["share"] for row in by_type.values()) == pytest.approx(1.0)
    assert sum(row["ms_per_run"] for row in by_type.values()) == pytest.approx(profile["kernel_ms"])
    assert profile["kernel_ms"] <= profile["model_run_ms"]


@pytest.mark.fast
def test_summarize_trace_on_a_hand_written_trace():
    events = [
        {"cat": "Session", "name": "model_run", "ts": 0, "dur": 100},  # warm-up: skipped
        {"cat": "Node", "name": "c1_kernel_time", "ts": 10, "dur": 90, "args": {"op_name": "Conv"}},
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 100},
        {"cat": "Node", "name": "c1_kernel_time", "ts": 210, "dur": 60, "args": {"op_name": "Conv"}},
        {"cat": "Node", "name": "r1_kernel_time", "ts": 280, "dur": 20, "args": {"op_name": "Relu"}},
        {"cat": "Node", "name": "c1_fence_before", "ts": 209, "dur": 5, "args": {"op_name": "Conv"}},
        {"cat": "Session", "name": "model_run", "ts": 400, "dur": 80},
        {"cat": "Node", "name": "c1_kernel_time", "ts": 410, "dur": 40, "args": {"op_name": "Conv"}},
    ]
    summary = ort_runner.summarize_trace(events, runs=2, skip_runs=1)
    assert summary["runs"] == 2 and summary["model_run_ms"] == pytest.approx(0.09)
    conv, relu = summary["by_op_type"]
    assert (conv["op_type"], conv["ms_per_run"], conv["share"]) == ("Conv", pytest.approx(0.05), pytest.approx(100 / 120))
    assert (relu["op_type"], relu["ms_per_run"]) == ("Relu", pytest.approx(0.01))


@pytest.mark.fast
def test_runner_refuses_the_wrong_format(onnx_artifact):
    from profiling.runners import litert

    with pytest.raises(ValueError, match="measures .tflite"):
        litert.measure(onnx_artifact, QUICK)
    with pytest.raises(ValueError, match="graph_optimization"):
        ort_runner.OrtOptions(graph_optimization="max")


def test_litert_runner_with_and_without_xnnpack(tflite_artifact):
    from profiling.runners import litert

    with_xnnpack = litert.measure(tflite_artifact, QUICK)
    builtin = litert.measure(tflite_artifact, QUICK, litert.LiteRtOptions(xnnpack=False))
    assert (with_xnnpack.compute_unit, builtin.compute_unit) == ("xnnpack", "builtin")
    assert with_xnnpack.stats.count == builtin.stats.count == 40
    assert with_xnnpack.runtime == "litert" and with_xnnpack.runtime_version.count(".") >= 1
    assert 0 < with_xnnpack.stats.median_ms < 1000 and 0 < builtin.stats.median_ms < 1000


@pytest.mark.fast
def test_litert_quantizes_an_int8_input():
    from profiling.runners.litert import quantize_input

    detail = {"name": "image", "dtype": np.int8, "quantization": (0.5, -3)}
    values = np.array([-100.0, -1.0, 0.0, 1.2, 100.0], dtype=np.float32)
    assert quantize_input(values, detail).tolist() == [-128, -5, -3, -1, 127]


def test_torch_eager_runner_measures_the_deploy_model():
    from profiling.runners import torch_eager

    result = torch_eager.measure("repvit_m0_6", MeasureSettings.quick(min_runs=3),
                                 torch_eager.TorchOptions(input_size=(64, 64)))
    assert result.format == "torch" and result.runtime == "torch" and result.input_shape == [1, 3, 64, 64]
    assert result.stats.count == 6 and result.reparameterized
    assert 2.0e6 < result.params < 3.0e6  # repvit_m0_6 has 2.8 M (training form, both heads)
    assert torch.get_num_threads() == 1  # restored after the measurement (conftest sets 1)


@pytest.mark.fast
@pytest.mark.skipif(platform.system() == "Darwin", reason="checks the non-macOS error")
def test_coreml_runner_says_it_needs_macos(tmp_path):
    from profiling.runners import coreml

    package = tmp_path / "tiny.mlpackage"
    package.mkdir()
    (package / "Manifest.json").write_text("{}")
    artifact = Artifact(
        path=package, model="tiny", format="coreml", precision="fp16", input_name="image", input_shape=TINY_SHAPE,
        input_layout="NCHW", output_name="logits", mean=[0, 0, 0], std=[1, 1, 1], params=1, macs=1,
        reparameterized=True, sha256="0" * 64, size_bytes=2, tool_versions={}, git_commit=None, parity={})
    with pytest.raises(coreml.NeedsMacOSError, match="needs macOS"):
        coreml.measure(artifact, QUICK, compute_units="CPU_ONLY")
    with pytest.raises(ValueError, match="CPU_AND_NE"):
        coreml.measure(artifact, QUICK, compute_units="NPU")


@pytest.mark.fast
def test_importing_profiling_imports_no_runtime():
    code = ("import sys, profiling, profiling.store, profiling.report, profiling.__main__\n"
            "from profiling.runners import onnxruntime, litert, coreml, torch_eager\n"
            "profiling.__main__.build_parser()\n"
            "print(sorted(m for m in ('onnxruntime', 'ai_edge_litert', 'coremltools', 'torch', 'matplotlib') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == "[]"


@pytest.mark.fast
def test_a_missing_runtime_gives_an_install_hint(onnx_artifact, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` raise ImportError
    with pytest.raises(RuntimeError, match="pip install onnxruntime"):
        ort_runner.measure(onnx_artifact, QUICK)


@pytest.mark.fast
def test_coreml_image_input_gets_the_same_pixels(onnx_artifact):
    from profiling.runners import coreml

    image_artifact = Artifact(**{**onnx_artifact.to_dict(), "path": onnx_artifact.path, "format": "coreml",
                                 "options": {"image_input": True}})
    (picture,) = coreml._feed(image_artifact).values()
    pixels = np.asarray(picture, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
    normalized = (pixels - np.asarray(IMAGENET_MEAN).reshape(1, 3, 1, 1)) / np.asarray(IMAGENET_STD).reshape(1, 3, 1, 1)
    assert picture.size == (32, 32)
    # 8-bit pixels: at most half a step (0.5 / 255) off before normalization
    assert np.abs(normalized - artifact_input(onnx_artifact)).max() <= 0.5 / 255 / min(IMAGENET_STD) + 1e-6
    (tensor,) = coreml._feed(Artifact(**{**onnx_artifact.to_dict(), "path": onnx_artifact.path})).values()
    assert np.array_equal(tensor, artifact_input(onnx_artifact))
