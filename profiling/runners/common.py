"""What every host runner shares: the seeded input an artifact takes, and the missing-runtime error.

The install hint for each optional runtime lives here once; the iOS benchmark
(``profiling.ios.coreml_device``) reads the Core ML one too.
"""
from __future__ import annotations

import importlib.metadata

import numpy as np

from export.artifact import Artifact

# runtime distribution -> the pip command that installs it (versions are pinned in requirements.txt)
INSTALL_HINTS: dict[str, str] = {
    "onnxruntime": "pip install onnxruntime",
    "ai-edge-litert": "pip install ai-edge-litert",
    "coremltools": "pip install 'coremltools==9.0'",
    "executorch": "pip install 'executorch==1.5.1'",
}


def artifact_input(artifact: Artifact, seed: int = 0) -> np.ndarray:
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


def missing_backend(distribution: str) -> RuntimeError:
    """The error a runner raises when its runtime (a key of :data:`INSTALL_HINTS`) is not installed."""
    return RuntimeError(f"{distribution} is not installed; install it with `{INSTALL_HINTS[distribution]}` "
                        f"(pinned in requirements.txt)")


def package_version(distribution: str) -> str:
    """The installed version of ``distribution``, ``"unknown"`` when its metadata is missing."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
