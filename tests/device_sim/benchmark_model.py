"""The device simulator's ``benchmark_model``: prints what LiteRT's tool prints, where it prints it.

Follows ``tensorflow/lite/tools/benchmark``: ``TFLITE_LOG(INFO/WARN)`` lines go to stdout with an
``INFO: ``/``WARN: `` prefix, ``TFLITE_LOG(ERROR)`` and the runtime's own log (delegate creation,
``VERBOSE: Replacing N out of M node(s) ...``) to stderr. A warm-up phase (``--warmup_runs`` runs and
at least 0.5 s) and a timed phase (``--num_runs`` runs and at least ``--min_secs``) each end with
their ``count= first= curr= min= max= avg= std= p5= median= p95=`` line in microseconds and a blank
line; then the ``Inference timings in us:`` summary and the memory lines. With
``--enable_op_profiling=true`` the op tables follow in two sections, initialisation FIRST
(``ModifyGraphWithDelegate``, ``AllocateTensors``), then the regular runs, node names as
``[output tensors]:node_index``, and nodes a delegate took shown as its kernels. The delegate lines
(``Explicitly applied GPU delegate, ...``) follow ``benchmark_tflite_model.cc``.

Timing: by default the pushed .tflite really runs with ai-edge-litert on this host;
``ADB_SIM_TIMING=synthetic`` times a stand-in (no model is loaded, no time passes) so fault tests
stay fast. Either way each run appends what it printed as figures to ``runs.jsonl`` in the phone's
folder, so a test can compare what was stored with what the tool said.

Environment: ``ADB_SIM_BM_FORMAT=old`` prints the older summary (``Average inference timings in us:
Warmup:, Init:, Inference:``) without percentiles. ``ADB_SIM_DELEGATE=full|partial|none`` decides how
much of the graph the requested delegate (GPU, NNAPI, or the default XNNPACK) takes. Faults
(``ADB_SIM_FAULT``): ``garbage`` (nonsense), ``zero_runs`` (the timed phase ran 0 times, as under
``--dry_run``: ``count=0``, ``Inference (avg): 0``), ``nan`` (``Inference (avg): -nan``),
``no_final_newline`` (the last line is not terminated), ``expand_tabs`` (the tables' tabs arrive as
spaces), ``no_model_size`` (``WARN: Failed to get the input model file size.``), ``crash`` (with
``ADB_SIM_CRASH_THREADS=N``: a run with ``--num_threads=N`` dies mid-line with SIGSEGV's status 139),
``open_fail`` (the graph cannot be opened: ``Could not open``, ``Failed to mmap model``).
There is no GPU/NNAPI here: those runs execute on the CPU.
"""
from __future__ import annotations

import json
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path

OLD = os.environ.get("ADB_SIM_BM_FORMAT") == "old"
PREFIX = "" if OLD else "INFO: "
FAULTS = {f.partition("@")[0] for f in os.environ.get("ADB_SIM_FAULT", "").split(",") if f}
SYNTHETIC = os.environ.get("ADB_SIM_TIMING") == "synthetic"
DELEGATE_OUTCOME = os.environ.get("ADB_SIM_DELEGATE", "full")
KERNELS = {"GPU": "TfLiteGpuDelegateV2", "NNAPI": "TfLiteNnapiDelegate", "XNNPACK": "TfLiteXNNPackDelegate"}
# the stand-in graph of synthetic mode: (node type, output tensor names)
SYNTHETIC_OPS = [("QUANTIZE", "tfl.quantize"), ("CONV_2D", "model/conv0/Conv2D;model/conv0/Relu"),
                 ("CONV_2D", "model/conv1/Conv2D"), ("MEAN", "model/pool/Mean"),
                 ("FULLY_CONNECTED", "logits, logits_aux")]


class Output:
    """stdout and stderr as the tool writes them (``expand_tabs``, ``no_final_newline`` applied at the end)."""

    def __init__(self):
        self.chunks: list[tuple[str, str]] = []  # (stream, text)

    def info(self, message: str = "") -> None:
        self.chunks.append(("out", (PREFIX + message if message else "") + "\n"))

    def warn(self, message: str) -> None:
        self.chunks.append(("out", ("WARN: " if not OLD else "") + message + "\n"))

    def error(self, message: str) -> None:
        self.chunks.append(("err", "ERROR: " + message + "\n"))

    def runtime(self, message: str, level: str = "INFO") -> None:
        """The runtime's minimal logger: always stderr."""
        self.chunks.append(("err", f"{level}: {message}\n"))

    def raw(self, text: str) -> None:
        self.chunks.append(("out", text))

    def flush(self, unterminated: bool = False) -> None:
        chunks = self.chunks
        if unterminated and chunks:
            stream, text = chunks[-1]
            chunks = chunks[:-1] + [(stream, text.rstrip("\n"))]
        for stream, text in chunks:
            if "expand_tabs" in FAULTS:
                text = text.expandtabs(8)
            target = sys.stdout if stream == "out" else sys.stderr
            target.write(text)
            target.flush()


def flag(flags: dict, name: str, default):
    value = flags.get(name)
    if value is None:
        return default
    if isinstance(default, bool):
        return value.lower() in ("1", "true")
    return type(default)(value)


def stat_line(samples_us: list[int]) -> str:
    """``Stat::OutputToStream`` (plus the percentiles of current builds)."""
    if not samples_us:
        return "count=0"
    if min(samples_us) == max(samples_us):
        line = f"count={len(samples_us)} curr={samples_us[-1]}" + ("(all same)" if len(samples_us) > 1 else "")
        return line if OLD else line + f" p5={samples_us[0]} median={samples_us[0]} p95={samples_us[0]}"
    mean = statistics.fmean(samples_us)
    std = int(math.sqrt(max(statistics.fmean(v * v for v in samples_us) - mean * mean, 0.0)))
    line = (f"count={len(samples_us)} first={samples_us[0]} curr={samples_us[-1]} min={min(samples_us)} "
            f"max={max(samples_us)} avg={mean:.6g} std={std}")
    if not OLD:
        ordered = sorted(samples_us)
        p5, median, p95 = (ordered[min(int(q * len(ordered)), len(ordered) - 1)] for q in (0.05, 0.5, 0.95))
        line += f" p5={p5} median={median} p95={p95}"
    return line


class Model:
    """The graph and one inference: the real interpreter, or the synthetic stand-in."""

    def __init__(self, graph: str, threads: int, use_xnnpack: bool):
        self.rng = random.Random(f"{graph}:{threads}")
        if SYNTHETIC:
            self.ops = [(kind, f"[{names}]:{index}") for index, (kind, names) in enumerate(SYNTHETIC_OPS)]
            self.base_us = 1500 + 4000 // max(threads, 1)
            self.interpreter = None
            return
        import numpy as np
        from ai_edge_litert import interpreter as litert

        kwargs = {}
        if use_xnnpack is False:
            kwargs["experimental_op_resolver_type"] = litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self.interpreter = litert.Interpreter(model_path=graph, num_threads=threads if threads > 0 else None, **kwargs)
        self.interpreter.allocate_tensors()
        for detail in self.interpreter.get_input_details():
            rng = np.random.default_rng(0)
            self.interpreter.set_tensor(detail["index"], rng.standard_normal(detail["shape"]).astype(detail["dtype"]))
        names = {t["index"]: t["name"] for t in self.interpreter.get_tensor_details()}
        self.ops = [(op["op_name"], "[" + ", ".join(names.get(i, "Unknown") for i in op["outputs"]) + f"]:{op['index']}")
                    for op in self.interpreter._get_ops_details()]

    def invoke_us(self) -> int:
        if self.interpreter is None:
            return int(self.base_us * self.rng.uniform(0.95, 1.15))
        begin = time.perf_counter_ns()
        self.interpreter.invoke()
        return (time.perf_counter_ns() - begin) // 1000


def run_phase(out: Output, model: Model, min_runs: int, min_secs: float, zero: bool) -> list[int]:
    out.info(f"Running benchmark for at least {min_runs} iterations and at least {min_secs:g} seconds "
             f"but terminate if exceeding 150 seconds.")
    samples: list[int] = []
    if not zero:
        elapsed_us = 0
        while len(samples) < min_runs or elapsed_us < min_secs * 1e6:
            samples.append(model.invoke_us())
            elapsed_us += samples[-1] if SYNTHETIC else 0
            if not SYNTHETIC:
                elapsed_us = sum(samples)
            if elapsed_us > 150e6:
                break
    out.info(stat_line(samples) + "\n")  # the tool logs the stat with its own endl: a blank line follows
    return samples


def delegation(out: Output, flags: dict, model: Model) -> tuple[str | None, list[tuple[str, str]]]:
    """Print the delegate lines; returns (delegate name, the regular-run nodes as (type, name))."""
    if flag(flags, "use_gpu", False):
        requested = "GPU"
    elif flag(flags, "use_nnapi", False):
        requested = "NNAPI"
    elif flag(flags, "use_xnnpack", True):
        requested = "XNNPACK"
    else:
        return None, model.ops
    kernel = KERNELS[requested]
    total = len(model.ops)
    out.runtime(f"Created TensorFlow Lite {'XNNPACK ' if requested == 'XNNPACK' else ''}delegate for "
                f"{'CPU' if requested == 'XNNPACK' else requested}.")
    out.info(f"{requested} delegate created.")
    out.info("Going to apply 1 delegates one after another.")
    if DELEGATE_OUTCOME == "none":
        out.info(f"Though {requested} delegate is explicitly applied, the model graph will not be executed by the "
                 "delegate.")
        return requested, model.ops
    if DELEGATE_OUTCOME == "partial":  # ops 0 and 2 stay on the CPU: the delegate gets two partitions
        cpu = {0, 2}
        taken = [index for index in range(total) if index not in cpu]
        nodes, partitions, in_kernel = [], 0, False
        for index, op in enumerate(model.ops):
            if index in cpu:
                nodes.append(op)
                in_kernel = False
            elif not in_kernel:
                nodes.append((kernel, f"[{kernel.lower()}_part{partitions}]:{total + partitions}"))
                partitions += 1
                in_kernel = True
    else:
        taken, partitions, nodes = list(range(total)), 1, [(kernel, f"[{kernel.lower()}_out]:{total}")]
    out.runtime(f"Replacing {len(taken)} out of {total} node(s) with delegate ({kernel}) node, yielding "
                f"{partitions} partitions for the whole graph.", level="VERBOSE")
    if requested == "GPU":
        out.runtime("Initialized OpenCL-based API.")
        out.runtime(f"Created {partitions} GPU delegate kernels.")
    if DELEGATE_OUTCOME == "partial":
        out.info(f"Explicitly applied {requested} delegate, and the model graph will be partially executed by the "
                 f"delegate w/ {partitions} delegate kernels.")
    else:
        out.info(f"Explicitly applied {requested} delegate, and the model graph will be completely executed by the "
                 "delegate.")
    return requested, nodes


def table(out: Output, title: str, rows: list[tuple[str, str, float, float, float]], total_ms: float) -> None:
    """A Run Order / Top by Computation Time table: rows of (type, name, start, first, avg) in ms."""
    out.raw(f"============================== {title} ==============================\n")
    out.raw("\t" + "\t".join(["             [node type]", "          [start]", "  [first]", " [avg ms]", "     [%]",
                              "  [cdf%]", "  [mem KB]", "[times called]", "[Name]"]) + "\n")
    cdf = 0.0
    for kind, name, start, first, avg in rows:
        percent = 100.0 * avg / total_ms if total_ms else 0.0
        cdf += percent
        out.raw("\t" + "\t".join([f"{kind:>24}", f"{start:17.3f}", f"{first:9.3f}", f"{avg:9.3f}",
                                  f"{percent:7.3f}%", f"{cdf:7.3f}%", f"{0.0:10.3f}", f"{1:9d}", name]) + "\n")
    out.raw("\n")


def by_type(out: Output, rows: list[tuple[str, str, float, float, float]], total_ms: float) -> None:
    out.raw(f"Number of nodes executed: {len(rows)}\n")
    out.raw("============================== Summary by node type ==============================\n")
    out.raw("\t" + "\t".join(["             [Node type]", "  [count]", "  [avg ms]", "    [avg %]", "    [cdf %]",
                              "  [mem KB]", "[times called]"]) + "\n")
    kinds: dict[str, list[float]] = {}
    for kind, _, _, _, avg in rows:
        kinds.setdefault(kind, []).append(avg)
    cdf = 0.0
    for kind, avgs in sorted(kinds.items(), key=lambda item: -sum(item[1])):
        percent = 100.0 * sum(avgs) / total_ms if total_ms else 0.0
        cdf += percent
        out.raw("\t" + "\t".join([f"{kind:>24}", f"{len(avgs):9d}", f"{sum(avgs):10.3f}", f"{percent:10.3f}%",
                                  f"{cdf:10.3f}%", f"{0.0:10.3f}", f"{len(avgs):9d}"]) + "\n")
    out.raw("\n")


def op_profile(out: Output, nodes: list[tuple[str, str]], requested: str | None, init_us: int,
               timed: list[int]) -> None:
    """Both profiling sections, initialisation first, as ProfilingListener::OnBenchmarkEnd prints them."""
    init_rows = []
    if requested is not None:
        init_rows.append(("ModifyGraphWithDelegate", "ModifyGraphWithDelegate/0", 0.0, init_us * 0.7e-3, init_us * 0.7e-3))
    init_rows.append(("AllocateTensors", "AllocateTensors/0", init_us * 0.7e-3, init_us * 0.2e-3, init_us * 0.1e-3))
    init_total = sum(row[4] for row in init_rows)
    out.info("Profiling Info for Benchmark Initialization:")
    table(out, "Run Order", init_rows, init_total)
    table(out, "Top by Computation Time", sorted(init_rows, key=lambda r: -r[4]), init_total)
    by_type(out, init_rows, init_total)
    out.raw(f"Timings (microseconds): count=1 curr={int(init_total * 1e3)}\nMemory (bytes): count=0\n"
            f"{len(init_rows)} nodes observed\n\n")
    avg_ms = statistics.fmean(timed) / 1e3
    weights = [1.0 + (index % 3) for index in range(len(nodes))]  # ops differ in cost
    rows, start = [], 0.0
    for (kind, name), weight in zip(nodes, weights):
        avg = avg_ms * weight / sum(weights)
        rows.append((kind, name, start, avg * 1.2, avg))
        start += avg
    out.info("Operator-wise Profiling Info for Regular Benchmark Runs:")
    table(out, "Run Order", rows, avg_ms)
    table(out, "Top by Computation Time", sorted(rows, key=lambda r: -r[4])[:10], avg_ms)
    by_type(out, rows, avg_ms)
    out.raw(f"Timings (microseconds): {stat_line(timed).split(' p5=')[0]}\nMemory (bytes): count=0\n"
            f"{len(rows)} nodes observed\n\n")


def record(entry: dict) -> None:
    serial = os.environ.get("ADB_SIM_SERIAL")
    if serial and os.environ.get("ADB_SIM_ROOT"):
        with open(Path(os.environ["ADB_SIM_ROOT"]) / serial / "runs.jsonl", "a") as log:
            log.write(json.dumps(entry) + "\n")


def main(argv: list[str]) -> int:
    flags = {}
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
            flags[key] = value
    if "garbage" in FAULTS:
        print("\x1b[31m??? segfault-ish noise 0xdeadbeef\nlorem ipsum count=abc\n", flush=True)
        return 0
    out = Output()
    out.info("STARTING!")
    out.info("Log parameter values verbosely: [0]")
    graph = flags.get("graph")
    if not graph:
        out.error("Please specify the name of your TF Lite input file with --graph")
        out.error("Benchmarking failed.")
        out.flush()
        return 1
    threads = flag(flags, "num_threads", -1)
    num_runs = flag(flags, "num_runs", 50)
    out.info(f"Min num runs: [{num_runs}]")
    out.info(f"Num threads: [{threads}]")
    out.info(f"Graph: [{graph}]")
    if flag(flags, "enable_op_profiling", False):
        out.info("Enable op profiling: [1]")
    out.info(f"#threads used for CPU inference: [{threads}]")
    for name, label in (("use_gpu", "Use gpu"), ("use_nnapi", "Use NNAPI"), ("use_xnnpack", "Use xnnpack")):
        if name in flags:
            out.info(f"{label}: [{int(flag(flags, name, False))}]")
    if not Path(graph).is_file() or "open_fail" in FAULTS:
        out.error(f"Could not open '{graph}'.")
        out.error(f"Failed to mmap model {graph}")
        out.error("Benchmarking failed.")
        out.flush()
        return 1
    if "crash" in FAULTS and str(threads) == os.environ.get("ADB_SIM_CRASH_THREADS"):
        out.info(f"Loaded model {graph}")
        out.raw("INFO: Initialized TensorFlow Lite runt")  # SIGSEGV mid-line: no newline, no summary
        out.flush()
        return 139
    begin = time.perf_counter_ns()
    model = Model(graph, threads, flag(flags, "use_xnnpack", True))
    out.info(f"Loaded model {graph}")
    out.runtime("Initialized TensorFlow Lite runtime.")
    requested, nodes = delegation(out, flags, model)
    init_us = 12000 if SYNTHETIC else (time.perf_counter_ns() - begin) // 1000
    if "no_model_size" in FAULTS:
        out.warn("Failed to get the input model file size.")
    else:
        out.info(f"The input model file size (MB): {Path(graph).stat().st_size / 1e6:.6g}")
    out.info(f"Initialized session in {init_us / 1e3:g}ms.")
    zero = bool(FAULTS & {"zero_runs", "nan"})
    warmup = run_phase(out, model, flag(flags, "warmup_runs", 1), 0.5, zero)
    timed = run_phase(out, model, num_runs, flag(flags, "min_secs", 1.0), zero)
    warmup_avg = f"{statistics.fmean(warmup):.6g}" if warmup else ("-nan" if "nan" in FAULTS else "0")
    timed_avg = f"{statistics.fmean(timed):.6g}" if timed else ("-nan" if "nan" in FAULTS else "0")
    if OLD:
        out.raw(f"Average inference timings in us: Warmup: {warmup_avg}, Init: {init_us}, Inference: {timed_avg}\n")
        out.raw("Peak memory footprint (MB): init=3.14 overall=9.87\n")
    else:
        out.info(f"Inference timings in us: Init: {init_us}, First inference: {warmup[0] if warmup else 0}, "
                 f"Warmup (avg): {warmup_avg}, Inference (avg): {timed_avg}")
        out.info("Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to "
                 "the actual memory footprint of the model at runtime. Take the information at your discretion.")
        out.info("Memory footprint delta from the start of the tool (MB): init=3.14 overall=9.87")
        if flag(flags, "report_peak_memory_footprint", False):
            out.info("Overall peak memory footprint (MB) via periodic monitoring: 12.5")
    if flag(flags, "enable_op_profiling", False) and timed:
        op_profile(out, nodes, requested, init_us, timed)
    record({"threads": threads, "timed_us": timed, "warmup_us": warmup, "init_us": init_us, "delegate": requested,
            "delegate_outcome": DELEGATE_OUTCOME if requested else None, "nodes": [name for _, name in nodes]})
    out.flush(unterminated="no_final_newline" in FAULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
