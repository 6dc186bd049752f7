"""Core ML runner through coremltools: macOS only (Linux can convert Core ML models but not run them).

Compute units: ALL, CPU_ONLY, CPU_AND_GPU, CPU_AND_NE (``coremltools.ComputeUnit`` names). Load
time (``MLModel(...)``, which compiles the package for the chosen units) is measured separately
from prediction time and recorded in ``extra["load_ms"]``; the timed ``step()`` is one
``predict``. An artifact exported with an image input (``options["image_input"]``) gets the same
pixels as a PIL image, de-normalized, as Core ML expects.
"""
from __future__ import annotations

import platform
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from export.artifact import Artifact
from profiling.errors import UsageError
from profiling.protocol import MeasureSettings, ProgressCallback, run_protocol
from profiling.result import LatencyResult, result_from_samples
from profiling.runners.common import artifact_input, missing_backend

COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")  # coremltools.ComputeUnit names


class NeedsMacOSError(RuntimeError):
    """Core ML models run only on macOS (or iOS); raised on any other host."""


@dataclass
class CoreMlOptions:
    """Core ML options this runner exposes."""

    compute_units: str = "ALL"  # one of COMPUTE_UNITS: where Core ML may run the model

    def __post_init__(self) -> None:
        if self.compute_units not in COMPUTE_UNITS:
            raise UsageError(f"compute_units must be one of {', '.join(COMPUTE_UNITS)}, got {self.compute_units!r}")


def _coremltools():
    if platform.system() != "Darwin":
        raise NeedsMacOSError(f"running Core ML models needs macOS (this host is {platform.system()}); "
                              f"measure .mlpackage artifacts on a Mac, or use `python -m profiling ios` there")
    try:
        import coremltools
    except ImportError as error:
        raise missing_backend("coremltools") from error
    return coremltools


def _feed(artifact: Artifact) -> dict:
    image = artifact_input(artifact)
    if not artifact.options.get("image_input"):
        return {artifact.input_name: image}
    mean = np.asarray(artifact.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(artifact.std, dtype=np.float32).reshape(1, 3, 1, 1)
    pixels = np.clip((image * std + mean) * 255.0, 0, 255).round().astype(np.uint8)[0].transpose(1, 2, 0)
    return {artifact.input_name: Image.fromarray(pixels, mode="RGB")}


def measure(artifact: Artifact, settings: MeasureSettings, options: CoreMlOptions | None = None,
            progress: ProgressCallback | None = None) -> LatencyResult:
    """Measure an .mlpackage on this Mac with the protocol, for one set of compute units."""
    if artifact.format != "coreml":
        raise UsageError(f"the coreml runner measures .mlpackage artifacts, got {artifact.format} ({artifact.path})")
    options = options or CoreMlOptions()
    ct = _coremltools()
    load_start = time.perf_counter_ns()
    mlmodel = ct.models.MLModel(str(artifact.path), compute_units=getattr(ct.ComputeUnit, options.compute_units))
    load_ms = (time.perf_counter_ns() - load_start) / 1e6
    feed = _feed(artifact)
    first_start = time.perf_counter_ns()
    mlmodel.predict(feed)
    first_ms = (time.perf_counter_ns() - first_start) / 1e6
    samples = run_protocol(lambda: mlmodel.predict(feed), settings, progress)
    return result_from_samples(
        samples=samples, settings=settings, model=artifact.model, format="coreml", precision=artifact.precision,
        runtime="coreml", runtime_version=ct.__version__, input_shape=list(artifact.input_shape),
        artifact=artifact, compute_unit=options.compute_units, threads=None,
        extra={"load_ms": load_ms, "first_prediction_ms": first_ms, "timed": "MLModel.predict",
               "macos": platform.mac_ver()[0]})
