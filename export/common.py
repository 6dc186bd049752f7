"""The one wrapper every export format goes through: options, parity gate, manifest, atomic write.

A format module supplies an object satisfying ``FormatHandler`` (how to convert, how to run what
it wrote, which tool versions it used). ``export_model`` does the rest, the same way for every format:

1. check the options against the format's capability table (another format's options, or a
   precision or value it does not take, is an error);
2. deepcopy the model, eval, reparameterize (unless ``reparameterize=False``): the caller's model
   is never touched; a trial forward pass at the requested input size catches sizes it cannot take;
3. convert into a temporary name beside the final one, with a progress line;
4. run the artifact on seeded inputs and compare with the eager deploy and training-form models
   (``export/parity.py``); on failure raise ``ParityError`` and remove the temporary file;
5. write the manifest and rename both onto their final names; print a one-screen summary.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

import reparam
from export.artifact import Artifact, git_commit, manifest_path_for, sha256_of, size_on_disk
from export.capabilities import capability, check_options
from export.console import Console, print_summary
from export.errors import ExportError, InputSizeError, MissingDependencyError, ParityError, UsageError
from export.options import ExportOptions
from export.parity import check_parity, tolerance_for
from models import ModelSpec, UnknownModelError, model_spec
from models.complexity import count_macs, count_params

__all__ = ["FormatHandler", "artifact_path", "export_model", "failing_component", "remove_path"]


class FormatHandler(Protocol):
    """What a format gives the shared wrapper; each format module's ``HANDLER`` satisfies it."""

    name: str  # format name, a key of the capability table ("onnx", "coreml", "tflite")

    def convert(self, model: nn.Module, spec: ModelSpec, tmp_path: Path, options: ExportOptions) -> None:
        """Convert the eval-mode (deploy) model and write the artifact at ``tmp_path``."""

    def run(self, path: Path, inputs: list[np.ndarray], spec: ModelSpec,
            options: ExportOptions) -> list[np.ndarray]:
        """Outputs of the artifact at ``path`` on normalized NCHW float32 inputs, one array per input."""

    def tool_versions(self) -> dict[str, str]:
        """Versions of torch, the converter and the parity runtime, for the manifest."""

    def io_details(self, path: Path) -> dict:
        """I/O dtypes and quantization of the artifact, kept in the manifest ({} when there is nothing to add)."""

    def input_layout(self, options: ExportOptions) -> str:
        """"NCHW" or "NHWC": how the artifact takes its input."""

    def temp_paths(self, tmp_path: Path) -> list[Path]:
        """Paths beside ``tmp_path`` the converter may leave behind; removed after every export."""

    def prepare_command_line(self) -> None:
        """On the command line, before any export: quiet the converter's own progress and import chatter."""


def artifact_path(out_dir: str | Path, model_name: str, format_name: str, precision: str) -> Path:
    """``out_dir/<model>/<model>[_<precision>]<suffix>``; no precision suffix at the format's default."""
    cap = capability(format_name)
    stem = model_name if precision == cap.default_precision else f"{model_name}_{precision}"
    return Path(out_dir) / model_name / f"{stem}{cap.suffix}"


def remove_path(path: Path) -> None:
    """Remove a file, a link or a directory tree, if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def failing_component(error: BaseException) -> str | None:
    """The op or module a converter names in its exception chain, when it names one."""
    patterns = [r"(aten::[\w.]+)", r"(aten\.[\w.]+)", r"[Oo]p(?:erator)? ['\"]?([\w.:]+)['\"]? (?:is )?not (?:supported|implemented)",
                r"[Uu]nsupported (?:op|operator|ops)[: ]+['\"]?([\w.:]+)", r"torch\.ops\.([\w.]+)",
                r"in module ['\"]?([\w.]+)"]
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error)
        for pattern in patterns:
            match = re.search(pattern, text)
            if match:
                return match.group(1)
        error = error.__cause__ or error.__context__
    return None


def _trial_forward(model: nn.Module, spec: ModelSpec, format_name: str) -> None:
    """Run the model once at the spec's size; a failure becomes an ``InputSizeError`` naming sizes that work."""
    channels, height, width = spec.input_size
    try:
        with torch.no_grad():
            output = model(torch.zeros(1, channels, height, width))
    except Exception as error:
        raise InputSizeError(
            f"{spec.name} cannot take a {height}x{width} input ({type(error).__name__}: {str(error)[:300]}). "
            f"Use a size both sides of which are multiples of 32 (64 is safe for every zoo model), "
            f"e.g. --input-size {max(64, round(height / 64) * 64)}; the model's own size is "
            f"{_model_default_size(spec)}") from error
    if not isinstance(output, torch.Tensor):
        raise ExportError(f"{spec.name} returned {type(output).__name__}; export takes models whose eval "
                          f"forward returns one tensor", format=format_name)


def _model_default_size(spec: ModelSpec) -> str:
    try:
        _, height, width = model_spec(spec.name).input_size
    except UnknownModelError:  # a spec built by hand, outside the registry
        return "unknown"
    return f"{height}x{width}"


def _reparameterize(model: nn.Module, format_name: str, console: Console) -> nn.Module:
    untrained = reparam.untrained_batchnorms(model)
    if untrained:  # one line on the console rather than reparameterize's warning with a source line
        console.print(f"[yellow]note:[/yellow] \\[{format_name}] random weights: {len(untrained)} "
                      "BatchNorm layer(s) hold their initial statistics (pass --weights to export a trained model)")
    return reparam.reparameterize(model, warn_untrained=False)


def export_model(handler: FormatHandler, model: nn.Module, spec: ModelSpec, out_dir: str | Path,
                 options: ExportOptions | None = None) -> Artifact:
    """Convert ``model`` with ``handler``, gate it on parity, write it atomically with its manifest.

    ``options`` is the format's options class (``capability(handler.name).options_class``); None: its defaults.
    """
    options = options if options is not None else capability(handler.name).options_class()
    check_options(handler.name, options)
    tolerance = options.tolerance or tolerance_for(handler.name, options.precision)
    started = time.perf_counter()
    console = Console(options.quiet)
    if options.input_size is not None:
        height, width = options.input_size
        if height <= 0 or width <= 0:
            raise InputSizeError(f"input size must be positive, got {height}x{width}")
        spec = spec.with_input_size(height, width)

    training = copy.deepcopy(model).eval()  # the caller's model is never touched
    _trial_forward(training, spec, handler.name)
    with console.step(f"[{handler.name}] reparameterizing {spec.name}"):
        deploy = _reparameterize(training, handler.name, console).eval() if options.reparameterize else training

    inputs = [x.numpy() for x in spec.sample_inputs(count=options.parity_inputs, seed=options.parity_seed)]
    with torch.no_grad():
        references = {"deploy": [deploy(torch.from_numpy(x)).numpy() for x in inputs]}
        if options.reparameterize:
            references["training"] = [training(torch.from_numpy(x)).numpy() for x in inputs]

    final = artifact_path(out_dir, spec.name, handler.name, options.precision)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{final.suffix}")
    tmp_manifest = manifest_path_for(tmp)
    try:
        convert_started = time.perf_counter()
        with console.step(f"[{handler.name}] converting {spec.name} ({options.precision})"):
            _convert(handler, deploy, spec, tmp, options)
        convert_seconds = time.perf_counter() - convert_started
        if not tmp.exists() or size_on_disk(tmp) == 0:
            raise ExportError(f"the converter wrote nothing at {tmp}", format=handler.name,
                              hint="report it: the converter returned without an error")
        with console.step(f"[{handler.name}] parity gate on {len(inputs)} inputs"):
            outputs = [np.asarray(o, dtype=np.float32) for o in handler.run(tmp, inputs, spec, options)]
            report = check_parity(outputs, references, tolerance, format_name=handler.name,
                                  precision=options.precision, output_name=spec.output_name)
        if not report.passed:
            raise ParityError(report)

        layout = handler.input_layout(options)
        artifact = Artifact(
            path=final, model=spec.name, format=handler.name, precision=options.precision,
            input_name=spec.input_name, input_shape=_input_shape(spec, layout),
            input_layout=layout, output_name=spec.output_name,
            mean=[float(m) for m in spec.mean], std=[float(s) for s in spec.std],
            params=int(count_params(deploy)), macs=_count_macs(deploy, spec),
            reparameterized=bool(options.reparameterize), sha256=sha256_of(tmp), size_bytes=size_on_disk(tmp),
            tool_versions=dict(handler.tool_versions()), git_commit=git_commit(), parity=report.to_dict(),
            options={**options.to_dict(), "tolerance": tolerance.to_dict(), "convert_seconds": convert_seconds,
                     "io": handler.io_details(tmp)},
            export_seconds=time.perf_counter() - started,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        tmp_manifest.write_text(json.dumps(artifact.to_dict(), indent=2, default=_json_default) + "\n")
        # the artifact lands first, then its manifest: load_artifact refuses an artifact without one
        remove_path(manifest_path_for(final))
        if final.is_dir():
            remove_path(final)
        os.replace(tmp, final)
        os.replace(tmp_manifest, manifest_path_for(final))
    finally:
        for leftover in (tmp, tmp_manifest, *handler.temp_paths(tmp)):
            remove_path(leftover)
    print_summary(artifact, console)
    return artifact


def _convert(handler: FormatHandler, model: nn.Module, spec: ModelSpec, tmp: Path, options: ExportOptions) -> None:
    try:
        with torch.no_grad():
            handler.convert(model, spec, tmp, options)
    except (ExportError, MissingDependencyError, UsageError):
        raise
    except ImportError as error:
        raise MissingDependencyError(f"{handler.name} export needs a package that is not installed ({error}): "
                                     f"{capability(handler.name).install_hint}") from error
    except Exception as error:
        raise ExportError(f"conversion of {spec.name} failed: {type(error).__name__}: {str(error)[:2000]}",
                          format=handler.name, failing=failing_component(error),
                          hint="try --no-reparam (is the deploy form at fault?), --precision fp32, or "
                               "another format; if an op is named above, that op has no converter") from error


def _input_shape(spec: ModelSpec, layout: str) -> list[int]:
    batch, channels, height, width = spec.input_shape(1)
    return [batch, height, width, channels] if layout == "NHWC" else [batch, channels, height, width]


def _count_macs(model: nn.Module, spec: ModelSpec) -> int:
    try:
        return int(count_macs(model, spec.input_shape(1)))
    except Exception:  # MACs are informative; an exotic op must not block an export that passed parity
        return -1


def _json_default(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} to a manifest")
