"""``python -m profiling ios MODEL...``: Core ML latency on this Mac or a USB-connected iPhone/iPad.

    python -m profiling ios --list                                   # iPhones/iPads devicectl lists, with state
    python -m profiling ios repvit_m0_9 --mac --compute-units ALL,CPU_ONLY
    python -m profiling ios repvit_m0_9 --device "Jane's iPhone" --team ABCDE12345

MODEL is a registry name (the .mlpackage is reused or exported with ``export.coreml``) or a path to
an ``.mlpackage``. Needs macOS (and Xcode for a phone); elsewhere it exits with status 2 saying so.
On a phone, coremltools' modelrunner app is built and installed once for the whole sweep (every
model and compute unit), and its console session is stopped when the sweep ends. A job the phone
side fails (the phone locked, the app gone) is reported and stops the sweep: what was measured
before it stays stored; the exit status is then 1.
"""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from export.artifact import load_artifact
from profiling.artifacts import DEFAULT_ARTIFACTS, ensure_artifact
from profiling.cli.common import CliError, results_table, split_list, start_run
from profiling.ios import coreml_device
from profiling.runners.coreml import COMPUTE_UNITS
from profiling.store import Store

HELP = "Core ML latency on this Mac or a connected iPhone/iPad (macOS with Xcode)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", metavar="MODEL", help="registry names or .mlpackage paths")
    parser.add_argument("--list", action="store_true", help="list the iPhones/iPads devicectl knows and exit")
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
    settings = coreml_device.AppleBenchSettings(iterations=args.iterations, warmup_runs=args.warmup,
                                                load_iterations=args.load_iterations)
    if not args.list and not args.models:
        raise CliError("name at least one MODEL (registry name or .mlpackage), or use --list")
    try:
        coreml_device.require_macos(for_phone=not args.mac)
        if args.list:
            for device in coreml_device.list_devices():
                console.print(escape(f"{device.name}\t{device.udid}\tiOS {device.os_version} "
                                     f"({device.os_build_number})\t{coreml_device._state(device)}"))
            return 0
        device = None if args.mac else coreml_device.choose_device(coreml_device.list_devices(), args.device)
        if device is not None and not args.team:
            raise CliError("a phone needs the modelrunner app signed: pass --team TEAM_ID "
                           "(Xcode > Settings > Accounts shows your development team)")
    except coreml_device.AppleToolsUnavailable as error:
        raise CliError(str(error)) from None
    artifacts = []
    for model in args.models:  # every artifact before the phone is touched: an export failure costs no build
        if model.endswith(".mlpackage"):
            artifacts.append(load_artifact(Path(model)))
        else:
            artifacts.append(ensure_artifact(model, "coreml", args.precision, None, args.artifacts)[0])
    results, stopped, run_id = [], None, None
    try:
        if device is None:
            session, info = contextlib.nullcontext(None), None
        else:
            session = coreml_device.prepared_phone(device, args.team)
            info = coreml_device.phone_device_info(device, coreml_device.devicectl_hardware().get(device.udid))
        with session as target, Store(args.db) as store:
            for artifact in artifacts:
                for unit in units:
                    result = coreml_device.benchmark(artifact, target=target, device_info=info,
                                                     compute_units=unit, settings=settings)
                    if run_id is None:  # the run starts with its first result: a failed start stores nothing
                        run_id = start_run(store, args, args.label,
                                           device_name=None if device is None else device.name)
                    result.run_id = run_id
                    store.insert(result)
                    results.append(result)
    except coreml_device.AppleToolsUnavailable as error:
        if not results:
            raise CliError(str(error)) from None
        stopped = error
    if results:
        console.print(results_table(results, f"run {run_id}"))
    if stopped is not None:
        console.print(f"[red]stopped after {len(results)} of {len(artifacts) * len(units)} measurement(s): "
                      f"{escape(str(stopped))}[/red]")
        return 1
    return 0
