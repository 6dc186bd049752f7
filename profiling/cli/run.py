"""``python -m profiling run MODEL...``: export what is missing, measure, store, print a table.

One job per (model, format, threads[, delegate or compute units]); every argument is checked
before any work (a precision a format cannot take, a size, a folder). A progress bar on stderr
names the job, its round and the ETA. Each result is stored as soon as it is measured, so an
interrupted sweep keeps what it finished; the run row is written with the first result, so a
sweep that stores nothing (Ctrl-C, every job failed) leaves no empty run. A job that fails
(export refused by the parity gate, runtime error) is reported and the sweep goes on; a usage
error met in a job (a checkpoint that does not fit, a size the model cannot take) stops the sweep
with exit status 2, keeping what was measured.

Each measurement records the machine's 1-minute load average before and after it
(``extra["load_avg"]``); above ``--max-load`` (default: the number of logical cores, i.e. more
runnable threads than cores) the result is flagged unstable, and ``--retry-unstable N`` measures
an unstable job again up to N times, keeping the steadiest attempt (the others are summarised in
``extra["attempts"]``).

If the database cannot take a result (damaged, locked for too long, a full disk), the results go
to a sidecar file in the import schema (``profiling.sidecar``) and the command says where; an
existing database is checked before anything is measured.

Exit status: 0 every job stored, 1 a job failed, 2 bad usage or a database that cannot be used
(the sidecar then holds what was measured), 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rich.markup import escape

import models
from export.capabilities import capability
from mobilelat.cli import raise_if_interrupted
from mobilelat.console import Console, add_output_flags
from mobilelat.errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, UsageError
from mobilelat.paths import check_output_dir, check_output_file
from profiling.artifacts import DEFAULT_ARTIFACTS, ensure_artifact
from profiling.cli.common import (CliError, add_input_size_argument, flat_record, results_table, split_ints,
                                  split_list, start_run)
from profiling.protocol import MeasureSettings
from profiling.result import LatencyResult, new_run_id
from profiling.runners import RUNNERS, coreml, executorch, litert, onnxruntime, torch_eager
from profiling.sidecar import sidecar_path, write_sidecar
from profiling.store import Store, StoreError

HELP = "export what is missing, measure on host runtimes, store and print the results"
FORMATS = tuple(RUNNERS)
PRECISIONS = ("fp32", "fp16", "int8_dynamic", "int8_full")
XNNPACK_CHOICES = {"on": ["xnnpack"], "off": ["builtin"], "both": ["xnnpack", "builtin"]}  # --xnnpack -> variants
STORE_WAIT_S = 120.0  # how long a result waits for another writer's lock before it goes to the sidecar, seconds


@dataclass
class Job:
    """One measurement to make."""

    model: str  # registry name
    format: str  # a key of profiling.runners.RUNNERS: onnx / tflite / coreml / executorch / torch
    threads: int  # runtime threads
    options: object  # the runner's options (OrtOptions, LiteRtOptions, CoreMlOptions, TorchOptions)
    variant: str | None = None  # tflite: "xnnpack"/"builtin"; coreml: compute units
    label: str = field(init=False)  # for progress and errors

    def __post_init__(self) -> None:
        self.label = f"{self.model} {self.format}{' ' + self.variant if self.variant else ''} {self.threads}t"


# format -> the configurations the arguments ask for, as (variant label or None, the runner's options)
CONFIGURATIONS: dict[str, Callable[[argparse.Namespace], list[tuple[str | None, object]]]] = {
    "onnx": lambda args: [(None, onnxruntime.OrtOptions(graph_optimization=args.graph_opt,
                                                        op_profile=args.op_profile))],
    "tflite": lambda args: [(name, litert.LiteRtOptions(xnnpack=name == "xnnpack"))
                            for name in XNNPACK_CHOICES[args.xnnpack]],
    "coreml": lambda args: [(unit, coreml.CoreMlOptions(compute_units=unit))
                            for unit in split_list(args.compute_units, coreml.COMPUTE_UNITS, "compute unit")],
    "executorch": lambda args: [(None, executorch.ExecuTorchRunOptions())],
    "torch": lambda args: [(None, torch_eager.TorchOptions(input_size=args.input_size, weights=args.weights))],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", metavar="MODEL", help="registry names (see `python -m models list`)")
    parser.add_argument("--all", action="store_true", help="every registered model")
    parser.add_argument("--formats", default="onnx,torch", help=f"comma-separated, from {', '.join(FORMATS)}; "
                        "torch = the eager deploy model, the baseline")
    parser.add_argument("--threads", default="1", help="comma-separated thread counts to sweep")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="artifact precision; each format must take it (torch measures fp32 only)")
    add_input_size_argument(parser)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS,
                        help="where artifacts are found and exported")
    parser.add_argument("--reexport", action="store_true", help="export again even if a matching artifact exists")
    parser.add_argument("--weights", help="local checkpoint to export (latency does not depend on it; "
                                          "default: random initialization, which the report says)")
    protocol = parser.add_argument_group("protocol (see profiling/protocol.py)")
    defaults = MeasureSettings()
    protocol.add_argument("--warmup", type=int, default=defaults.warmup_runs, help="warm-up calls, at least")
    protocol.add_argument("--warmup-secs", type=float, default=defaults.warmup_min_s, help="warm-up seconds, at least")
    protocol.add_argument("--runs", type=int, default=defaults.min_runs, help="timed calls per round, at least")
    protocol.add_argument("--min-secs", type=float, default=defaults.min_duration_s,
                          help="timed seconds per round, at least")
    protocol.add_argument("--rounds", type=int, default=defaults.rounds, help="rounds")
    protocol.add_argument("--cooldown", type=float, default=defaults.cooldown_s, help="seconds between rounds")
    protocol.add_argument("--max-cv", type=float, default=defaults.max_cv, help="unstable above this CV")
    protocol.add_argument("--max-drift", type=float, default=defaults.max_drift,
                          help="unstable above this relative spread of round medians")
    protocol.add_argument("--max-load", type=float, default=None, metavar="LOAD",
                          help="unstable when the 1-minute load average before or after a measurement is above "
                               "this (default: the number of logical cores)")
    protocol.add_argument("--retry-unstable", type=int, default=0, metavar="N",
                          help="measure an unstable job again up to N times, keeping the steadiest attempt")
    runtime = parser.add_argument_group("runtime options")
    runtime.add_argument("--graph-opt", default="all", choices=("disable", "basic", "extended", "all"),
                         help="onnxruntime graph optimization level")
    runtime.add_argument("--op-profile", action="store_true",
                         help="onnxruntime: also record a per-op-type profile (stored in extra)")
    runtime.add_argument("--xnnpack", default="on", choices=("on", "off", "both"), help="litert: XNNPACK delegate")
    runtime.add_argument("--compute-units", default="ALL",
                         help=f"coreml (macOS): comma-separated from {', '.join(coreml.COMPUTE_UNITS)}")
    parser.add_argument("--label", default="", help="a note stored with the run")
    parser.add_argument("--run-id", help="add to this run id instead of starting a new one")
    add_output_flags(parser, verbose_flag=False)  # --verbose comes with every subcommand


def _settings(args: argparse.Namespace, threads: int) -> MeasureSettings:
    return MeasureSettings(warmup_runs=args.warmup, warmup_min_s=args.warmup_secs, min_runs=args.runs,
                           min_duration_s=args.min_secs, rounds=args.rounds, cooldown_s=args.cooldown,
                           threads=threads, max_cv=args.max_cv, max_drift=args.max_drift,
                           max_runs=max(args.runs, MeasureSettings().max_runs))


def _check_precision(formats: list[str], precision: str) -> None:
    """Every format must take ``--precision``: none measures another precision than asked without a word."""
    for format_name in formats:
        if format_name == "torch":
            if precision != "fp32":
                raise CliError(f"--formats torch measures the eager model in fp32 only, not --precision {precision}; "
                               f"measure torch in a separate run, or drop it from --formats")
        elif precision not in capability(format_name).precisions:
            raise CliError(f"{format_name} does not take --precision {precision}; it takes "
                           f"{', '.join(capability(format_name).precisions)}")


def plan_jobs(args: argparse.Namespace) -> list[Job]:
    """The jobs the arguments ask for; every argument is checked here, before any work."""
    names = models.list_models() if args.all else list(dict.fromkeys(args.models))
    if not names:
        raise CliError("name at least one MODEL, or --all (`python -m models list` shows the names)")
    for name in names:
        models.model_spec(name)  # unknown names fail here, before any work, with close matches
    formats = split_list(args.formats, FORMATS, "format")
    threads = split_ints(args.threads, "--threads")
    if not formats or not threads:
        raise CliError("--formats and --threads need at least one value each")
    _check_precision(formats, args.precision)
    _settings(args, threads[0])
    if args.retry_unstable < 0:
        raise CliError(f"--retry-unstable takes a count >= 0, got {args.retry_unstable}")
    if args.max_load is not None and args.max_load < 0:
        raise CliError(f"--max-load takes a load average >= 0, got {args.max_load:g}")
    if "coreml" in formats and platform.system() != "Darwin":
        raise CliError("running Core ML needs macOS; drop coreml from --formats on this host "
                       "(export it with `python -m export.coreml MODEL` and measure it on a Mac)")
    check_output_file(args.db, "--db")
    if any(RUNNERS[f].takes_artifact for f in formats):
        check_output_dir(args.artifacts, "--artifacts")
    configurations = {format_name: build(args) for format_name, build in CONFIGURATIONS.items()}  # checks every flag
    jobs = []
    for name in names:
        for format_name in formats:
            sweep = threads if RUNNERS[format_name].takes_threads else threads[:1]
            for thread_count in sweep:
                for variant, options in configurations[format_name]:
                    jobs.append(Job(name, format_name, thread_count, options, variant))
    return jobs


def _load_average() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages, or None where the platform has none."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _measure_once(job: Job, args: argparse.Namespace, target: object, max_load: float,
                  progress_update: Callable[[str], None]) -> LatencyResult:
    """One measurement with the load average around it; flagged unstable when the machine was loaded."""
    settings = _settings(args, job.threads)

    def on_round(phase: str, round_index: int, samples: int) -> None:
        if phase == "round":
            progress_update(f"measure {job.label}: round {round_index + 1}/{settings.rounds}")

    before = _load_average()
    result = RUNNERS[job.format].measure(target, settings, job.options, on_round)
    after = _load_average()
    result.extra["load_avg"] = {"before": before, "after": after, "cores": os.cpu_count(), "max_load": max_load}
    highest = max((reading[0] for reading in (before, after) if reading), default=None)
    if highest is not None and highest > max_load:
        result.stats.unstable = True
        result.stats.unstable_reasons.append(f"machine load {highest:.2f} > {max_load:g} (1-minute load average: "
                                             f"other work shared the cores)")
    return result


def _steadiest(attempts: list[LatencyResult]) -> LatencyResult:
    """The first stable attempt, else the one with the lowest CV; the others summarised in its extra."""
    stable = [r for r in attempts if not r.stats.unstable]
    chosen = stable[0] if stable else min(attempts, key=lambda r: r.stats.cv if r.stats.cv is not None else float("inf"))
    if len(attempts) > 1:
        chosen.extra["attempts"] = [{"median_ms": r.stats.median_ms, "cv": r.stats.cv, "unstable": r.stats.unstable,
                                     "unstable_reasons": r.stats.unstable_reasons, "load_avg": r.extra.get("load_avg"),
                                     "kept": r is chosen} for r in attempts]
    return chosen


def measure_job(job: Job, args: argparse.Namespace, artifact_cache: dict,
                progress_update: Callable[[str], None]) -> LatencyResult:
    """Export (or reuse) the artifact if the runner takes one, and measure one job (again while unstable,
    up to ``--retry-unstable`` times)."""
    runner = RUNNERS[job.format]
    max_load = args.max_load if args.max_load is not None else float(os.cpu_count() or 1)
    weights = args.weights
    if not runner.takes_artifact:
        target = job.model
    else:
        key = (job.model, job.format)
        if key not in artifact_cache:  # one export per model and format, shared by the thread counts
            progress_update(f"artifact of {job.model} {job.format}: reuse, or export behind the parity gate")
            try:
                artifact_cache[key] = ensure_artifact(job.model, job.format, args.precision, args.input_size,
                                                      args.artifacts, reexport=args.reexport, weights=args.weights)
            except Exception as error:
                artifact_cache[key] = error
                raise
        cached = artifact_cache[key]
        if isinstance(cached, Exception):
            raise RuntimeError(f"its export failed earlier in this run ({type(cached).__name__})") from cached
        target, exported_now = cached
        weights = target.options["weights"] if "weights" in target.options else "unknown"
    attempts = []
    for attempt in range(1 + args.retry_unstable):
        progress_update(f"measure {job.label} again (attempt {attempt + 1}): the last one was unstable" if attempt
                        else f"measure {job.label}")
        attempts.append(_measure_once(job, args, target, max_load, progress_update))
        if not attempts[-1].stats.unstable:
            break
    result = _steadiest(attempts)
    result.extra["weights"] = weights  # None: random initialization; "unknown": an artifact older than the record
    if runner.takes_artifact:
        result.extra["exported_now"] = exported_now
    return result


class RunRecorder:
    """Where the results go: the store, with the run row written alongside the first result, or a
    sidecar file once the store has failed."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.db: Path = args.db
        self.run_id: str = args.run_id or new_run_id()
        self.stored: list[LatencyResult] = []
        self.unsaved: list[LatencyResult] = []
        self.sidecar: Path | None = None  # where the unsaved results are
        self.store_error: StoreError | None = None  # why the store stopped taking results
        self._store: Store | None = self._open() if self.db.exists() else None  # checked before any measuring
        self._started = False  # whether this command wrote the run row

    def keep(self, result: LatencyResult) -> None:
        result.run_id = self.run_id
        if self.store_error is None:
            try:
                if self._store is None:
                    self._store = self._open()
                if not self._started:
                    self._started = not any(r["run_id"] == self.run_id for r in self._store.runs())
                    start_run(self._store, self.args, self.args.label, run_id=self.run_id)
                self._store.insert(result)
                self.stored.append(result)
                return
            except StoreError as error:
                self.store_error = error
        self.unsaved.append(result)
        self.sidecar = write_sidecar(sidecar_path(self.db, self.run_id), self.unsaved)

    def _open(self) -> Store:
        return Store(self.db, busy_timeout_s=min(30.0, STORE_WAIT_S), retry_for_s=STORE_WAIT_S)

    def close(self) -> None:
        """Remove the run row this command wrote if nothing landed under it; close the store."""
        if self._store is None:
            return
        try:
            if self._started and not self.stored:
                self._store.discard_run_if_empty(self.run_id)
        except StoreError:
            pass  # a store that failed to take results may fail this too; the row is then the store's problem
        finally:
            self._store.close()


def main(args: argparse.Namespace, console: Console) -> int:
    jobs = plan_jobs(args)
    failures: list[tuple[Job, BaseException]] = []
    artifact_cache: dict = {}
    recorder = RunRecorder(args)
    try:
        with console.progress(len(jobs)) as progress:
            for job in jobs:
                try:
                    result = measure_job(job, args, artifact_cache, progress.update)
                except UsageError:
                    raise  # the command's own mistake (a checkpoint that does not fit, a size): every job would fail
                except Exception as error:  # reported per job; the sweep goes on
                    raise_if_interrupted()  # unless it stands for Ctrl-C
                    failures.append((job, error))
                    progress.print(f"[red]failed[/red] {escape(job.label)}: {type(error).__name__}: {escape(str(error))}")
                else:
                    recorder.keep(result)
                progress.advance()
    finally:
        recorder.close()
    status = EXIT_OK if not failures else EXIT_CHECK_FAILED
    if recorder.store_error is not None:
        status = EXIT_USAGE
    if console.json_mode:
        console.emit_json(_document(recorder, failures, status, console))
        return status
    _print_summary(recorder, failures, len(jobs), console)
    return status


def _print_summary(recorder: RunRecorder, failures: list, total: int, console: Console) -> None:
    results = recorder.stored + recorder.unsaved
    if recorder.stored:
        console.print(f"run [bold]{recorder.run_id}[/bold]: {len(recorder.stored)} measurement(s) stored in "
                      f"{escape(str(recorder.db))}")
    else:
        console.print(f"run {recorder.run_id}: nothing stored in {escape(str(recorder.db))}, no run recorded")
    if recorder.store_error is not None:
        console.print(f"[red]{escape(str(recorder.store_error))}[/red]")
        console.print(f"[red]{len(recorder.unsaved)} measurement(s) kept in {escape(str(recorder.sidecar))}[/red]; "
                      f"store them with `python -m profiling import {escape(str(recorder.sidecar))} --db OTHER.db`")
    if results and not console.quiet:
        console.print(results_table(results, f"run {recorder.run_id}"))
    unstable = [r for r in results if r.stats.unstable]
    if unstable:
        console.print(f"[red]{len(unstable)} result(s) flagged UNSTABLE[/red]: the machine was busy or throttling; "
                      f"rerun with more --rounds / --min-secs, --retry-unstable N, or a quieter machine")
    if failures:
        console.print(f"[red]{len(failures)} of {total} job(s) failed[/red]: "
                      + "; ".join(f"{escape(job.label)} ({type(error).__name__})" for job, error in failures))
    if console.log_path and not console.quiet:
        console.note(f"[dim]{escape(console.log_line())}[/dim]")


def _document(recorder: RunRecorder, failures: list, status: int, console: Console) -> dict:
    """``--json``: the run, each measurement (flat, with its load and weights), failures, where things are."""
    def record(result: LatencyResult) -> dict:
        return {**flat_record(result), "load_avg": result.extra.get("load_avg"),
                "weights": result.extra.get("weights"), "attempts": len(result.extra.get("attempts", [])) or 1}

    log = console.log_path
    return {"run_id": recorder.run_id if recorder.stored else None, "db": str(recorder.db),
            "stored": [record(r) for r in recorder.stored], "unsaved": [record(r) for r in recorder.unsaved],
            "sidecar": str(recorder.sidecar) if recorder.sidecar else None,
            "store_error": str(recorder.store_error) if recorder.store_error else None,
            "failures": [{"job": job.label, "error": f"{type(error).__name__}: {error}"} for job, error in failures],
            "exit_status": status, "log": str(log) if log else None}
