"""The one wrapper every export format goes through: options, parity gate, manifest, atomic write.

A format module supplies a ``FormatHandler`` (how to convert, how to run what it wrote, which tool
versions it used). ``export_model`` does the rest, the same way for every format:

1. check the options against the format's capability table (an option it does not take is an error);
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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

from export.artifact import Artifact, git_commit, manifest_path_for, sha256_of, size_on_disk
from export.capabilities import UnsupportedOptionError, capability, check_options
from export.parity import ParityReport, Tolerance, check_parity, tolerance_for

__all__ = ["ExportError", "ExportOptions", "FormatHandler", "InputSizeError", "MissingDependencyError",
           "ParityError", "UnsupportedOptionError", "artifact_path", "export_model", "sha256_of"]


@dataclass
class ExportOptions:
    """Everything that steers one export. Format-specific fields are refused by formats that lack them."""

    precision: str = "fp32"  # "fp32", "fp16", "int8_dynamic" or "int8_full" (see the capability table)
    input_size: tuple[int, int] | None = None  # (height, width) in pixels; None: the spec's size
    reparameterize: bool = True  # export the deploy form (False: the training form, for comparison)
    dynamic_batch: bool = False  # onnx: a symbolic batch dimension instead of batch 1
    opset: int = 18  # onnx: opset version of the exported graph
    image_input: bool = False  # coreml: an RGB image input with the normalization folded in
    coreml_target: str | None = None  # coreml: minimum deployment target, e.g. "iOS17" (None: iOS16)
    nhwc: bool = False  # tflite: channel-last input (N, H, W, C) as Android apps feed it
    calibration_dir: str | None = None  # tflite int8_full: folder of images to calibrate on (None: synthetic)
    calibration_count: int = 32  # tflite int8_full: number of calibration images
    parity_inputs: int = 3  # seeded inputs the parity gate runs
    parity_seed: int = 0  # seed of those inputs
    tolerance: Tolerance | None = None  # override of the tolerance table (None: export/parity.py's entry)
    quiet: bool = False  # no progress or summary on the console

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["input_size"] = list(self.input_size) if self.input_size else None
        return data


@dataclass
class FormatHandler:
    """What a format module gives the shared wrapper."""

    name: str  # format name: "onnx", "coreml", "tflite"
    suffix: str  # artifact suffix: ".onnx", ".mlpackage", ".tflite"
    convert: Callable  # convert(model, spec, tmp_path, options) -> None: writes the artifact at tmp_path
    run: Callable  # run(path, inputs NCHW float32 normalized, spec, options) -> list of output arrays
    tool_versions: Callable  # tool_versions() -> {tool: version}
    io_details: Callable | None = None  # io_details(path) -> dict of I/O dtypes/quantization, kept in the manifest


class ExportError(RuntimeError):
    """A conversion that failed: which format, what failed (op or module when known), what to try."""

    def __init__(self, message: str, *, format: str, hint: str = "", failing: str | None = None):
        self.format = format
        self.hint = hint
        self.failing = failing
        text = f"[{format}] {message}"
        if failing:
            text += f"\n  failing op/module: {failing}"
        if hint:
            text += f"\n  what to try: {hint}"
        super().__init__(text)


class MissingDependencyError(ImportError):
    """An optional backend that is not installed; the message carries the pip command."""


class InputSizeError(ValueError):
    """An input size the model cannot take."""


class ParityError(RuntimeError):
    """The artifact's outputs do not match the eager model's; carries the full report."""

    def __init__(self, report: ParityReport):
        self.report = report
        super().__init__("parity gate failed; no artifact written\n" + report.format_text())


def require(module_name: str, format_name: str):
    """Import an optional backend, or raise ``MissingDependencyError`` with the install command."""
    import importlib

    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        hint = capability(format_name).install_hint
        raise MissingDependencyError(f"{format_name} export needs {module_name!r}, which is not installed: "
                                     f"{hint}") from error


def artifact_path(out_dir: str | Path, model_name: str, format_name: str, precision: str) -> Path:
    """``out_dir/<model>/<model>[_<precision>]<suffix>``; no precision suffix at the format's default."""
    cap = capability(format_name)
    stem = model_name if precision == cap.default_precision else f"{model_name}_{precision}"
    return Path(out_dir) / model_name / f"{stem}{cap.suffix}"


def remove_path(path: Path) -> None:
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


class _Console:
    """Progress and the final summary, or nothing when ``quiet``."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self._console = None
        if not quiet:
            from rich.console import Console

            self._console = Console(stderr=True)

    def step(self, text: str):
        if self.quiet:
            return _NullContext()
        return self._console.status(text, spinner="dots")

    def print(self, *objects) -> None:
        if not self.quiet:
            self._console.print(*objects)


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _trial_forward(model: nn.Module, spec, format_name: str) -> None:
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


def _model_default_size(spec) -> str:
    from models import model_spec

    try:
        _, height, width = model_spec(spec.name).input_size
        return f"{height}x{width}"
    except Exception:
        return "unknown"


def _reparameterize(model: nn.Module, format_name: str, console: "_Console") -> nn.Module:
    try:
        import reparam
    except ImportError as error:
        raise ExportError("reparam.reparameterize is not available", format=format_name,
                          hint="export with --no-reparam, or update the checkout") from error
    untrained = reparam.untrained_batchnorms(model)
    if untrained:  # one line on the console rather than reparameterize's warning with a source line
        console.print(f"[yellow]note:[/yellow] \\[{format_name}] random weights: {len(untrained)} "
                      "BatchNorm layer(s) hold their initial statistics (pass --weights to export a trained model)")
    return reparam.reparameterize(model, warn_untrained=False)


def export_model(handler: FormatHandler, model: nn.Module, spec, out_dir: str | Path,
                 options: ExportOptions | None = None) -> Artifact:
    """Convert ``model`` with ``handler``, gate it on parity, write it atomically with its manifest."""
    options = options or ExportOptions()
    check_options(handler.name, options)
    if options.parity_inputs < 3:
        raise ValueError(f"the parity gate runs at least 3 seeded inputs, got parity_inputs={options.parity_inputs}")
    tolerance = options.tolerance or tolerance_for(handler.name, options.precision)
    started = time.perf_counter()
    console = _Console(options.quiet)
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

        artifact = Artifact(
            path=final, model=spec.name, format=handler.name, precision=options.precision,
            input_name=spec.input_name, input_shape=_artifact_input_shape(spec, options),
            input_layout="NHWC" if options.nhwc else "NCHW", output_name=spec.output_name,
            mean=[float(m) for m in spec.mean], std=[float(s) for s in spec.std],
            params=_count_params(deploy), macs=_count_macs(deploy, spec),
            reparameterized=bool(options.reparameterize), sha256=sha256_of(tmp), size_bytes=size_on_disk(tmp),
            tool_versions=dict(handler.tool_versions()), git_commit=git_commit(), parity=report.to_dict(),
            options={**options.to_dict(), "tolerance": tolerance.to_dict(), "convert_seconds": convert_seconds,
                     "io": handler.io_details(tmp) if handler.io_details else {}},
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
        remove_path(tmp)
        remove_path(tmp_manifest)
        staging = tmp.with_name(tmp.name + ".staging.mlpackage")
        remove_path(staging)
    print_summary(artifact, console)
    return artifact


def _convert(handler: FormatHandler, model: nn.Module, spec, tmp: Path, options: ExportOptions) -> None:
    try:
        with torch.no_grad():
            handler.convert(model, spec, tmp, options)
    except (ExportError, MissingDependencyError, UnsupportedOptionError, InputSizeError):
        raise
    except ImportError as error:
        raise MissingDependencyError(f"{handler.name} export needs a package that is not installed ({error}): "
                                     f"{capability(handler.name).install_hint}") from error
    except Exception as error:
        raise ExportError(f"conversion of {spec.name} failed: {type(error).__name__}: {str(error)[:2000]}",
                          format=handler.name, failing=failing_component(error),
                          hint="try --no-reparam (is the deploy form at fault?), --precision fp32, or "
                               "another format; if an op is named above, that op has no converter") from error


def _artifact_input_shape(spec, options: ExportOptions) -> list[int]:
    batch, channels, height, width = spec.input_shape(1)
    return [batch, height, width, channels] if options.nhwc else [batch, channels, height, width]


def _count_params(model: nn.Module) -> int:
    from models.complexity import count_params

    return int(count_params(model))


def _count_macs(model: nn.Module, spec) -> int:
    from models.complexity import count_macs

    try:
        return int(count_macs(model, spec.input_shape(1)))
    except Exception:  # MACs are informative; an exotic op must not block an export that passed parity
        return -1


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} to a manifest")


def print_summary(artifact: Artifact, console: _Console | None = None) -> None:
    """One screen: where it is, how big, how close to the eager model, how long it took."""
    console = console or _Console(False)
    if console.quiet:
        return
    from rich.table import Table

    parity = artifact.parity
    table = Table(title=f"{artifact.model} -> {artifact.format} ({artifact.precision})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("path", str(artifact.path))
    table.add_row("size", f"{artifact.size_bytes / 1e6:.2f} MB")
    table.add_row("input", f"{artifact.input_name} {artifact.input_shape} {artifact.input_layout}")
    table.add_row("params / MACs", f"{artifact.params / 1e6:.2f} M / "
                                   f"{artifact.macs / 1e9:.3f} G" if artifact.macs >= 0 else f"{artifact.params / 1e6:.2f} M")
    table.add_row("reparameterized", str(artifact.reparameterized))
    if parity.get("tolerance", {}).get("rtol") is not None:
        table.add_row("parity", f"passed: max abs error {parity['max_abs_error']:.3g} on {parity['inputs']} inputs "
                                f"(vs deploy {parity['max_abs_error_vs_deploy']:.3g})")
    else:
        agreement = ", ".join(f"{k} {v:.0%}" for k, v in parity["top1_agreement"].items())
        table.add_row("parity", f"passed: top-1 agreement {agreement}; min cosine {parity['min_cosine']:.4f}")
    table.add_row("time", f"{artifact.export_seconds:.1f} s (convert {artifact.options.get('convert_seconds', 0):.1f} s)")
    table.add_row("sha256", artifact.sha256[:16] + "...")
    console.print(table)
