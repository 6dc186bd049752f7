"""``python -m profiling compare RUN_A RUN_B``: speedups and regressions between two runs (CI exit code).

Exit status: 0 when no configuration regressed beyond ``--threshold``, 1 when one did, 2 on a
usage error (unknown run) and 3 when the runs share no configuration (nothing was compared:
CI should not read that as a pass). ``--json``: one document with every comparison and the status.
"""
from __future__ import annotations

import argparse
from collections import Counter

from rich.table import Table

from mobilelat.console import Console, add_output_flags
from mobilelat.errors import EXIT_CHECK_FAILED, EXIT_INCOMPLETE, EXIT_OK
from profiling.cli.common import existing_store
from profiling.compare import BUCKET_ORDER, compare_runs

HELP = "per-configuration speedup/regression of run B against run A; exit 1 on a regression (for CI)"
EXIT_REGRESSION = EXIT_CHECK_FAILED
EXIT_NOTHING_COMPARED = EXIT_INCOMPLETE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_a", metavar="RUN_A", help="baseline run: id, unique prefix, 'latest~1', ...")
    parser.add_argument("run_b", metavar="RUN_B", help="candidate run: id, unique prefix, 'latest', ...")
    parser.add_argument("--threshold", type=float, default=1.1,
                        help="fail when B's median is more than this many times A's (default 1.1 = 10%% slower)")
    add_output_flags(parser, quiet_flag=False, verbose_flag=False)


def main(args: argparse.Namespace, console: Console) -> int:
    with existing_store(args.db) as store:
        run_a, run_b = store.resolve_run(args.run_a), store.resolve_run(args.run_b)
        results_a, results_b = store.query(run_id=run_a), store.query(run_id=run_b)
    comparisons, only_a, only_b = compare_runs(results_a, results_b, args.threshold)
    regressions = [c for c in comparisons if c.regression]
    status = EXIT_NOTHING_COMPARED if not comparisons else EXIT_REGRESSION if regressions else EXIT_OK
    if console.json_mode:
        console.emit_json({"run_a": run_a, "run_b": run_b, "threshold": args.threshold,
                           "comparisons": [{**vars(c), "label": c.label} for c in comparisons],
                           "only_in_a": [list(k) for k in only_a], "only_in_b": [list(k) for k in only_b],
                           "regressions": len(regressions), "exit_status": status})
        return status
    table = Table(title=f"{run_b} against {run_a} (speedup = A / B median)")
    for column, justify in (("configuration", "left"), ("A median ms", "right"), ("B median ms", "right"),
                            ("speedup", "right"), ("bucket", "left")):
        table.add_column(column, justify=justify)
    for c in comparisons:
        style = "red" if c.regression else ("green" if c.speedup >= 1.1 else "")
        note = " (unstable)" if c.unstable else ""
        table.add_row(c.label, f"{c.median_a_ms:.3f}", f"{c.median_b_ms:.3f}", f"{c.speedup:.2f}x",
                      f"[{style}]{c.bucket}{' REGRESSION' if c.regression else ''}{note}[/{style}]" if style
                      else c.bucket + note)
    console.print(table)
    counts = Counter(c.bucket for c in comparisons)
    console.print("buckets: " + ", ".join(f"{name}: {counts.get(name, 0)}" for name in BUCKET_ORDER))
    for label, keys in (("only in A", only_a), ("only in B", only_b)):
        if keys:
            console.print(f"{len(keys)} configuration(s) {label} (not compared): "
                          + "; ".join(" ".join(map(str, k[:6])) for k in keys[:5]))
    if not comparisons:
        console.print(f"[red]the runs share no configuration; nothing was compared[/red]")
        return EXIT_NOTHING_COMPARED
    if regressions:
        console.print(f"[red]{len(regressions)} regression(s) beyond {args.threshold:g}x[/red]: "
                      + "; ".join(c.label for c in regressions))
        return EXIT_REGRESSION
    console.print(f"no regression beyond {args.threshold:g}x over {len(comparisons)} configuration(s)")
    return 0
