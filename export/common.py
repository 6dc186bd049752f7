"""The one wrapper every export format goes through: options, parity gate, manifest, atomic write.

A format module supplies an object satisfying ``FormatHandler`` (how to convert, how to run what
it wrote, which tool versions it used). ``export_model`` does the rest, the same way for every format:

1. check the options against the format's capability table (another format's options, or a
   precision or value it does not take, is an error);
2. deepcopy the model, eval, reparameterize (unless ``reparameterize=False``): the caller's model
   is never touched; a trial forward pass at the requested input size catches sizes it cannot take;
3. check the output folder before any conversion work (a file, or a folder nothing can be written
   in, is an ``OutputPathError``), then convert into a temporary name beside the final one;
4. run the artifact on seeded inputs and compare with the eager deploy and training-form models
   (``export/parity.py``); then convert a copy of the model carrying probe weights
   (``models/probe.py``: every layer reaches the output) through the same path and gate that too;
   on any failure raise ``ParityError`` and remove the temporary files. An artifact at a reduced
   precision (fp16, int8) has the same conversion path gated at fp32 as well (on the probe weights,
   against the fp32 bound), from the fp32 file the converter wrote on the way when it keeps one
   (``fp32_intermediate``: TFLite quantizes an fp32 flatbuffer), else from a second conversion: a
   wrong fold or a mangled graph whose effect is below fp16's or int8's own rounding is still caught;
5. write the manifest and rename both onto their final names.

Each stage is a line on the console with its time. However it ends (a failure, Ctrl-C), no temporary
file is left and an output folder it created is removed again if nothing landed in it. Ctrl-C that
a converter swallowed (litert-torch catches it in a callback) still stops the export once the
converter returns (``mobilelat.cli.raise_if_interrupted``).
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
from export.errors import ExportError, InputSizeError, MissingDependencyError, ParityError, UsageError
from export.options import ExportOptions
from export.parity import (ParityReport, Tolerance, check_parity, probe_tolerance, reference_signal, scaled_to_model,
                            tolerance_for)
from mobilelat.cli import raise_if_interrupted
from mobilelat.console import Console
from mobilelat.paths import check_output_dir, output_dir
from mobilelat.sizes import check_input_size, format_input_size
from models import ModelSpec, UnknownModelError, model_spec
from models.complexity import count_macs, count_params
from models.probe import name_seed, probe_weights

__all__ = ["FormatHandler", "artifact_path", "export_model", "failing_component", "gate_tolerance", "remove_path"]


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

    # Optional (looked up with getattr, so the other formats need not define them):
    # ``artifact_variant(options) -> str | None``: a word for the file name after the precision (ExecuTorch's
    # backend when it is not the default); ``manifest_details(tmp_path) -> dict``: entries the converter adds
    # to the manifest's options (ExecuTorch's delegation summary); ``fp32_intermediate(tmp_path) -> Path | None``:
    # the fp32 file a reduced-precision conversion at ``tmp_path`` wrote on the way (runnable with fp32 options),
    # which spares the gate a second conversion for the fp32 check of the path.


def artifact_path(out_dir: str | Path, model_name: str, format_name: str, precision: str,
                  input_size: tuple[int, int] | None = None, variant: str | None = None) -> Path:
    """``out_dir/<model>/<model>[_<precision>][_<variant>][_<H>x<W>]<suffix>``: no precision suffix at the
    format's default precision, no size suffix at the model's own input size (``input_size`` None), so two
    sizes never overwrite each other's file; ``variant`` (ExecuTorch's non-default backend) likewise."""
    cap = capability(format_name)
    stem = model_name if precision == cap.default_precision else f"{model_name}_{precision}"
    if variant:
        stem += f"_{variant}"
    if input_size is not None:
        stem += f"_{format_input_size(input_size)}"
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
        if _out_of_memory(error):
            raise InputSizeError(
                f"{spec.name} at {height}x{width} needs more memory than this machine has "
                f"({type(error).__name__}: {str(error)[:200]}); use a smaller --input-size (the model's own "
                f"is {_model_default_size(spec)})") from error
        raise InputSizeError(
            f"{spec.name} cannot take a {height}x{width} input ({type(error).__name__}: {str(error)[:300]}). "
            f"Use a size both sides of which are multiples of 32 (64 is safe for every zoo model), "
            f"e.g. --input-size {max(64, round(height / 64) * 64)}; the model's own size is "
            f"{_model_default_size(spec)}") from error
    if not isinstance(output, torch.Tensor):
        raise ExportError(f"{spec.name} returned {type(output).__name__}; export takes models whose eval "
                          f"forward returns one tensor", format=format_name)


def _out_of_memory(error: BaseException) -> bool:
    """Whether a forward pass failed for memory (torch's allocator message, or Python's MemoryError)."""
    text = str(error).lower()
    return isinstance(error, MemoryError) or "can't allocate memory" in text or "out of memory" in text


def _model_default_size(spec: ModelSpec) -> str:
    try:
        _, height, width = model_spec(spec.name).input_size
    except UnknownModelError:  # a spec built by hand, outside the registry
        return "unknown"
    return f"{height}x{width}"


def _reparameterize(model: nn.Module, format_name: str, console: Console) -> nn.Module:
    untrained = reparam.untrained_batchnorms(model)
    if untrained:  # one line on the console rather than reparameterize's warning with a source line
        console.note(f"[yellow]note:[/yellow] \\[{format_name}] random weights: {len(untrained)} "
                     "BatchNorm layer(s) hold their initial statistics (pass --weights to export a trained model)")
    return reparam.reparameterize(model, warn_untrained=False)


def _size_suffix(spec: ModelSpec) -> tuple[int, int] | None:
    """The spec's (height, width) when it is not the registered model's own size, for the file name."""
    size = (spec.input_size[1], spec.input_size[2])
    try:
        _, height, width = model_spec(spec.name).input_size
    except UnknownModelError:  # a spec built by hand: its size is its own
        return None
    return None if size == (height, width) else size


def run_artifact(handler, path: Path, inputs: list[np.ndarray], spec: ModelSpec, options) -> list[np.ndarray]:
    """The artifact's float32 outputs on ``inputs`` through its runtime, for the parity gate. A runtime that
    fails on the converted graph (LiteRT's int8 DIV on a zero divisor, say) is a failed export, said as one
    (``ExportError``), not a raw runtime traceback: nothing is written either way."""
    try:
        return [np.asarray(o, dtype=np.float32) for o in handler.run(path, inputs, spec, options)]
    except ExportError:
        raise
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"the converted {options.precision} artifact failed to run in its runtime: {first}",
                          format=handler.name,
                          hint="another --precision (int8 forms quantize ops some models cannot take: fp32 and "
                               "fp16 keep them), or report the model and precision") from error


def export_model(handler: FormatHandler, model: nn.Module, spec: ModelSpec, out_dir: str | Path,
                 options: ExportOptions | None = None, console: Console | None = None) -> Artifact:
    """Convert ``model`` with ``handler``, gate it on parity, write it atomically with its manifest.

    ``options`` is the format's options class (``capability(handler.name).options_class``); None: its defaults.
    ``console`` shows the stages (a command line passes its own); None: stage lines on stderr unless
    ``options.quiet``.
    """
    options = options if options is not None else capability(handler.name).options_class()
    check_options(handler.name, options)
    started = time.perf_counter()
    console = console if console is not None else Console(quiet=options.quiet)
    if options.input_size is not None:
        height, width = options.input_size
        check_input_size(height, width)
        spec = spec.with_input_size(height, width)
    check_output_dir(out_dir)  # --out itself first: its message names what the user typed
    variant = getattr(handler, "artifact_variant", lambda _options: None)(options)
    final = artifact_path(out_dir, spec.name, handler.name, options.precision, _size_suffix(spec), variant)

    size = format_input_size(spec.input_size[1:])
    with output_dir(final.parent):  # checked before any model work; removed again if it stays empty
        with console.stage(f"[{handler.name}] check that {spec.name} takes {size}"):
            training = copy.deepcopy(model).eval()  # the caller's model is never touched
            _trial_forward(training, spec, handler.name)
        if options.reparameterize:
            with console.stage(f"[{handler.name}] reparameterize {spec.name}"):
                deploy = _reparameterize(training, handler.name, console).eval()
        else:
            deploy = training

        inputs = [x.numpy() for x in spec.sample_inputs(count=options.parity_inputs, seed=options.parity_seed)]
        with console.stage(f"[{handler.name}] eager reference outputs on {len(inputs)} inputs"), torch.no_grad():
            references = _references(training, deploy, inputs, options.reparameterize)
            tolerance = gate_tolerance(handler.name, options, deploy, inputs, references["deploy"])
        probe = None
        if options.probe:
            seed = probe_seed(spec.name, options)
            with console.stage(f"[{handler.name}] probe weights (seed {seed}) and their reference outputs"):
                probe_training = probe_weights(training, seed, _own_input_size(spec), mean=spec.mean, std=spec.std)
                probe_deploy = (reparam.reparameterize(probe_training, warn_untrained=False).eval()
                                if options.reparameterize else probe_training)
                with torch.no_grad():
                    probe_references = _references(probe_training, probe_deploy, inputs, options.reparameterize)
                same = _same_weights(training, probe_training)  # the model already carries these probe weights:
                # its gate is the probe's, no second conversion
                if not same:
                    judged_by = gate_tolerance(handler.name, options, probe_deploy, inputs, probe_references["deploy"],
                                               probe=True)
                else:  # the model's own tolerance (its gap measured above), on probe terms unless the caller set it
                    judged_by = tolerance if options.tolerance is not None else probe_tolerance(tolerance)
                probe = _Probe(seed, probe_deploy, probe_references, judged_by, same_as_model=same)
        artifact = _convert_and_write(handler, deploy, spec, options, final, inputs, references, tolerance,
                                      console, started, probe)
    return artifact


def gate_tolerance(format_name: str, options: ExportOptions, deploy: nn.Module, inputs: list[np.ndarray],
                   deploy_outputs: list[np.ndarray], probe: bool = False) -> Tolerance:
    """The tolerance the gate judges ``deploy``'s conversion by: the caller's ``options.tolerance`` as given,
    else the table's entry, scaled to the model's own sensitivity to rounding where the entry says so
    (fp16: ``scaled_to_model``) and, on probe weights, without top-1 for int8 (``probe_tolerance``)."""
    if options.tolerance is not None:
        return options.tolerance
    tolerance = tolerance_for(format_name, options.precision)
    if tolerance.rounding_gain is not None:
        tolerance = scaled_to_model(tolerance, rounding_gap(deploy, inputs, deploy_outputs))
    return probe_tolerance(tolerance) if probe else tolerance


def rounding_gap(model: nn.Module, inputs: list[np.ndarray], outputs: list[np.ndarray]) -> float | None:
    """max |``outputs`` (the eager fp32 model's) - the same model in fp64| / the fp64 spread over ``inputs``:
    how much the model amplifies fp32's rounding (None when it cannot run in fp64 or does not vary)."""
    try:
        exact_model = copy.deepcopy(model).double().eval()
        with torch.no_grad():
            exact = [exact_model(torch.from_numpy(x).double()).numpy() for x in inputs]
    except (RuntimeError, TypeError):  # an op without a float64 kernel: the table's rtol stands
        return None
    signal = reference_signal(exact)
    if not signal.reaches_output:  # the gate refuses such a reference anyway
        return None
    return max(float(np.abs(np.asarray(o, dtype=np.float64) - e).max()) for o, e in zip(outputs, exact)) / signal.spread


def _own_input_size(spec: ModelSpec) -> tuple[int, int, int]:
    """The registered model's own (C, H, W): probe weights do not depend on --input-size."""
    try:
        return model_spec(spec.name).input_size
    except UnknownModelError:  # a spec built by hand
        return spec.input_size


def _same_weights(model: nn.Module, other: nn.Module) -> bool:
    state, other_state = model.state_dict(), other.state_dict()
    return state.keys() == other_state.keys() and all(torch.equal(state[k], other_state[k]) for k in state)


def probe_seed(model_name: str, options: ExportOptions) -> int:
    """The seed of the probe weights: the options', else one derived from the model name."""
    return options.probe_seed if options.probe_seed is not None else name_seed(model_name)


@dataclasses.dataclass
class _Probe:
    """The model on probe weights, converted and gated beside the user's."""

    seed: int  # seed of the probe weights
    deploy: nn.Module  # what is converted
    references: dict[str, list[np.ndarray]]  # its eager outputs on the parity inputs
    tolerance: Tolerance  # what it is judged by (``gate_tolerance(..., probe=True)``)
    same_as_model: bool = False  # the model's own weights are these probe weights (nothing more to convert)


def _references(training: nn.Module, deploy: nn.Module, inputs: list[np.ndarray],
                reparameterized: bool) -> dict[str, list[np.ndarray]]:
    references = {"deploy": [deploy(torch.from_numpy(x)).numpy() for x in inputs]}
    if reparameterized:
        references["training"] = [training(torch.from_numpy(x)).numpy() for x in inputs]
    return references


def _convert_and_write(handler: FormatHandler, deploy: nn.Module, spec: ModelSpec, options: ExportOptions,
                       final: Path, inputs: list[np.ndarray], references: dict[str, list[np.ndarray]],
                       tolerance: Tolerance, console: Console, started: float, probe: _Probe | None = None) -> Artifact:
    """Convert to a temporary name, gate it (and the probe's conversion, and at a reduced precision the same
    path at fp32), write the manifest, rename both; no temporary survives."""
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = final.with_name(f".{final.stem}.tmp-{tag}{final.suffix}")
    tmp_probe = final.with_name(f".{final.stem}.probe-tmp-{tag}{final.suffix}")
    tmp_fp32 = final.with_name(f".{final.stem}.fp32-tmp-{tag}{final.suffix}")
    tmp_manifest = manifest_path_for(tmp)
    try:
        convert_started = time.perf_counter()
        with console.stage(f"[{handler.name}] convert {spec.name} ({options.precision}, "
                           f"{format_input_size(spec.input_size[1:])})"):
            _convert(handler, deploy, spec, tmp, options)
            raise_if_interrupted()  # a Ctrl-C the converter swallowed stops the export here
        convert_seconds = time.perf_counter() - convert_started
        if not tmp.exists() or size_on_disk(tmp) == 0:
            raise ExportError(f"the converter wrote nothing at {tmp}", format=handler.name,
                              hint="report it: the converter returned without an error")
        with console.stage(f"[{handler.name}] parity gate on {len(inputs)} inputs"):
            outputs = run_artifact(handler, tmp, inputs, spec, options)
            own = probe.tolerance if probe is not None and probe.same_as_model else tolerance
            report = check_parity(outputs, references, own, format_name=handler.name,
                                  precision=options.precision, output_name=spec.output_name)
        if probe is not None and probe.same_as_model:
            report.probe_seed = probe.seed
        elif probe is not None and not report.refused:
            with console.stage(f"[{handler.name}] convert {spec.name} on probe weights and gate it"):
                _convert(handler, probe.deploy, spec, tmp_probe, options)
                raise_if_interrupted()
                probe_outputs = run_artifact(handler, tmp_probe, inputs, spec, options)
                report.probe = check_parity(probe_outputs, probe.references, probe.tolerance, format_name=handler.name,
                                            precision=options.precision, output_name=spec.output_name)
                report.probe_seed = probe.seed
            if console.verbose:
                shares = ", ".join(f"{name} {share:.1%}" for name, share in report.probe.input_share().items())
                console.note(f"\\[{handler.name}] input-dependent share of the logits on probe weights: {shares}")
        if console.verbose:
            shares = ", ".join(f"{name} {share:.2%}" for name, share in report.input_share().items())
            console.note(f"\\[{handler.name}] input-dependent share of the logits on the model's weights: {shares}")
        if report.passed and _reduced_precision(handler, options):
            if probe is None or probe.same_as_model:  # the artifact's own path (--no-probe: on the model's weights)
                model, path_references, converted = deploy, references, tmp
            else:
                model, path_references, converted = probe.deploy, probe.references, tmp_probe
            weights = "the model's weights" if probe is None else "probe weights"
            with console.stage(f"[{handler.name}] the same path at fp32 on {weights}, against the fp32 bound"):
                report.fp32_path = _gate_fp32_path(handler, model, spec, options, converted, tmp_fp32, inputs,
                                                   path_references)
        if not report.passed:
            raise ParityError(report)

        with console.stage(f"[{handler.name}] write {final.name} and its manifest"):
            artifact = _describe(handler, deploy, spec, options, final, tmp, report, own, convert_seconds,
                                 started)
            tmp_manifest.write_text(json.dumps(artifact.to_dict(), indent=2, default=_json_default) + "\n")
            raise_if_interrupted()  # the last moment to stop before the files land
            # the artifact lands first, then its manifest: load_artifact refuses an artifact without one
            remove_path(manifest_path_for(final))
            if final.is_dir():
                remove_path(final)
            os.replace(tmp, final)
            os.replace(tmp_manifest, manifest_path_for(final))
    finally:
        for leftover in (tmp, tmp_manifest, tmp_probe, tmp_fp32, *handler.temp_paths(tmp),
                         *handler.temp_paths(tmp_probe), *handler.temp_paths(tmp_fp32)):
            remove_path(leftover)
    return artifact


def _reduced_precision(handler: FormatHandler, options: ExportOptions) -> bool:
    """Whether the artifact is at a precision below fp32 in a format that also converts at fp32."""
    return options.precision != "fp32" and "fp32" in capability(handler.name).precisions


def _gate_fp32_path(handler: FormatHandler, model: nn.Module, spec: ModelSpec, options: ExportOptions,
                    converted: Path, tmp_fp32: Path, inputs: list[np.ndarray],
                    references: dict[str, list[np.ndarray]]) -> ParityReport:
    """The conversion path of ``converted`` (a reduced-precision artifact of ``model``) gated at fp32: the fp32
    file its conversion wrote on the way (``fp32_intermediate``), else ``model`` converted again at fp32."""
    fp32_options = dataclasses.replace(options, precision="fp32", tolerance=None)
    intermediate = getattr(handler, "fp32_intermediate", lambda _path: None)(converted)
    if intermediate is None:
        _convert(handler, model, spec, tmp_fp32, fp32_options)
        raise_if_interrupted()
        intermediate = tmp_fp32
    outputs = run_artifact(handler, Path(intermediate), inputs, spec, fp32_options)
    return check_parity(outputs, references, tolerance_for(handler.name, "fp32"), format_name=handler.name,
                        precision="fp32", output_name=spec.output_name)


def _describe(handler: FormatHandler, deploy: nn.Module, spec: ModelSpec, options: ExportOptions, final: Path,
              tmp: Path, report: ParityReport, tolerance: Tolerance, convert_seconds: float,
              started: float) -> Artifact:
    """The artifact's manifest: what it is, where it came from, its parity figures."""
    layout = handler.input_layout(options)
    return Artifact(
        path=final, model=spec.name, format=handler.name, precision=options.precision,
        input_name=spec.input_name, input_shape=_input_shape(spec, layout),
        input_layout=layout, output_name=spec.output_name,
        mean=[float(m) for m in spec.mean], std=[float(s) for s in spec.std],
        crop_pct=float(spec.crop_pct), interpolation=spec.interpolation,
        params=int(count_params(deploy)), macs=_count_macs(deploy, spec),
        reparameterized=bool(options.reparameterize), sha256=sha256_of(tmp), size_bytes=size_on_disk(tmp),
        tool_versions=dict(handler.tool_versions()), git_commit=git_commit(), parity=report.to_dict(),
        options={**options.to_dict(), "tolerance": tolerance.to_dict(), "convert_seconds": convert_seconds,
                 "io": handler.io_details(tmp), **getattr(handler, "manifest_details", lambda _path: {})(tmp)},
        export_seconds=time.perf_counter() - started,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))


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
        raise_if_interrupted()  # a converter that turned Ctrl-C into an error of its own: still Ctrl-C
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
