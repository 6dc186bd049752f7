"""Core ML export: an ML program ``.mlpackage`` behind the parity gate.

``python -m export.coreml repvit_m1`` converts the deploy form of a registered model with
coremltools (from ``torch.export``: the ``torch.jit.trace`` path fails under numpy 2), targets
iOS 16 or newer, computes in fp16 by default (``--precision fp32`` too), and writes model
metadata. Inputs and outputs stay float32 tensors (what the model spec declares), so the program
casts to fp16 after its input and back before its output.

``--image-input`` makes the input an RGB image (pixels 0..255) with the normalization folded in.
Core ML's image preprocessing is ``scale * pixel + bias[c]``: one scalar scale, a per-channel
bias. With std equal across channels that is exact: ``scale = 1 / (255 * std)``,
``bias[c] = -mean[c] / std``. Otherwise the image input divides by one shared std, the mean of
the three, and the model is wrapped with a fixed per-channel multiply by ``shared_std / std[c]``
(one ``mul`` op in the program), so the result is still exactly ``(pixel / 255 - mean) / std``.

Parity: on Linux the saved package is evaluated by the reference evaluator
(``export/coreml/evaluator.py``: numpy, fp16 emulated); on macOS coremltools runs it too.
"""
from __future__ import annotations

import logging
import math
import sys
import warnings
from importlib.metadata import PackageNotFoundError, version
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import nn

from export.artifact import Artifact, git_commit
from export.capabilities import options_for, require
from export.common import export_model, failing_component
from export.coreml.evaluator import EMULATION, MILEvalError, MILEvaluator, UnsupportedMILOpError
from export.errors import ExportError
from export.options import CoreMLOptions
from models import ModelSpec

if TYPE_CHECKING:  # the optional backend: imported when a conversion starts
    from coremltools.models import MLModel

AUTHOR = "mobilelat"


class InputChannelScale(nn.Module):
    """Multiplies each input channel by a fixed factor, then runs the wrapped model.

    Used only for ``--image-input`` when std differs across channels: the image input applies
    one shared std, this applies the per-channel remainder.
    """

    def __init__(self, model: nn.Module, factors: tuple[float, ...]):
        super().__init__()
        self.model = model
        self.register_buffer("factors", torch.tensor(factors, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image * self.factors)


def image_preprocessing(mean: Sequence[float], std: Sequence[float]) -> tuple[float, list[float], tuple[float, ...] | None]:
    """(scale, per-channel bias, per-channel factors or None) that fold normalization into an image input.

    ``scale * pixel + bias[c]`` equals ``(pixel / 255 - mean[c]) / shared_std``; multiplying by
    ``factors[c] = shared_std / std[c]`` afterwards gives ``(pixel / 255 - mean[c]) / std[c]``.
    """
    mean, std = [float(m) for m in mean], [float(s) for s in std]
    if any(s <= 0 for s in std):
        raise ValueError(f"std must be positive for an image input, got {std}")
    shared_std = std[0] if len(set(std)) == 1 else float(np.mean(std))
    scale = 1.0 / (255.0 * shared_std)
    bias = [-m / shared_std for m in mean]
    factors = None if len(set(std)) == 1 else tuple(shared_std / s for s in std)
    return scale, bias, factors


def pixels_from_normalized(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """NCHW float pixels in 0..255 that normalize back to ``image`` (not rounded: parity stays exact)."""
    mean = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    return ((image * std + mean) * 255.0).astype(np.float32)


def _project_version() -> str:
    try:
        return version("mobilelat")
    except PackageNotFoundError:  # not installed as a distribution (running from a checkout)
        return "0.1.0"


def _set_metadata(mlmodel: MLModel, spec: ModelSpec, options: CoreMLOptions, input_shape: tuple[int, ...],
                  factors: tuple[float, ...] | None) -> None:
    precision = options.precision
    mlmodel.short_description = (f"{spec.name} ({spec.variant}, {spec.paper}): {spec.num_classes}-class "
                                  f"image classifier, {precision} compute, exported by mobilelat")
    mlmodel.author = AUTHOR
    mlmodel.version = _project_version()
    mlmodel.license = "see " + spec.reference_impl
    if options.image_input:
        mlmodel.input_description[spec.input_name] = (
            f"RGB image {input_shape[3]}x{input_shape[2]}, pixels 0..255; normalization "
            f"(mean {list(spec.mean)}, std {list(spec.std)}) is applied inside the model")
    else:
        mlmodel.input_description[spec.input_name] = (
            f"float32 {'x'.join(map(str, input_shape))} NCHW image, normalized: "
            f"(pixel / 255 - mean) / std with mean {list(spec.mean)}, std {list(spec.std)}")
    mlmodel.output_description[spec.output_name] = f"float32 (1, {spec.num_classes}) class logits (no softmax)"
    mlmodel.user_defined_metadata.update({
        "mobilelat.model": spec.name,
        "mobilelat.mean": ",".join(f"{m:g}" for m in spec.mean),
        "mobilelat.std": ",".join(f"{s:g}" for s in spec.std),
        "mobilelat.reparameterized": str(bool(options.reparameterize)).lower(),
        "mobilelat.precision": precision,
        "mobilelat.image_input": str(bool(options.image_input)).lower(),
        "mobilelat.channel_factors": "" if factors is None else ",".join(f"{f:.9g}" for f in factors),
        "mobilelat.source_commit": git_commit() or "unknown",
    })


def _staging_path(path: Path) -> Path:
    """Where coremltools saves a package whose final name does not end in ``.mlpackage``."""
    return path.with_name(path.name + ".staging.mlpackage")


def _save_package(mlmodel: MLModel, path: Path) -> None:
    """coremltools saves only under a ``.mlpackage`` name; save there, then move to ``path``."""
    if path.suffix == ".mlpackage":
        mlmodel.save(str(path))
        return
    staging = _staging_path(path)
    mlmodel.save(str(staging))
    staging.rename(path)


def _run_coremltools(path: Path, feeds: list[np.ndarray], spec: ModelSpec) -> list[np.ndarray]:
    ct = require("coremltools", "coreml")
    mlmodel = ct.models.MLModel(str(path))
    return [np.asarray(mlmodel.predict({spec.input_name: feed})[spec.output_name], dtype=np.float32)
            for feed in feeds]


def _check_coremltools_image_input(path: Path, feeds: list[np.ndarray], spec: ModelSpec,
                                   evaluator: MILEvaluator) -> None:
    """On macOS: Core ML on uint8 pixels must agree with the evaluator on the same pixels."""
    ct = require("coremltools", "coreml")
    mlmodel = ct.models.MLModel(str(path))
    for feed in feeds:
        pixels = np.clip(feed, 0, 255).round().astype(np.uint8)
        expected = evaluator.run({spec.input_name: pixels.astype(np.float32)})[spec.output_name].astype(np.float32)
        image = Image.fromarray(pixels[0].transpose(1, 2, 0), mode="RGB")
        got = np.asarray(mlmodel.predict({spec.input_name: image})[spec.output_name], dtype=np.float32)
        error = float(np.max(np.abs(got - expected)))
        bound = 1e-2 * float(np.max(np.abs(expected))) + 1e-3  # fp16 tolerance: Core ML picks its compute unit
        if error > bound:
            raise ExportError(f"Core ML and the reference evaluator disagree on the image input "
                              f"(max abs error {error:.3g} > {bound:.3g})", format="coreml",
                              hint="report it: the evaluator's op table may be wrong for an op here")


def _explicit_tanh_gelu(exported: torch.export.ExportedProgram) -> int:
    """Rewrite ``aten.gelu(x, approximate='tanh')`` as its formula, in place; returns how many were rewritten.

    torch.export records the approximation as a keyword argument and coremltools 9.0's torch
    frontend reads only positional ones, so it would convert the tanh form to exact GELU (a ~2e-4
    relative deviation the parity gate should not have to excuse). Written out,
    ``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))`` is converted op for op.
    """
    aten = torch.ops.aten
    graph = exported.graph_module.graph
    rewritten = 0
    for node in list(graph.nodes):
        if not (node.op == "call_function" and node.target is aten.gelu.default
                and (node.kwargs.get("approximate") == "tanh" or node.args[1:2] == ("tanh",))):
            continue
        (x,) = node.args[:1]
        with graph.inserting_before(node):
            steps = []

            def call(target, *args):
                new = graph.call_function(target, args)
                new.meta = dict(node.meta)  # elementwise: the same shape and dtype as the gelu's output
                steps.append(new)
                return new
            cube = call(aten.mul.Tensor, call(aten.mul.Tensor, x, x), x)
            inner = call(aten.add.Tensor, x, call(aten.mul.Tensor, cube, 0.044715))
            tanh = call(aten.tanh.default, call(aten.mul.Tensor, inner, math.sqrt(2.0 / math.pi)))
            result = call(aten.mul.Tensor, call(aten.mul.Tensor, x, 0.5), call(aten.add.Tensor, tanh, 1.0))
        node.replace_all_uses_with(result)
        graph.erase_node(node)
        rewritten += 1
    if rewritten:
        graph.lint()
        exported.graph_module.recompile()
    return rewritten


class CoreMLFormat:
    """Core ML for the shared wrapper (a ``FormatHandler``)."""

    name = "coreml"

    def manifest_details(self, tmp_path: Path) -> dict:
        """What the parity figures were computed on: the numpy evaluator, and what of Core ML it emulates."""
        return {"parity_runtime": dict(EMULATION)}

    def convert(self, model: nn.Module, spec: ModelSpec, tmp_path: Path, options: CoreMLOptions) -> None:
        """Convert an eval-mode model to an ML program and save it at ``tmp_path`` (a directory)."""
        ct = require("coremltools", "coreml")
        sample = spec.sample_inputs(count=1, seed=0)[0]
        input_shape = tuple(sample.shape)
        factors = None
        if options.image_input:
            scale, bias, factors = image_preprocessing(spec.mean, spec.std)
            if factors is not None:
                model = InputChannelScale(model, factors).eval()
            inputs = [ct.ImageType(name=spec.input_name, shape=input_shape, scale=scale, bias=bias,
                                   color_layout=ct.colorlayout.RGB)]
        else:
            inputs = [ct.TensorType(name=spec.input_name, shape=input_shape, dtype=np.float32)]
        try:
            exported = torch.export.export(model, (sample,)).run_decompositions({})
        except Exception as error:
            raise ExportError(f"torch.export failed on {spec.name}: {type(error).__name__}: {error}",
                              format="coreml", failing=failing_component(error),
                              hint="the model must be traceable by torch.export (no data-dependent Python "
                                   "control flow); try --no-reparam to see whether the deploy form is at fault") from error
        _explicit_tanh_gelu(exported)
        try:
            mlmodel = ct.convert(
                exported,
                inputs=inputs,
                outputs=[ct.TensorType(name=spec.output_name, dtype=np.float32)],
                convert_to="mlprogram",
                minimum_deployment_target=getattr(ct.target, options.coreml_target),
                compute_precision=ct.precision.FLOAT16 if options.precision == "fp16" else ct.precision.FLOAT32,
                skip_model_load=True,  # compiled only where it runs (macOS); the parity run loads it
            )
        except Exception as error:
            raise ExportError(f"coremltools could not convert {spec.name}: {type(error).__name__}: {error}",
                              format="coreml", failing=failing_component(error),
                              hint="an unsupported torch op is named in the message above; try --precision fp32, "
                                   "a newer --coreml-target, or --no-reparam") from error
        _set_metadata(mlmodel, spec, options, input_shape, factors)
        _save_package(mlmodel, Path(tmp_path))

    def run(self, path: Path, inputs: list[np.ndarray], spec: ModelSpec, options: CoreMLOptions) -> list[np.ndarray]:
        """Outputs of the saved package on normalized NCHW inputs: Core ML itself on macOS, else the evaluator."""
        feeds = [pixels_from_normalized(x, spec.mean, spec.std) if options.image_input else x for x in inputs]
        if sys.platform == "darwin" and not options.image_input:
            return _run_coremltools(path, feeds, spec)
        try:
            evaluator = MILEvaluator(path)
            outputs = [evaluator.run({spec.input_name: feed})[spec.output_name].astype(np.float32)
                       for feed in feeds]
        except MILEvalError as error:  # the artifact may be fine: the evaluator cannot judge it
            unsupported = isinstance(error, UnsupportedMILOpError)
            raise ExportError(f"the reference evaluator cannot run {spec.name}'s ML program: {error}", format="coreml",
                              failing=error.op_type if unsupported else None,
                              hint="add the op to MIL_OPS (one function and one entry in its family's module "
                                   "under export/coreml/ops/), or run the parity gate on macOS where coremltools "
                                   "runs the model") from error
        if sys.platform == "darwin":  # image input: Core ML takes uint8 pixels; check it against the evaluator
            _check_coremltools_image_input(path, feeds, spec, evaluator)
        return outputs

    def tool_versions(self) -> dict[str, str]:
        versions = {"torch": torch.__version__}
        try:
            versions["coremltools"] = version("coremltools")
        except PackageNotFoundError:
            versions["coremltools"] = "not installed"
        versions["parity_runtime"] = "coremltools" if sys.platform == "darwin" else "mobilelat.mil_eval (numpy)"
        return versions

    def io_details(self, path: Path) -> dict:
        return {}  # float32 tensors, or an RGB image input: the manifest's options say which

    def input_layout(self, options: CoreMLOptions) -> str:
        return "NCHW"

    def temp_paths(self, tmp_path: Path) -> list[Path]:
        return [_staging_path(tmp_path)]

    def prepare_command_line(self) -> None:
        quiet_converter_chatter()


HANDLER = CoreMLFormat()


def export(model: nn.Module, spec: ModelSpec, out_dir: str | Path = "artifacts", **options) -> Artifact:
    """Export ``model`` (training or deploy form) to ``out_dir/<model>/<model>[_<precision>].mlpackage``.

    ``options``: fields of ``CoreMLOptions`` (precision, default fp16; input_size, image_input, coreml_target, ...).
    """
    return export_model(HANDLER, model, spec, Path(out_dir), options_for("coreml", **options))


def quiet_converter_chatter() -> None:
    """On the command line, show our progress and summary, not the converters' import warnings.

    coremltools warns on import that it cannot run models off macOS and that this torch version is
    newer than those it was tested with (the pins in requirements.txt are what this project tests).
    """
    for logger_name in ("coremltools", "torchao", "torch.utils._pytree"):
        logging.getLogger(logger_name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)  # torch.export internals
