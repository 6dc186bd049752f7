"""``python -m profiling ios MODEL...``: Core ML latency on this Mac or a USB-connected iPhone/iPad.

    python -m profiling ios --list                                   # connected iPhones/iPads
    python -m profiling ios repvit_m0_9 --mac --compute-units ALL,CPU_ONLY
    python -m profiling ios repvit_m0_9 --device "Jane's iPhone" --team ABCDE12345

MODEL is a registry name (the .mlpackage is reused or exported with ``export.coreml``) or a path to
an ``.mlpackage``. Needs macOS (and Xcode for a phone); elsewhere it exits with status 2 saying so.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from export.artifact import load_artifact
from profiling.artifacts import DEFAULT_ARTIFACTS, ensure_artifact
from profiling.cli.common import CliError, results_table, split_list, start_run
from profiling.ios.coreml_device import (AppleBenchSettings, AppleToolsUnavailable, benchmark, choose_device,
                                         list_devices, require_macos)
from profiling.runners.coreml import COMPUTE_UNITS
from profiling.store import Store

HELP = "Core ML latency on this Mac or a connected iPhone/iPad (macOS with Xcode)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", metavar="MODEL", help="registry names or .mlpackage paths")
    parser.add_argument("--list", action="store_true", help="list connected iPhones/iPads and exit")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--device", help="name or UDID of the iPhone/iPad (default: the only one connected)")
    target.add_argument("--mac", action="store_true", help="measure on this Mac instead of a phone")
    parser.add_argument("--team", help="Apple development team id that signs the modelrunner app (phones)")
    parser.add_argument("--compute-units", default="ALL", help=f"comma-separated from {', '.join(COMPUTE_UNITS)}")
    parser.add_argument("--iterations", type=int, default=100, help="timed predictions (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed predictions first (default 10)")
    parser.add_argument("--load-iterations", type=int, default=3, help="timed model loads (default 3)")
    parser.add_argument("--precision", default="fp16", choices=("fp32", "fp16"), help="artifact precision")
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="where artifacts are found/exported")
    parser.add_argument("--label", default="", help="a note stored with the run")


def main(args: argparse.Namespace, console: Console) -> int:
    units = split_list(args.compute_units, COMPUTE_UNITS, "compute unit")
    settings = AppleBenchSettings(iterations=args.iterations, warmup_runs=args.warmup,
                                  load_iterations=args.load_iterations)
    if not args.list and not args.models:
        raise CliError("name at least one MODEL (registry name or .mlpackage), or use --list")
    try:
        require_macos(for_phone=not args.mac)
        if args.list:
            for device in list_devices():
                console.print(f"{device.name}\t{device.udid}\tiOS {device.os_version} ({device.os_build_number})")
            return 0
        device = None if args.mac else choose_device(list_devices(), args.device)
    except AppleToolsUnavailable as error:
        raise CliError(str(error)) from None
    results = []
    with Store(args.db) as store:
        run_id = start_run(store, args, args.label)
        for model in args.models:
            if model.endswith(".mlpackage"):
                artifact = load_artifact(Path(model))
            else:
                artifact = ensure_artifact(model, "coreml", args.precision, None, args.artifacts)[0]
            for unit in units:
                try:
                    result = benchmark(artifact, device=device, compute_units=unit, settings=settings,
                                       team_id=args.team)
                except AppleToolsUnavailable as error:
                    raise CliError(str(error)) from None
                result.run_id = run_id
                store.insert(result)
                results.append(result)
    console.print(results_table(results, f"run {run_id}"))
    return 0
