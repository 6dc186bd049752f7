"""Helpers the subcommands share: the error they raise, list options, starting a run, the results table."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from rich.table import Table

from export.artifact import git_commit
from mobilelat.sizes import input_size_type
from profiling.errors import UsageError
from profiling.report import fmt
from profiling.result import LatencyResult, host_device
from profiling.store import Store


class CliError(UsageError):
    """A command-line mistake: the message says what was wrong and what to do. Printed without a traceback."""


def start_run(store: Store, args: argparse.Namespace, label: str, run_id: str | None = None,
              device_name: str | None = None) -> str:
    """Record the run this command makes, with its command line, this checkout's commit and the device
    it measures on (``device_name``; this host's CPU when not given)."""
    return store.start_run(run_id, label=label, command="python -m profiling " + shlex.join(args.argv),
                           git_commit=git_commit(), device_name=device_name or host_device().name)


def existing_store(db: Path) -> Store:
    """The results database at ``db`` opened read-only: the reading subcommands never create or change one."""
    if not db.exists():
        raise CliError(f"no results database at {db}; measure something first "
                       f"(`python -m profiling run MODEL`) or pass --db PATH")
    return Store(db, readonly=True)


def query_filters(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, list[str] | None]:
    """``Store.query`` filters from comma-separated options of the same names (absent: no filter)."""
    return {name: split_list(getattr(args, name)) or None for name in names}


def split_list(text: str | None, choices: tuple[str, ...] | None = None, what: str = "value") -> list[str]:
    """``"onnx,tflite"`` -> ``["onnx", "tflite"]``, each checked against ``choices`` when given."""
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    if choices is not None:
        bad = [item for item in items if item not in choices]
        if bad:
            raise CliError(f"unknown {what} {', '.join(map(repr, bad))}; choose from {', '.join(choices)}")
    return items


def split_ints(text: str | None, what: str = "value") -> list[int]:
    try:
        values = [int(item) for item in split_list(text)]
    except ValueError:
        raise CliError(f"{what} must be comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise CliError(f"{what} must be >= 1, got {text!r}")
    return values


def configuration(result: LatencyResult) -> str:
    """The runtime configuration in one short cell: threads and compute unit / delegate."""
    parts = [f"{result.threads}t" if result.threads else "default threads"]
    if result.compute_unit:
        parts.append(result.compute_unit)
    return " ".join(parts)


def results_table(results: list[LatencyResult], title: str) -> Table:
    """The results as a rich table: one row per measurement, unstable ones flagged in red."""
    devices = sorted({r.device.name for r in results})
    if len(devices) == 1:
        title += f" on {devices[0]}"
    table = Table(title=title)
    columns = [("id", "right"), ("model", "left"), ("format", "left"), ("runtime", "left"), ("config", "left")]
    if len(devices) > 1:
        columns.append(("device", "left"))
    columns += [("median ms", "right"), ("p90 ms", "right"), ("trimmed", "right"), ("cv", "right"),
                ("GFLOP/s", "right"), ("runs", "right"), ("stable", "left")]
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for r in results:
        stable = f"[red]NO: {', '.join(x.split(' >')[0] for x in r.stats.unstable_reasons)}[/red]" \
            if r.stats.unstable else "yes"
        row = [fmt(r.id, "{}"), r.model, f"{r.format}/{r.precision}", r.runtime, configuration(r)]
        if len(devices) > 1:
            row.append(r.device.name)
        row += [fmt(r.stats.median_ms), fmt(r.stats.p90_ms), fmt(r.stats.trimmed_mean_ms), fmt(r.stats.cv, "{:.3f}"),
                fmt(r.achieved_gflops, "{:.2f}"), str(r.stats.count), stable]
        table.add_row(*row)
    return table


def flat_record(result: LatencyResult) -> dict:
    """One result as a flat dict for CSV (samples and nested fields left out; JSON keeps them)."""
    stats = result.stats
    return {
        "id": result.id, "run_id": result.run_id, "created_at": result.created_at, "model": result.model,
        "format": result.format, "precision": result.precision, "reparameterized": result.reparameterized,
        "runtime": result.runtime, "runtime_version": result.runtime_version, "device_kind": result.device.kind,
        "device_name": result.device.name, "device_soc": result.device.soc, "device_os": result.device.os,
        "device_cores": result.device.cores, "compute_unit": result.compute_unit, "threads": result.threads,
        "input_shape": "x".join(map(str, result.input_shape)), "warmup_runs": result.warmup_runs,
        "runs": stats.count, "median_ms": stats.median_ms, "mean_ms": stats.mean_ms, "min_ms": stats.min_ms,
        "max_ms": stats.max_ms, "p90_ms": stats.p90_ms, "p99_ms": stats.p99_ms, "std_ms": stats.std_ms,
        "cv": stats.cv, "trimmed_mean_ms": stats.trimmed_mean_ms, "drift": stats.drift,
        "unstable": stats.unstable, "unstable_reasons": "; ".join(stats.unstable_reasons),
        "params": result.params, "macs": result.macs, "gflops_per_s": result.achieved_gflops,
        "artifact_sha256": result.artifact_sha256,
        "git_commit": result.git_commit,
    }


INPUT_SIZE_HELP = "input size, N or HxW in pixels (32 to 4096), as every mobilelat command takes it"


def add_input_size_argument(parser: argparse.ArgumentParser) -> None:
    """``--input-size`` parsed by the one parser every command uses (``mobilelat.sizes``): (height, width)."""
    parser.add_argument("--input-size", type=input_size_type, metavar="HxW", help=INPUT_SIZE_HELP)
