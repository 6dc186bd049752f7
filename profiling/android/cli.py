"""``python -m profiling android MODEL...``: measure on an Android phone over adb and store the results.

    python -m profiling android repvit_m0_9 --formats tflite --serial 0a388e93 \\
        --binary ~/Downloads/android_aarch64_benchmark_model [--gpu] [--threads 1,4] [--pin-big-cores]
    python -m profiling android repvit_m0_9 --apk ~/Downloads/android_aarch64_benchmark_model.apk
    python -m profiling android artifacts/x/x.onnx --formats onnx --ort-binary ./onnxruntime_perf_test
    python -m profiling android repvit_m0_9 --formats executorch --et-binary ./executor_runner
    python -m profiling android --resume 20261122T135012Z-3fa9c1      # finish a sweep cut short
    ray start --address HEAD:6379 --resources "$(python -m profiling android --ray-resources)"

MODEL is a registry name (the artifact is reused, or exported through ``export.<fmt>`` with its
parity gate) or the path of a ``.tflite`` / ``.onnx`` / ``.pte`` file (its manifest is read when it has one).
One job per (model, format, thread count, repeat). The jobs are recorded with the run before the
first one starts, and each result is stored with its job marked done in one transaction, so
nothing measured is ever lost. A job whose tool fails (a crash, output that holds no result, a
partial delegation under ``--require-full-delegation``) is marked failed and the sweep goes on.
A phone that goes away (unplugged, rebooted, offline, hung) stops the sweep: the job in flight and
the rest are marked not run, and ``--resume RUN_ID`` runs every job of that run that is not done,
with the settings stored at its start, into the same run. Exit status: 0 when every job is done,
1 when one failed or did not run, 2 for a usage error or a phone that cannot be used at all.

``--ray-resources`` prints, as JSON, the Ray custom resources of the phones attached and usable
here (``{"device:<serial>": 1, ...}``): the value of ``ray start --resources`` on this host, so a
``profiling sweep --engine ray`` runs one job at a time on each phone (docs/profiling.md).
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

import models
from export.artifact import Artifact, load_artifact
from profiling.android.adb import Adb, AdbError, RemoteCommandError, list_devices
from profiling.android.parsers import BenchmarkOutputError
from profiling.android.runner import (BenchmarkOptions, DelegationError, PhoneRun, PinningError, check_delegation,
                                      find_binary, format_cores, run_benchmark_apk, run_benchmark_model,
                                      run_executor_runner, run_ort_perf_test, to_latency_result)
from profiling.android.thermal import ThermalSettings
from profiling.artifacts import DEFAULT_ARTIFACTS, ensure_artifact
from profiling.cli.common import (CliError, add_input_size_argument, results_table, split_ints, split_list,
                                  start_run)
from profiling.result import LatencyResult
from profiling.store import Store
from profiling.sweep.engines import device_resource

HELP = "measure on an Android phone over adb (LiteRT benchmark_model / APK, onnxruntime_perf_test, executor_runner)"
FORMATS = ("tflite", "onnx", "executorch")
SUFFIXES = {".tflite": "tflite", ".onnx": "onnx", ".pte": "executorch"}  # a model file's format
PRECISIONS = ("fp32", "fp16", "int8_dynamic", "int8_full")
BINARY_DIR_ENV = "MOBILELAT_ANDROID_TOOLS"  # the configured folder of per-ABI benchmark_model builds


@dataclass
class PhoneJob:
    """One run to make on the phone."""

    model: str  # registry name or file path as given
    format: str  # "tflite", "onnx" or "executorch"
    threads: int  # --num_threads / -x
    repeat: int  # 1-based repeat index

    @property
    def key(self) -> str:
        """The job's name within its run (stored; --resume finds jobs by it)."""
        return f"{self.model}|{self.format}|{self.threads}t|#{self.repeat}"

    @property
    def label(self) -> str:
        return f"{self.model} {self.format} {self.threads}t #{self.repeat}"


@dataclass
class Sweep:
    """Everything a sweep's jobs share; stored with every job so that --resume needs nothing else."""

    options: dict  # BenchmarkOptions fields except num_threads
    thermal: dict  # ThermalSettings fields
    binary: str | None = None  # benchmark_model for the phone
    binary_dir: str | None = None  # folder of per-ABI benchmark_model builds
    apk: str | None = None  # "installed", an .apk to install, or None (binary mode)
    ort_binary: str | None = None  # onnxruntime_perf_test for the phone
    et_binary: str | None = None  # ExecuTorch's executor_runner for the phone
    precision: str = "fp32"  # artifact precision of registry models
    input_size: list[int] | None = None  # (height, width) of registry models' artifacts
    artifacts: str = str(DEFAULT_ARTIFACTS)  # where artifacts are found or exported
    serial: str | None = None  # the phone the sweep runs on (set once connected)

    def benchmark_options(self, threads: int) -> BenchmarkOptions:
        return BenchmarkOptions(num_threads=threads, **self.options)

    def thermal_settings(self) -> ThermalSettings:
        return ThermalSettings(**self.thermal)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", metavar="MODEL", help="registry names or .tflite/.onnx/.pte paths")
    parser.add_argument("--resume", metavar="RUN_ID",
                        help="finish the sweep of this run (id or unique prefix): every job not done, with the "
                             "settings stored at its start (only --serial, --adb and --db apply)")
    parser.add_argument("--ray-resources", action="store_true",
                        help="print the `ray start --resources` JSON of the phones attached here, and exit")
    parser.add_argument("--formats", default="tflite", help="comma-separated from tflite, onnx, executorch (default tflite)")
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
    tools.add_argument("--et-binary", type=Path,
                       help="ExecuTorch's executor_runner built for the phone with XNNPACK (executorch format)")
    options = parser.add_argument_group("benchmark options")
    options.add_argument("--threads", default="1", help="comma-separated thread counts (default 1)")
    delegate = options.add_mutually_exclusive_group()
    delegate.add_argument("--gpu", action="store_true", help="--use_gpu=true (tflite)")
    delegate.add_argument("--nnapi", action="store_true", help="--use_nnapi=true (tflite) / -e nnapi (onnx)")
    options.add_argument("--no-xnnpack", action="store_true", help="--use_xnnpack=false: builtin CPU kernels")
    options.add_argument("--require-full-delegation", action="store_true",
                         help="fail a tflite job whose delegate (GPU, NNAPI or XNNPACK) did not take the whole graph; "
                              "without it such a result is stored and marked partial")
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
    add_input_size_argument(parser)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS, help="where artifacts are found/exported")
    parser.add_argument("--label", default="", help="a note stored with the run")


def _sweep(args: argparse.Namespace, first_threads: int) -> Sweep:
    options = BenchmarkOptions(num_threads=first_threads, use_xnnpack=False if args.no_xnnpack else None,
                               use_gpu=args.gpu, use_nnapi=args.nnapi, num_runs=args.runs,
                               warmup_runs=args.warmup, min_secs=args.min_secs,
                               enable_op_profiling=args.op_profiling,
                               report_peak_memory_footprint=args.peak_memory, pin_big_cores=args.pin_big_cores,
                               timeout_s=args.timeout, require_full_delegation=args.require_full_delegation)
    thermal = ThermalSettings(cooldown_target_c=args.cooldown_target, cooldown_max_wait_s=args.cooldown_max_wait,
                              max_rise_c=args.max_rise)
    size = args.input_size  # (height, width), parsed by the one size parser
    return Sweep(options={k: v for k, v in asdict(options).items() if k != "num_threads"}, thermal=asdict(thermal),
                 binary=None if args.binary is None else str(args.binary),
                 binary_dir=None if args.binary_dir is None else str(args.binary_dir), apk=args.apk,
                 ort_binary=None if args.ort_binary is None else str(args.ort_binary),
                 et_binary=None if args.et_binary is None else str(args.et_binary), precision=args.precision,
                 input_size=None if size is None else list(size), artifacts=str(args.artifacts))


def plan(args: argparse.Namespace) -> tuple[list[PhoneJob], Sweep]:
    """Check every argument before touching the phone; the jobs to run and what they share."""
    formats = split_list(args.formats, FORMATS, "format")
    threads = split_ints(args.threads, "--threads")
    if not args.models:
        raise CliError("name at least one MODEL (registry name or .tflite/.onnx/.pte path), or --resume RUN_ID")
    if args.repeats < 1:
        raise CliError(f"--repeats must be >= 1, got {args.repeats}")
    sweep = _sweep(args, threads[0])
    if args.apk is not None and args.pin_big_cores:
        raise CliError("--pin-big-cores applies to the binary (taskset); the APK runs as an app the scheduler places")
    jobs = []
    for model in dict.fromkeys(args.models):
        path = Path(model)
        if path.suffix in SUFFIXES:
            if not path.is_file():
                raise CliError(f"model file {path} not found")
            model_formats = [SUFFIXES[path.suffix]]
        else:
            models.model_spec(model)  # unknown names fail here, with close matches
            model_formats = formats
        for format_name in model_formats:
            for thread_count in threads:
                for repeat in range(1, args.repeats + 1):
                    jobs.append(PhoneJob(model, format_name, thread_count, repeat))
    used = {job.format for job in jobs}  # a .onnx path is an onnx job whatever --formats says
    if "onnx" in used and args.ort_binary is None:
        raise CliError("onnx jobs need --ort-binary PATH (onnxruntime_perf_test built for the phone)")
    if "executorch" in used and args.et_binary is None:
        raise CliError("executorch jobs need --et-binary PATH (ExecuTorch's executor_runner built for the phone)")
    if "executorch" in used and (args.gpu or args.nnapi):
        raise CliError("--gpu and --nnapi apply to tflite (and --nnapi to onnx); a .pte runs the delegate it was "
                       "lowered to")
    if "onnx" in used and args.gpu:
        raise CliError("--gpu applies to tflite only; onnxruntime_perf_test here runs the CPU or --nnapi")
    if "tflite" in used and args.apk is None and args.binary is None and args.binary_dir is None:
        raise CliError("tflite jobs need --binary PATH, --binary-dir DIR or --apk [APK] "
                       "(LiteRT's benchmark_model for Android: see tensorflow/lite/tools/benchmark)")
    if args.require_full_delegation:
        if any(job.format != "tflite" for job in jobs):
            raise CliError("--require-full-delegation reads benchmark_model's delegation lines: tflite jobs only")
        if args.no_xnnpack and not (args.gpu or args.nnapi):
            raise CliError("--require-full-delegation needs a delegate: --gpu, --nnapi, or XNNPACK (drop --no-xnnpack)")
    return jobs, sweep


def resolve_model(job: PhoneJob, sweep: Sweep, cache: dict) -> tuple[Path, Artifact | None, str, str]:
    """(file to push, Artifact or None, model name, precision) for one job."""
    path = Path(job.model)
    if path.suffix in SUFFIXES:
        try:
            artifact = load_artifact(path)
        except (FileNotFoundError, TypeError, ValueError):
            artifact = None
        name = artifact.model if artifact else path.stem
        return path, artifact, name, artifact.precision if artifact else sweep.precision
    key = (job.model, job.format)
    if key not in cache:
        size = None if sweep.input_size is None else tuple(sweep.input_size)
        cache[key] = ensure_artifact(job.model, job.format, sweep.precision, size, Path(sweep.artifacts))[0]
    artifact = cache[key]
    return Path(artifact.path), artifact, job.model, artifact.precision


def _resumed(store: Store, reference: str) -> tuple[str, list[PhoneJob], Sweep, int]:
    """(run id, the jobs not done, their shared settings, jobs in the run) of the run to finish."""
    run_id = store.find_run(reference)["run_id"]
    rows = store.jobs(run_id)
    if not rows:
        raise CliError(f"run {run_id} recorded no phone jobs, so there is nothing to resume "
                       "(it is not a `profiling android` sweep, or it predates job records)")
    left = [row for row in rows if row["status"] != "done"]
    sweep = Sweep(**(left or rows)[0]["spec"]["sweep"])
    return run_id, [PhoneJob(**row["spec"]["job"]) for row in left], sweep, len(rows)


def _require_attached(serial: str, adb_path: str | None, run_id: str) -> None:
    """Raise CliError naming the run's phone when it is not attached."""
    devices = list_devices(adb_path)
    if not any(device.serial == serial for device in devices):
        attached = ", ".join(device.describe() for device in devices) or "none"
        raise CliError(f"run {run_id} measures phone {serial}, which is not attached (attached: {attached}); "
                       "reconnect it to resume (a sweep is not resumed on another phone)")


def _run_job(adb: Adb, job: PhoneJob, sweep: Sweep, binary: Path | None, model_path: Path) -> PhoneRun:
    options, thermal = sweep.benchmark_options(job.threads), sweep.thermal_settings()
    if job.format == "onnx":
        run = run_ort_perf_test(adb, model_path, Path(sweep.ort_binary), options, thermal)
    elif job.format == "executorch":
        run = run_executor_runner(adb, model_path, Path(sweep.et_binary), options, thermal)
    elif sweep.apk is not None:
        apk = None if sweep.apk == "installed" or job.repeat != 1 else Path(sweep.apk)
        run = run_benchmark_apk(adb, model_path, options, thermal, apk=apk)
    else:
        run = run_benchmark_model(adb, model_path, binary, options, thermal)
    check_delegation(run, options)
    return run


def _warnings(label: str, result: LatencyResult, console: Console) -> None:
    """Say at once what the stored result carries besides its figures."""
    label = escape(label)
    extra = result.extra
    thermal = extra.get("thermal") or {}
    if thermal.get("rose_past_limit"):
        console.print(f"[yellow]{label}: temperature rose {thermal['rise_c']:.1f} C during the run "
                      f"(limit {thermal['max_rise_c']:g} C): flagged unstable[/yellow]")
    if thermal.get("after_error"):
        console.print(f"[yellow]{label}: stored; the temperature reading after it failed "
                      f"({escape(thermal['after_error'].splitlines()[0])})[/yellow]")
    delegation = extra.get("delegation") or {}
    if delegation.get("status") in ("partial", "none"):
        nodes = (f", {delegation['nodes_replaced']}/{delegation['nodes_total']} nodes"
                 if delegation.get("nodes_total") is not None else "")
        console.print(f"[yellow]{label}: the {delegation['requested']} delegate took "
                      f"{'only part' if delegation['status'] == 'partial' else 'none'} of the graph{nodes}: "
                      f"stored marked {delegation['status'].upper()} (--require-full-delegation refuses it)[/yellow]")
    if extra.get("op_profile_error"):
        console.print(f"[yellow]{label}: no op profile stored: {escape(extra['op_profile_error'])}[/yellow]")
    cpus = extra.get("cpus") or {}
    offline = sorted(set(cpus.get("present") or []) - set(cpus.get("online_before") or cpus.get("present") or []))
    if offline:
        console.print(f"[yellow]{label}: cores {format_cores(offline)} were offline: flagged unstable[/yellow]")


def ray_resources(adb_path: str | None) -> dict[str, int]:
    """``{"device:<serial>": 1}`` for each phone attached and usable (state ``device``)."""
    try:
        devices = list_devices(adb_path)
    except AdbError as error:
        raise CliError(str(error)) from None
    return {device_resource(device.serial): 1 for device in devices if device.state == "device"}


def main(args: argparse.Namespace, console: Console) -> int:
    if args.ray_resources:
        if args.models or args.resume:
            raise CliError("--ray-resources only lists the phones: name no MODEL and no --resume")
        console.print(json.dumps(ray_resources(args.adb)), markup=False, highlight=False)
        return 0
    with Store(args.db) as store:
        if args.resume:
            if args.models:
                raise CliError("--resume finishes the stored sweep with its stored settings: name no MODEL")
            run_id, jobs, sweep, total = _resumed(store, args.resume)
            if not jobs:
                console.print(f"run {run_id}: all {total} job(s) are done; nothing to resume")
                return 0
            console.print(f"resuming run {run_id}: {len(jobs)} of {total} job(s) left")
        else:
            jobs, sweep = plan(args)
            run_id = None
        try:
            if sweep.serial is not None and args.serial is None:
                _require_attached(sweep.serial, args.adb, run_id)
            adb = Adb.connect(args.serial or sweep.serial, args.adb)
            device = adb.device_info()
            binary = None
            if any(job.format == "tflite" for job in jobs) and sweep.apk is None:
                binary = find_binary(sweep.binary, sweep.binary_dir, device.abi)
            if sweep.apk not in (None, "installed") and not Path(sweep.apk).is_file():
                raise CliError(f"APK {sweep.apk} not found")
        except (AdbError, FileNotFoundError) as error:
            raise CliError(str(error)) from None
        if sweep.serial is not None and device.serial != sweep.serial:
            raise CliError(f"run {run_id} measures phone {sweep.serial}; the phone attached is {device.serial} "
                           f"({device.name}): resume on the same phone, or start a new sweep")
        console.print(escape(f"phone: {device.name} ({device.soc}, {device.os}, {device.abi}) serial {device.serial}"))
        if run_id is None:
            sweep.serial = device.serial
            run_id = start_run(store, args, args.label, device_name=device.name)
            store.plan_jobs(run_id, [(job.key, {"job": asdict(job), "sweep": asdict(sweep)}) for job in jobs])
        results, failures, not_run, lost = [], [], [], None
        cache: dict = {}
        for index, job in enumerate(jobs):
            try:
                model_path, artifact, name, precision = resolve_model(job, sweep, cache)
            except Exception as error:  # export refused (parity gate), exporter missing, ...: this job only
                failures.append(job)
                store.set_job(run_id, job.key, "failed", f"artifact: {type(error).__name__}: {error}")
                console.print(f"[red]failed[/red] {escape(job.label)}: could not get the artifact: "
                              f"{type(error).__name__}: {escape(str(error))}")
                continue
            console.print(f"running {escape(job.label)} ...")
            try:
                run = _run_job(adb, job, sweep, binary, model_path)
            except (RemoteCommandError, BenchmarkOutputError, DelegationError, PinningError) as error:
                failures.append(job)  # this job failed; the phone is fine
                store.set_job(run_id, job.key, "failed", f"{type(error).__name__}: {error}")
                console.print(f"[red]failed[/red] {escape(job.label)}: {escape(str(error))}")
                continue
            except AdbError as error:  # the phone is gone or hung: nothing more can run now
                lost = error
                for left in jobs[index:]:
                    not_run.append(left)
                    store.set_job(run_id, left.key, "not_run", f"{type(error).__name__}: {error}")
                break
            result = to_latency_result(run, device=device, model=name, format=job.format, precision=precision,
                                       options=sweep.benchmark_options(job.threads), artifact=artifact,
                                       model_path=model_path)
            result.run_id = run_id
            store.insert(result, job_key=job.key)
            results.append(result)
            _warnings(job.label, result, console)
    if results:
        console.print(results_table(results, f"run {run_id}"))
    if lost is not None:
        console.print(f"[red]the phone stopped answering: {escape(str(lost))}[/red]")
        console.print(f"[red]{len(not_run)} job(s) not run[/red] ({len(results)} measured and stored); reconnect the "
                      f"phone and finish with: python -m profiling android --resume {run_id} --db {args.db}")
    if failures:
        console.print(f"[red]{len(failures)} of {len(jobs)} job(s) failed[/red]: "
                      + escape("; ".join(job.label for job in failures)))
    return 1 if failures or not_run else 0
