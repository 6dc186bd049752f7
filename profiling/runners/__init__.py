"""One runner per host runtime, and :data:`RUNNERS`, the one table that dispatches jobs to them.

- ``onnxruntime``  ONNX artifacts on ONNX Runtime's CPU provider (threads, graph optimization, op profile)
- ``litert``       TFLite artifacts on the ai-edge-litert interpreter (threads, XNNPACK on/off)
- ``executorch``   ExecuTorch .pte programs on the ExecuTorch Python runtime (threads: its threadpool)
- ``coreml``       Core ML artifacts through coremltools (macOS only; compute units)
- ``torch_eager``  the baseline: a registry model in eager PyTorch (``measure(model_name, settings)``)

Every runner has ``measure(target, settings, options=None, progress=None) -> LatencyResult``, where
``options`` is its own options dataclass; it builds its session, hands one inference as
``step()`` to ``profiling.protocol`` and wraps the samples in a ``LatencyResult``. The runtimes
themselves (onnxruntime, ai_edge_litert, coremltools) are imported inside the runners, so this
package imports without them. Adding a runtime is one module and one row of :data:`RUNNERS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from profiling.result import LatencyResult
from profiling.runners import coreml, executorch, litert, onnxruntime, torch_eager


@dataclass(frozen=True)
class HostRunner:
    """One host runtime as a job sees it: what it measures and how it is called."""

    format: str  # what a job names in --formats: an artifact format, or "torch" (an eager registry model)
    runtime: str  # the runtime name its results carry (``LatencyResult.runtime``)
    measure: Callable[..., LatencyResult]  # (Artifact or registry name, MeasureSettings, options) -> result
    takes_artifact: bool = True  # False: measure() takes a registry model name, nothing is exported
    takes_threads: bool = True  # False: the runtime takes no thread count (one job per configuration)


# format -> runner, in the order --formats lists them
RUNNERS: dict[str, HostRunner] = {runner.format: runner for runner in (
    HostRunner("onnx", "onnxruntime", onnxruntime.measure),
    HostRunner("tflite", "litert", litert.measure),
    HostRunner("coreml", "coreml", coreml.measure, takes_threads=False),
    HostRunner("executorch", "executorch", executorch.measure),
    HostRunner("torch", "torch", torch_eager.measure, takes_artifact=False),
)}
