"""``python -m profiling SUBCOMMAND ...``: the profiling CLI.

Subcommands are registered in :data:`SUBCOMMANDS` as ``(name, module)``. A subcommand module
defines ``HELP`` (one line), ``add_arguments(parser)`` and ``main(args, console) -> int`` (the
exit status); every subcommand also gets ``--db PATH`` (default ``results/latency.db``) as
``args.db``. Adding a subcommand is one line here.

Exit status 2 means the caller's mistake, printed as one line: a
:class:`~profiling.errors.UsageError` (the CLI's own ``CliError`` included), a store that cannot
be used (:class:`~profiling.store.StoreError`) or an unknown model name. Any other exception is a
bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType

from rich.console import Console

from models import UnknownModelError
from profiling import importer
from profiling.android import cli as android_cli
from profiling.cli import compare, report, run, show
from profiling.errors import UsageError
from profiling.ios import cli as ios_cli
from profiling.store import DEFAULT_DB, StoreError

SUBCOMMANDS: list[tuple[str, ModuleType]] = [
    ("run", run),
    ("show", show),
    ("report", report),
    ("compare", compare),
    ("android", android_cli),
    ("ios", ios_cli),
    ("import", importer),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m profiling",
                                     description="Real-latency profiling: measure, store, show, report, compare.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"results database (default {DEFAULT_DB})")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for name, module in SUBCOMMANDS:
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
    try:
        return args._main(args, console)
    except (UsageError, StoreError, UnknownModelError) as error:
        console.print(f"[red]error:[/red] {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
