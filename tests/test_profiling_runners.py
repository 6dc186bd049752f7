"""Host runners on tiny artifacts made here (no dependency on the exporters' speed), and their dispatch table."""
from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import models
from export.artifact import Artifact
from models.complexity import count_params
from models.spec import IMAGENET_MEAN, IMAGENET_STD
from profiling.errors import UsageError
from profiling.protocol import MeasureSettings
from profiling.runners import RUNNERS, coreml, executorch as et_runner, litert, onnxruntime as ort_runner, torch_eager
from profiling.runners.common import artifact_input
from profiling_helpers import TINY_SHAPE, tiny_onnx, tiny_tflite


@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory) -> Artifact:
    return tiny_onnx(tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="module")
def tflite_artifact(tmp_path_factory) -> Artifact:
    return tiny_tflite(tmp_path_factory.mktemp("tflite"))


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
    with pytest.raises(UsageError, match="measures .tflite"):
        litert.measure(onnx_artifact, QUICK)
    with pytest.raises(UsageError, match="graph_optimization"):
        ort_runner.OrtOptions(graph_optimization="max")


def test_litert_runner_with_and_without_xnnpack(tflite_artifact):
    with_xnnpack = litert.measure(tflite_artifact, QUICK)
    builtin = litert.measure(tflite_artifact, QUICK, litert.LiteRtOptions(xnnpack=False))
    assert (with_xnnpack.compute_unit, builtin.compute_unit) == ("xnnpack", "builtin")
    assert with_xnnpack.stats.count == builtin.stats.count == 40
    assert with_xnnpack.extra["input_dtype"] == "float32" and with_xnnpack.input_shape == TINY_SHAPE
    assert with_xnnpack.runtime == "litert"
    assert with_xnnpack.runtime_version == importlib.metadata.version("ai-edge-litert")
    assert 0 < with_xnnpack.stats.median_ms < 1000 and 0 < builtin.stats.median_ms < 1000


@pytest.mark.fast
def test_litert_quantizes_an_int8_input():
    detail = {"name": "image", "dtype": np.int8, "quantization": (0.5, -3)}
    values = np.array([-100.0, -1.0, 0.0, 1.2, 100.0], dtype=np.float32)
    assert litert.quantize_input(values, detail).tolist() == [-128, -5, -3, -1, 127]


def test_torch_eager_runner_measures_the_deploy_model():
    threads_seen = []
    torch.set_num_threads(2)  # the caller's setting, which the runner must put back
    try:
        result = torch_eager.measure("repvit_m0_6", MeasureSettings.quick(min_runs=3, threads=1),
                                     torch_eager.TorchOptions(input_size=(64, 64)),
                                     progress=lambda *_: threads_seen.append(torch.get_num_threads()))
        assert torch.get_num_threads() == 2  # restored after the measurement
    finally:
        torch.set_num_threads(1)
    assert threads_seen and set(threads_seen) == {1}  # measured with settings.threads
    assert result.format == "torch" and result.runtime == "torch" and result.input_shape == [1, 3, 64, 64]
    assert result.stats.count == 6 and result.reparameterized
    deploy = count_params(models.create_model("repvit_m0_6", deploy=True))
    assert result.params == deploy < count_params(models.create_model("repvit_m0_6"))  # BN folded away


@pytest.mark.fast
@pytest.mark.skipif(platform.system() == "Darwin", reason="checks the non-macOS error")
def test_coreml_runner_says_it_needs_macos(tmp_path):
    package = tmp_path / "tiny.mlpackage"
    package.mkdir()
    (package / "Manifest.json").write_text("{}")
    artifact = Artifact(
        path=package, model="tiny", format="coreml", precision="fp16", input_name="image", input_shape=TINY_SHAPE,
        input_layout="NCHW", output_name="logits", mean=[0, 0, 0], std=[1, 1, 1], params=1, macs=1,
        reparameterized=True, sha256="0" * 64, size_bytes=2, tool_versions={}, git_commit=None, parity={})
    with pytest.raises(coreml.NeedsMacOSError, match="needs macOS"):
        coreml.measure(artifact, QUICK, coreml.CoreMlOptions(compute_units="CPU_ONLY"))
    with pytest.raises(UsageError, match="CPU_AND_NE"):
        coreml.CoreMlOptions(compute_units="NPU")


@pytest.mark.fast
def test_importing_profiling_imports_no_optional_runtime():
    """The runtimes (and matplotlib) load when a runner or a report needs them, not with the CLI."""
    code = ("import sys, profiling, profiling.store, profiling.report, profiling.__main__\n"
            "from profiling.runners import onnxruntime, litert, coreml, torch_eager, executorch\n"
            "profiling.__main__.build_parser()\n"
            "print(sorted(m for m in ('onnxruntime', 'ai_edge_litert', 'coremltools', 'matplotlib', 'executorch') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == "[]"


@pytest.mark.fast
def test_the_dispatch_table_names_every_runner_once():
    assert list(RUNNERS) == ["onnx", "tflite", "coreml", "executorch", "torch"]
    assert {name: runner.measure for name, runner in RUNNERS.items()} == {
        "onnx": ort_runner.measure, "tflite": litert.measure, "coreml": coreml.measure,
        "executorch": et_runner.measure, "torch": torch_eager.measure}
    assert [name for name, runner in RUNNERS.items() if not runner.takes_artifact] == ["torch"]
    assert [name for name, runner in RUNNERS.items() if not runner.takes_threads] == ["coreml"]


@pytest.mark.fast
def test_a_missing_runtime_gives_an_install_hint(onnx_artifact, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` raise ImportError
    with pytest.raises(RuntimeError, match="pip install onnxruntime"):
        ort_runner.measure(onnx_artifact, QUICK)


@pytest.mark.fast
def test_coreml_image_input_gets_the_same_pixels(onnx_artifact):
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
