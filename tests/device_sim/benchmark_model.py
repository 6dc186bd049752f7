"""The device simulator's ``benchmark_model``: really runs a .tflite with ai-edge-litert, prints like the tool.

Follows ``tensorflow/lite/tools/benchmark/benchmark_model.cc``: a warm-up phase (``--warmup_runs``
runs and at least ``warmup_min_secs`` 0.5 s) and a timed phase (``--num_runs`` runs and at least
``--min_secs``), each closed by its ``count= first= curr= min= max= avg= std= p5= median= p95=``
line in microseconds, then the ``Inference timings in us:`` summary and the memory lines.
``ADB_SIM_BM_FORMAT=old`` prints the older summary (``Average inference timings in us: Warmup:,
Init:, Inference:``) without percentiles. With ``--enable_op_profiling=true`` it prints the three
op tables; the simulator cannot time single ops, so each op is given an equal share of the
measured average (the tables exist to exercise the parser, not to be read as a profile).
``ADB_SIM_FAULT=garbage`` prints nonsense instead. There is no GPU/NNAPI here: those flags are
accepted, logged, and the model runs on the CPU.
"""
from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

OLD = os.environ.get("ADB_SIM_BM_FORMAT") == "old"
PREFIX = "" if OLD else "INFO: "


def log(message: str = "") -> None:
    print(PREFIX + message if message else "", flush=True)


def flag(flags: dict, name: str, default):
    value = flags.get(name)
    if value is None:
        return default
    if isinstance(default, bool):
        return value.lower() in ("1", "true")
    return type(default)(value)


def stat_line(samples_us: list[int]) -> str:
    values = np.array(samples_us, dtype=np.int64)
    if len(values) == 1:
        line = f"count=1 curr={values[0]}"
        return line if OLD else line + f" p5={values[0]} median={values[0]} p95={values[0]}"
    line = (f"count={len(values)} first={values[0]} curr={values[-1]} min={values.min()} max={values.max()} "
            f"avg={values.mean():.6g} std={int(round(values.std()))}")
    if not OLD:
        p5, median, p95 = (int(np.percentile(values, q, method="nearest")) for q in (5, 50, 95))
        line += f" p5={p5} median={median} p95={p95}"
    return line


def run_phase(interpreter, min_runs: int, min_secs: float, max_secs: float = 150.0) -> list[int]:
    log(f"Running benchmark for at least {min_runs} iterations and at least {min_secs:g} seconds "
        f"but terminate if exceeding {max_secs:g} seconds.")
    samples = []
    start = time.perf_counter()
    while (len(samples) < min_runs or time.perf_counter() - start < min_secs) and time.perf_counter() - start <= max_secs:
        begin = time.perf_counter_ns()
        interpreter.invoke()
        samples.append((time.perf_counter_ns() - begin) // 1000)
    log(stat_line(samples))
    log()
    return samples


def op_tables(interpreter, avg_ms: float) -> None:
    ops = interpreter._get_ops_details()
    share = avg_ms / max(len(ops), 1)
    header = "\t" + "\t".join(["[node type]", "[start]", "[first]", "[avg ms]", "[%]", "[cdf%]", "[mem KB]",
                               "[times called]", "[Name]"])
    rows = []
    for index, op in enumerate(ops):
        percent = 100.0 / max(len(ops), 1)
        rows.append((op["op_name"], index * share, share, share, percent, percent * (index + 1), index))
    for title, ordered in (("Run Order", rows), ("Top by Computation Time", rows[:10])):
        print(f"============================== {title} ==============================")
        print(header)
        for name, start, first, avg, percent, cdf, index in ordered:
            print("\t" + "\t".join([name, f"{start:.3f}", f"{first:.3f}", f"{avg:.3f}", f"{percent:.3f}%",
                                    f"{cdf:.3f}%", "0.000", "1", f"[op_{index}]"]))
        print()
    counts = {}
    for name, *_ in rows:
        counts[name] = counts.get(name, 0) + 1
    print(f"Number of nodes executed: {len(rows)}")
    print("============================== Summary by node type ==============================")
    print("\t" + "\t".join(["[Node type]", "[count]", "[avg ms]", "[avg %]", "[cdf %]", "[mem KB]", "[times called]"]))
    cdf = 0.0
    for name, count in sorted(counts.items(), key=lambda item: -item[1]):
        percent = 100.0 * count / len(rows)
        cdf += percent
        print("\t" + "\t".join([name, str(count), f"{share * count:.3f}", f"{percent:.3f}%", f"{cdf:.3f}%",
                                "0.000", str(count)]))
    print()


def main(argv: list[str]) -> int:
    flags = {}
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
            flags[key] = value
    faults = set(os.environ.get("ADB_SIM_FAULT", "").split(","))
    if "garbage" in faults:
        print("\x1b[31m??? segfault-ish noise 0xdeadbeef\nlorem ipsum count=abc\n", flush=True)
        return 0
    log("STARTING!")
    log("Log parameter values verbosely: [0]")
    graph = flags.get("graph")
    if not graph:
        print("ERROR: Please specify the name of your TF Lite input file with --graph")
        return 1
    threads = flag(flags, "num_threads", -1)
    log(f"Min num runs: [{flag(flags, 'num_runs', 50)}]")
    log(f"Num threads: [{threads}]")
    log(f"Graph: [{graph}]")
    for name in ("use_gpu", "use_nnapi", "use_xnnpack", "enable_op_profiling", "report_peak_memory_footprint"):
        if name in flags:
            log(f"{name}: [{flags[name]}] (device simulator: CPU only)" if name in ("use_gpu", "use_nnapi")
                else f"{name}: [{flags[name]}]")
    if not Path(graph).is_file():
        print(f"ERROR: Could not open '{graph}'.")
        print(f"ERROR: Failed to mmap model {graph}")
        return 1
    from ai_edge_litert import interpreter as litert

    start_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    begin = time.perf_counter_ns()
    kwargs = {}
    if flag(flags, "use_xnnpack", True) is False:
        kwargs["experimental_op_resolver_type"] = litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    model = litert.Interpreter(model_path=graph, num_threads=threads if threads > 0 else None, **kwargs)
    model.allocate_tensors()
    for detail in model.get_input_details():
        rng = np.random.default_rng(0)
        model.set_tensor(detail["index"], rng.standard_normal(detail["shape"]).astype(detail["dtype"]))
    init_us = (time.perf_counter_ns() - begin) // 1000
    init_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    log(f"Loaded model {graph}")
    log(f"The input model file size (MB): {Path(graph).stat().st_size / 1e6:.6g}")
    log(f"Initialized session in {init_us / 1e3:g}ms.")
    warmup = run_phase(model, flag(flags, "warmup_runs", 1), 0.5)
    timed = run_phase(model, flag(flags, "num_runs", 50), flag(flags, "min_secs", 1.0))
    if flag(flags, "enable_op_profiling", False):
        op_tables(model, float(np.mean(timed)) / 1e3)
    end_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if OLD:
        print(f"Average inference timings in us: Warmup: {np.mean(warmup):.6g}, Init: {init_us}, "
              f"Inference: {np.mean(timed):.6g}")
        print(f"Peak memory footprint (MB): init={(init_rss_kb - start_rss_kb) / 1024:.6g} "
              f"overall={(end_rss_kb - start_rss_kb) / 1024:.6g}")
        return 0
    log(f"Inference timings in us: Init: {init_us}, First inference: {warmup[0]}, "
        f"Warmup (avg): {np.mean(warmup):.6g}, Inference (avg): {np.mean(timed):.6g}")
    log("Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the "
        "actual memory footprint of the model at runtime. Take the information at your discretion.")
    log(f"Memory footprint delta from the start of the tool (MB): init={(init_rss_kb - start_rss_kb) / 1024:.6g} "
        f"overall={(end_rss_kb - start_rss_kb) / 1024:.6g}")
    if flag(flags, "report_peak_memory_footprint", False):
        log(f"Overall peak memory footprint (MB) via periodic monitoring: {end_rss_kb / 1024:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
