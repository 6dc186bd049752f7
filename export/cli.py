"""Command lines for ``python -m export.<fmt> MODEL`` and ``python -m export MODEL --formats ...``.

The flags are built from the formats' options classes (``export/options.py``): the common ones
(``--precision``, ``--input-size``, ``--no-reparam``, ``--quiet``) plus the format's own, with
their defaults in ``--help``; ``--out`` and ``--weights`` say where things are, ``--verbose`` and
``--json`` how the result is shown. A flag the format does not take is refused by argparse. With
several formats, each flag goes to the formats that take it, and one that none of them takes is
refused, even when its value is the default. The callers pass the handlers (a format module its
own, ``python -m export`` the table in ``export/formats.py``), so this module sits above the
formats without importing them.

What it prints: stage lines with times on stderr; on stdout the summary (``--quiet``: only each
artifact's path; ``--json``: one document ``{"model", "artifacts": [...], "failures": [...],
"exit_status", "log"}``). The converters' own output goes to a log file named after the summary.
Exit status (``mobilelat.errors``): 0 exported, 1 parity failed, 2 bad usage or input, 3 converter
failure or missing backend, 130 interrupted; with several formats the worst wins. Any other
exception is a bug and is raised as it is.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.markup import escape
from torch import nn

from export.artifact import Artifact
from export.capabilities import CAPABILITIES, capability, check_options
from export.common import FormatHandler, export_model
from export.console import artifact_record, summary_table
from export.errors import ExportError, InputPathError, MissingDependencyError, ParityError
from export.options import ExportOptions, flag_of, help_of, own_fields
from mobilelat.cli import ArgumentParser, raise_if_interrupted, run_cli
from mobilelat.console import Console, add_output_flags
from mobilelat.errors import EXIT_CHECK_FAILED, EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, UsageError
from models import DeployCheckpointError, ModelSpec, create_model, model_spec
from models.probe import PROBE_PREFIX, name_seed, probe_model

# what 1 and 3 mean for an export; a checkpoint that cannot be used (models.CheckpointError) is a UsageError
EXIT_PARITY, EXIT_CONVERTER = EXIT_CHECK_FAILED, EXIT_INCOMPLETE


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
                             "in our, timm's or the official layout (nothing is downloaded; default: probe weights "
                             "seeded from the model name, see docs/export.md)")
    add_output_flags(parser, quiet_flag=False)  # --quiet is an options field


def build_parser(format_name: str) -> argparse.ArgumentParser:
    """``python -m export.<format_name>``: the command's arguments and the format's options, nothing else."""
    cap = capability(format_name)
    parser = ArgumentParser(
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
    parser = ArgumentParser(
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
    """The model on ``weights``; without them, on its probe weights seeded from its name
    (``models.probe``): reproducible bytes, and every layer reaches the logits."""
    spec = model_spec(name)  # UnknownModelError lists the closest names
    if weights is None:
        return probe_model(name), spec
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


class _Outcome:
    """What the formats of one command produced, for the summary or the JSON document."""

    def __init__(self, model: str):
        self.model = model
        self.artifacts: list[Artifact] = []
        self.failures: list[dict] = []  # {"format", "error", "exit_status"}
        self.status = EXIT_OK

    def failed(self, format_name: str, error: BaseException) -> None:
        status = _status_of(error)
        message = str(error)
        if not message.startswith(f"[{format_name}]"):
            message = f"[{format_name}] {message}"
        first, _, rest = message.partition("\n")
        sys.stderr.write(f"error: {first}\n" + (f"{rest}\n" if rest else ""))
        self.failures.append({"format": format_name, "error": message, "exit_status": status})
        self.status = max(self.status, status)


def _status_of(error: BaseException) -> int:
    """The exit status an export error maps to; a bug is raised as it is."""
    if isinstance(error, ParityError):
        return EXIT_PARITY
    if isinstance(error, UsageError):
        return EXIT_USAGE
    if isinstance(error, (ExportError, MissingDependencyError, ImportError)):
        return EXIT_CONVERTER
    raise error


def _export_each(handlers: list[FormatHandler], options: dict[str, ExportOptions], args: argparse.Namespace,
                 console: Console, outcome: _Outcome) -> None:
    """Load the model once, export each format in turn; a format's failure is recorded, the others go on."""
    errors: list[tuple[str, BaseException]] = []
    with console.capture():
        model, spec = _load_model(args.model, args.weights)
        for handler in handlers:
            try:
                outcome.artifacts.append(export_model(handler, model, spec, args.out, options[handler.name], console))
            except Exception as error:  # noqa: BLE001 - mapped to a status below, or re-raised as a bug
                raise_if_interrupted()  # an error that stands for Ctrl-C stops every format
                _status_of(error)
                errors.append((handler.name, error))
    for format_name, error in errors:  # after the capture: the lines reach the real stderr
        outcome.failed(format_name, error)


def _show(outcome: _Outcome, console: Console, quiet: bool) -> None:
    """The summary (stdout), each path alone with --quiet, or the one JSON document."""
    if console.json_mode:
        console.emit_json({"model": outcome.model, "artifacts": [artifact_record(a) for a in outcome.artifacts],
                           "failures": outcome.failures, "exit_status": outcome.status,
                           "log": str(console.log_path) if console.log_path else None})
        return
    for artifact in outcome.artifacts:
        console.print(escape(str(artifact.path)) if quiet else summary_table(artifact))
    if console.log_path and not quiet:
        console.note(f"[dim]{escape(console.log_line())}[/dim]")


def run_format_cli(handler: FormatHandler, argv: list[str] | None = None) -> int:
    """``python -m export.<format>`` for the format of ``handler``: parse, load, export, report; returns
    the exit status. The format module passes its own handler, so this module imports no format."""
    return run_cli(lambda arguments: _format_main(handler, arguments), argv)


def _format_main(handler: FormatHandler, argv: list[str]) -> int:
    args = build_parser(handler.name).parse_args(argv)
    options_class = capability(handler.name).options_class
    options = options_class(**_given(args, options_class), weights=_weights_text(args))
    check_options(handler.name, options)  # a bad flag value fails before the model is built
    console = Console(quiet=options.quiet, verbose=args.verbose, json_mode=args.json, command=f"export-{handler.name}")
    handler.prepare_command_line()
    outcome = _Outcome(args.model)
    _export_each([handler], {handler.name: options}, args, console, outcome)
    _show(outcome, console, options.quiet)
    return outcome.status


def run_multi_cli(handlers: Mapping[str, FormatHandler], argv: list[str] | None = None) -> int:
    """``python -m export MODEL --formats onnx,coreml,tflite``: each format in turn; worst status wins.

    ``handlers``: format name -> handler, for every format of the capability table (``export.formats.HANDLERS``).
    """
    return run_cli(lambda arguments: _multi_main(handlers, arguments), argv)


def _multi_main(handlers: Mapping[str, FormatHandler], argv: list[str]) -> int:
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
        raise UsageError(f"{', '.join(flags[name] for name in refused)} {'is' if len(refused) == 1 else 'are'} "
                         f"taken by none of the formats {', '.join(formats)}")
    options = {}
    for format_name in formats:  # a format flag goes only to the formats that take it
        options_class = capability(format_name).options_class
        options[format_name] = options_class(**_given(args, options_class), weights=_weights_text(args))
        check_options(format_name, options[format_name])  # every flag value checked before any model work
    quiet = bool(getattr(args, "quiet", False))
    console = Console(quiet=quiet, verbose=args.verbose, json_mode=args.json, command="export")
    for format_name in formats:  # as python -m export.<format> does: our progress, not the converters' chatter
        handlers[format_name].prepare_command_line()
    outcome = _Outcome(args.model)
    _export_each([handlers[f] for f in formats], options, args, console, outcome)
    _show(outcome, console, quiet)
    return outcome.status


def _weights_text(args: argparse.Namespace) -> str:
    """What the manifest records as the weights: the --weights path, or the probe seed."""
    if args.weights is not None:
        return str(args.weights)
    return f"{PROBE_PREFIX}{name_seed(model_spec(args.model).name)}"
