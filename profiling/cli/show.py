"""``python -m profiling show``: stored results as a table, CSV or JSON, filtered.

Every filter value is checked: a format or precision outside the known ones, or a model, runtime
or device the database has never seen (and, for a model, the registry neither), is an error that
names the closest values, never an empty table; ``--limit`` must be at least 1. Piped output
(``show --as csv | head -3``) stops quietly when the reader goes away (``mobilelat.cli``).
"""
from __future__ import annotations

import argparse
import csv
import difflib
import json

from rich.table import Table

import models
from export.capabilities import CAPABILITIES
from mobilelat.console import Console
from profiling.cli.accuracy import accuracy_table
from profiling.cli.common import CliError, existing_store, flat_record, query_filters, results_table
from profiling.runners import RUNNERS
from profiling.store import Store

HELP = "show stored results (filter by model, format, runtime, run, device) as a table, CSV or JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model name(s), comma-separated")
    parser.add_argument("--format", help="artifact format(s): onnx, tflite, coreml, torch")
    parser.add_argument("--runtime", help="runtime(s): onnxruntime, litert, torch, coreml, ...")
    parser.add_argument("--precision", help="precision(s): fp32, fp16, int8_dynamic, int8_full")
    parser.add_argument("--device", help="device name(s) (host CPU model or phone model)")
    parser.add_argument("--run", help="run id, unique prefix, 'latest' or 'latest~N'")
    parser.add_argument("--limit", type=int, help="at most this many rows (the most recent; at least 1)")
    parser.add_argument("--as", dest="output", choices=("table", "csv", "json"), default="table",
                        help="output format (json includes every sample)")
    parser.add_argument("--runs", action="store_true", help="list the runs instead of measurements")
    parser.add_argument("--accuracy", action="store_true",
                        help="list the accuracy rows (`profiling accuracy`) instead of measurements")
    parser.add_argument("--ops", type=int, metavar="ID",
                        help="the per-op-type profile of measurement ID (recorded with `run --op-profile`)")


# filter -> the values it names whatever the database holds (beside those the database holds: imports
# bring others); a value in neither is a typo
KNOWN_VALUES: dict[str, tuple[str, ...]] = {
    "format": tuple(dict.fromkeys((*CAPABILITIES, *RUNNERS))),
    "precision": tuple(dict.fromkeys(p for cap in CAPABILITIES.values() for p in cap.precisions)),
    "runtime": tuple(runner.runtime for runner in RUNNERS.values()), "model": (), "device": (),
}


def check_filters(store: Store, filters: dict[str, list[str] | None]) -> None:
    """Refuse a filter value that can match nothing: a typo must not print an empty table with status 0."""
    for name, values in filters.items():
        if not values or name not in KNOWN_VALUES:
            continue
        known = list(KNOWN_VALUES[name]) + store.distinct(name)
        if name == "model":
            known += models.list_models()
        for value in values:
            if value not in known:
                close = difflib.get_close_matches(value, dict.fromkeys(known), n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                shown = ", ".join(list(dict.fromkeys(known))[:12]) or "none stored yet"
                raise CliError(f"--{name} {value!r} matches nothing in {store.path}{hint} (known: {shown})")


def main(args: argparse.Namespace, console: Console) -> int:
    if args.limit is not None and args.limit < 1:
        raise CliError(f"--limit takes a count >= 1, got {args.limit}")
    with existing_store(args.db) as store:
        if args.runs:
            return _show_runs(store.runs(), args.output, console)
        if args.ops is not None:
            return _show_ops(store, args.ops, args.output, console)
        if args.accuracy:
            return _show_accuracy(store, args, console)
        filters = query_filters(args, ("model", "format", "runtime", "precision", "device"))
        check_filters(store, filters)
        filters["run_id"] = store.resolve_run(args.run) if args.run else None
        results = store.query(**filters)
    if args.limit is not None:
        results = results[-args.limit:]
    if args.output == "json":
        _print_json([r.to_dict() for r in results], console)
    elif args.output == "csv":
        _print_csv([flat_record(r) for r in results], ["id"], console)
    else:
        console.print(results_table(results, f"{len(results)} result(s) in {args.db}"))
        unstable = sum(r.stats.unstable for r in results)
        if unstable:
            console.print(f"[red]{unstable} result(s) flagged unstable[/red] (high CV or drift between rounds)")
    return 0


def _print_json(data: object, console: Console) -> None:
    stream = console.out.file  # stdout itself, while other libraries' output goes to the log
    json.dump(data, stream, indent=1)
    stream.write("\n")


def _print_csv(rows: list[dict], empty_header: list[str], console: Console) -> None:
    """Rows under a header of the first row's keys (``empty_header`` when there are no rows)."""
    writer = csv.DictWriter(console.out.file, fieldnames=list(rows[0]) if rows else empty_header)
    writer.writeheader()
    writer.writerows(rows)


def _show_runs(runs: list[dict], output: str, console: Console) -> int:
    if output == "json":
        _print_json(runs, console)
    elif output == "csv":
        _print_csv(runs, ["run_id"], console)
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
        _print_json(profile, console)
        return 0
    if output == "csv":
        _print_csv(profile["by_op_type"], ["op_type", "ms_per_run", "share", "nodes"], console)
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


def _show_accuracy(store: Store, args: argparse.Namespace, console: Console) -> int:
    """The accuracy rows, filtered by --model, --format, --precision and --run, oldest first."""
    filters = query_filters(args, ("model", "format", "precision"))
    check_filters(store, {k: v for k, v in filters.items() if k != "model"})
    run_id = store.find_run(args.run)["run_id"] if args.run else None
    rows = store.query_accuracy(run_id=run_id, **filters)
    if args.limit is not None:
        rows = rows[-args.limit:]
    if args.output == "json":
        _print_json(rows, console)
    elif args.output == "csv":
        _print_csv([{k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in row.items()} for row in rows],
                   ["id"], console)
    else:
        console.print(accuracy_table(rows, f"{len(rows)} accuracy row(s) in {args.db}"))
    return 0
