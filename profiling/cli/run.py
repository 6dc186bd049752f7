"""``python -m profiling run MODEL...``: export what is missing, measure, store, print a table.

One job per (model, format, threads[, delegate or compute units]). Each result is stored as soon
as it is measured, so an interrupted sweep keeps what it finished; a job that fails (export
refused by the parity gate, runtime error) is reported and the sweep goes on; the exit status is
1 if any job failed.
"""
from __future__ import annotations

import argparse
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import models
from profiling.artifacts import DEFAULT_ARTIFACTS, ensure_artifact
from profiling.cli.common import (INPUT_SIZE_HELP, CliError, input_size, results_table, split_ints, split_list,
                                  start_run)
from profiling.protocol import MeasureSettings
from profiling.result import LatencyResult
from profiling.runners import RUNNERS, coreml, litert, onnxruntime, torch_eager
from profiling.store import Store

HELP = "export what is missing, measure on host runtimes, store and print the results"
FORMATS = tuple(RUNNERS)
PRECISIONS = ("fp32", "fp16", "int8_dynamic", "int8_full")
XNNPACK_CHOICES = {"on": ["xnnpack"], "off": ["builtin"], "both": ["xnnpack", "builtin"]}  # --xnnpack -> variants


@dataclass
class Job:
    """One measurement to make."""

    model: str  # registry name
    format: str  # a key of profiling.runners.RUNNERS: onnx / tflite / coreml / torch
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
    "torch": lambda args: [(None, torch_eager.TorchOptions(input_size=input_size(args.input_size),
                                                           weights=args.weights))],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", metavar="MODEL", help="registry names (see `python -m models list`)")
    parser.add_argument("--all", action="store_true", help="every registered model")
    parser.add_argument("--formats", default="onnx,torch", help=f"comma-separated, from {', '.join(FORMATS)} "
                        "(default onnx,torch; torch = eager deploy model, the baseline)")
    parser.add_argument("--threads", default="1", help="comma-separated thread counts to sweep (default 1)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS, help="artifact precision")
    parser.add_argument("--input-size", nargs="+", metavar="PIXELS", help=INPUT_SIZE_HELP)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS,
                        help=f"where artifacts are found and exported (default {DEFAULT_ARTIFACTS}/)")
    parser.add_argument("--reexport", action="store_true", help="export again even if a matching artifact exists")
    parser.add_argument("--weights", help="local checkpoint to export (latency does not depend on it)")
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


def _settings(args: argparse.Namespace, threads: int) -> MeasureSettings:
    return MeasureSettings(warmup_runs=args.warmup, warmup_min_s=args.warmup_secs, min_runs=args.runs,
                           min_duration_s=args.min_secs, rounds=args.rounds, cooldown_s=args.cooldown,
                           threads=threads, max_cv=args.max_cv, max_drift=args.max_drift,
                           max_runs=max(args.runs, MeasureSettings().max_runs))


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
    _settings(args, threads[0])
    input_size(args.input_size)
    if "coreml" in formats and platform.system() != "Darwin":
        raise CliError("running Core ML needs macOS; drop coreml from --formats on this host "
                       "(export it with `python -m export.coreml MODEL` and measure it on a Mac)")
    configurations = {format_name: build(args) for format_name, build in CONFIGURATIONS.items()}  # checks every flag
    jobs = []
    for name in names:
        for format_name in formats:
            sweep = threads if RUNNERS[format_name].takes_threads else threads[:1]
            for thread_count in sweep:
                for variant, options in configurations[format_name]:
                    jobs.append(Job(name, format_name, thread_count, options, variant))
    return jobs


def measure_job(job: Job, args: argparse.Namespace, artifact_cache: dict,
                progress_update: Callable[[str], None]) -> LatencyResult:
    """Export (or reuse) the artifact if the runner takes one, and measure one job."""
    runner = RUNNERS[job.format]
    settings = _settings(args, job.threads)
    if not runner.takes_artifact:
        progress_update(f"measure {job.label}")
        return runner.measure(job.model, settings, job.options)
    key = (job.model, job.format)
    if key not in artifact_cache:  # one export per model and format, shared by the thread counts
        progress_update(f"export {job.model} {job.format} (parity gate included)")
        try:
            artifact_cache[key] = ensure_artifact(job.model, job.format, args.precision, input_size(args.input_size),
                                                  args.artifacts, reexport=args.reexport, weights=args.weights)
        except Exception as error:
            artifact_cache[key] = error
            raise
    cached = artifact_cache[key]
    if isinstance(cached, Exception):
        raise RuntimeError(f"its export failed earlier in this run ({type(cached).__name__})") from cached
    artifact, exported_now = cached
    progress_update(f"measure {job.label}")
    result = runner.measure(artifact, settings, job.options)
    result.extra["exported_now"] = exported_now
    return result


def main(args: argparse.Namespace, console: Console) -> int:
    jobs = plan_jobs(args)
    results, failures = [], []
    artifact_cache: dict = {}
    with Store(args.db) as store:
        run_id = start_run(store, args, args.label, run_id=args.run_id)
        console.print(f"run [bold]{run_id}[/bold]: {len(jobs)} measurement(s) into {args.db}")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("starting", total=len(jobs))
            for job in jobs:
                try:
                    result = measure_job(job, args, artifact_cache,
                                         lambda text: progress.update(task, description=text))
                except Exception as error:  # reported per job; the sweep goes on
                    failures.append((job, error))
                    progress.console.print(f"[red]failed[/red] {job.label}: {type(error).__name__}: {error}")
                else:
                    result.run_id = run_id
                    store.insert(result)
                    results.append(result)
                progress.advance(task)
    if results:
        console.print(results_table(results, f"run {run_id}"))
    unstable = [r for r in results if r.stats.unstable]
    if unstable:
        console.print(f"[red]{len(unstable)} result(s) flagged UNSTABLE[/red]: the machine was busy or throttling; "
                      f"rerun with more --rounds / --min-secs, or a quieter machine")
    if failures:
        console.print(f"[red]{len(failures)} of {len(jobs)} job(s) failed[/red]: "
                      + "; ".join(f"{job.label} ({type(error).__name__})" for job, error in failures))
        return 1
    return 0
