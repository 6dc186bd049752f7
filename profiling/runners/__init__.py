"""One runner per host runtime; each has ``measure(artifact, settings, ...) -> LatencyResult``.

- ``onnxruntime``  ONNX artifacts on ONNX Runtime's CPU provider (threads, graph optimization, op profile)
- ``litert``       TFLite artifacts on the ai-edge-litert interpreter (threads, XNNPACK on/off)
- ``coreml``       Core ML artifacts through coremltools (macOS only; compute units)
- ``torch_eager``  the baseline: a registry model in eager PyTorch (``measure(model_name, settings)``)

Every runner builds its session, hands one inference as ``step()`` to ``profiling.protocol`` and
wraps the samples in a ``LatencyResult``. Runtimes are imported inside the runners.
"""
from __future__ import annotations

import importlib

import numpy as np

# artifact format -> runner module (torch eager measures a model, not an artifact)
RUNNER_FOR_FORMAT: dict[str, str] = {
    "onnx": "profiling.runners.onnxruntime",
    "tflite": "profiling.runners.litert",
    "coreml": "profiling.runners.coreml",
}


def runner_for(format_name: str):
    """The runner module that measures artifacts of ``format_name``."""
    if format_name not in RUNNER_FOR_FORMAT:
        raise ValueError(f"no host runner for format {format_name!r}; known: {', '.join(RUNNER_FOR_FORMAT)}")
    return importlib.import_module(RUNNER_FOR_FORMAT[format_name])


def artifact_input(artifact, seed: int = 0) -> np.ndarray:
    """A seeded, normalized float32 input in the artifact's own shape and layout.

    Latency does not depend on the values for these models, but NaN-free realistic magnitudes
    keep denormals and odd fast paths out of the picture.
    """
    generator = np.random.default_rng(seed)
    shape = list(artifact.input_shape)
    if any(not isinstance(d, int) or d < 1 for d in shape):  # dynamic batch: measure batch 1
        shape = [1 if not isinstance(d, int) or d < 1 else d for d in shape]
    pixels = generator.random(shape, dtype=np.float32)
    channel_axis = 1 if artifact.input_layout == "NCHW" else len(shape) - 1
    view = [1] * len(shape)
    view[channel_axis] = -1
    mean = np.asarray(artifact.mean, dtype=np.float32).reshape(view)
    std = np.asarray(artifact.std, dtype=np.float32).reshape(view)
    return (pixels - mean) / std


def missing_backend(package: str, extra: str) -> RuntimeError:
    """The error a runner raises when its runtime is not installed."""
    return RuntimeError(f"{package} is not installed; install it with `pip install {extra}` "
                        f"(pinned in requirements.txt)")
