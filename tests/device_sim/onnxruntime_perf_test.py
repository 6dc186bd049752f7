"""The device simulator's ``onnxruntime_perf_test``: runs an .onnx with onnxruntime, prints its summary.

Understands ``-m times -r N -x THREADS -e cpu|nnapi -I MODEL [RESULT_FILE]`` (nnapi runs on the
CPU here) and prints the blocks of ``onnxruntime/test/perftest/performance_runner.cc`` to stdout:
the summary (``Session creation time cost``, ``First inference time cost``, ``Total inference
requests``, ``Average inference time cost``, ...) and, with no result file, ``DumpToFile``'s
``Avg CPU usage:`` / ``Peak working set size:`` / ``Runs:`` lines and the ``Min/Max/P50..P999
Latency`` lines. Errors go to stderr. ``ADB_SIM_TIMING=synthetic`` times a stand-in instead of
loading onnxruntime; every run's figures are appended to ``runs.jsonl`` in the phone's folder.

Faults (``ADB_SIM_FAULT``): ``garbage`` (nonsense), ``ort_zero`` (0 requests: ``Total inference
requests: 0``, ``Average inference time cost: -nan ms``, no latency lines), ``ort_negative`` (a
negative average, as a broken clock gives), ``ort_two_summaries`` (a first, shorter run's block
precedes the real one).
"""
from __future__ import annotations

import json
import os
import random
import resource
import sys
import time
from pathlib import Path

FAULTS = {f.partition("@")[0] for f in os.environ.get("ADB_SIM_FAULT", "").split(",") if f}
SYNTHETIC = os.environ.get("ADB_SIM_TIMING") == "synthetic"


def summary(costs_s: list[float], first_ms: int, creation_s: float, run_s: float, average_ms: float | None = None) -> str:
    """The text of one summary block, as the tool prints it for ``costs_s`` (seconds per request)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    total = sum(costs_s)
    if average_ms is None:
        average_ms = total / len(costs_s) * 1e3 if costs_s else float("nan")
    lines = [f"Session creation time cost: {creation_s:g} s", f"First inference time cost: {first_ms} ms",
             f"Total inference time cost: {total:g} s", f"Total inference requests: {len(costs_s)}",
             f"Average inference time cost: {'-nan' if average_ms != average_ms else f'{average_ms:g}'} ms",
             f"Total inference run time: {run_s:g} s",
             f"Number of inferences per second: {len(costs_s) / run_s if run_s else 0:g} ",
             "Avg CPU usage: 97 %", f"Peak working set size: {peak} bytes",
             "Avg CPU usage:97", f"Peak working set size:{peak}", f"Runs:{len(costs_s)}"]
    if costs_s:
        ordered = sorted(costs_s)

        def pick(q: float) -> float:
            return ordered[min(int(q * len(ordered)), len(ordered) - 1)]

        lines += [f"Min Latency: {ordered[0]:g} s", f"Max Latency: {ordered[-1]:g} s"]
        lines += [f"{label} Latency: {pick(q):g} s"
                  for label, q in (("P50", 0.5), ("P90", 0.9), ("P95", 0.95), ("P99", 0.99), ("P999", 0.999))]
    return "\n".join(lines) + "\n"


def measure(model: str, threads: int, requests: int) -> tuple[list[float], int, float, float]:
    """(per-request seconds, first inference ms, session creation s, run wall time s)."""
    if SYNTHETIC:
        rng = random.Random(f"{model}:{threads}:{requests}")
        costs = [0.002 * rng.uniform(0.95, 1.2) for _ in range(requests)]
        return costs, 3, 0.05, sum(costs) * 1.01
    import numpy as np
    import onnxruntime as ort

    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = threads
    begin = time.perf_counter()
    session = ort.InferenceSession(model, session_options, providers=["CPUExecutionProvider"])
    creation_s = time.perf_counter() - begin
    feeds = {i.name: np.random.default_rng(0).standard_normal([d if isinstance(d, int) else 1 for d in i.shape])
             .astype(np.float32) for i in session.get_inputs()}
    begin = time.perf_counter()
    session.run(None, feeds)
    first_ms = int((time.perf_counter() - begin) * 1e3)
    costs = []
    start = time.perf_counter()
    for _ in range(requests):
        begin = time.perf_counter()
        session.run(None, feeds)
        costs.append(time.perf_counter() - begin)
    return costs, first_ms, creation_s, time.perf_counter() - start


def main(argv: list[str]) -> int:
    options, positional = {}, []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in ("-m", "-r", "-x", "-e", "-t", "-o"):
            options[arg] = argv[index + 1]
            index += 2
            continue
        if arg.startswith("-"):
            index += 1
            continue
        positional.append(arg)
        index += 1
    if "garbage" in FAULTS:
        print("Segmentation fault-ish ??? \x00\x01 nonsense")
        return 0
    if not positional or not os.path.isfile(positional[0]):
        sys.stderr.write(f"Error: failed to load model {positional[0] if positional else '(none)'}\n")
        return 255
    threads = int(options.get("-x", "0"))
    if threads:
        print(f"Setting intra_op_num_threads to {threads}")
    requests = 0 if "ort_zero" in FAULTS else int(options.get("-r", "1000"))
    text = ""
    if "ort_two_summaries" in FAULTS:  # a first, short run's block comes before the real one
        early, early_first, early_creation, early_run = measure(positional[0], threads, 3)
        early = [cost * 3 for cost in early]  # cold: three times slower
        text += summary(early, early_first * 7, early_creation, early_run * 3)
    costs, first_ms, creation_s, run_s = measure(positional[0], threads, requests)
    average = -abs(sum(costs) / len(costs) * 1e3) if "ort_negative" in FAULTS else None
    text += summary(costs, first_ms, creation_s, run_s, average)
    sys.stdout.write(text)
    serial = os.environ.get("ADB_SIM_SERIAL")
    if serial and os.environ.get("ADB_SIM_ROOT"):
        with open(Path(os.environ["ADB_SIM_ROOT"]) / serial / "runs.jsonl", "a") as log:
            log.write(json.dumps({"threads": threads, "costs_s": costs, "first_ms": first_ms}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
