"""``python -m models``: list the registry, or show one model in full."""
from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from models.complexity import count_macs, count_params
from models.registry import UnknownModelError, create_model, list_models, model_spec


def _measure(name: str) -> tuple[int, int]:
    spec = model_spec(name)
    model = create_model(name).eval()
    return count_params(model), count_macs(model, spec.input_shape())


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    names = list_models(args.pattern)
    if not names:
        console.print(f"[red]no model matches {args.pattern!r}[/red]")
        return 1
    table = Table(title=f"mobilelat models ({len(names)})")
    for column in ("name", "params (M)", "GMACs", "input", "top-1", "published latency"):
        table.add_column(column, justify="left" if column in ("name", "input", "published latency") else "right")
    with console.status("building models to count parameters and MACs...") as status:
        for name in names:
            status.update(f"counting {name}...")
            spec = model_spec(name)
            params, macs = _measure(name)
            latency = (f"{spec.published_latency_ms:g} ms ({spec.published_latency_device})"
                       if spec.published_latency_ms else "-")
            table.add_row(name, f"{params / 1e6:.3f}", f"{macs / 1e9:.2f}",
                          "x".join(map(str, spec.input_size[1:])), _fmt(spec.top1, "{:.1f}"), latency)
    console.print(table)
    return 0


def cmd_info(args: argparse.Namespace, console: Console) -> int:
    spec = model_spec(args.name)
    params, macs = _measure(args.name)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models", description="Inspect the model registry.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="table of registered models (params, GMACs, input, latency)")
    p_list.add_argument("pattern", nargs="?", default="*", help="shell-style name filter, e.g. 'repvit_*'")
    p_info = sub.add_parser("info", help="one model in full: spec, reference and measured figures")
    p_info.add_argument("name")
    args = parser.parse_args(argv)
    console = Console()
    try:
        return {"list": cmd_list, "info": cmd_info}[args.command](args, console)
    except UnknownModelError as error:
        console.print(f"[red]error:[/red] {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
