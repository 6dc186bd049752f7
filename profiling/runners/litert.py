"""LiteRT (TFLite) runner on the ai-edge-litert interpreter: threads and XNNPACK on or off.

XNNPACK is LiteRT's default CPU delegate; ``xnnpack=False`` builds the interpreter with
``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`` so the reference builtin kernels run instead.
The input is written once before the protocol starts; the timed ``step()`` is ``invoke()`` alone,
as LiteRT's own ``benchmark_model`` times it. An int8 input (full-integer artifacts) is quantized
with the input tensor's scale and zero point.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from export.artifact import Artifact
from profiling.errors import UsageError
from profiling.protocol import MeasureSettings, ProgressCallback, run_protocol
from profiling.result import LatencyResult, result_from_samples
from profiling.runners.common import artifact_input, missing_backend, package_version


@dataclass
class LiteRtOptions:
    """Interpreter options this runner exposes."""

    xnnpack: bool = True  # apply the default XNNPACK delegate (False: builtin kernels only)


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter
    except ImportError as error:
        raise missing_backend("ai-edge-litert") from error
    return interpreter


def make_interpreter(path: str | Path, threads: int, options: LiteRtOptions):
    """An allocated interpreter with the requested threads and delegate choice."""
    module = _interpreter_module()
    resolver = (module.OpResolverType.AUTO if options.xnnpack
                else module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter = module.Interpreter(model_path=str(path), num_threads=threads,
                                     experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    return interpreter


def quantize_input(values: np.ndarray, detail: dict) -> np.ndarray:
    """Float input -> the input tensor's dtype (int8/uint8 via its scale and zero point)."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return values.astype(dtype)
    scale, zero_point = detail["quantization"]
    if not scale:
        raise ValueError(f"input tensor {detail['name']} is {dtype} without quantization parameters")
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(dtype)


def measure(artifact: Artifact, settings: MeasureSettings, options: LiteRtOptions | None = None,
            progress: ProgressCallback | None = None) -> LatencyResult:
    """Measure a .tflite artifact with the protocol."""
    if artifact.format != "tflite":
        raise UsageError(f"the litert runner measures .tflite artifacts, got {artifact.format} ({artifact.path})")
    options = options or LiteRtOptions()
    interpreter = make_interpreter(artifact.path, settings.threads, options)
    (detail,) = interpreter.get_input_details()
    image = artifact_input(artifact)
    if list(detail["shape"]) != list(image.shape):
        raise ValueError(f"{artifact.path} takes input {list(detail['shape'])} but its manifest says "
                         f"{list(image.shape)}; re-export it")
    interpreter.set_tensor(detail["index"], quantize_input(image, detail))
    samples = run_protocol(interpreter.invoke, settings, progress)
    return result_from_samples(
        samples=samples, settings=settings, model=artifact.model, format="tflite", precision=artifact.precision,
        runtime="litert", runtime_version=package_version("ai-edge-litert"), input_shape=list(image.shape), artifact=artifact,
        compute_unit="xnnpack" if options.xnnpack else "builtin",
        extra={"litert_options": asdict(options), "timed": "invoke", "input_dtype": np.dtype(detail["dtype"]).name})
