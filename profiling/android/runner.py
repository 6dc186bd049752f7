"""Run a model on an Android phone with LiteRT's ``benchmark_model`` (binary or APK), ``onnxruntime_perf_test``
or ExecuTorch's ``executor_runner``.

The binary flow follows ``tensorflow/lite/tools/benchmark/README.md``: push the binary and the
model to ``/data/local/tmp``, ``chmod +x``, run ``[taskset MASK] benchmark_model --graph=...``;
the APK flow follows ``tools/benchmark/android/README.md``: ``am start -S -n
org.tensorflow.lite.benchmark/.BenchmarkModelActivity --es args "--graph=... ..."`` and read the
result from logcat (tag ``tflite``). Each run reads the phone's temperatures before and after
(``profiling.android.thermal``) and becomes one ``LatencyResult`` with the phone's fields filled.

The tools print a summary, not every sample, so ``samples_ms`` stays empty and the stats come
from ``LatencyStats.from_summary`` (mean, min, max, std, and the median where the tool prints it).

What the phone did besides the numbers is kept with them: the delegation lines (a GPU run whose
graph was only partly delegated is marked so, and ``require_full_delegation`` refuses it), the
cores online before and after (a core hot-plugged off by the thermal governor slows the run), and
the temperatures. A run that finished is never lost to a failure after it: a temperature reading
that fails once the tool has printed its result is recorded as such.

In APK mode logcat holds every app that logs under the ``tflite`` tag (LiteRT inside Play
services, other ML apps); only the lines of the benchmark's own process (the PID that logged
``STARTING!``) are read, and a failure is one of the tool's real failure lines, not any line that
happens to contain "Failed to" (the tool's harmless ``Failed to get the input model file size.``).
"""
from __future__ import annotations

import re
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from export.artifact import Artifact, git_commit, sha256_of
from profiling.android.adb import REMOTE_TMP, Adb, AdbError, AdbTimeout, RemoteCommandError
from profiling.android.parsers import (BenchmarkModelResult, BenchmarkOutputError, ExecutorRunnerResult, LogRecord,
                                       OrtPerfResult, logcat_records, parse_benchmark_model, parse_executor_runner,
                                       parse_ort_perf_test,
                                       strip_log_prefixes)
from profiling.android.thermal import (ThermalRecord, ThermalSettings, read_temperatures, read_temperatures_after,
                                       thermal_record, wait_for_cooldown)
from profiling.errors import UsageError
from profiling.result import DeviceInfo, LatencyResult, artifact_provenance, utc_now
from profiling.stats import LatencyStats

REMOTE_DIR = f"{REMOTE_TMP}/mobilelat"  # everything this tool pushes goes here
APK_PACKAGE = "org.tensorflow.lite.benchmark"
APK_ACTIVITY = f"{APK_PACKAGE}/.BenchmarkModelActivity"
APK_LOG_TAG = "tflite"  # the APK logs the tool's output under this tag
# file names of LiteRT's prebuilt nightly binaries, by ABI (tensorflow.org/lite/performance/measurement)
NIGHTLY_ARCH = {"arm64-v8a": "aarch64", "armeabi-v7a": "arm", "x86_64": "x86_64", "x86": "x86"}
# the tool's own failure lines (TFLITE_LOG(ERROR) in benchmark_model.cc / benchmark_tflite_model.cc,
# the interpreter's "failed to invoke"); other ERROR lines (a delegate falling back) are not fatal
_FATAL_LINE = re.compile(
    r"^(?:Benchmarking failed\.|Failed to (?:mmap model|initialize the interpreter|apply \S+ delegate|"
    r"allocate tensors|invoke|read the input_layer_value_file)|Disallowed CPU fallback detected\.|"
    r"Please specify the name of your TF Lite input file|Node number \d+ \(.*\) failed to (?:invoke|prepare)|"
    r"Could not open '.*'|Invalid input file|Unsupported delegate)")
_SUMMARY_LINE = re.compile(r"(?:Average inference timings in us|Inference timings in us):", re.IGNORECASE)


class DelegationError(RuntimeError):
    """The run was asked to be fully delegated and was not; the message says what the tool reported."""


class PinningError(RuntimeError):
    """``pin_big_cores`` cannot be honoured on this phone right now (cores offline, no big cluster)."""


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
    require_full_delegation: bool = False  # refuse a run whose delegate did not take the whole graph (checked here)

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

    @property
    def requested_delegate(self) -> str | None:
        """The delegate this run asks for, by the tool's name for it; None for the builtin CPU kernels."""
        return {"gpu": "GPU", "nnapi": "NNAPI", "xnnpack": "XNNPACK"}.get(self.compute_unit)

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
    cpus: dict = field(default_factory=dict)  # "present", "online_before", "online_after" core lists


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


@dataclass
class CpuState:
    """The phone's cores at one moment (``/sys/devices/system/cpu``)."""

    present: list[int]  # cores the kernel knows ("present")
    online: list[int]  # cores running now ("online"); fewer when the thermal governor or a power mode hot-plugs
    max_freq_khz: dict[int, int]  # cpuinfo_max_freq of the cores whose cpufreq could be read

    @property
    def offline(self) -> list[int]:
        return sorted(set(self.present) - set(self.online))


def parse_cpu_list(text: str) -> list[int]:
    """The kernel's CPU list format: ``0-3,6`` -> [0, 1, 2, 3, 6]; an empty text -> []."""
    cores: list[int] = []
    for part in text.strip().split(","):
        if not part.strip():
            continue
        first, _, last = part.strip().partition("-")
        cores.extend(range(int(first), int(last or first) + 1))
    return cores


def read_cpu_state(adb: Adb) -> CpuState:
    """Present and online cores and their maximum frequencies, in one shell call."""
    _, text = adb.shell("cd /sys/devices/system/cpu && echo \"present $(cat present)\" && echo \"online $(cat online)\" "
                        "&& for c in cpu[0-9]*; do echo \"freq ${c#cpu} $(cat $c/cpufreq/cpuinfo_max_freq 2>/dev/null)\"; "
                        "done", check=False)
    present, online, freqs = [], [], {}
    for line in text.splitlines():
        parts = line.split()
        try:
            if parts[:1] == ["present"]:
                present = parse_cpu_list(" ".join(parts[1:]))
            elif parts[:1] == ["online"]:
                online = parse_cpu_list(" ".join(parts[1:]))
            elif parts[:1] == ["freq"] and len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                freqs[int(parts[1])] = int(parts[2])
        except ValueError:
            continue  # a line an old kernel printed differently: that figure stays unknown
    return CpuState(present=present, online=online or list(present), max_freq_khz=freqs)


def big_core_mask(adb: Adb) -> tuple[str | None, dict[int, int]]:
    """The taskset mask (hex) of the cores whose cpuinfo_max_freq is above the slowest cluster's.

    Returns (None, freqs) when all cores have the same maximum (nothing to pin to). Raises
    PinningError while cores are offline: an offline core's frequency is often unreadable, so the
    big cluster cannot be told, and a mask of offline cores would run the model somewhere else.
    """
    state = read_cpu_state(adb)
    if state.offline:
        raise PinningError(f"cores {format_cores(state.offline)} are offline (hot-plugged by the thermal governor or "
                           "a power-saving mode), so the big cores cannot be pinned reliably; let the phone cool, "
                           "turn off battery saver, or run without --pin-big-cores")
    freqs = state.max_freq_khz
    if not freqs or len(set(freqs.values())) < 2:
        return None, freqs
    slowest = min(freqs.values())
    mask = sum(1 << core for core, freq in freqs.items() if freq > slowest)
    return f"{mask:x}", freqs


def format_cores(cores: list[int]) -> str:
    """[4, 5, 6, 7] -> "4-7"; [1, 3] -> "1,3"."""
    runs: list[list[int]] = []
    for core in sorted(cores):
        if runs and core == runs[-1][-1] + 1:
            runs[-1].append(core)
        else:
            runs.append([core])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


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
                parse: Callable[[str], BenchmarkModelResult | OrtPerfResult | ExecutorRunnerResult]) -> PhoneRun:
    """Push ``binary`` and the model, run ``argv(remote binary, remote model)`` once (under taskset when
    ``options.pin_big_cores``) with temperatures and online cores read around it, and ``parse`` what it printed."""
    remote_model = _push_model(adb, Path(model_path))
    remote_binary = _push_binary(adb, Path(binary), tool)
    mask = big_core_mask(adb)[0] if options.pin_big_cores else None
    command = " ".join(([f"taskset {mask}"] if mask else []) + argv(remote_binary, remote_model))
    cooldown = wait_for_cooldown(adb, thermal)
    before = read_temperatures(adb, thermal.zones)
    cpus_before = read_cpu_state(adb)
    _, output = _run_tool(adb, command, options.timeout_s, binary)
    parsed = parse(output)
    after, after_error = read_temperatures_after(adb, thermal.zones)
    return PhoneRun(tool=tool, command=command, parsed=parsed, output=_trimmed(output),
                    thermal=thermal_record(before, after, thermal, cooldown, after_error), cpu_mask=mask,
                    binary_sha256=sha256_of(binary), cpus=_cpus_around(adb, cpus_before, after_error))


def _cpus_around(adb: Adb, before: CpuState, after_error: str | None) -> dict:
    """The cores present and online before and after the run (after: None once the phone stopped answering)."""
    online_after = None
    if after_error is None:
        try:
            online_after = read_cpu_state(adb).online
        except AdbError:
            pass  # the run is done; the next command will say what became of the phone
    return {"present": before.present, "online_before": before.online, "online_after": online_after}


def run_benchmark_model(adb: Adb, model_path: Path, binary: Path, options: BenchmarkOptions,
                        thermal: ThermalSettings) -> PhoneRun:
    """Push and run the ``benchmark_model`` binary once; parse its output."""
    return _run_binary(adb, "benchmark_model", binary, model_path, options, thermal,
                       lambda tool, model: [tool, f"--graph={model}", *options.benchmark_model_flags()],
                       parse_benchmark_model)


def benchmark_records(log: str) -> list[LogRecord]:
    """The logcat records of the benchmark's own process: the last PID that logged ``STARTING!``.

    Other apps log under the same ``tflite`` tag (LiteRT in Play services, a camera app's model):
    their delegate lines and timings must not be read as this run's. [] until the tool has started.
    """
    records = [r for r in logcat_records(log) if r.pid is not None]
    started = [r.pid for r in records if strip_log_prefixes(r.message).strip() == "STARTING!"]
    if not started:
        return []
    return [r for r in records if r.pid == started[-1]]


def fatal_line(records: list[LogRecord]) -> str | None:
    """The first of the tool's real failure lines among ``records``, if any."""
    for record in records:
        message = strip_log_prefixes(record.message).strip()
        if _FATAL_LINE.match(message):
            return message
    return None


def _app_running(adb: Adb) -> bool | None:
    """Whether the benchmark app's process is alive (None when this phone has no ``pidof``)."""
    code, text = adb.shell(f"pidof {APK_PACKAGE}", check=False)
    if code in (126, 127) or "not found" in text:
        return None
    return code == 0 and bool(text.strip())


def run_benchmark_apk(adb: Adb, model_path: Path, options: BenchmarkOptions, thermal: ThermalSettings,
                      apk: Path | None = None, poll_s: float = 1.0) -> PhoneRun:
    """Run the benchmark APK's activity once (installing ``apk`` first if given); read its own logcat lines."""
    if apk is not None:
        adb.install(apk)
    remote_model = _push_model(adb, Path(model_path))
    args = " ".join([f"--graph={remote_model}"] + options.benchmark_model_flags())
    command = f"am start -S -n {APK_ACTIVITY} --es args {shlex.quote(args)}"
    cooldown = wait_for_cooldown(adb, thermal)
    before = read_temperatures(adb, thermal.zones)
    cpus_before = read_cpu_state(adb)
    adb.shell("logcat -c")
    _, started = adb.shell(command)
    if "Error" in started:
        raise AdbError(f"could not start the benchmark APK ({APK_ACTIVITY}): {started.strip()}; install it with "
                       "--apk PATH (benchmark_model.apk from LiteRT's nightly builds) or `adb install -r -d -g`")
    deadline = time.monotonic() + options.timeout_s
    seen_running = False
    while True:
        _, log = adb.shell(f"logcat -d -v threadtime -s {APK_LOG_TAG}", check=False)
        mine = benchmark_records(log)
        text = "\n".join(record.message for record in mine)
        if (failure := fatal_line(mine)) is not None:
            raise BenchmarkOutputError("the benchmark APK", text, f"it logged a failure: {failure!r}")
        if _SUMMARY_LINE.search(text):
            break
        running = _app_running(adb)
        seen_running = seen_running or bool(running)
        if running is False and (mine or seen_running):
            # gone without a result: one more read, in case the last lines landed in between
            _, log = adb.shell(f"logcat -d -v threadtime -s {APK_LOG_TAG}", check=False)
            text = "\n".join(record.message for record in benchmark_records(log))
            if not _SUMMARY_LINE.search(text):
                raise BenchmarkOutputError("the benchmark APK", text, "the app exited without printing a result "
                                           "(a crash? see `adb logcat -d` for a native crash under tag DEBUG or libc)")
            break
        if time.monotonic() > deadline:
            tail = "\n".join(text.splitlines()[-10:]) or "(nothing logged by the benchmark under tag tflite)"
            raise AdbTimeout(f"the benchmark APK printed no result within {options.timeout_s:g} s; "
                             f"last lines of its log:\n{tail}")
        time.sleep(poll_s)
    parsed = parse_benchmark_model(text)
    after, after_error = read_temperatures_after(adb, thermal.zones)
    return PhoneRun(tool="benchmark_apk", command=command, parsed=parsed, output=_trimmed(text),
                    thermal=thermal_record(before, after, thermal, cooldown, after_error),
                    cpus=_cpus_around(adb, cpus_before, after_error))


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


def run_executor_runner(adb: Adb, model_path: Path, binary: Path, options: BenchmarkOptions,
                        thermal: ThermalSettings) -> PhoneRun:
    """Push and run ExecuTorch's ``executor_runner --model_path=PTE --num_executions=N --cpu_threads=T`` once.

    The runner feeds ones to the input (no input file is pushed) and logs each execution's time; the
    XNNPACK threadpool is sized by ``--cpu_threads`` (builds with ``ET_USE_THREADPOOL``).
    """
    if options.use_gpu or options.use_nnapi:
        raise UsageError("executor_runner runs the delegates compiled into the .pte (XNNPACK here): "
                         "no --gpu or --nnapi")
    return _run_binary(adb, "executor_runner", binary, model_path, options, thermal,
                       lambda tool, model: [tool, f"--model_path={model}", f"--num_executions={options.num_runs}",
                                            f"--cpu_threads={options.num_threads}", *options.extra_args],
                       parse_executor_runner)


def _executor_runner_stats(parsed: ExecutorRunnerResult) -> tuple[LatencyStats, int]:
    """(stats, warm-up runs): with per-execution lines the first execution is the warm-up and the rest are
    summarized; without them, the tool's mean over all executions."""
    timed = parsed.iterations_ms[1:] if len(parsed.iterations_ms) > 1 else []
    if not timed:
        return LatencyStats.from_summary(count=parsed.count, mean_ms=parsed.mean_ms), 0
    ordered = sorted(timed)

    def pick(q: float) -> float:
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)]

    mean = sum(timed) / len(timed)
    std = (sum((t - mean) ** 2 for t in timed) / len(timed)) ** 0.5
    return LatencyStats.from_summary(count=len(timed), mean_ms=mean, min_ms=ordered[0], max_ms=ordered[-1],
                                     std_ms=std, median_ms=pick(0.5), p90_ms=pick(0.9), p99_ms=pick(0.99)), 1


def op_profile_from_tables(parsed: BenchmarkModelResult) -> dict:
    """benchmark_model's regular-run "Summary by node type" in the shape ``python -m profiling show --ops ID`` reads."""
    rows = parsed.op_tables["by_node_type"]
    kernel_ms = sum(row.avg_ms for row in rows)
    return {"source": "benchmark_model --enable_op_profiling (regular runs, primary graph)",
            "runs": parsed.inference.count if parsed.inference else None,
            "model_run_ms": parsed.inference_avg_ms, "kernel_ms": kernel_ms,
            "by_op_type": [{"op_type": row.node_type, "ms_per_run": row.avg_ms, "share": row.percent / 100.0,
                            "nodes": row.count} for row in rows]}


def delegation_record(run: PhoneRun, options: BenchmarkOptions) -> dict | None:
    """What the tool said about the requested delegate (``DelegationLog.summary``); None for onnxruntime."""
    if not isinstance(run.parsed, BenchmarkModelResult):
        return None
    return run.parsed.delegation.summary(options.requested_delegate)


def check_delegation(run: PhoneRun, options: BenchmarkOptions) -> None:
    """Raise DelegationError when ``options.require_full_delegation`` and the tool did not report a full one."""
    if not options.require_full_delegation:
        return
    record = delegation_record(run, options)
    if record is None or record["requested"] is None:
        raise DelegationError("--require-full-delegation needs a delegate (--gpu, --nnapi or XNNPACK) on benchmark_model")
    if record["status"] == "full":
        return
    nodes = (f"; {record['nodes_replaced']} of {record['nodes_total']} nodes replaced in {record['partitions']} "
             f"partition(s)" if record["nodes_total"] is not None else "")
    said = {"partial": f"partially delegated ({record['kernels']} delegate kernels)",
            "none": "not delegated at all", "unknown": "not reported (no delegation line in its output)"}
    raise DelegationError(f"the {record['requested']} delegate: {said[record['status']]}{nodes}; the rest of the graph "
                          "ran on the CPU, so this is no full-delegate measurement (dropped: --require-full-delegation)")


def to_latency_result(run: PhoneRun, *, device: DeviceInfo, model: str, format: str, precision: str,
                      options: BenchmarkOptions, artifact: Artifact | None = None, input_shape: list[int] | None = None,
                      model_path: Path | None = None) -> LatencyResult:
    """One phone run as a ``LatencyResult`` (summary stats, temperatures and tool figures in ``extra``)."""
    parsed = run.parsed
    if isinstance(parsed, ExecutorRunnerResult):
        stats, warmup_runs = _executor_runner_stats(parsed)
        runtime_version = "executor_runner"
    elif isinstance(parsed, OrtPerfResult):
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
             "cpu_mask": run.cpu_mask, "cpus": run.cpus, "output_tail": "\n".join(run.output.splitlines()[-40:])}
    if (isinstance(parsed, OrtPerfResult) and parsed.runs is None) or (
            isinstance(parsed, BenchmarkModelResult) and parsed.inference is None):
        extra["runs_from"] = "the requested --num_runs: the tool printed no count of its timed runs"
    if (delegation := delegation_record(run, options)) is not None:
        extra["delegation"] = delegation
    if isinstance(parsed, ExecutorRunnerResult) and not parsed.iterations_ms:
        extra["runs_from"] = "the tool's total over all executions: this build prints no per-execution times"
    if isinstance(parsed, BenchmarkModelResult):
        if parsed.op_table_error is not None:
            extra["op_profile_error"] = parsed.op_table_error
        elif parsed.op_tables.get("by_node_type"):
            extra["op_profile"] = op_profile_from_tables(parsed)
        elif options.enable_op_profiling:
            extra["op_profile_error"] = "the tool printed no regular-run op table (an older build, or a crash)"
    present = set(run.cpus.get("present") or [])
    online = set(run.cpus.get("online_before") or present)
    if run.cpus.get("online_after") is not None:
        online &= set(run.cpus["online_after"])
    offline = sorted(present - online)
    if offline:
        stats.unstable = True
        stats.unstable_reasons.append(f"cores {format_cores(offline)} offline during the run (hot-plugged)")
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
