"""Benchmark of the sweep driver's write path: stored results per second into SQLite; asserts nothing.

The driver (``profiling.sweep.driver.drive``) is the store's only writer: each result lands with its
job marked done in one transaction. This feeds it N phone-like results (summary stats, the tool's
parsed output and output tail in ``extra``, as ``profiling android`` stores them, about 4 KB a row)
from an engine that measures nothing, into a fresh database on this machine's disk, after recording
the N jobs as a sweep does, and prints results/s and ms per result. That rate bounds how many
phones one driver keeps up with: a phone job takes seconds to minutes.

    python bench/bench_sweep.py                  # 5000 results
    python bench/bench_sweep.py --results 20000 --db /tmp/x.db
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from profiling.result import DeviceInfo, LatencyResult  # noqa: E402
from profiling.stats import LatencyStats  # noqa: E402
from profiling.store import Store  # noqa: E402
from profiling.sweep.driver import drive, start_sweep  # noqa: E402
from profiling.sweep.engines import Event  # noqa: E402
from profiling.sweep.plan import ExportJob, MeasureJob, Plan, SweepSpec  # noqa: E402


def phone_result(index: int, job: MeasureJob) -> LatencyResult:
    median = 2.0 + (index % 997) / 100
    stats = LatencyStats.from_summary(count=50, mean_ms=median * 1.02, min_ms=median * 0.9, max_ms=median * 1.4,
                                      std_ms=0.05, median_ms=median)
    device = DeviceInfo(kind="android", name=f"Phone {index % 100}", cores=8, os="Android 14 (SDK 34)",
                        soc="Tensor G3", abi="arm64-v8a", serial=job.serial,
                        extra={"ro.build.fingerprint": "google/husky/husky:14/AP1A/1:user/release-keys"})
    output = "\n".join(f"INFO: line {k} of the tool's output, kept as its tail" for k in range(40))
    return LatencyResult(model=job.export.model, format="tflite", precision="fp32", runtime="benchmark_model",
                         runtime_version="benchmark_model sha256:0123456789ab", device=device, threads=job.threads,
                         input_shape=[1, 3, 224, 224], stats=stats, warmup_runs=1, compute_unit="xnnpack",
                         extra={"tool": "benchmark_model", "command": "benchmark_model --graph=m.tflite",
                                "parsed": {"inference_avg_ms": median, "init_ms": 12.0}, "output_tail": output,
                                "sweep": {"job": job.key, "export": job.export.key, "parity": {"max_abs": 1e-5}}},
                         artifact_sha256="ab" * 32, artifact_path=f"artifacts/{job.export.model}.tflite")


class ReplayEngine:
    """An engine whose jobs are already measured: results ready in memory, one event each."""

    def __init__(self, results: dict[str, LatencyResult]):
        self.results = results

    def run(self, plan: Plan):
        for job in plan.jobs:
            yield Event("measured", job.key, job, result=self.results[job.key])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=5000, help="results to store (default 5000)")
    parser.add_argument("--phones", type=int, default=100, help="phones the jobs spread over (default 100)")
    parser.add_argument("--db", type=Path, help="database file (default: a fresh temporary one)")
    args = parser.parse_args()
    spec = SweepSpec(models=["repvit_m0_9"], formats=["tflite"],
                     targets=[f"android:PHONE{p:03d}" for p in range(args.phones)])
    jobs = [MeasureJob(ExportJob(f"model_{i // args.phones // 4}", "tflite", "fp32", None, None),
                       f"android:PHONE{i % args.phones:03d}", 1 + (i // args.phones) % 4) for i in range(args.results)]
    plan = Plan(spec, list(dict.fromkeys(job.export for job in jobs)), jobs)
    results = {job.key: phone_result(i, job) for i, job in enumerate(jobs)}
    with tempfile.TemporaryDirectory() as folder:
        db = args.db or Path(folder) / "bench.db"
        with Store(db) as store:
            began = time.perf_counter()
            run_id = start_sweep(store, plan, command="bench")
            planned_s = time.perf_counter() - began
            began = time.perf_counter()
            outcome = drive(store, run_id, plan, ReplayEngine(results))
            stored_s = time.perf_counter() - began
        size = db.stat().st_size
    print(f"jobs recorded: {len(jobs)} in {planned_s:.2f} s (one transaction)")
    print(f"results stored by the driver: {outcome.done} in {stored_s:.2f} s = {outcome.done / stored_s:.0f} results/s "
          f"({1e3 * stored_s / outcome.done:.2f} ms per result, one transaction each; WAL, synchronous=NORMAL); "
          f"database {size / 1e6:.1f} MB ({size / outcome.done / 1e3:.1f} KB per result)")


if __name__ == "__main__":
    main()
