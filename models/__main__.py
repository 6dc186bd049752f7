"""``python -m models``: list the registry, or show one model in full (``--json``: one JSON document)."""
from __future__ import annotations

import argparse
import sys

from rich.table import Table

from mobilelat.cli import ArgumentParser, run_cli
from mobilelat.console import Console, add_output_flags
from mobilelat.errors import UsageError
from models.complexity import count_macs, count_params
from models.registry import create_model, list_models, model_spec


def _measure(name: str) -> tuple[int, int]:
    spec = model_spec(name)
    model = create_model(name).eval()
    return count_params(model), count_macs(model, spec.input_shape())


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _record(name: str, params: int, macs: int) -> dict:
    """One model for ``--json``: its spec fields and the measured counts at its own input size."""
    return {**model_spec(name).to_dict(), "measured_params": params, "measured_macs": macs}


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    names = list_models(args.pattern)
    if not names:
        raise UsageError(f"no model matches {args.pattern!r}; patterns are shell-style, e.g. 'repvit_*' "
                         f"(`python -m models list` shows all)")
    table = Table(title=f"mobilelat models ({len(names)})")
    for column in ("name", "params (M)", "GMACs", "input", "top-1", "published latency"):
        table.add_column(column, justify="left" if column in ("name", "input", "published latency") else "right")
    records = []
    with console.progress(len(names)) as progress:  # building every model takes a while
        for name in names:
            progress.update(f"counting parameters and MACs of {name}")
            spec = model_spec(name)
            params, macs = _measure(name)
            records.append(_record(name, params, macs))
            latency = (f"{spec.published_latency_ms:g} ms ({spec.published_latency_device})"
                       if spec.published_latency_ms else "-")
            table.add_row(name, f"{params / 1e6:.3f}", f"{macs / 1e9:.2f}",
                          "x".join(map(str, spec.input_size[1:])), _fmt(spec.top1, "{:.1f}"), latency)
            progress.advance()
    if console.json_mode:
        console.emit_json(records)
    else:
        console.print(table)
    return 0


def cmd_info(args: argparse.Namespace, console: Console) -> int:
    spec = model_spec(args.name)
    params, macs = _measure(args.name)
    if console.json_mode:
        console.emit_json(_record(args.name, params, macs))
        return 0
    table = Table(title=args.name, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for field, value in spec.to_dict().items():
        if field == "extra" and not value:
            continue
        table.add_row(field, str(value))
    ref_params = f" (reference {spec.params_m:.3f}M)" if spec.params_m else ""
    ref_macs = f" (reference {spec.gmacs:.2f})" if spec.gmacs else ""
    table.add_row("measured params", f"{params:,} = {params / 1e6:.3f}M{ref_params}")
    table.add_row("measured GMACs", f"{macs / 1e9:.3f}{ref_macs} at {spec.input_shape()}")
    console.print(table)
    return 0


COMMANDS = {"list": cmd_list, "info": cmd_info}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m models", description="Inspect the model registry.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="table of registered models (params, GMACs, input, latency)")
    p_list.add_argument("pattern", nargs="?", default="*", help="shell-style name filter, e.g. 'repvit_*'")
    add_output_flags(p_list)
    p_info = sub.add_parser("info", help="one model in full: spec, reference and measured figures")
    p_info.add_argument("name")
    add_output_flags(p_info)
    return parser


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    console = Console.from_args(args, command=f"models-{args.command}")
    with console.capture():
        return COMMANDS[args.command](args, console)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns its exit status (2: an unknown name or a pattern nothing matches)."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
