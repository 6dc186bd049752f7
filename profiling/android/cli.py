"""``python -m profiling android MODEL...``: measure on an Android phone over adb and store the results.

    python -m profiling android repvit_m0_9 --formats tflite --serial 0a388e93 \\
        --binary ~/Downloads/android_aarch64_benchmark_model [--gpu] [--threads 1,4] [--pin-big-cores]
    python -m profiling android repvit_m0_9 --apk ~/Downloads/android_aarch64_benchmark_model.apk
    python -m profiling android artifacts/x/x.onnx --formats onnx --ort-binary ./onnxruntime_perf_test

MODEL is a registry name (the artifact is reused, or exported through ``export.<fmt>`` with its
parity gate) or the path of a ``.tflite`` / ``.onnx`` file (its manifest is read when it has one).
One job per (model, format, thread count, repeat); results are stored as they come. A phone that
goes away (unplugged, unauthorized, offline) stops the sweep; a job whose tool fails is reported
and the sweep goes on; the exit status is 1 if any job failed.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

import models
from export.artifact import Artifact, load_artifact
from profiling.android.adb import Adb, AdbError, RemoteCommandError
from profiling.android.parsers import BenchmarkOutputError
from profiling.android.runner import (BenchmarkOptions, find_binary, run_benchmark_apk, run_benchmark_model,
                                      run_ort_perf_test, to_latency_result)
from profiling.android.thermal import ThermalSettings
from profiling.artifacts import DEFAULT_ARTIFACTS, ensure_artifact
from profiling.cli.common import (INPUT_SIZE_HELP, CliError, input_size, results_table, split_ints, split_list,
                                  start_run)
from profiling.store import Store

HELP = "measure on an Android phone over adb (LiteRT benchmark_model / APK, onnxruntime_perf_test)"
FORMATS = ("tflite", "onnx")
PRECISIONS = ("fp32", "fp16", "int8_dynamic", "int8_full")
BINARY_DIR_ENV = "MOBILELAT_ANDROID_TOOLS"  # the configured folder of per-ABI benchmark_model builds


@dataclass
class PhoneJob:
    """One run to make on the phone."""

    model: str  # registry name or file path as given
    format: str  # "tflite" or "onnx"
    threads: int  # --num_threads / -x
    repeat: int  # 1-based repeat index


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL", help="registry names or .tflite/.onnx paths")
    parser.add_argument("--formats", default="tflite", help="comma-separated from tflite, onnx (default tflite)")
    parser.add_argument("--serial", help="adb serial of the phone (required when several are attached)")
    parser.add_argument("--adb", help="path of adb (default: $ADB, else adb on PATH)")
    tools = parser.add_argument_group("tools on the phone")
    tools.add_argument("--binary", type=Path, help="benchmark_model built for the phone's ABI")
    tools.add_argument("--binary-dir", type=Path, default=os.environ.get(BINARY_DIR_ENV) or None,
                       help="folder with one benchmark_model per ABI (<abi>/benchmark_model, "
                            f"android_aarch64_benchmark_model, ...); the phone's ABI picks one (default ${BINARY_DIR_ENV})")
    tools.add_argument("--apk", nargs="?", const="installed", metavar="APK",
                       help="use the benchmark APK instead of the binary; give the .apk to install it first")
    tools.add_argument("--ort-binary", type=Path, help="onnxruntime_perf_test built for the phone (onnx format)")
    options = parser.add_argument_group("benchmark options")
    options.add_argument("--threads", default="1", help="comma-separated thread counts (default 1)")
    delegate = options.add_mutually_exclusive_group()
    delegate.add_argument("--gpu", action="store_true", help="--use_gpu=true (tflite)")
    delegate.add_argument("--nnapi", action="store_true", help="--use_nnapi=true (tflite) / -e nnapi (onnx)")
    options.add_argument("--no-xnnpack", action="store_true", help="--use_xnnpack=false: builtin CPU kernels")
    options.add_argument("--runs", type=int, default=50, help="--num_runs, timed runs at least (default 50)")
    options.add_argument("--warmup", type=int, default=1, help="--warmup_runs (default 1)")
    options.add_argument("--min-secs", type=float, default=1.0, help="--min_secs, timed seconds at least")
    options.add_argument("--op-profiling", action="store_true", help="--enable_op_profiling=true (tables in extra)")
    options.add_argument("--peak-memory", action="store_true", help="--report_peak_memory_footprint=true")
    options.add_argument("--pin-big-cores", action="store_true",
                         help="run under taskset on every core faster than the slowest (little) cluster")
    options.add_argument("--timeout", type=float, default=600.0, help="seconds one run may take (default 600)")
    options.add_argument("--repeats", type=int, default=1, help="runs per configuration, cool-down between")
    thermal = parser.add_argument_group("thermal care")
    thermal.add_argument("--cooldown-target", type=float, metavar="C",
                         help="before each run, wait until the hottest sensor is at or below C degrees")
    thermal.add_argument("--cooldown-max-wait", type=float, default=300.0, help="give up waiting after S seconds")
    thermal.add_argument("--max-rise", type=float, default=5.0,
                         help="flag a run whose temperature rose by more than this many degrees (default 5)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS, help="artifact precision")
    parser.add_argument("--input-size", nargs="+", metavar="PIXELS", help=INPUT_SIZE_HELP)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="where artifacts are found/exported")
    parser.add_argument("--label", default="", help="a note stored with the run")


def _options(args: argparse.Namespace, threads: int) -> BenchmarkOptions:
    return BenchmarkOptions(num_threads=threads, use_xnnpack=False if args.no_xnnpack else None,
                            use_gpu=args.gpu, use_nnapi=args.nnapi, num_runs=args.runs,
                            warmup_runs=args.warmup, min_secs=args.min_secs,
                            enable_op_profiling=args.op_profiling,
                            report_peak_memory_footprint=args.peak_memory, pin_big_cores=args.pin_big_cores,
                            timeout_s=args.timeout)


def plan(args: argparse.Namespace) -> list[PhoneJob]:
    """Check every argument before touching the phone; the jobs to run."""
    formats = split_list(args.formats, FORMATS, "format")
    threads = split_ints(args.threads, "--threads")
    if args.repeats < 1:
        raise CliError(f"--repeats must be >= 1, got {args.repeats}")
    _options(args, threads[0])
    if "onnx" in formats and args.ort_binary is None:
        raise CliError("--formats onnx needs --ort-binary PATH (onnxruntime_perf_test built for the phone)")
    if "onnx" in formats and args.gpu:
        raise CliError("--gpu applies to tflite only; onnxruntime_perf_test here runs the CPU or --nnapi")
    if "tflite" in formats and args.apk is None and args.binary is None and args.binary_dir is None:
        raise CliError("--formats tflite needs --binary PATH, --binary-dir DIR or --apk [APK] "
                       "(LiteRT's benchmark_model for Android: see tensorflow/lite/tools/benchmark)")
    if args.apk is not None and args.pin_big_cores:
        raise CliError("--pin-big-cores applies to the binary (taskset); the APK runs as an app the scheduler places")
    input_size(args.input_size)  # checked before any phone work
    jobs = []
    for model in dict.fromkeys(args.models):
        path = Path(model)
        if path.suffix in (".tflite", ".onnx"):
            if not path.is_file():
                raise CliError(f"model file {path} not found")
            model_formats = [path.suffix[1:]]
        else:
            models.model_spec(model)  # unknown names fail here, with close matches
            model_formats = formats
        for format_name in model_formats:
            for thread_count in threads:
                for repeat in range(1, args.repeats + 1):
                    jobs.append(PhoneJob(model, format_name, thread_count, repeat))
    return jobs


def resolve_model(job: PhoneJob, args: argparse.Namespace,
                  cache: dict) -> tuple[Path, Artifact | None, str, str]:
    """(file to push, Artifact or None, model name, precision) for one job."""
    path = Path(job.model)
    if path.suffix in (".tflite", ".onnx"):
        try:
            artifact = load_artifact(path)
        except (FileNotFoundError, TypeError, ValueError):
            artifact = None
        name = artifact.model if artifact else path.stem
        return path, artifact, name, artifact.precision if artifact else args.precision
    key = (job.model, job.format)
    if key not in cache:
        cache[key] = ensure_artifact(job.model, job.format, args.precision, input_size(args.input_size),
                                     args.artifacts)[0]
    artifact = cache[key]
    return Path(artifact.path), artifact, job.model, artifact.precision


def main(args: argparse.Namespace, console: Console) -> int:
    jobs = plan(args)
    thermal = ThermalSettings(cooldown_target_c=args.cooldown_target, cooldown_max_wait_s=args.cooldown_max_wait,
                              max_rise_c=args.max_rise)
    try:
        adb = Adb.connect(args.serial, args.adb)
        device = adb.device_info()
        binary = None
        if any(job.format == "tflite" for job in jobs) and args.apk is None:
            binary = find_binary(args.binary, args.binary_dir, device.abi)
        apk = None if args.apk in (None, "installed") else Path(args.apk)
        if apk is not None and not apk.is_file():
            raise CliError(f"APK {apk} not found")
    except (AdbError, FileNotFoundError) as error:
        raise CliError(str(error)) from None
    console.print(f"phone: [bold]{device.name}[/bold] ({device.soc}, {device.os}, {device.abi}) serial {device.serial}")
    results, failures = [], []
    cache: dict = {}
    with Store(args.db) as store:
        run_id = start_run(store, args, args.label)
        for job in jobs:
            label = f"{job.model} {job.format} {job.threads}t #{job.repeat}"
            options = _options(args, job.threads)
            try:
                model_path, artifact, name, precision = resolve_model(job, args, cache)
            except Exception as error:  # export refused (parity gate), exporter missing, ...: this job only
                failures.append((label, error))
                console.print(f"[red]failed[/red] {label}: could not get the artifact: {type(error).__name__}: {error}")
                continue
            try:
                console.print(f"running {label} ...")
                if job.format == "onnx":
                    run = run_ort_perf_test(adb, model_path, args.ort_binary, options, thermal)
                elif args.apk is not None:
                    run = run_benchmark_apk(adb, model_path, options, thermal, apk=apk if job.repeat == 1 else None)
                else:
                    run = run_benchmark_model(adb, model_path, binary, options, thermal)
            except (RemoteCommandError, BenchmarkOutputError) as error:  # this job failed; the phone is fine
                failures.append((label, error))
                console.print(f"[red]failed[/red] {label}: {error}")
                continue
            except AdbError as error:  # the phone is gone or hung: nothing more can run
                raise CliError(f"{label}: {error}") from None
            result = to_latency_result(run, device=device, model=name, format=job.format, precision=precision,
                                       options=options, artifact=artifact, model_path=model_path)
            result.run_id = run_id
            store.insert(result)
            results.append(result)
            if run.thermal.rose_past_limit:
                console.print(f"[yellow]{label}: temperature rose {run.thermal.rise_c:.1f} C during the run "
                              f"(limit {thermal.max_rise_c:g} C): flagged unstable[/yellow]")
    if results:
        console.print(results_table(results, f"run {run_id}"))
    if failures:
        console.print(f"[red]{len(failures)} of {len(jobs)} job(s) failed[/red]")
        return 1
    return 0
