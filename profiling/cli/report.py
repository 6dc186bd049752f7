"""``python -m profiling report --out DIR``: a markdown report with PNG plots from the store."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from mobilelat.console import Console
from mobilelat.paths import check_output_dir
from profiling.cli.common import CliError, existing_store, query_filters
from profiling.report import build_report

HELP = ("write a markdown report with PNG plots (latency per model, vs GMACs/params, published and measured "
        "top-1 Pareto, papers)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("reports"), help="output folder")
    parser.add_argument("--run", help="only this run (id, unique prefix, 'latest', 'latest~N'); default: all")
    parser.add_argument("--model", help="model name(s), comma-separated")
    parser.add_argument("--runtime", help="runtime(s), comma-separated")
    parser.add_argument("--device", help="device name(s), comma-separated")
    parser.add_argument("--title", default="mobilelat latency report", help="report title")
    parser.add_argument("--peak-gflops", type=float, metavar="GFLOPS",
                        help="this machine's fp32 peak (bench/bench_peak.py prints it): rows show their share of it")


def main(args: argparse.Namespace, console: Console) -> int:
    check_output_dir(args.out)  # before any work
    with existing_store(args.db) as store:
        run_id = store.resolve_run(args.run) if args.run else None
        results = store.query(run_id=run_id, **query_filters(args, ("model", "runtime", "device")))
        accuracy = store.query_accuracy(model=sorted({r.model for r in results}) or None)
    if not results:
        raise CliError(f"no stored measurement matches the filters in {args.db}; `python -m profiling show` lists them")
    source = f"Source: `{args.db}`" + (f", run `{run_id}`" if run_id else ", all runs")
    with console.stage(f"write the report of {len(results)} measurement(s)"):
        path = build_report(results, args.out, title=args.title, source=source, accuracy=accuracy,
                            peak_gflops=args.peak_gflops)
    console.print(f"report written: {escape(str(path))} ({len(results)} measurement(s); plots beside it)")
    return 0
