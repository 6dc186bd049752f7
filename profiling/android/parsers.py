"""Parse what the phone benchmark tools print into numbers (milliseconds, bytes), or refuse.

``benchmark_model`` (LiteRT/TFLite, ``tensorflow/lite/tools/benchmark``) prints, per phase, the
``Stat`` line ``count=N first=F curr=C min=A max=B avg=M std=S`` (microseconds; newer builds add
percentiles such as ``p5= median= p95=``; a phase whose runs all took the same time prints
``count=N curr=C(all same)``; a phase that never ran prints ``count=0``), then one summary line, in
one of two formats:

- current: ``Inference timings in us: Init: 86123, First inference: 71539, Warmup (avg): 18691.5,
  Inference (avg): 16580.4``, optionally followed by ``Memory footprint delta from the start of the
  tool (MB): init=3.1 overall=13.6`` (older builds: ``Peak memory footprint (MB): init=.. overall=..``)
  and ``Overall peak memory footprint (MB) via periodic monitoring: 14.2``;
- older (still shown in the tool's README and printed by the APK's JNI listener): ``Average inference
  timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9``.

A summary is only a measurement when the timed phase ran: ``count=0`` with ``Inference (avg): 0``
(``--dry_run``, or ``--num_runs=0 --min_secs=0``) and a ``nan`` average are refused, as is a summary
whose average disagrees with its own timed-phase line (two runs' output mixed together).

Delegation (``tools/benchmark/benchmark_tflite_model.cc`` and the delegate kernels' own log):
``Explicitly applied GPU delegate, and the model graph will be completely executed by the
delegate.`` / ``... partially executed by the delegate w/ 3 delegate kernels.`` / ``Though NNAPI
delegate is explicitly applied, the model graph will not be executed by the delegate.`` and
``Replacing 50 out of 58 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 3 partitions
for the whole graph.`` are collected into :class:`DelegationLog`; a partially delegated GPU run is
not a GPU measurement, and the caller can tell.

With ``--enable_op_profiling=true`` it prints op tables (``tensorflow/core/util/stats_calculator.cc``:
``Run Order``, ``Top by Computation Time``, ``Summary by node type``) in SECTIONS: current builds
print ``Profiling Info for Benchmark Initialization:`` (ModifyGraphWithDelegate, AllocateTensors)
BEFORE ``Operator-wise Profiling Info for Regular Benchmark Runs:``; a model with several
subgraphs gets ``Primary graph profile:`` / ``Subgraph (index: N) profile:`` blocks, and a
delegate with its own profiler a ``Delegate internal:`` block. The op profile is the regular-run
tables of the primary graph; the others are kept apart, labelled. Node names are printed as
``[output tensors]:node_index`` (``[tfl.quantize]:0``). Columns are tab-separated; tables pasted
from a terminal have spaces instead, and are read by the column formats (3-decimal times,
``%``-suffixed shares) rather than by tabs. A table that cannot be read is reported, never stored
as an empty profile.

Output read from logcat (the benchmark APK) carries a ``MM-DD HH:MM:SS.mmm PID TID I tflite  :``
prefix (or the ``-v brief`` / ``-v time`` ones), which is stripped; :func:`logcat_records` keeps
the PID, so the APK runner can drop other apps that log under the same tag.

``onnxruntime_perf_test`` (``onnxruntime/test/perftest/performance_runner.cc``) prints one summary
block: ``Session creation time cost: S s``, ``First inference time cost: N ms``, ``Total inference
requests: N``, ``Average inference time cost: X ms`` (newer: ``... cost total: X ms``), ``Peak
working set size: B bytes``, then ``Runs:N`` and ``Min/Max/P50/P90/P95/P99/P999 Latency: S s``.
When the output holds more than one block, every figure comes from the last complete one. Zero
requests, a zero, negative or NaN average are refused.

Output that holds none of the summary lines, or a refused one, raises :class:`BenchmarkOutputError`
quoting its tail.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# what a C++ stream prints for a double, NaN and infinities included ("-nan" with glibc)
_FIGURE = r"[-+]?(?:nan|inf|\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_THREADTIME = re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+(\d+)\s+\d+\s+([VDIWEF])\s+(.*?)\s*: ?(.*)$")
_BRIEF = re.compile(r"^(?:\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+)?([VDIWEF])/([^(:]+?)\s*\(\s*(\d+)\): ?(.*)$")
_LEVEL_PREFIX = re.compile(r"^\s*(?:INFO|WARN|WARNING|ERROR|VERBOSE|DEBUG): ")  # the tool's own log level
_STAT_LINE = re.compile(r"count=(\d+)((?:\s+[a-z0-9_]+=" + _FIGURE + r")*)(\(all same\))?", re.IGNORECASE)
_CURRENT_SUMMARY = re.compile(
    rf"Inference timings in us: Init: ({_FIGURE}), First inference: ({_FIGURE}), "
    rf"Warmup \(avg\): ({_FIGURE}), Inference \(avg\): ({_FIGURE})", re.IGNORECASE)
_OLD_SUMMARY = re.compile(rf"Average inference timings in us: Warmup: ({_FIGURE}), Init: ({_FIGURE}), "
                          rf"(?:no stats: ({_FIGURE})|Inference: ({_FIGURE}))", re.IGNORECASE)
_MEMORY = re.compile(rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                     rf"init=({_NUMBER}) overall=({_NUMBER})")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUMBER})")
_INIT_MS = re.compile(rf"Initialized session in ({_NUMBER})ms")
_MODEL_SIZE = re.compile(rf"The input model file size \(MB\): ({_NUMBER})")
_TABLE_TITLE = re.compile(r"^=+ (.+?) =+$")
_INIT_SECTION = "Profiling Info for Benchmark Initialization:"
_RUN_SECTION = "Operator-wise Profiling Info for Regular Benchmark Runs:"
_SUBGRAPH_BLOCK = re.compile(r"^(?:Primary graph|Subgraph \(index: (\d+)\)) (?:profile|summary):$")
_DELEGATE_BLOCK = "Delegate internal:"
_APPLIED = re.compile(r"Explicitly applied (\S+) delegate, and the model graph will be (completely|partially) "
                      r"executed by the delegate(?: w/ (\d+) delegate kernels)?\.?")
_NOT_APPLIED = re.compile(r"Though (\S+) delegate is explicitly applied, the model graph will not be executed "
                          r"by the delegate\.?")
_REPLACING = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]+)\) node, yielding (\d+) "
                        r"partitions?(?: for (?:the whole graph|subgraph (\d+)))?")
# a table cell, by column: times print with 3 decimals, shares with a % sign, counts as integers
_CELL = {"time": r"-?(?:\d+\.\d+|nan|inf)", "share": r"-?(?:\d+(?:\.\d+)?|nan|inf)%", "int": r"\d+"}
_COLUMN_KIND = {"start": "time", "first": "time", "avg ms": "time", "mem kb": "time", "%": "share",
                "cdf%": "share", "avg %": "share", "cdf %": "share", "times called": "int", "count": "int"}
TAIL_LINES = 20  # lines of unparseable output quoted in the error


class BenchmarkOutputError(ValueError):
    """The tool's output held no usable result; the message says why and quotes its last lines."""

    def __init__(self, tool: str, output: str, reason: str):
        self.output = output
        self.reason = reason
        lines = output.rstrip().splitlines()[-TAIL_LINES:]
        tail = "\n".join(lines) if lines else "(no output at all)"
        super().__init__(f"could not read {tool}'s result: {reason}\n--- last {len(lines)} lines ---\n{tail}")


class OpTableError(ValueError):
    """An op-profiling table was printed but could not be read; the message names it and quotes the line."""


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

    node_type: str  # "CONV_2D", "TfLiteXNNPackDelegate", "AllocateTensors"
    avg_ms: float  # average time per run
    percent: float  # share of the total, %
    cdf_percent: float  # cumulative share, %
    times_called: int  # calls per run (0 when the tool does not count)
    name: str | None = None  # node name: the output tensors ("tfl.quantize", "a, b") or "AllocateTensors/0"
    node_index: int | None = None  # the node's index in its subgraph (the ":N" the tool appends to names)
    start_ms: float | None = None  # start offset within a run (run order / top tables)
    first_ms: float | None = None  # first run's time (run order / top tables)
    count: int | None = None  # nodes of this type (summary table)
    mem_kb: float | None = None  # memory attributed to the op, KB (0 unless the build tracks it)


@dataclass
class DelegateApplication:
    """One ``Explicitly applied X delegate ...`` / ``Though X delegate is explicitly applied ...`` line."""

    delegate: str  # the provider's name as printed: "GPU", "NNAPI", "XNNPACK", "Hexagon", ...
    outcome: str  # "full", "partial" or "none"
    kernels: int | None  # delegate kernels in the execution plan (1 when full, 0 when none)


@dataclass
class NodeReplacement:
    """One ``Replacing N out of M node(s) with delegate (KERNEL) node, yielding P partitions`` line."""

    kernel: str  # the delegate kernel's name: "TfLiteGpuDelegateV2", "TfLiteXNNPackDelegate", ...
    replaced: int  # nodes the delegate took
    total: int  # nodes in the (sub)graph
    partitions: int  # delegate partitions, one kernel each
    subgraph: int | None = None  # "for subgraph N"; None for "for the whole graph" or not said


@dataclass
class DelegationLog:
    """Every delegation line the tool printed, in order."""

    applied: list[DelegateApplication] = field(default_factory=list)
    replacements: list[NodeReplacement] = field(default_factory=list)

    def summary(self, requested: str | None) -> dict:
        """What happened to the ``requested`` delegate ("GPU", "NNAPI", "XNNPACK"; None: no delegate asked for).

        ``status`` is "full", "partial", "none", "unknown" (the tool printed nothing about it) or
        "not_requested". The kernel counts come from the tool's own verdict line; the node counts from
        the delegate's ``Replacing`` line(s) for the primary graph.
        """
        record = {"requested": requested, "status": "not_requested", "kernels": None, "nodes_replaced": None,
                  "nodes_total": None, "partitions": None, "applied": [asdict(a) for a in self.applied],
                  "replacements": [asdict(r) for r in self.replacements]}
        if requested is None:
            return record
        mine = [a for a in self.applied if a.delegate.lower() == requested.lower()]
        replacing = [r for r in self.replacements if requested.lower() in r.kernel.lower()
                     and r.subgraph in (None, 0)]
        if replacing:
            record.update(nodes_replaced=sum(r.replaced for r in replacing), nodes_total=sum(r.total for r in replacing),
                          partitions=sum(r.partitions for r in replacing))
        if mine:
            outcomes = {a.outcome for a in mine}
            status = "none" if "none" in outcomes else ("partial" if "partial" in outcomes else "full")
            kernels = [a.kernels for a in mine if a.kernels is not None]
            record.update(status=status, kernels=kernels[-1] if kernels else None)
        elif replacing:
            replaced, total = record["nodes_replaced"], record["nodes_total"]
            record["status"] = ("none" if replaced == 0 else
                                "full" if replaced == total and record["partitions"] == 1 else "partial")
            record["kernels"] = record["partitions"]
        else:
            record["status"] = "unknown"
        return record


@dataclass
class BenchmarkModelResult:
    """Everything recovered from one ``benchmark_model`` run."""

    output_format: str  # "current" or "old"
    init_ms: float | None  # model load + interpreter init
    first_inference_ms: float | None  # first warm-up run
    warmup_avg_ms: float | None  # average warm-up run
    inference_avg_ms: float  # average timed run: the tool's headline
    inference: RunStat | None  # the timed phase's Stat line
    warmup: RunStat | None  # the warm-up phase's Stat line
    memory_init_mb: float | None = None  # footprint delta after init
    memory_overall_mb: float | None = None  # footprint delta at the end
    peak_memory_mb: float | None = None  # with --report_peak_memory_footprint
    model_size_mb: float | None = None  # "The input model file size (MB)"
    op_tables: dict[str, list[OpRow]] = field(default_factory=dict)  # regular runs, primary graph: "run_order", "top", "by_node_type"
    init_op_tables: dict[str, list[OpRow]] = field(default_factory=dict)  # "Profiling Info for Benchmark Initialization"
    subgraph_op_tables: dict[str, dict[str, list[OpRow]]] = field(default_factory=dict)  # regular runs of subgraph N ("1", ...)
    delegate_op_tables: dict[str, list[OpRow]] = field(default_factory=dict)  # "Delegate internal:" of the regular runs
    op_table_error: str | None = None  # why a printed op table could not be read (then op_tables is not a profile)
    delegation: DelegationLog = field(default_factory=DelegationLog)  # the delegate lines

    def to_dict(self) -> dict:
        return asdict(self)


# ---- log lines ------------------------------------------------------------------------------------

@dataclass
class LogRecord:
    """One line of logcat output (or of plain tool output, with no pid)."""

    pid: int | None  # the logging process (None: not a logcat line)
    level: str | None  # "V", "D", "I", "W", "E", "F"
    tag: str | None  # logcat tag ("tflite")
    message: str  # the text after the prefix


def logcat_records(output: str) -> list[LogRecord]:
    """Each line as a LogRecord: logcat ``threadtime``, ``brief`` and ``time`` prefixes are parsed off."""
    records = []
    for line in re.sub(r"\r+\n", "\n", output).split("\n"):
        if (match := _THREADTIME.match(line)) is not None:
            records.append(LogRecord(int(match.group(1)), match.group(2), match.group(3), match.group(4)))
        elif (match := _BRIEF.match(line)) is not None:
            records.append(LogRecord(int(match.group(3)), match.group(1), match.group(2), match.group(4)))
        else:
            records.append(LogRecord(None, None, None, line))
    return records


def strip_log_prefixes(output: str) -> str:
    """Drop logcat prefixes and the tool's ``INFO: `` levels, so APK output parses like the binary's."""
    return "\n".join(_LEVEL_PREFIX.sub("", record.message) for record in logcat_records(output))


def parse_stat_line(line: str, divisor: float = 1e3) -> RunStat | None:
    """A ``count=...`` Stat line -> RunStat in ms (``divisor`` converts the tool's microseconds)."""
    match = _STAT_LINE.search(line)
    if match is None:
        return None
    values = {key: float(value) / divisor
              for key, value in re.findall(rf"([a-z0-9_]+)=({_FIGURE})", match.group(2), re.IGNORECASE)}
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


# ---- op tables ------------------------------------------------------------------------------------

def _table_key(title: str) -> str | None:
    title = title.lower()
    if "run order" in title:
        return "run_order"
    if "top by" in title:
        return "top"
    if "summary by node type" in title:
        return "by_node_type"
    return None


def _header_columns(line: str) -> list[str]:
    """The bracketed column names of a table header, lower case: ["node type", "start", ..., "name"]."""
    return [name.strip().lower() for name in re.findall(r"\[([^\]]+)\]", line)]


def _row_cells(line: str, header: list[str]) -> list[str] | None:
    """The cells of one row, from tabs when the tool's tabs survived, else by the columns' formats."""
    if "\t" in line.strip("\t ") or line.startswith("\t"):
        cells = [cell.strip() for cell in line.split("\t") if cell.strip()]
        return cells if len(cells) == len(header) else None
    # spaces only: node types and names may hold spaces and digits ("convolution_2d 0 -> relu 1"),
    # so the numeric columns are found by their printed formats, the type taking what is left before them
    parts = [r"\s*(.+?)"]
    for column in header[1:]:
        if column == "name":
            parts.append(r"\s+(.+?)")
        else:
            parts.append(r"\s+(" + _CELL[_COLUMN_KIND.get(column, "time")] + ")")
    match = re.fullmatch("".join(parts) + r"\s*", line)
    return list(match.groups()) if match else None


def _split_name(printed: str) -> tuple[str, int | None]:
    """``[tfl.quantize]:0`` -> ("tfl.quantize", 0); ``[a, b]:3`` -> ("a, b", 3); ``[x]`` (older builds)
    -> ("x", None); ``Delegate/conv 0 -> relu 1:0`` -> ("Delegate/conv 0 -> relu 1", 0)."""
    if (match := re.fullmatch(r"\[(.*)\]:(\d+)", printed)) is not None:
        return match.group(1), int(match.group(2))
    if (match := re.fullmatch(r"\[(.*)\]", printed)) is not None:
        return match.group(1), None
    if (match := re.fullmatch(r"(Delegate/.*):(\d+)", printed)) is not None:
        return match.group(1), int(match.group(2))
    return printed, None


def _op_row(cells: list[str], header: list[str]) -> OpRow:
    values = dict(zip(header, cells))

    def number(column: str) -> float:
        return float(values[column].rstrip("%"))

    row = OpRow(node_type=values["node type"], avg_ms=number("avg ms"),
                percent=number("%" if "%" in values else "avg %"),
                cdf_percent=number("cdf%" if "cdf%" in values else "cdf %"),
                times_called=int(values.get("times called", "0")))
    if "name" in values:
        row.name, row.node_index = _split_name(values["name"])
    if "start" in values:
        row.start_ms = number("start")
    if "first" in values:
        row.first_ms = number("first")
    if "count" in values:
        row.count = int(values["count"])
    if "mem kb" in values:
        row.mem_kb = number("mem kb")
    return row


def _read_table(lines: list[str], index: int, title: str) -> tuple[list[OpRow], int]:
    """The rows of the table whose header is ``lines[index]``; returns (rows, index after the table)."""
    header = _header_columns(lines[index])
    if not header or header[0] != "node type" or "avg ms" not in header:
        raise OpTableError(f"op table {title!r}: no column header after its title, got {lines[index].strip()!r}")
    index += 1
    rows = []
    while index < len(lines) and lines[index].strip():
        line = lines[index]
        if _TABLE_TITLE.match(line.strip()) or line.strip().startswith(("Timings (microseconds)", "Number of nodes")):
            break
        cells = _row_cells(line.rstrip(), header)
        if cells is None:
            raise OpTableError(f"op table {title!r}: cannot read row {len(rows) + 1} ({len(header)} columns "
                               f"{header} expected): {line.strip()!r}")
        try:
            rows.append(_op_row(cells, header))
        except (KeyError, ValueError) as error:
            raise OpTableError(f"op table {title!r}: bad value in row {len(rows) + 1} ({error}): {line.strip()!r}") \
                from None
        index += 1
    if not rows:
        raise OpTableError(f"op table {title!r} has a header but no rows")
    return rows, index


@dataclass
class _OpSections:
    """The op tables of one output, by section and block."""

    run: dict[str, list[OpRow]] = field(default_factory=dict)
    init: dict[str, list[OpRow]] = field(default_factory=dict)
    subgraphs: dict[str, dict[str, list[OpRow]]] = field(default_factory=dict)
    delegate: dict[str, list[OpRow]] = field(default_factory=dict)
    run_timings: list[RunStat] = field(default_factory=list)  # "Timings (microseconds):" of the primary run block


def parse_op_sections(text: str) -> _OpSections:
    """Every op table in ``text`` (prefixes already stripped), filed by section, subgraph and delegate block.

    Output with no section headers (older builds) counts as the regular runs. Raises OpTableError for a
    table that is printed but cannot be read.
    """
    sections = _OpSections()
    lines = text.split("\n")
    section, block = "run", "primary"  # section: "run"/"init"; block: "primary", "subgraph N", "delegate"
    index = 0
    while index < len(lines):
        body = lines[index].strip()
        index += 1
        if body == _INIT_SECTION:
            section, block = "init", "primary"
        elif body == _RUN_SECTION:
            section, block = "run", "primary"
        elif (match := _SUBGRAPH_BLOCK.match(body)) is not None:
            block = f"subgraph {match.group(1)}" if match.group(1) else "primary"
        elif body == _DELEGATE_BLOCK:
            block = "delegate"
        elif body.startswith("Timings (microseconds):") and section == "run" and block == "primary":
            if (stat := parse_stat_line(body)) is not None:
                sections.run_timings.append(stat)
        elif (title := _TABLE_TITLE.match(body)) is not None and (key := _table_key(title.group(1))) is not None:
            if index >= len(lines):
                raise OpTableError(f"op table {title.group(1)!r}: the output ends after its title")
            rows, index = _read_table(lines, index, title.group(1))
            if section == "init":
                target = sections.init if block == "primary" else {}
            elif block == "primary":
                target = sections.run
            elif block == "delegate":
                target = sections.delegate
            else:
                target = sections.subgraphs.setdefault(block.split()[1], {})
            target.setdefault(key, rows)  # a table printed twice (two listeners) is the same table
    return sections


def parse_op_tables(text: str) -> dict[str, list[OpRow]]:
    """The regular-run op tables of the primary graph, keyed ``run_order`` / ``top`` / ``by_node_type``."""
    return parse_op_sections(strip_log_prefixes(text)).run


def parse_delegation(text: str) -> DelegationLog:
    """The delegation lines of ``text`` (prefixes already stripped), in order."""
    log = DelegationLog()
    for line in text.split("\n"):
        if (match := _APPLIED.search(line)) is not None:
            full = match.group(2) == "completely"
            log.applied.append(DelegateApplication(match.group(1), "full" if full else "partial",
                                                   1 if full else (int(match.group(3)) if match.group(3) else None)))
        elif (match := _NOT_APPLIED.search(line)) is not None:
            log.applied.append(DelegateApplication(match.group(1), "none", 0))
        elif (match := _REPLACING.search(line)) is not None:
            log.replacements.append(NodeReplacement(
                kernel=match.group(3), replaced=int(match.group(1)), total=int(match.group(2)),
                partitions=int(match.group(4)), subgraph=None if match.group(5) is None else int(match.group(5))))
    return log


# ---- benchmark_model -----------------------------------------------------------------------------

def _summary_window(lines: list[str]) -> tuple[re.Match, str, int, int] | None:
    """The last summary line: (match, format, first line of the phase lines before it, its line index).

    Two listeners may print the same summary twice in a row: the phase lines belong to the first copy.
    """
    found = []
    for index, line in enumerate(lines):
        if (match := _CURRENT_SUMMARY.search(line)) is not None:
            found.append((index, match, "current"))
        elif (match := _OLD_SUMMARY.search(line)) is not None:
            found.append((index, match, "old"))
    if not found:
        return None
    last_index, match, output_format = found[-1]
    first = len(found) - 1
    while first > 0 and found[first - 1][1].group(0) == match.group(0):
        first -= 1
    start = found[first - 1][0] + 1 if first > 0 else 0
    return match, output_format, start, found[first][0]


def _figure(text: str | None) -> float | None:
    return None if text is None else float(text)


def _refuse_unmeasured(output: str, timed: RunStat | None, inference_us: float) -> None:
    """Raise when the timed phase did not measure anything usable."""
    if math.isnan(inference_us):
        raise BenchmarkOutputError("benchmark_model", output, "its summary says the average inference time is NaN "
                                   "(Inference (avg): nan): the timed phase produced no timing; nothing was measured")
    if timed is not None and timed.count == 0:
        raise BenchmarkOutputError("benchmark_model", output, "the timed phase ran 0 times (count=0): was --dry_run "
                                   "set, or --num_runs=0 with --min_secs=0? Nothing was measured")
    if not math.isfinite(inference_us) or inference_us <= 0:
        raise BenchmarkOutputError("benchmark_model", output, f"its summary gives an average inference time of "
                                   f"{inference_us:g} us, which is no measurement (0 runs, --dry_run, or a clock fault)")
    if timed is not None and timed.avg_ms is not None and timed.avg_ms > 0:
        if abs(timed.avg_ms * 1e3 - inference_us) > 1e-3 * inference_us + 1.0:
            raise BenchmarkOutputError("benchmark_model", output, (
                f"the timed phase's line says avg={timed.avg_ms * 1e3:g} us but the summary says Inference (avg): "
                f"{inference_us:g} us: the output mixes more than one run"))


def parse_benchmark_model(output: str) -> BenchmarkModelResult:
    """Parse ``benchmark_model``'s output (stdout and stderr, or the APK's logcat) in either format."""
    text = strip_log_prefixes(output)
    lines = text.split("\n")
    window = _summary_window(lines)
    if window is None:
        reason = ("it printed no 'Inference timings in us:' summary line (did it crash, or was it cut off? "
                  "check the model path, the delegate flags and the device log)")
        raise BenchmarkOutputError("benchmark_model", output, reason)
    match, output_format, start, summary_index = window
    # the phases print a bare "count=" line each (warm-up, then timed) between the previous summary
    # and this one; "Timings (microseconds): count=" belongs to the op profiler, "Memory (bytes)" is no latency
    phase_stats = [stat for line in lines[start:summary_index] if line.strip().startswith("count=")
                   and (stat := parse_stat_line(line.strip())) is not None]
    warmup = phase_stats[-2] if len(phase_stats) >= 2 else None
    try:
        sections = parse_op_sections(text)
        op_error = None
    except OpTableError as error:
        sections, op_error = _OpSections(), str(error)
    inference = phase_stats[-1] if phase_stats else (sections.run_timings[-1] if sections.run_timings else None)

    if output_format == "current":
        init_us, first_us, warmup_us, inference_us = (_figure(v) for v in match.groups())
    else:
        groups = match.groups()
        warmup_us, init_us = _figure(groups[0]), _figure(groups[1])
        inference_us = _figure(groups[3] if groups[3] is not None else groups[2])
        first_us = warmup.first_ms * 1e3 if warmup and warmup.first_ms is not None else None
    _refuse_unmeasured(output, phase_stats[-1] if phase_stats else None, inference_us)
    result = BenchmarkModelResult(
        output_format=output_format, init_ms=init_us / 1e3,
        first_inference_ms=None if first_us is None else first_us / 1e3,
        warmup_avg_ms=None if warmup_us is None or math.isnan(warmup_us) else warmup_us / 1e3,
        inference_avg_ms=inference_us / 1e3, inference=inference, warmup=warmup)
    if (memory := _MEMORY.search(text)) is not None:
        result.memory_init_mb, result.memory_overall_mb = float(memory.group(1)), float(memory.group(2))
    if (peak := _PEAK.search(text)) is not None:
        result.peak_memory_mb = float(peak.group(1))
    if (size := _MODEL_SIZE.search(text)) is not None:
        result.model_size_mb = float(size.group(1))
    if result.init_ms is None and (init := _INIT_MS.search(text)) is not None:
        result.init_ms = float(init.group(1))
    result.op_tables, result.init_op_tables = sections.run, sections.init
    result.subgraph_op_tables, result.delegate_op_tables = sections.subgraphs, sections.delegate
    result.op_table_error = op_error
    result.delegation = parse_delegation(text)
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
    summaries: int = 1  # summary blocks in the output; the figures are the last complete one's

    def to_dict(self) -> dict:
        return asdict(self)


# key -> pattern of one summary line; a key seen again starts the next summary block
_ORT_LINES = {
    "session_s": rf"^Session creation time cost:\s*({_FIGURE}) s",
    "first_ms": rf"^First inference time cost:\s*({_FIGURE}) ms",
    "total_s": rf"^Total inference time cost:\s*({_FIGURE}) s",
    "requests": r"^Total inference requests:\s*(\d+)",
    "average_ms": rf"^Average inference time cost(?: total)?:\s*({_FIGURE}) ms",
    "per_second": rf"^Number of inferences per second:\s*({_FIGURE})",
    "peak_bytes": r"^Peak working set size:\s*(\d+) bytes",
    "runs": r"^Runs:\s*(\d+)",
    "min_s": rf"^Min Latency:\s*({_FIGURE}) s",
    "max_s": rf"^Max Latency:\s*({_FIGURE}) s",
    **{f"{label.lower()}_s": rf"^{label} Latency:\s*({_FIGURE}) s" for label in ("P50", "P90", "P95", "P99", "P999")},
}


def _ort_blocks(text: str) -> list[dict[str, float]]:
    """The summary blocks of ``text``: each a dict of the keys of :data:`_ORT_LINES` it printed."""
    blocks: list[dict[str, float]] = [{}]
    for line in text.split("\n"):
        for key, pattern in _ORT_LINES.items():
            if (match := re.match(pattern, line.strip(), re.IGNORECASE)) is not None:
                if key in blocks[-1]:
                    blocks.append({})
                blocks[-1][key] = float(match.group(1))
                break
    return [block for block in blocks if block]


def parse_ort_perf_test(output: str) -> OrtPerfResult:
    """Parse ``onnxruntime_perf_test``'s summary; every figure from the last block with an average."""
    text = re.sub(r"\r+\n", "\n", output)
    blocks = [block for block in _ort_blocks(text) if "average_ms" in block]
    if not blocks:
        raise BenchmarkOutputError("onnxruntime_perf_test", output,
                                   "it printed no 'Average inference time cost' line (did the session fail "
                                   "to load the model, or the run get cut off?)")
    block = blocks[-1]
    average = block["average_ms"]
    for key in ("requests", "runs"):
        if block.get(key) == 0:
            raise BenchmarkOutputError("onnxruntime_perf_test", output, "it ran 0 inference requests (Total inference "
                                       "requests: 0): nothing was measured; check -r / -t and the model's inputs")
    if math.isnan(average):
        raise BenchmarkOutputError("onnxruntime_perf_test", output, "its average inference time is NaN: no request "
                                   "was timed; nothing was measured")
    if not math.isfinite(average) or average <= 0:
        raise BenchmarkOutputError("onnxruntime_perf_test", output, f"its average inference time is {average:g} ms, "
                                   "which is no measurement (a clock fault, or no timed request)")
    percentiles = {key[:-2]: block[key] * 1e3 for key in ("p50_s", "p90_s", "p95_s", "p99_s", "p999_s") if key in block}

    def scaled(key: str, factor: float) -> float | None:
        return block[key] * factor if key in block else None

    runs = block.get("requests", block.get("runs"))
    return OrtPerfResult(
        average_ms=average, runs=None if runs is None else int(runs), session_creation_ms=scaled("session_s", 1e3),
        first_inference_ms=block.get("first_ms"), min_ms=scaled("min_s", 1e3), max_ms=scaled("max_s", 1e3),
        percentiles_ms=percentiles,
        peak_working_set_bytes=None if "peak_bytes" not in block else int(block["peak_bytes"]),
        inferences_per_second=block.get("per_second"), summaries=len(blocks))


@dataclass
class ExecutorRunnerResult:
    """What ExecuTorch's ``executor_runner`` logs (``examples/portable/executor_runner``), in ms.

    Its lines go through ``ET_LOG``: ``I 00:00:01.234567 executorch:executor_runner.cpp:412] MESSAGE``
    (level letter, time since start, file and line), on stderr or stdout depending on the build.
    """

    count: int  # "Model executed successfully N time(s) in T ms."
    total_ms: float  # T: the sum of the timed ``method->execute()`` calls
    iterations_ms: list[float] = field(default_factory=list)  # "Iteration i of N: t ms" (newer builds only)
    load_ms: float | None = None  # "Model loaded in t ms." (program and method load; newer builds)
    threads: int | None = None  # "Resetting threadpool with num threads = N" (threadpool builds)
    method: str | None = None  # "Using method forward"

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.count

    def to_dict(self) -> dict:
        return asdict(self)


_ET_PREFIX = re.compile(r"^[DIEF] \d{2}:\d{2}:\d{2}\.\d{6} executorch:[^\]]*\] ?")
_ET_LINES = {
    "summary": re.compile(rf"Model executed successfully (\d+) time\(s\) in ({_FIGURE}) ms\.?"),
    "iteration": re.compile(rf"Iteration (\d+) of (\d+): ({_FIGURE}) ms"),
    "load": re.compile(rf"Model loaded in ({_FIGURE}) ms"),
    "threads": re.compile(r"Resetting threadpool with num threads = (-?\d+)"),
    "method": re.compile(r"Using method (\S+)"),
}


def executor_runner_errors(output: str) -> list[str]:
    """The ``E``-level ``ET_LOG`` messages and gflags' own ``ERROR:`` lines, in order."""
    errors = []
    for line in re.sub(r"\r+\n", "\n", output).splitlines():
        if line.startswith("E ") and _ET_PREFIX.match(line):
            errors.append(_ET_PREFIX.sub("", line).strip())
        elif line.startswith("ERROR: "):  # gflags: "ERROR: unknown command line flag 'x'"
            errors.append(line.strip())
    return errors


def parse_executor_runner(output: str) -> ExecutorRunnerResult:
    """Parse ``executor_runner``'s log: the ``Model executed successfully`` line, or refuse with its error."""
    found: dict[str, list] = {key: [] for key in _ET_LINES}
    for line in re.sub(r"\r+\n", "\n", output).splitlines():
        message = _ET_PREFIX.sub("", line).strip()
        for key, pattern in _ET_LINES.items():
            if (match := pattern.search(message)) is not None:
                found[key].append(match.groups())
    if not found["summary"]:
        errors = executor_runner_errors(output)
        reason = (f"it logged an error: {errors[0]!r}" if errors else
                  "it printed no 'Model executed successfully' line (a crash, or the run was cut off?)")
        raise BenchmarkOutputError("executor_runner", output, reason)
    count_text, total_text = found["summary"][-1]
    count, total = int(count_text), float(total_text)
    if count == 0:
        raise BenchmarkOutputError("executor_runner", output, "it executed the model 0 times "
                                   "(--num_executions=0): nothing was measured")
    if not math.isfinite(total) or total <= 0:
        raise BenchmarkOutputError("executor_runner", output, f"its total execution time is {total:g} ms, "
                                   "which is no measurement (a clock fault?)")
    iterations = [float(ms) for _, of, ms in found["iteration"] if int(of) == count][-count:]
    if iterations and len(iterations) != count:
        iterations = []  # a cut or mixed log: the summary stands alone
    return ExecutorRunnerResult(
        count=count, total_ms=total, iterations_ms=iterations,
        load_ms=float(found["load"][-1][0]) if found["load"] else None,
        threads=int(found["threads"][-1][0]) if found["threads"] else None,
        method=found["method"][-1][0] if found["method"] else None)
