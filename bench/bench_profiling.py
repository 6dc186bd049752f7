"""Benchmark of the measurement harness itself; prints figures, asserts nothing.

1. Harness overhead: the protocol timing an empty ``step()`` (what the two clock reads and the
   list append add to every sample), beside a bare loop of clock-read pairs.
2. Runner vs bare loop: the median the ONNX Runtime runner reports, and a bare ``session.run`` loop
   on an identically configured session timed in the same process, interleaved over five repeats
   (target: within 3%).
3. Run-to-run spread: of the runner's median over those five repeats.

    python bench/bench_profiling.py                      # repvit_m1, exports the ONNX if missing
    python bench/bench_profiling.py --model repvit_m0_6 --threads 2 --repeats 5
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.artifact import load_artifact  # noqa: E402
from profiling.artifacts import DEFAULT_ARTIFACTS, ensure_artifact  # noqa: E402
from profiling.protocol import MeasureSettings, run_protocol  # noqa: E402
from profiling.runners import onnxruntime as ort_runner  # noqa: E402
from profiling.runners.common import artifact_input  # noqa: E402


def harness_overhead(calls: int = 200_000) -> tuple[float, float]:
    """(median ns of an empty step through the protocol, median ns of a bare clock-read pair)."""
    settings = MeasureSettings(warmup_runs=1000, warmup_min_s=0, min_runs=calls, min_duration_s=0, rounds=1,
                               max_runs=calls)
    samples = run_protocol(lambda: None, settings)
    protocol_ns = float(np.median(samples.rounds_ms[0])) * 1e6
    clock = time.perf_counter_ns
    pairs = np.empty(calls, dtype=np.int64)
    for index in range(calls):
        before = clock()
        pairs[index] = clock() - before
    return protocol_ns, float(np.median(pairs))


def bare_loop(session, feed: dict, outputs: list[str], warmup: int, calls: int) -> tuple[float, float]:
    """(median ms of individually timed calls, mean ms from one clock around the whole loop)."""
    for _ in range(warmup):
        session.run(outputs, feed)
    clock = time.perf_counter_ns
    durations = np.empty(calls, dtype=np.int64)
    loop_start = clock()
    for index in range(calls):
        before = clock()
        session.run(outputs, feed)
        durations[index] = clock() - before
    loop_ns = clock() - loop_start
    return float(np.median(durations)) / 1e6, loop_ns / calls / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="repvit_m1")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS)
    parser.add_argument("--onnx", type=Path, help="measure this ONNX artifact (manifest beside it) instead")
    args = parser.parse_args(argv)

    protocol_ns, clock_pair_ns = harness_overhead()
    print(f"harness overhead: empty step through the protocol {protocol_ns:.0f} ns/sample "
          f"(bare clock-read pair {clock_pair_ns:.0f} ns)")

    if args.onnx:
        artifact, how = load_artifact(args.onnx), "given"
    else:
        artifact, exported = ensure_artifact(args.model, "onnx", artifacts_dir=args.artifacts)
        how = "exported now" if exported else "reused"
    print(f"artifact: {artifact.path} ({artifact.model}, {how}), threads={args.threads}")
    settings = MeasureSettings(warmup_runs=10, warmup_min_s=0.5, min_runs=100, min_duration_s=1.0, rounds=3,
                               threads=args.threads)
    options = ort_runner.OrtOptions()
    session = ort_runner.make_session(artifact.path, args.threads, options)  # configured like the runner's
    feed = {session.get_inputs()[0].name: artifact_input(artifact)}
    outputs = [session.get_outputs()[0].name]

    runner_medians, bare_medians, bare_means = [], [], []
    for repeat in range(args.repeats):  # interleaved, so drift of the machine hits both alike
        result = ort_runner.measure(artifact, settings, options)
        median_ms, mean_ms = bare_loop(session, feed, outputs, warmup=settings.warmup_runs, calls=result.stats.count)
        runner_medians.append(result.stats.median_ms)
        bare_medians.append(median_ms)
        bare_means.append(mean_ms)
        print(f"  repeat {repeat + 1}: runner median {result.stats.median_ms:.3f} ms (cv {result.stats.cv:.3f}, "
              f"{result.stats.count} samples{', UNSTABLE' if result.stats.unstable else ''}) | bare loop median "
              f"{median_ms:.3f} ms, mean {mean_ms:.3f} ms | ratio {result.stats.median_ms / median_ms:.3f}")
    runner = np.asarray(runner_medians)
    ratios = runner / np.asarray(bare_medians)
    print(f"runner vs bare session.run: median of ratios {np.median(ratios):.3f} "
          f"(per repeat {', '.join(f'{r:.3f}' for r in ratios)}); target within 3% -> "
          f"{'met' if abs(np.median(ratios) - 1) <= 0.03 else 'NOT met'}")
    print(f"run-to-run spread of the runner median over {args.repeats} repeats: "
          f"{runner.min():.3f}..{runner.max():.3f} ms, (max-min)/median {np.ptp(runner) / np.median(runner):.1%}, "
          f"cv {runner.std(ddof=1) / runner.mean():.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
