"""The device simulator's ``onnxruntime_perf_test``: really runs an .onnx with onnxruntime, prints its summary.

Understands ``-m times -r N -x THREADS -e cpu|nnapi -I MODEL [RESULT_FILE]`` (nnapi runs on the
CPU here) and prints the summary lines of ``onnxruntime/test/perftest/performance_runner.cc``.
"""
from __future__ import annotations

import os
import resource
import sys
import time

import numpy as np


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
    if "garbage" in os.environ.get("ADB_SIM_FAULT", ""):
        print("Segmentation fault-ish ??? \x00\x01 nonsense")
        return 0
    if not positional or not os.path.isfile(positional[0]):
        print(f"Error: failed to load model {positional[0] if positional else '(none)'}")
        return 255
    import onnxruntime as ort

    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = int(options.get("-x", "0"))
    if session_options.intra_op_num_threads:
        print(f"Setting intra_op_num_threads to {session_options.intra_op_num_threads}")
    begin = time.perf_counter()
    session = ort.InferenceSession(positional[0], session_options, providers=["CPUExecutionProvider"])
    creation_s = time.perf_counter() - begin
    feeds = {i.name: np.random.default_rng(0).standard_normal([d if isinstance(d, int) else 1 for d in i.shape])
             .astype(np.float32) for i in session.get_inputs()}
    begin = time.perf_counter()
    session.run(None, feeds)
    first_ms = int((time.perf_counter() - begin) * 1e3)
    costs = []
    start = time.perf_counter()
    for _ in range(int(options.get("-r", "1000"))):
        begin = time.perf_counter()
        session.run(None, feeds)
        costs.append(time.perf_counter() - begin)
    run_s = time.perf_counter() - start
    costs_sorted = sorted(costs)

    def pick(q: float) -> float:
        return costs_sorted[min(int(q * len(costs_sorted)), len(costs_sorted) - 1)]

    print(f"Session creation time cost: {creation_s:g} s")
    print(f"First inference time cost: {first_ms} ms")
    print(f"Total inference time cost: {sum(costs):g} s")
    print(f"Total inference requests: {len(costs)}")
    print(f"Average inference time cost: {sum(costs) / len(costs) * 1e3:g} ms")
    print(f"Total inference run time: {run_s:g} s")
    print(f"Number of inferences per second: {len(costs) / run_s:g} ")
    print("Avg CPU usage: 97 %")
    print(f"Peak working set size: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024} bytes")
    print(f"Min Latency: {costs_sorted[0]:g} s")
    print(f"Max Latency: {costs_sorted[-1]:g} s")
    for label, q in (("P50", 0.5), ("P90", 0.9), ("P95", 0.95), ("P99", 0.99), ("P999", 0.999)):
        print(f"{label} Latency: {pick(q):g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
