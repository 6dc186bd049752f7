"""Parse what the phone benchmark tools print into numbers (milliseconds, bytes).

``benchmark_model`` (LiteRT/TFLite, ``tensorflow/lite/tools/benchmark``) prints, per phase, the
``Stat`` line ``count=N first=F curr=C min=A max=B avg=M std=S`` (microseconds; newer builds add
percentiles such as ``p5= median= p95=``; a phase whose runs all took the same time prints
``count=N curr=C(all same)``), then one summary line, in one of two formats:

- current: ``Inference timings in us: Init: 86123, First inference: 71539, Warmup (avg): 18691.5,
  Inference (avg): 16580.4``, optionally followed by ``Memory footprint delta from the start of the
  tool (MB): init=3.1 overall=13.6`` (older builds: ``Peak memory footprint (MB): init=.. overall=..``)
  and ``Overall peak memory footprint (MB) via periodic monitoring: 14.2``;
- older (still shown in the tool's README): ``Average inference timings in us: Warmup: 83235,
  Init: 38467, Inference: 79760.9``, with the op-profiling ``Timings (microseconds): count=...`` line.

With ``--enable_op_profiling=true`` it also prints the tables ``Run Order``, ``Top by Computation
Time`` and ``Summary by node type`` (tab-separated, bracketed headers). Output read from logcat (the
benchmark APK) carries a ``MM-DD HH:MM:SS.mmm PID TID I tflite  :`` prefix, which is stripped.

``onnxruntime_perf_test`` prints ``Average inference time cost: X ms`` (newer: ``... cost total: X
ms``), ``Min/Max/P50/P90/P95/P99/P999 Latency: S s``, ``Peak working set size: B bytes``,
``Session creation time cost: S s``, ``First inference time cost: N ms``.

Output that holds none of the summary lines raises :class:`BenchmarkOutputError` quoting its tail.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_LOGCAT_PREFIX = re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+[VDIWEF]\s+[^:]*?\s*:\s?")
_BRIEF_PREFIX = re.compile(r"^[VDIWEF]/[^(:]+\(\s*\d+\):\s?")  # `logcat -v brief`: "I/tflite  ( 1234): "
_TIME_PREFIX = re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+[VDIWEF]/[^(:]+\(\s*\d+\):\s?")  # `-v time`
_LEVEL_PREFIX = re.compile(r"^\s*(?:INFO|WARN|WARNING|ERROR|VERBOSE): ")  # the tool's own log level
_STAT_LINE = re.compile(r"count=(\d+)((?:\s+[a-z0-9_]+=" + _NUMBER + r")*)(\(all same\))?")
_CURRENT_SUMMARY = re.compile(
    rf"Inference timings in us: Init: ({_NUMBER}), First inference: ({_NUMBER}), "
    rf"Warmup \(avg\): ({_NUMBER}), Inference \(avg\): ({_NUMBER})")
_OLD_SUMMARY = re.compile(rf"Average inference timings in us: Warmup: ({_NUMBER}), Init: ({_NUMBER}), "
                          rf"(?:no stats: ({_NUMBER})|Inference: ({_NUMBER}))")
_MEMORY = re.compile(rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                     rf"init=({_NUMBER}) overall=({_NUMBER})")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUMBER})")
_INIT_MS = re.compile(rf"Initialized session in ({_NUMBER})ms")
_MODEL_SIZE = re.compile(rf"The input model file size \(MB\): ({_NUMBER})")
_TABLE_TITLE = re.compile(r"^=+ (.+?) =+$")
TAIL_LINES = 20  # lines of unparseable output quoted in the error


class BenchmarkOutputError(ValueError):
    """The tool's output held no result; the message quotes its last lines."""

    def __init__(self, tool: str, output: str, reason: str):
        self.output = output
        lines = output.rstrip().splitlines()[-TAIL_LINES:]
        tail = "\n".join(lines) if lines else "(no output at all)"
        super().__init__(f"could not read {tool}'s result: {reason}\n--- last {len(lines)} lines ---\n{tail}")


@dataclass
class RunStat:
    """One ``count= first= curr= min= max= avg= std=`` line, converted to milliseconds."""

    count: int  # runs
    first_ms: float | None  # first run of the phase
    curr_ms: float | None  # last run of the phase
    min_ms: float | None  # fastest run
    max_ms: float | None  # slowest run
    avg_ms: float | None  # mean run
    std_ms: float | None  # the tool's standard deviation
    percentiles_ms: dict[str, float] = field(default_factory=dict)  # "p5", "median", "p95", ... when printed


@dataclass
class OpRow:
    """One row of an op-profiling table (times in ms, as the tool prints them)."""

    node_type: str  # "CONV_2D"
    avg_ms: float  # average time per run
    percent: float  # share of the total, %
    cdf_percent: float  # cumulative share, %
    times_called: int  # calls per run (0 when the tool does not count)
    name: str | None = None  # node name (run order / top tables)
    start_ms: float | None = None  # start offset within a run (run order / top tables)
    first_ms: float | None = None  # first run's time (run order / top tables)
    count: int | None = None  # nodes of this type (summary table)
    mem_kb: float | None = None  # memory attributed to the op, KB (0 unless the build tracks it)


@dataclass
class BenchmarkModelResult:
    """Everything recovered from one ``benchmark_model`` run."""

    output_format: str  # "current" or "old"
    init_ms: float | None  # model load + interpreter init
    first_inference_ms: float | None  # first warm-up run
    warmup_avg_ms: float | None  # average warm-up run
    inference_avg_ms: float  # average timed run: the tool's headline
    inference: RunStat | None  # the timed phase's Stat line (the last one printed)
    warmup: RunStat | None  # the warm-up phase's Stat line
    memory_init_mb: float | None = None  # footprint delta after init
    memory_overall_mb: float | None = None  # footprint delta at the end
    peak_memory_mb: float | None = None  # with --report_peak_memory_footprint
    model_size_mb: float | None = None  # "The input model file size (MB)"
    op_tables: dict[str, list[OpRow]] = field(default_factory=dict)  # "run_order", "top", "by_node_type"

    def to_dict(self) -> dict:
        return asdict(self)


def strip_log_prefixes(output: str) -> str:
    """Drop logcat prefixes (threadtime and brief formats) so APK output parses like the binary's."""
    lines = []
    for line in output.replace("\r\n", "\n").splitlines():
        line = _LOGCAT_PREFIX.sub("", line)
        line = _BRIEF_PREFIX.sub("", line)
        line = _TIME_PREFIX.sub("", line)
        line = _LEVEL_PREFIX.sub("", line)
        lines.append(line)
    return "\n".join(lines)


def parse_stat_line(line: str, divisor: float = 1e3) -> RunStat | None:
    """A ``count=...`` Stat line -> RunStat in ms (``divisor`` converts the tool's microseconds)."""
    match = _STAT_LINE.search(line)
    if match is None:
        return None
    values = {key: float(value) / divisor for key, value in re.findall(rf"([a-z0-9_]+)=({_NUMBER})", match.group(2))}
    count = int(match.group(1))
    if match.group(3) or (count == 1 and "first" not in values):
        # "(all same)" or a single run ("count=1 curr=C"): every run took `curr`
        same = values.get("curr")
        return RunStat(count=count, first_ms=same, curr_ms=same, min_ms=same, max_ms=same, avg_ms=same,
                       std_ms=0.0, percentiles_ms={k: v for k, v in values.items() if k != "curr"})
    percentiles = {key: value for key, value in values.items()
                   if key not in ("first", "curr", "min", "max", "avg", "std")}
    return RunStat(count=count, first_ms=values.get("first"), curr_ms=values.get("curr"), min_ms=values.get("min"),
                   max_ms=values.get("max"), avg_ms=values.get("avg"), std_ms=values.get("std"),
                   percentiles_ms=percentiles)


def _table_key(title: str) -> str | None:
    title = title.lower()
    if "run order" in title:
        return "run_order"
    if "top by" in title:
        return "top"
    if "summary by node type" in title:
        return "by_node_type"
    return None


def _parse_op_row(cells: list[str], header: list[str]) -> OpRow | None:
    values = dict(zip(header, cells))
    try:
        percent = float(values.get("%", values.get("avg %", "nan")).rstrip("%"))
        cdf = float(values.get("cdf%", values.get("cdf %", "nan")).rstrip("%"))
        row = OpRow(node_type=values["node type"], avg_ms=float(values["avg ms"]), percent=percent,
                    cdf_percent=cdf, times_called=int(float(values.get("times called", "0"))))
        if "name" in values:
            row.name = values["name"].strip("[]")
        if "start" in values:
            row.start_ms = float(values["start"])
        if "first" in values:
            row.first_ms = float(values["first"])
        if "count" in values:
            row.count = int(values["count"])
        if "mem kb" in values:
            row.mem_kb = float(values["mem kb"])
    except (KeyError, ValueError):
        return None
    return row


def parse_op_tables(text: str) -> dict[str, list[OpRow]]:
    """The op-profiling tables, keyed ``run_order`` / ``top`` / ``by_node_type`` (first of each kind)."""
    tables: dict[str, list[OpRow]] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        title = _TABLE_TITLE.match(lines[index].strip())
        key = _table_key(title.group(1)) if title else None
        index += 1
        if key is None or key in tables or index >= len(lines):
            continue
        header = [cell.strip().strip("[]").lower() for cell in lines[index].split("\t") if cell.strip()]
        index += 1
        rows = []
        while index < len(lines) and lines[index].strip() and not _TABLE_TITLE.match(lines[index].strip()):
            cells = [cell.strip() for cell in lines[index].split("\t") if cell.strip()]
            row = _parse_op_row(cells, header)
            if row is None:
                break
            rows.append(row)
            index += 1
        tables[key] = rows
    return tables


def parse_benchmark_model(output: str) -> BenchmarkModelResult:
    """Parse ``benchmark_model``'s stdout (or the APK's logcat) in the current or the older format."""
    text = strip_log_prefixes(output)
    # phases print a bare "count=" line; the op profiler's "Timings (microseconds): count=" repeats
    # the timed phase, and "Memory (bytes): count=" is not a latency
    phase_stats, profiler_stats = [], []
    for line in text.splitlines():
        body = line.strip()
        if body.startswith("Timings (microseconds):"):
            profiler_stats.append(parse_stat_line(body))
        elif body.startswith("count=") and (stat := parse_stat_line(body)) is not None:
            phase_stats.append(stat)
    warmup = phase_stats[0] if len(phase_stats) >= 2 else None
    inference = phase_stats[-1] if phase_stats else (profiler_stats[-1] if profiler_stats else None)

    current = list(_CURRENT_SUMMARY.finditer(text))
    old = list(_OLD_SUMMARY.finditer(text))
    if current:
        init_us, first_us, warmup_us, inference_us = (float(v) for v in current[-1].groups())
        output_format = "current"
    elif old:
        groups = old[-1].groups()
        warmup_us, init_us = float(groups[0]), float(groups[1])
        inference_us = float(groups[3] if groups[3] is not None else groups[2])
        first_us = warmup.first_ms * 1e3 if warmup and warmup.first_ms is not None else None
        output_format = "old"
    else:
        reason = ("it printed no 'Inference timings in us:' summary line (did it crash, or was it cut off? "
                  "check the model path, the delegate flags and the device log)")
        raise BenchmarkOutputError("benchmark_model", output, reason)
    result = BenchmarkModelResult(
        output_format=output_format, init_ms=init_us / 1e3, first_inference_ms=None if first_us is None else first_us / 1e3,
        warmup_avg_ms=warmup_us / 1e3, inference_avg_ms=inference_us / 1e3, inference=inference, warmup=warmup)
    if (memory := _MEMORY.search(text)) is not None:
        result.memory_init_mb, result.memory_overall_mb = float(memory.group(1)), float(memory.group(2))
    if (peak := _PEAK.search(text)) is not None:
        result.peak_memory_mb = float(peak.group(1))
    if (size := _MODEL_SIZE.search(text)) is not None:
        result.model_size_mb = float(size.group(1))
    if result.init_ms is None and (init := _INIT_MS.search(text)) is not None:
        result.init_ms = float(init.group(1))
    result.op_tables = parse_op_tables(text)
    return result


# ---- onnxruntime_perf_test ------------------------------------------------------------------------

@dataclass
class OrtPerfResult:
    """The summary ``onnxruntime_perf_test`` prints (ms and bytes)."""

    average_ms: float  # average inference time: the headline
    runs: int | None  # "Total inference requests"
    session_creation_ms: float | None  # model load and session set-up
    first_inference_ms: float | None  # the untimed first run
    min_ms: float | None  # fastest timed run
    max_ms: float | None  # slowest timed run
    percentiles_ms: dict[str, float] = field(default_factory=dict)  # "p50", "p90", "p95", "p99", "p999"
    peak_working_set_bytes: int | None = None  # the process's peak memory
    inferences_per_second: float | None = None  # throughput the tool reports

    def to_dict(self) -> dict:
        return asdict(self)


def _find(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


def parse_ort_perf_test(output: str) -> OrtPerfResult:
    """Parse ``onnxruntime_perf_test``'s summary (both ``cost:`` and the newer ``cost total:``)."""
    text = output.replace("\r\n", "\n")
    average = _find(rf"Average inference time cost(?: total)?:\s*({_NUMBER}) ms", text)
    if average is None:
        raise BenchmarkOutputError("onnxruntime_perf_test", output,
                                   "it printed no 'Average inference time cost' line (did the session fail "
                                   "to load the model, or the run get cut off?)")
    percentiles = {}
    for label in ("P50", "P90", "P95", "P99", "P999"):
        seconds = _find(rf"{label} Latency:\s*({_NUMBER}) s", text)
        if seconds is not None:
            percentiles[label.lower()] = seconds * 1e3
    creation = _find(rf"Session creation time cost:\s*({_NUMBER}) s", text)
    minimum, maximum = _find(rf"Min Latency:\s*({_NUMBER}) s", text), _find(rf"Max Latency:\s*({_NUMBER}) s", text)
    peak = _find(rf"Peak working set size:\s*(\d+) bytes", text)
    runs = _find(r"Total inference requests:\s*(\d+)", text)
    return OrtPerfResult(
        average_ms=average, runs=None if runs is None else int(runs),
        session_creation_ms=None if creation is None else creation * 1e3,
        first_inference_ms=_find(rf"First inference time cost:\s*({_NUMBER}) ms", text),
        min_ms=None if minimum is None else minimum * 1e3, max_ms=None if maximum is None else maximum * 1e3,
        percentiles_ms=percentiles, peak_working_set_bytes=None if peak is None else int(peak),
        inferences_per_second=_find(rf"Number of inferences per second:\s*({_NUMBER})", text))
