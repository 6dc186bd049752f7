"""``python -m profiling SUBCOMMAND ...``: the profiling CLI.

Subcommands are registered in :data:`SUBCOMMANDS` as ``(name, module)``. A subcommand module
defines ``HELP`` (one line), ``add_arguments(parser)`` and ``main(args, console) -> int`` (the
exit status); every subcommand also gets ``--db PATH`` (default ``results/latency.db``) as
``args.db``. Keep the module's top level light (no torch / runtime imports): all of them are
imported to build ``--help``. Adding a subcommand is one line here.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from rich.console import Console

from profiling.cli.common import CliError
from profiling.store import DEFAULT_DB, StoreError

SUBCOMMANDS: list[tuple[str, str]] = [
    ("run", "profiling.cli.run"),
    ("show", "profiling.cli.show"),
    ("report", "profiling.cli.report"),
    ("compare", "profiling.cli.compare"),
    ("android", "profiling.android.cli"),
    ("ios", "profiling.ios.cli"),
    ("import", "profiling.importer"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m profiling",
                                     description="Real-latency profiling: measure, store, show, report, compare.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"results database (default {DEFAULT_DB})")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for name, module_name in SUBCOMMANDS:
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, parents=[common], help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # recorded with a run as the command that made it
    # piped or captured output is not wrapped at 80 columns: the tables are wide
    console = Console() if sys.stdout.isatty() else Console(width=200)
    from models import UnknownModelError  # imported here: models imports torch

    try:
        return args._main(args, console)
    except (CliError, StoreError, UnknownModelError) as error:
        console.print(f"[red]error:[/red] {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
