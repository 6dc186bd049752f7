"""Command lines for ``python -m export.<fmt> MODEL`` and ``python -m export MODEL --formats ...``.

One parser builder for every format: the common flags (``--out``, ``--precision``, ``--input-size``,
``--no-reparam``, ``--weights``) plus only the flags the format's capability entry lists, so
``--help`` shows what the format accepts and a flag it does not take is refused by argparse.
Exit status: 0 exported, 1 parity failed, 2 bad usage or input, 3 converter failure or missing backend.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from export.capabilities import CAPABILITIES, UnsupportedOptionError, capability

EXIT_OK, EXIT_PARITY, EXIT_USAGE, EXIT_CONVERTER = 0, 1, 2, 3

# format-specific flags: ExportOptions field -> (argparse kwargs)
_FORMAT_FLAGS: dict[str, dict] = {
    "dynamic_batch": dict(action="store_true", help="onnx: symbolic batch dimension (default: static batch 1)"),
    "opset": dict(type=int, default=18, help="onnx: opset version (17 or newer; default 18)"),
    "image_input": dict(action="store_true",
                        help="coreml: RGB image input (pixels 0..255) with mean/std folded into the model"),
    "coreml_target": dict(default=None, help="coreml: minimum deployment target, iOS16 (default), iOS17 or iOS18"),
    "nhwc": dict(action="store_true", help="tflite: channel-last input (N, H, W, C) as Android apps feed it"),
    "calibration_dir": dict(default=None, metavar="DIR",
                            help="tflite int8_full: folder of images to calibrate on (default: seeded synthetic images)"),
    "calibration_count": dict(type=int, default=32, help="tflite int8_full: calibration images (default 32)"),
}


def _input_size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        values = [int(p) for p in parts if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"input size must be N or HxW in pixels, got {text!r}") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"input size must be N or HxW with positive integers, got {text!r}")
    return values[0], values[1]


def _add_common(parser: argparse.ArgumentParser, precisions, default_precision: str | None) -> None:
    parser.add_argument("model", help="registered model name (`python -m models list`)")
    parser.add_argument("--out", default="artifacts", type=Path,
                        help="output directory; the artifact goes to OUT/<model>/ (default: artifacts/)")
    parser.add_argument("--precision", choices=precisions, default=default_precision,
                        help=f"numeric precision (default: {default_precision or 'each format default'})")
    parser.add_argument("--input-size", type=_input_size, metavar="HxW",
                        help="spatial input size, e.g. 256 or 256x320 (default: the model spec's)")
    parser.add_argument("--no-reparam", action="store_true",
                        help="export the training form instead of the reparameterized deploy form")
    parser.add_argument("--weights", metavar="PATH", help="local checkpoint to load: .pth/.bin/.safetensors or a "
                        "Hugging Face hub snapshot folder, in our, timm's or the official layout (nothing is downloaded)")
    parser.add_argument("--quiet", action="store_true", help="no progress or summary")


def build_parser(format_name: str) -> argparse.ArgumentParser:
    cap = capability(format_name)
    parser = argparse.ArgumentParser(
        prog=f"python -m export.{format_name}",
        description=f"Export a registered model to {format_name} ({cap.suffix}) behind the parity gate. "
                    f"Precisions: {', '.join(cap.precisions)}. Needs: {cap.install_hint}.")
    _add_common(parser, cap.precisions, cap.default_precision)
    for option in sorted(cap.options):
        parser.add_argument("--" + option.replace("_", "-"), dest=option, **_FORMAT_FLAGS[option])
    return parser


def build_multi_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a registered model to several formats, each behind the parity gate.")
    all_precisions = sorted({p for cap in CAPABILITIES.values() for p in cap.precisions})
    _add_common(parser, all_precisions, None)
    parser.add_argument("--formats", default="onnx,coreml,tflite",
                        help=f"comma-separated formats among {', '.join(CAPABILITIES)} (default: all)")
    for option, kwargs in _FORMAT_FLAGS.items():
        parser.add_argument("--" + option.replace("_", "-"), dest=option, **kwargs)
    return parser


def options_from_args(format_name: str, args: argparse.Namespace, parser_defaults: argparse.Namespace):
    """ExportOptions for one format: common flags, plus the format flags that were set on the command line."""
    from export.common import ExportOptions

    cap = capability(format_name)
    values = dict(precision=args.precision or cap.default_precision, input_size=args.input_size,
                  reparameterize=not args.no_reparam, quiet=args.quiet)
    for option in _FORMAT_FLAGS:
        if hasattr(args, option) and getattr(args, option) != getattr(parser_defaults, option, None):
            values[option] = getattr(args, option)
    return ExportOptions(**values)


def _load_model(name: str, weights: str | None):
    import models

    spec = models.model_spec(name)  # UnknownModelError lists the closest names
    try:
        model = models.create_model(name, weights=weights)
    except models.DeployCheckpointError:
        # a checkpoint saved from the deploy form (`python -m reparam NAME --out PATH`) loads into that form;
        # the gate then has one reference (reparameterizing a deploy model is the identity)
        model = models.create_model(name, weights=weights, deploy=True)
    return model, spec


def _export_one(format_name: str, model, spec, out_dir: Path, options) -> None:
    module = importlib.import_module(f"export.{format_name}")
    from export.common import export_model

    export_model(module.HANDLER, model, spec, out_dir, options)


def _report(error: BaseException) -> int:
    """Print an error a person can act on; return the exit status it maps to."""
    from export.common import ExportError, InputSizeError, MissingDependencyError, ParityError
    from models import UnknownModelError
    from models.weights import CheckpointError

    if isinstance(error, ParityError):
        print(f"error: {error}", file=sys.stderr)
        return EXIT_PARITY
    if isinstance(error, (UnknownModelError, InputSizeError, UnsupportedOptionError, FileNotFoundError, ValueError,
                          CheckpointError)):
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(error, (ExportError, MissingDependencyError, ImportError)):
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONVERTER
    raise error


def _quiet_litert_progress() -> None:
    """On the command line our own progress shows; litert-torch's per-stage log (read per call) does not."""
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")


def run_format_cli(format_name: str, argv: list[str] | None = None) -> int:
    """``python -m export.<format_name>``: parse, load, export, report; returns the exit status."""
    parser = build_parser(format_name)
    args = parser.parse_args(argv)
    _quiet_litert_progress()
    try:
        options = options_from_args(format_name, args, parser.parse_args([args.model]))
        model, spec = _load_model(args.model, args.weights)
        _export_one(format_name, model, spec, args.out, options)
    except Exception as error:  # noqa: BLE001 - mapped to a message and an exit status, or re-raised
        return _report(error)
    return EXIT_OK


def run_multi_cli(argv: list[str] | None = None) -> int:
    """``python -m export MODEL --formats onnx,coreml,tflite``: each format in turn; worst status wins."""
    parser = build_multi_parser()
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in CAPABILITIES]
    if unknown or not formats:
        parser.error(f"unknown format(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(CAPABILITIES)}")
    defaults = parser.parse_args([args.model])
    _quiet_litert_progress()
    if "coreml" in formats:  # as python -m export.coreml does: our progress, not coremltools' import chatter
        from export.coreml import quiet_converter_chatter

        quiet_converter_chatter()
    try:
        model, spec = _load_model(args.model, args.weights)
    except Exception as error:  # noqa: BLE001
        return _report(error)
    status = EXIT_OK
    for format_name in formats:
        cap = capability(format_name)
        try:
            if args.precision is not None and args.precision not in cap.precisions:
                raise UnsupportedOptionError(f"{format_name} export does not take --precision {args.precision}; "
                                             f"it takes {', '.join(cap.precisions)}")
            options = options_from_args(format_name, args, defaults)
            # a format flag given on the command line goes only to the formats that take it
            options = _drop_foreign_flags(format_name, options, args, defaults, formats)
            _export_one(format_name, model, spec, args.out, options)
        except Exception as error:  # noqa: BLE001
            status = max(status, _report(error))
    return status


def _drop_foreign_flags(format_name, options, args, defaults, formats):
    """Flags for another requested format are not an error here; flags no requested format takes are."""
    import dataclasses

    cap = capability(format_name)
    replacements = {}
    for option in _FORMAT_FLAGS:
        if getattr(args, option) == getattr(defaults, option) or option in cap.options:
            continue
        if not any(option in capability(f).options for f in formats):
            raise UnsupportedOptionError(f"--{option.replace('_', '-')} is taken by none of the formats "
                                         f"{', '.join(formats)}")
        replacements[option] = getattr(defaults, option)
    return dataclasses.replace(options, **replacements)
