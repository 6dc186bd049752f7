"""Command lines for ``python -m export.<fmt> MODEL`` and ``python -m export MODEL --formats ...``.

The flags are built from the formats' options classes (``export/options.py``): the common ones
(``--precision``, ``--input-size``, ``--no-reparam``, ``--quiet``) plus the format's own, with
their defaults in ``--help``; ``--out`` and ``--weights`` say where things are. A flag the format
does not take is refused by argparse. With several formats, each flag goes to the formats that
take it, and one that none of them takes is refused, even when its value is the default.
The callers pass the handlers (a format module its own, ``python -m export`` the table in
``export/formats.py``), so this module sits above the formats without importing them.
Exit status: 0 exported, 1 parity failed, 2 bad usage or input, 3 converter failure or missing
backend; any other exception is a bug and is raised as it is.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from export.capabilities import CAPABILITIES, capability, check_options
from export.common import FormatHandler, export_model
from export.errors import ExportError, InputPathError, MissingDependencyError, ParityError, UsageError
from export.options import ExportOptions, flag_of, help_of, own_fields
from models import CheckpointError, DeployCheckpointError, ModelSpec, UnknownModelError, create_model, model_spec

EXIT_OK, EXIT_PARITY, EXIT_USAGE, EXIT_CONVERTER = 0, 1, 2, 3

# what the person running the command can fix: a name, a flag, a size, a path, a checkpoint (unreadable, of
# another model, not fitting: CheckpointFormatError, CheckpointMismatchError, DeployCheckpointError)
USAGE_ERRORS = (UsageError, UnknownModelError, CheckpointError)


def _cli_fields(options_class: type[ExportOptions]) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(options_class) if f.metadata["cli"]]


def _add_option_flag(parser: argparse.ArgumentParser, field: dataclasses.Field, help_text: str, **extra: Any) -> None:
    # SUPPRESS: a flag not on the command line leaves no attribute, so "given" needs no second parse
    parser.add_argument(flag_of(field), dest=field.name, default=argparse.SUPPRESS, help=help_text,
                        **field.metadata["argparse"], **extra)


def _add_command_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="registered model name (`python -m models list`)")
    parser.add_argument("--out", default="artifacts", type=Path,
                        help="output directory; the artifact goes to OUT/<model>/ (default: artifacts/)")
    parser.add_argument("--weights", metavar="PATH",
                        help="local checkpoint to load: .pth/.bin/.safetensors or a Hugging Face hub snapshot folder, "
                             "in our, timm's or the official layout (nothing is downloaded)")


def build_parser(format_name: str) -> argparse.ArgumentParser:
    """``python -m export.<format_name>``: the command's arguments and the format's options, nothing else."""
    cap = capability(format_name)
    parser = argparse.ArgumentParser(
        prog=f"python -m export.{format_name}",
        description=f"Export a registered model to {format_name} ({cap.suffix}) behind the parity gate. "
                    f"Precisions: {', '.join(cap.precisions)}. Needs: {cap.install_hint}.")
    _add_command_args(parser)
    for field in _cli_fields(cap.options_class):
        extra = {"choices": cap.precisions} if field.name == "precision" else {}
        _add_option_flag(parser, field, help_of(field), **extra)
    return parser


def build_multi_parser() -> argparse.ArgumentParser:
    """``python -m export``: the common options plus every format's own, each labelled with its formats."""
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a registered model to several formats, each behind the parity gate.")
    _add_command_args(parser)
    parser.add_argument("--formats", default=",".join(CAPABILITIES),
                        help=f"comma-separated formats among {', '.join(CAPABILITIES)} (default: all)")
    all_precisions = sorted({p for cap in CAPABILITIES.values() for p in cap.precisions})
    for field in _cli_fields(ExportOptions):
        if field.name == "precision":
            _add_option_flag(parser, field, f"{field.metadata['help']} (default: each format's own)",
                             choices=all_precisions)
        else:
            _add_option_flag(parser, field, help_of(field))
    takers: dict[str, list[str]] = {}
    fields: dict[str, dataclasses.Field] = {}
    for name, cap in CAPABILITIES.items():
        for field in own_fields(cap.options_class):
            if field.metadata["cli"]:
                takers.setdefault(field.name, []).append(name)
                fields.setdefault(field.name, field)
    for option, field in fields.items():
        _add_option_flag(parser, field, f"{', '.join(takers[option])}: {help_of(field)}")
    return parser


def _given(args: argparse.Namespace, options_class: type[ExportOptions]) -> dict[str, Any]:
    """The options fields of ``options_class`` that were on the command line."""
    return {f.name: getattr(args, f.name) for f in _cli_fields(options_class) if hasattr(args, f.name)}


def _load_model(name: str, weights: str | None) -> tuple[nn.Module, ModelSpec]:
    spec = model_spec(name)  # UnknownModelError lists the closest names
    try:
        try:
            model = create_model(name, weights=weights)
        except DeployCheckpointError:
            # a checkpoint saved from the deploy form (`python -m reparam NAME --out PATH`) loads into that form;
            # the gate then has one reference (reparameterizing a deploy model is the identity)
            model = create_model(name, weights=weights, deploy=True)
    except FileNotFoundError as error:
        if weights is None:
            raise
        raise InputPathError(str(error)) from error  # the --weights path: the user's to fix
    return model, spec


def _report(error: BaseException) -> int:
    """Print an error a person can act on; return the exit status it maps to. A bug is raised as it is."""
    if isinstance(error, ParityError):
        status = EXIT_PARITY
    elif isinstance(error, USAGE_ERRORS):
        status = EXIT_USAGE
    elif isinstance(error, (ExportError, MissingDependencyError, ImportError)):
        status = EXIT_CONVERTER
    else:
        raise error
    print(f"error: {error}", file=sys.stderr)
    return status


def run_format_cli(handler: FormatHandler, argv: list[str] | None = None) -> int:
    """``python -m export.<format>`` for the format of ``handler``: parse, load, export, report; returns
    the exit status. The format module passes its own handler, so this module imports no format."""
    args = build_parser(handler.name).parse_args(argv)
    options_class = capability(handler.name).options_class
    options = options_class(**_given(args, options_class))
    handler.prepare_command_line()
    try:
        check_options(handler.name, options)  # a bad flag value fails before the model is built
        model, spec = _load_model(args.model, args.weights)
        export_model(handler, model, spec, args.out, options)
    except Exception as error:  # noqa: BLE001 - mapped to a message and an exit status, or re-raised
        return _report(error)
    return EXIT_OK


def run_multi_cli(handlers: Mapping[str, FormatHandler], argv: list[str] | None = None) -> int:
    """``python -m export MODEL --formats onnx,coreml,tflite``: each format in turn; worst status wins.

    ``handlers``: format name -> handler, for every format of the capability table (``export.formats.HANDLERS``).
    """
    parser = build_multi_parser()
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in CAPABILITIES]
    if unknown or not formats:
        parser.error(f"unknown format(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(CAPABILITIES)}")
    given = {name: value for cap in CAPABILITIES.values() for name, value in _given(args, cap.options_class).items()}
    taken = {f.name for name in formats for f in dataclasses.fields(capability(name).options_class)}
    refused = [name for name in given if name not in taken]
    if refused:  # checked on what was typed, not on whether it differs from a default
        flags = {f.name: flag_of(f) for cap in CAPABILITIES.values() for f in dataclasses.fields(cap.options_class)}
        print(f"error: {', '.join(flags[name] for name in refused)} {'is' if len(refused) == 1 else 'are'} "
              f"taken by none of the formats {', '.join(formats)}", file=sys.stderr)
        return EXIT_USAGE
    for format_name in formats:  # as python -m export.<format> does: our progress, not the converters' chatter
        handlers[format_name].prepare_command_line()
    try:
        model, spec = _load_model(args.model, args.weights)
    except Exception as error:  # noqa: BLE001
        return _report(error)
    status = EXIT_OK
    for format_name in formats:
        options_class = capability(format_name).options_class
        try:
            # a format flag goes only to the formats that take it
            export_model(handlers[format_name], model, spec, args.out, options_class(**_given(args, options_class)))
        except Exception as error:  # noqa: BLE001
            status = max(status, _report(error))
    return status
