"""The eager PyTorch baseline: a registry model (deploy form by default) timed on the host CPU.

Unlike the other runners this one measures a MODEL, not an artifact: every export is compared
with it. ``torch.set_num_threads(settings.threads)`` is applied for the measurement and restored
afterwards; the timed ``step()`` is one forward pass under ``torch.inference_mode``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

import models
from models.complexity import count_macs, count_params
from profiling.protocol import MeasureSettings, ProgressCallback, run_protocol
from profiling.result import LatencyResult, result_from_samples


@dataclass
class TorchOptions:
    """What to build and how."""

    deploy: bool = True  # reparameterized (deploy) form; False measures the training form in eval mode
    input_size: tuple[int, int] | None = None  # (height, width); None: the model's own
    weights: str | None = None  # a local checkpoint to load (latency does not depend on it)


def measure(model_name: str, settings: MeasureSettings, options: TorchOptions | None = None,
            progress: ProgressCallback | None = None) -> LatencyResult:
    """Measure ``models.create_model(model_name, deploy=...)`` in eager mode with the protocol."""
    options = options or TorchOptions()
    spec = models.model_spec(model_name)
    if options.input_size is not None:
        spec = spec.with_input_size(*options.input_size)
    model = models.create_model(model_name, weights=options.weights, deploy=options.deploy).eval()
    image = spec.sample_inputs(count=1, seed=0)[0]
    params, macs = count_params(model), count_macs(model, tuple(image.shape))
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        with torch.inference_mode():
            samples = run_protocol(lambda: model(image), settings, progress)
    finally:
        torch.set_num_threads(previous_threads)
    return result_from_samples(
        samples=samples, settings=settings, model=model_name, format="torch", precision="fp32", runtime="torch",
        runtime_version=torch.__version__, input_shape=list(image.shape), compute_unit="cpu",
        reparameterized=options.deploy, params=params, macs=macs,
        extra={"timed": "forward (inference_mode)", "weights": options.weights})
