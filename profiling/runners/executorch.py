"""ExecuTorch runner: a ``.pte`` program on the ExecuTorch Python runtime (XNNPACK or portable kernels).

Threads: the runtime's XNNPACK delegate runs on ExecuTorch's process-wide threadpool, which the
Python runtime does not size per program. ``settings.threads`` resizes that pool with the
pybindings' ``_unsafe_reset_threadpool(n)`` before the program is loaded (unsafe only while another
program is running on it; a measurement runs one at a time), and the pool's size as read back
(``_threadpool_get_thread_count``) goes into the result. The portable kernels are single-threaded.
The input tensor is made once before the protocol starts; the timed ``step()`` is one
``method.execute([x])``, as an application calls ``Module.forward``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from export import executorch as export_executorch
from export.artifact import Artifact
from profiling.errors import UsageError
from profiling.protocol import MeasureSettings, ProgressCallback, run_protocol
from profiling.result import LatencyResult, result_from_samples
from profiling.runners.common import artifact_input, missing_backend, package_version


@dataclass
class ExecuTorchRunOptions:
    """Runtime options this runner exposes."""

    method: str = "forward"  # the program's method to time


def _runtime():
    try:
        export_executorch.registered_backends()  # imports the pybindings
    except ImportError as error:
        raise missing_backend("executorch") from error
    return export_executorch


def measure(artifact: Artifact, settings: MeasureSettings, options: ExecuTorchRunOptions | None = None,
            progress: ProgressCallback | None = None) -> LatencyResult:
    """Measure a .pte artifact with the protocol."""
    if artifact.format != "executorch":
        raise UsageError(f"the executorch runner measures .pte artifacts, got {artifact.format} ({artifact.path})")
    options = options or ExecuTorchRunOptions()
    runtime = _runtime()
    backend = artifact.options.get("backend", "xnnpack")
    if backend == "coreml" and "CoreMLBackend" not in runtime.registered_backends():
        raise UsageError(f"{artifact.path} is lowered to the Core ML delegate, which this ExecuTorch runtime "
                         f"cannot run (it has {', '.join(runtime.registered_backends())}); measure it on an "
                         f"Apple device (docs/phones.md)")
    runtime.set_threads(settings.threads)
    method = runtime.load_method(artifact.path, options.method)
    image = torch.from_numpy(artifact_input(artifact))
    samples = run_protocol(lambda: method.execute([image]), settings, progress)
    return result_from_samples(
        samples=samples, settings=settings, model=artifact.model, format="executorch", precision=artifact.precision,
        runtime="executorch", runtime_version=package_version("executorch"), input_shape=list(image.shape),
        artifact=artifact, compute_unit=backend,
        extra={"executorch_options": asdict(options), "timed": "method.execute",
               "threadpool_threads": runtime.thread_count(),
               "delegation": {k: v for k, v in artifact.options.get("delegation", {}).items() if k != "ops"}})
