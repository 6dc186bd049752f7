"""``python -m profiling SUBCOMMAND ...``: the profiling CLI.

Subcommands are registered in :data:`SUBCOMMANDS` as ``(name, module)``. A subcommand module
defines ``HELP`` (one line), ``add_arguments(parser)`` and ``main(args, console) -> int`` (the
exit status); ``console`` is a ``mobilelat.console.Console`` (``console.print`` writes a result on
stdout, ``console.note`` and ``console.progress`` go to stderr). Every subcommand also gets
``--db PATH`` (default ``results/latency.db``) as ``args.db`` and ``--verbose``. Adding a
subcommand is one line here.

The command runs in ``mobilelat.cli.run_cli``: exit status 2 means the caller's mistake, printed
as one line (a ``UsageError`` of any package, the store's ``StoreError`` included: a damaged or
newer database, an unknown run); 130 Ctrl-C; 141 a closed pipe (``show ... | head``). What
runtimes print goes to a log file (``--verbose`` shows it). Any other exception is a bug and
keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType

from mobilelat.cli import ArgumentParser, run_cli
from mobilelat.console import Console
from profiling import importer
from profiling.android import cli as android_cli
from profiling.cli import accuracy, compare, report, run, show
from profiling.ios import cli as ios_cli
from profiling.store import DEFAULT_DB
from profiling.sweep import cli as sweep_cli

SUBCOMMANDS: list[tuple[str, ModuleType]] = [
    ("run", run),
    ("show", show),
    ("report", report),
    ("compare", compare),
    ("sweep", sweep_cli),
    ("android", android_cli),
    ("ios", ios_cli),
    ("import", importer),
    ("accuracy", accuracy),
]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m profiling",
                            description="Real-latency profiling: measure, store, show, report, compare.")
    common = ArgumentParser(add_help=False)
    common.add_argument("--db", type=Path, default=DEFAULT_DB, help="results database")
    common.add_argument("--verbose", action="store_true",
                        help="show the runtimes' and converters' own output on stderr instead of logging it")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for name, module in SUBCOMMANDS:
        sub = subparsers.add_parser(name, parents=[common], help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_main=module.main)
    return parser


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    args.argv = argv  # recorded with a run as the command that made it
    console = Console.from_args(args, command=f"profiling-{args.command}")
    with console.capture():
        return args._main(args, console)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns its exit status."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
