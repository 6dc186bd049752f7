"""Run a model on an Android phone with LiteRT's ``benchmark_model`` (binary or APK) or ``onnxruntime_perf_test``.

The binary flow follows ``tensorflow/lite/tools/benchmark/README.md``: push the binary and the
model to ``/data/local/tmp``, ``chmod +x``, run ``[taskset MASK] benchmark_model --graph=...``;
the APK flow follows ``tools/benchmark/android/README.md``: ``am start -S -n
org.tensorflow.lite.benchmark/.BenchmarkModelActivity --es args "--graph=... ..."`` and read the
result from logcat (tag ``tflite``). Each run reads the phone's temperatures before and after
(``profiling.android.thermal``) and becomes one ``LatencyResult`` with the phone's fields filled.

The tools print a summary, not every sample, so ``samples_ms`` stays empty and the stats come
from ``LatencyStats.from_summary`` (mean, min, max, std, and the median where the tool prints it).
"""
from __future__ import annotations

import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from export.artifact import Artifact, git_commit, sha256_of
from profiling.android.adb import REMOTE_TMP, Adb, AdbError, AdbTimeout, RemoteCommandError
from profiling.android.parsers import (BenchmarkModelResult, BenchmarkOutputError, OrtPerfResult,
                                       parse_benchmark_model, parse_ort_perf_test)
from profiling.android.thermal import (ThermalRecord, ThermalSettings, read_temperatures, thermal_record,
                                       wait_for_cooldown)
from profiling.errors import UsageError
from profiling.result import DeviceInfo, LatencyResult, artifact_provenance, utc_now
from profiling.stats import LatencyStats

REMOTE_DIR = f"{REMOTE_TMP}/mobilelat"  # everything this tool pushes goes here
APK_PACKAGE = "org.tensorflow.lite.benchmark"
APK_ACTIVITY = f"{APK_PACKAGE}/.BenchmarkModelActivity"
APK_LOG_TAG = "tflite"  # the APK logs the tool's output under this tag
# file names of LiteRT's prebuilt nightly binaries, by ABI (tensorflow.org/lite/performance/measurement)
NIGHTLY_ARCH = {"arm64-v8a": "aarch64", "armeabi-v7a": "arm", "x86_64": "x86_64", "x86": "x86"}


@dataclass
class BenchmarkOptions:
    """How to run the phone benchmark tool; maps one to one onto its flags."""

    num_threads: int = 1  # --num_threads (onnxruntime_perf_test: -x)
    use_xnnpack: bool | None = None  # --use_xnnpack (None: the tool's default, XNNPACK on in current builds)
    use_gpu: bool = False  # --use_gpu=true
    use_nnapi: bool = False  # --use_nnapi=true (onnxruntime_perf_test: -e nnapi)
    num_runs: int = 50  # --num_runs, timed runs at least
    warmup_runs: int = 1  # --warmup_runs
    min_secs: float = 1.0  # --min_secs, timed seconds at least
    enable_op_profiling: bool = False  # --enable_op_profiling=true: per-op tables in the result
    report_peak_memory_footprint: bool = False  # --report_peak_memory_footprint=true
    pin_big_cores: bool = False  # run under `taskset MASK` on every core faster than the slowest (little) cluster
    timeout_s: float = 600.0  # one run of the tool, seconds, before it counts as hung
    extra_args: list[str] = field(default_factory=list)  # passed through verbatim

    def __post_init__(self) -> None:
        if self.use_gpu and self.use_nnapi:
            raise UsageError("choose one of use_gpu and use_nnapi, not both")
        if self.num_threads < 1 and self.num_threads != -1:
            raise UsageError(f"num_threads must be >= 1 (or -1 for the tool's default), got {self.num_threads}")
        if self.num_runs < 1 or self.warmup_runs < 0 or self.min_secs < 0 or self.timeout_s <= 0:
            raise UsageError("num_runs >= 1, warmup_runs >= 0, min_secs >= 0 and timeout_s > 0 are required")

    @property
    def compute_unit(self) -> str:
        if self.use_gpu:
            return "gpu"
        if self.use_nnapi:
            return "nnapi"
        return "cpu" if self.use_xnnpack is False else "xnnpack"

    def benchmark_model_flags(self) -> list[str]:
        flags = [f"--num_threads={self.num_threads}", f"--num_runs={self.num_runs}",
                 f"--warmup_runs={self.warmup_runs}", f"--min_secs={self.min_secs:g}"]
        if self.use_xnnpack is not None:
            flags.append(f"--use_xnnpack={str(self.use_xnnpack).lower()}")
        if self.use_gpu:
            flags.append("--use_gpu=true")
        if self.use_nnapi:
            flags.append("--use_nnapi=true")
        if self.enable_op_profiling:
            flags.append("--enable_op_profiling=true")
        if self.report_peak_memory_footprint:
            flags.append("--report_peak_memory_footprint=true")
        return flags + list(self.extra_args)


@dataclass
class PhoneRun:
    """What one run on the phone produced, before it becomes a LatencyResult."""

    tool: str  # "benchmark_model", "benchmark_apk" or "onnxruntime_perf_test"
    command: str  # the command run on the phone
    parsed: BenchmarkModelResult | OrtPerfResult  # the numbers
    output: str  # what the tool printed (kept for the record, trimmed)
    thermal: ThermalRecord  # before/after readings, rise, cool-down
    cpu_mask: str | None = None  # taskset mask used, hex
    binary_sha256: str | None = None  # of the pushed tool binary


def find_binary(binary: str | Path | None, binary_dir: str | Path | None, abi: str | None,
                name: str = "benchmark_model") -> Path:
    """The tool binary for this phone: ``binary`` itself, or the one for ``abi`` in ``binary_dir``.

    In ``binary_dir`` it looks for ``<abi>/<name>``, ``<name>_<abi>`` and LiteRT's nightly names
    (``android_aarch64_benchmark_model`` ...), in that order.
    """
    if binary is not None:
        path = Path(binary)
        if not path.is_file():
            raise FileNotFoundError(f"{name} binary {path} not found: pass the path of the Android build "
                                    "(e.g. android_aarch64_benchmark_model from LiteRT's nightly builds)")
        return path
    if binary_dir is None:
        raise FileNotFoundError(f"no {name} binary given: pass --binary PATH or --binary-dir DIR holding one per ABI")
    folder = Path(binary_dir)
    candidates = []
    if abi:
        candidates += [folder / abi / name, folder / f"{name}_{abi}"]
        if abi in NIGHTLY_ARCH:
            candidates.append(folder / f"android_{NIGHTLY_ARCH[abi]}_{name}")
    candidates.append(folder / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no {name} for ABI {abi or 'unknown'} in {folder}; looked for "
                            + ", ".join(str(c.relative_to(folder)) for c in candidates))


def big_core_mask(adb: Adb) -> tuple[str | None, dict[int, int]]:
    """The taskset mask (hex) of the cores whose cpuinfo_max_freq is above the slowest cluster's.

    Returns (None, freqs) when all cores have the same maximum (nothing to pin to) or none could be read.
    """
    _, text = adb.shell("for c in /sys/devices/system/cpu/cpu[0-9]*; do "
                        "echo \"${c##*cpu} $(cat $c/cpufreq/cpuinfo_max_freq 2>/dev/null)\"; done", check=False)
    freqs = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            freqs[int(parts[0])] = int(parts[1])
    if not freqs or len(set(freqs.values())) < 2:
        return None, freqs
    slowest = min(freqs.values())
    mask = sum(1 << core for core, freq in freqs.items() if freq > slowest)
    return f"{mask:x}", freqs


def _push_model(adb: Adb, model_path: Path) -> str:
    adb.shell(f"mkdir -p {REMOTE_DIR}")
    remote = f"{REMOTE_DIR}/{model_path.name}"
    adb.push(model_path, remote)
    return remote


def _push_binary(adb: Adb, binary: Path, remote_name: str) -> str:
    adb.shell(f"mkdir -p {REMOTE_DIR}")
    remote = f"{REMOTE_DIR}/{remote_name}"
    adb.push(binary, remote)
    adb.shell(f"chmod +x {remote}")
    return remote


def _trimmed(output: str, lines: int = 200) -> str:
    kept = output.splitlines()
    return "\n".join(kept[-lines:])


def _run_tool(adb: Adb, command: str, timeout_s: float, binary: Path) -> tuple[int, str]:
    """Run a pushed tool; a binary the phone cannot execute (126/127: wrong ABI, not a binary) says so."""
    try:
        return adb.shell(command, timeout_s=timeout_s)
    except RemoteCommandError as error:
        if error.exit_code in (126, 127):
            raise RemoteCommandError(command, error.exit_code, error.output + (
                f"\n(the phone could not execute {binary.name}: is it built for this phone's ABI? "
                "Use the android_aarch64 build for arm64-v8a phones, or --binary-dir with one build per ABI)")) \
                from None
        raise


def _run_binary(adb: Adb, tool: str, binary: Path, model_path: Path, options: BenchmarkOptions,
                thermal: ThermalSettings, argv: Callable[[str, str], list[str]],
                parse: Callable[[str], BenchmarkModelResult | OrtPerfResult]) -> PhoneRun:
    """Push ``binary`` and the model, run ``argv(remote binary, remote model)`` once (under taskset when
    ``options.pin_big_cores``) with temperatures read around it, and ``parse`` what it printed."""
    remote_model = _push_model(adb, Path(model_path))
    remote_binary = _push_binary(adb, Path(binary), tool)
    mask = big_core_mask(adb)[0] if options.pin_big_cores else None
    command = " ".join(([f"taskset {mask}"] if mask else []) + argv(remote_binary, remote_model))
    cooldown = wait_for_cooldown(adb, thermal)
    before = read_temperatures(adb, thermal.zones)
    _, output = _run_tool(adb, command, options.timeout_s, binary)
    after = read_temperatures(adb, thermal.zones)
    return PhoneRun(tool=tool, command=command, parsed=parse(output), output=_trimmed(output),
                    thermal=thermal_record(before, after, thermal, cooldown), cpu_mask=mask,
                    binary_sha256=sha256_of(binary))


def run_benchmark_model(adb: Adb, model_path: Path, binary: Path, options: BenchmarkOptions,
                        thermal: ThermalSettings) -> PhoneRun:
    """Push and run the ``benchmark_model`` binary once; parse its output."""
    return _run_binary(adb, "benchmark_model", binary, model_path, options, thermal,
                       lambda tool, model: [tool, f"--graph={model}", *options.benchmark_model_flags()],
                       parse_benchmark_model)


def run_benchmark_apk(adb: Adb, model_path: Path, options: BenchmarkOptions, thermal: ThermalSettings,
                      apk: Path | None = None, poll_s: float = 1.0) -> PhoneRun:
    """Run the benchmark APK's activity once (installing ``apk`` first if given); read logcat."""
    if apk is not None:
        adb.install(apk)
    remote_model = _push_model(adb, Path(model_path))
    args = " ".join([f"--graph={remote_model}"] + options.benchmark_model_flags())
    command = f"am start -S -n {APK_ACTIVITY} --es args {shlex.quote(args)}"
    cooldown = wait_for_cooldown(adb, thermal)
    before = read_temperatures(adb, thermal.zones)
    adb.shell("logcat -c")
    _, started = adb.shell(command)
    if "Error" in started:
        raise AdbError(f"could not start the benchmark APK ({APK_ACTIVITY}): {started.strip()}; install it with "
                       "--apk PATH (benchmark_model.apk from LiteRT's nightly builds) or `adb install -r -d -g`")
    deadline = time.monotonic() + options.timeout_s
    log = ""
    while True:
        _, log = adb.shell(f"logcat -d -s {APK_LOG_TAG}", check=False)
        if "Inference timings in us" in log:
            break
        if "Benchmarking failed" in log or "Failed to" in log:
            raise BenchmarkOutputError("the benchmark APK", log, "it logged a failure")
        if time.monotonic() > deadline:
            tail = "\n".join(log.splitlines()[-10:]) or "(nothing logged under tag tflite)"
            raise AdbTimeout(f"the benchmark APK printed no result within {options.timeout_s:g} s; "
                             f"last logcat lines:\n{tail}")
        time.sleep(poll_s)
    after = read_temperatures(adb, thermal.zones)
    parsed = parse_benchmark_model(log)
    return PhoneRun(tool="benchmark_apk", command=command, parsed=parsed, output=_trimmed(log),
                    thermal=thermal_record(before, after, thermal, cooldown))


def run_ort_perf_test(adb: Adb, model_path: Path, binary: Path, options: BenchmarkOptions,
                      thermal: ThermalSettings) -> PhoneRun:
    """Push and run ``onnxruntime_perf_test -m times -r N -x THREADS -I [-e nnapi] MODEL`` once."""
    if options.use_gpu:
        raise UsageError("onnxruntime_perf_test has no --use_gpu here: use the CPU or --nnapi")
    provider = "nnapi" if options.use_nnapi else "cpu"
    return _run_binary(adb, "onnxruntime_perf_test", binary, model_path, options, thermal,
                       lambda tool, model: [tool, "-m", "times", "-r", str(options.num_runs),
                                            "-x", str(options.num_threads), "-e", provider, "-I",
                                            *options.extra_args, model],
                       parse_ort_perf_test)


def op_profile_from_tables(parsed: BenchmarkModelResult) -> dict:
    """benchmark_model's "Summary by node type" in the shape ``python -m profiling show --ops ID`` reads."""
    rows = parsed.op_tables["by_node_type"]
    kernel_ms = sum(row.avg_ms for row in rows)
    return {"source": "benchmark_model --enable_op_profiling", "runs": parsed.inference.count if parsed.inference else None,
            "model_run_ms": parsed.inference_avg_ms, "kernel_ms": kernel_ms,
            "by_op_type": [{"op_type": row.node_type, "ms_per_run": row.avg_ms, "share": row.percent / 100.0,
                            "nodes": row.count} for row in rows]}


def to_latency_result(run: PhoneRun, *, device: DeviceInfo, model: str, format: str, precision: str,
                      options: BenchmarkOptions, artifact: Artifact | None = None, input_shape: list[int] | None = None,
                      model_path: Path | None = None) -> LatencyResult:
    """One phone run as a ``LatencyResult`` (summary stats, temperatures and tool figures in ``extra``)."""
    parsed = run.parsed
    if isinstance(parsed, OrtPerfResult):
        percentiles = parsed.percentiles_ms
        stats = LatencyStats.from_summary(count=parsed.runs or options.num_runs, mean_ms=parsed.average_ms,
                                          min_ms=parsed.min_ms, max_ms=parsed.max_ms,
                                          median_ms=percentiles.get("p50"), p90_ms=percentiles.get("p90"),
                                          p99_ms=percentiles.get("p99"))
        warmup_runs = 1  # onnxruntime_perf_test times one untimed first inference
        runtime_version = "onnxruntime_perf_test"
    else:
        timed = parsed.inference
        stats = LatencyStats.from_summary(
            count=timed.count if timed else options.num_runs, mean_ms=parsed.inference_avg_ms,
            min_ms=timed.min_ms if timed else None, max_ms=timed.max_ms if timed else None,
            std_ms=timed.std_ms if timed else None, median_ms=timed.percentiles_ms.get("median") if timed else None)
        warmup_runs = parsed.warmup.count if parsed.warmup else options.warmup_runs
        runtime_version = "benchmark_model"
    if run.binary_sha256:
        runtime_version += f" sha256:{run.binary_sha256[:12]}"
    extra = {"tool": run.tool, "command": run.command, "parsed": parsed.to_dict(), "thermal": run.thermal.to_dict(),
             "cpu_mask": run.cpu_mask, "output_tail": "\n".join(run.output.splitlines()[-40:])}
    if isinstance(parsed, BenchmarkModelResult) and parsed.op_tables.get("by_node_type"):
        extra["op_profile"] = op_profile_from_tables(parsed)
    if run.thermal.rose_past_limit:
        stats.unstable = True
        stats.unstable_reasons.append(f"thermal rise {run.thermal.rise_c:.1f} C > {run.thermal.max_rise_c:g} C")
    if run.thermal.cooldown is not None and run.thermal.cooldown.timed_out:
        stats.unstable_reasons.append("started hot: cool-down wait timed out")
        stats.unstable = True
    provenance = artifact_provenance(artifact)
    if artifact is not None:
        input_shape = input_shape or list(artifact.input_shape)
    elif model_path is not None:
        provenance = dict(artifact_sha256=sha256_of(model_path), artifact_path=str(model_path))
    return LatencyResult(model=model, format=format, precision=precision, runtime=run.tool,
                         runtime_version=runtime_version, device=device,
                         threads=options.num_threads if options.num_threads > 0 else None,
                         input_shape=list(input_shape or []), stats=stats, samples_ms=[], warmup_runs=warmup_runs,
                         compute_unit=options.compute_unit, settings=asdict(options), extra=extra,
                         git_commit=git_commit(), created_at=utc_now(), **provenance)
