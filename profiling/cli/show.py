"""``python -m profiling show``: stored results as a table, CSV or JSON, filtered."""
from __future__ import annotations

import argparse
import csv
import json
import sys

from rich.console import Console
from rich.table import Table

from profiling.cli.common import CliError, existing_store, flat_record, query_filters, results_table
from profiling.store import Store

HELP = "show stored results (filter by model, format, runtime, run, device) as a table, CSV or JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model name(s), comma-separated")
    parser.add_argument("--format", help="artifact format(s): onnx, tflite, coreml, torch")
    parser.add_argument("--runtime", help="runtime(s): onnxruntime, litert, torch, coreml, ...")
    parser.add_argument("--precision", help="precision(s): fp32, fp16, int8_dynamic, int8_full")
    parser.add_argument("--device", help="device name(s) (host CPU model or phone model)")
    parser.add_argument("--run", help="run id, unique prefix, 'latest' or 'latest~N'")
    parser.add_argument("--limit", type=int, help="at most this many rows (the most recent)")
    parser.add_argument("--as", dest="output", choices=("table", "csv", "json"), default="table",
                        help="output format (json includes every sample)")
    parser.add_argument("--runs", action="store_true", help="list the runs instead of measurements")
    parser.add_argument("--ops", type=int, metavar="ID",
                        help="the per-op-type profile of measurement ID (recorded with `run --op-profile`)")


def main(args: argparse.Namespace, console: Console) -> int:
    with existing_store(args.db) as store:
        if args.runs:
            return _show_runs(store.runs(), args.output, console)
        if args.ops is not None:
            return _show_ops(store, args.ops, args.output, console)
        filters = query_filters(args, ("model", "format", "runtime", "precision", "device"))
        filters["run_id"] = store.resolve_run(args.run) if args.run else None
        results = store.query(**filters)
    if args.limit is not None:
        results = results[-args.limit:] if args.limit > 0 else []
    if args.output == "json":
        _print_json([r.to_dict() for r in results])
    elif args.output == "csv":
        _print_csv([flat_record(r) for r in results], empty_header=["id"])
    else:
        console.print(results_table(results, f"{len(results)} result(s) in {args.db}"))
        unstable = sum(r.stats.unstable for r in results)
        if unstable:
            console.print(f"[red]{unstable} result(s) flagged unstable[/red] (high CV or drift between rounds)")
    return 0


def _print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=1)
    sys.stdout.write("\n")


def _print_csv(rows: list[dict], empty_header: list[str]) -> None:
    """Rows under a header of the first row's keys (``empty_header`` when there are no rows)."""
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else empty_header)
    writer.writeheader()
    writer.writerows(rows)


def _show_runs(runs: list[dict], output: str, console: Console) -> int:
    if output == "json":
        _print_json(runs)
    elif output == "csv":
        _print_csv(runs, empty_header=["run_id"])
    else:
        table = Table(title=f"{len(runs)} run(s)")
        for column in ("run_id", "started_at", "measurements", "label", "device_name", "git_commit", "command"):
            table.add_column(column)
        for run in runs:
            table.add_row(*(str(run.get(c) or "") for c in ("run_id", "started_at", "measurements", "label",
                                                               "device_name", "git_commit", "command")))
        console.print(table)
    return 0


def _show_ops(store: Store, row_id: int, output: str, console: Console) -> int:
    matches = store.query(id=row_id)
    if not matches:
        raise CliError(f"no measurement with id {row_id} in {store.path}")
    result = matches[0]
    profile = result.extra.get("op_profile")
    if not profile:
        raise CliError(f"measurement {row_id} has no op profile; measure with `python -m profiling run MODEL "
                       f"--formats onnx --op-profile`")
    if output == "json":
        _print_json(profile)
        return 0
    if output == "csv":
        _print_csv(profile["by_op_type"], empty_header=["op_type", "ms_per_run", "share", "nodes"])
        return 0
    table = Table(title=f"{result.model} {result.runtime} {result.threads}t: kernel time by op type, "
                        f"{profile['kernel_ms']:.3f} of {profile['model_run_ms']:.3f} ms per run "
                        f"(profiled over {profile['runs']} runs)")
    for column, justify in (("op type", "left"), ("ms / run", "right"), ("share", "right"), ("nodes", "right")):
        table.add_column(column, justify=justify)
    for row in profile["by_op_type"]:
        table.add_row(row["op_type"], f"{row['ms_per_run']:.3f}", f"{row['share']:.1%}", str(row["nodes"]))
    console.print(table)
    return 0
