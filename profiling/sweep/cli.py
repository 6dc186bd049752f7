"""``python -m profiling sweep [SPEC.toml]``: a grid of exports and measurements, on this machine or on Ray.

    python -m profiling sweep sweep.toml                               # the grid in a TOML file
    python -m profiling sweep --models repvit_m0_9,mobilenetv3_small_100 --formats onnx,tflite \\
        --threads 1,4 --targets host,android:0a388e93 --binary tools/benchmark_model
    python -m profiling sweep sweep.toml --engine ray --address 10.0.0.5:6379
    python -m profiling sweep --resume 20261202T190000Z-3fa9c1 [--engine ray]
    python -m profiling sweep --report latest --out reports/sweep     # grid table, Pareto, FLOPs per device

Flags override the spec file's keys. Everything is checked before any work (names, formats,
targets, settings, tools). The run and its jobs are recorded first; each result is stored as it
arrives (the driver is the store's only writer); a progress bar shows done / failed / not run /
left per target. A failed export fails only the jobs that measure it, a lost phone only its own
jobs; the sweep goes on, and ``--resume RUN_ID`` runs again every job of the run that is not done.
Exit status: 0 every job done, 1 a job failed or did not run, 2 bad usage, 130 interrupted.
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from mobilelat.console import Console, add_output_flags
from mobilelat.errors import EXIT_CHECK_FAILED, EXIT_OK
from mobilelat.paths import check_output_dir, check_output_file
from profiling.artifacts import ensure_artifact
from profiling.cli.common import CliError, add_input_size_argument, existing_store, split_ints, split_list
from profiling.store import Store
from profiling.sweep.driver import SweepOutcome, drive, resumable, start_sweep
from profiling.sweep.engines import ENGINES, Event, make_engine
from profiling.sweep.plan import SweepSpec, expand, load_spec
from profiling.sweep.report import build_sweep_report

EXPORTER = ensure_artifact  # what exports (tests put a stand-in here)
HELP = "sweep a grid (models x formats x precisions x threads x targets) locally or on a Ray cluster"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", nargs="?", type=Path, metavar="SPEC.toml", help="the grid as a TOML file")
    parser.add_argument("--resume", metavar="RUN_ID", help="run every job of this sweep run that is not done")
    parser.add_argument("--report", metavar="RUN_ID",
                        help="write the report of this sweep run (id, prefix or latest) into --out, and exit")
    parser.add_argument("--out", type=Path, default=Path("reports/sweep"), help="--report: output folder")
    grid = parser.add_argument_group("the grid (overrides the spec file)")
    grid.add_argument("--models", help="comma-separated registry names")
    grid.add_argument("--formats", help="comma-separated from onnx, tflite")
    grid.add_argument("--precisions", help="comma-separated (fp32, fp16, int8_dynamic, int8_full)")
    grid.add_argument("--threads", help="comma-separated thread counts")
    grid.add_argument("--targets", help="comma-separated: host, android:SERIAL")
    add_input_size_argument(grid)
    grid.add_argument("--weights", help="a local checkpoint for every model (default random initialization)")
    grid.add_argument("--artifacts", help="where exports are found or written (default artifacts)")
    grid.add_argument("--binary", help="android: benchmark_model for the phones")
    grid.add_argument("--ort-binary", help="android: onnxruntime_perf_test for the phones")
    grid.add_argument("--adb", help="android: path of adb")
    grid.add_argument("--label", help="a note stored with the run")
    engine = parser.add_argument_group("engine")
    engine.add_argument("--engine", choices=ENGINES, default="local",
                        help="local: this process, one job at a time; ray: the Ray cluster (see docs/profiling.md)")
    engine.add_argument("--address", help="ray: the cluster's address (default: start a local one)")
    engine.add_argument("--host-cpus", type=float,
                        help="ray: CPUs a host measurement takes (default the largest node's: nothing runs beside it)")
    add_output_flags(parser, verbose_flag=False)


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    data = load_spec(args.spec).to_dict() if args.spec else {}
    for name in ("models", "formats", "precisions", "targets"):
        if getattr(args, name):
            data[name] = split_list(getattr(args, name))
    if args.threads:
        data["threads"] = split_ints(args.threads, "--threads")
    if args.input_size:
        data["input_size"] = list(args.input_size)
    for name in ("weights", "artifacts", "label"):
        if getattr(args, name) is not None:
            data[name] = getattr(args, name)
    android = dict(data.get("android") or {})
    for name in ("binary", "ort_binary", "adb"):
        if getattr(args, name):
            android[name] = getattr(args, name)
    data["android"] = android
    if not data.get("models"):
        raise CliError("give a SPEC.toml or --models (and the rest of the grid as flags), or --resume RUN_ID")
    return SweepSpec.from_dict(data)


def report(args: argparse.Namespace, console: Console) -> int:
    check_output_dir(args.out)
    with existing_store(args.db) as store:
        run_id = store.find_run(args.report)["run_id"]
        path = build_sweep_report(store, run_id, args.out)
    if console.json_mode:
        console.emit_json({"run_id": run_id, "report": str(path)})
    else:
        console.print(f"sweep report written: {escape(str(path))} (plots beside it)")
    return EXIT_OK


def main(args: argparse.Namespace, console: Console) -> int:
    if args.report:
        if args.spec or args.models or args.resume:
            raise CliError("--report writes the report of a stored run: give no SPEC.toml, --models or --resume")
        return report(args, console)
    if args.resume and (args.spec or args.models):
        raise CliError("--resume runs the stored sweep with its stored spec: give no SPEC.toml or --models")
    check_output_file(args.db, "--db")
    if args.host_cpus is not None and args.host_cpus <= 0:
        raise CliError(f"--host-cpus takes a count > 0, got {args.host_cpus:g}")
    engine = make_engine(args.engine, args.address, args.host_cpus)
    if args.resume and not args.db.exists():
        raise CliError(f"no results database at {args.db}: --resume finishes a sweep stored there (pass --db PATH)")
    plan = None if args.resume else expand(spec_from_args(args), EXPORTER)  # checked before a database is made
    with Store(args.db) as store:
        if args.resume:
            run_id, plan, total = resumable(store, args.resume, EXPORTER)
            if not plan.jobs:
                console.print(f"run {run_id}: all {total} job(s) are done; nothing to resume")
                return EXIT_OK
            console.note(f"resuming run {run_id}: {len(plan.jobs)} of {total} job(s) left")
        else:
            run_id = start_sweep(store, plan, command="python -m profiling " + shlex.join(getattr(args, "argv", [])))
            for line in plan.skipped:
                console.note(f"[yellow]left out of the grid: {escape(line)}[/yellow]")
            console.note(f"run {run_id}: {len(plan.exports)} export(s), {len(plan.jobs)} measurement job(s) "
                         f"on {args.engine}")
        with console.progress(len(plan.jobs)) as progress:
            def on_event(event: Event, outcome: SweepOutcome) -> None:
                if event.kind in ("failed", "not_run"):
                    progress.print(f"[red]{event.kind.replace('_', ' ')}[/red] {escape(event.key)}: "
                                   f"{escape(event.reason)}")
                elif event.kind == "export_failed":
                    progress.print(f"[red]export failed[/red] {escape(event.key)}: {escape(event.reason)}")
                if event.job is not None:  # one line (pipe) or the bar's text (terminal) per finished job
                    progress.update(f"{event.key} {event.kind.replace('_', ' ')} | {outcome.summary()}")
                    progress.advance()

            outcome = drive(store, run_id, plan, engine, on_event)
    status = EXIT_OK if not outcome.failures else EXIT_CHECK_FAILED
    if console.json_mode:
        console.emit_json(document(outcome, args.db, status))
        return status
    console.print(targets_table(outcome))
    console.print(f"run [bold]{run_id}[/bold]: {outcome.done} of {outcome.planned} job(s) stored in "
                  f"{escape(str(args.db))}; exports: " + ", ".join(f"{n} {k}" for k, n in sorted(outcome.exports.items())))
    if outcome.failures:
        console.print(f"[red]{len(outcome.failures)} job(s) not done[/red]; run them again with "
                      f"`python -m profiling sweep --resume {run_id} --db {escape(str(args.db))}`")
    return status


def targets_table(outcome: SweepOutcome) -> Table:
    table = Table(title=f"sweep {outcome.run_id}")
    for column in ("target", "done", "failed", "not run", "left"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for target, counts in outcome.per_target.items():
        table.add_row(target, str(counts.done), str(counts.failed), str(counts.not_run), str(counts.remaining))
    return table


def document(outcome: SweepOutcome, db: Path, status: int) -> dict:
    return {"run_id": outcome.run_id, "db": str(db), "planned": outcome.planned, "done": outcome.done,
            "per_target": {t: {"done": c.done, "failed": c.failed, "not_run": c.not_run, "left": c.remaining}
                           for t, c in outcome.per_target.items()},
            "exports": dict(outcome.exports), "skipped": outcome.skipped,
            "failures": [{"job": key, "reason": reason} for key, reason in outcome.failures],
            "exit_status": status}
