"""Per-configuration speedup or regression between two runs, bucketed, for people and for CI.

Measurements of the two runs are matched on what makes them comparable: model, format,
precision, runtime, compute unit, threads, device and input shape (the latest row wins when a run
measured a configuration twice). ``speedup = median(A) / median(B)``: above 1, run B is faster.
Buckets: ``>=2x``, ``>=1.5x``, ``>=1.2x``, ``>=1.1x`` faster, ``same`` (B within 1.1x of A
either way), ``slower``. A configuration regresses when ``median(B) / median(A) > threshold``.
"""
from __future__ import annotations

from dataclasses import dataclass

from profiling.errors import UsageError
from profiling.result import LatencyResult

BUCKETS = ((2.0, ">=2x"), (1.5, ">=1.5x"), (1.2, ">=1.2x"), (1.1, ">=1.1x"))  # speedup at least -> name
BUCKET_ORDER = tuple(name for _, name in BUCKETS) + ("same", "slower")
SAME_BAND = 1.1  # within this ratio either way counts as "same"


@dataclass
class Comparison:
    """One configuration measured in both runs."""

    key: tuple  # (model, format, precision, runtime, compute_unit, threads, device, input shape)
    median_a_ms: float  # run A (the baseline)
    median_b_ms: float  # run B (the candidate)
    speedup: float  # median_a / median_b: > 1 means B is faster
    bucket: str  # one of BUCKET_ORDER
    regression: bool  # median_b / median_a above the threshold
    unstable: bool  # either measurement was flagged unstable: read with care

    @property
    def label(self) -> str:
        model, format_name, precision, runtime, unit, threads, device, _ = self.key
        unit = f" {unit}" if unit else ""
        return f"{model} {format_name}/{precision} {runtime}{unit} {threads}t @ {device}"


def comparison_key(result: LatencyResult) -> tuple:
    return (result.model, result.format, result.precision, result.runtime, result.compute_unit, result.threads,
            result.device.name, "x".join(map(str, result.input_shape)))


def bucket_of(speedup: float) -> str:
    for at_least, name in BUCKETS:
        if speedup >= at_least:
            return name
    return "same" if 1 / speedup < SAME_BAND else "slower"


def compare_runs(run_a: list[LatencyResult], run_b: list[LatencyResult], threshold: float = 1.1
                 ) -> tuple[list[Comparison], list[tuple], list[tuple]]:
    """Matched comparisons, plus the keys only in A and only in B."""
    if threshold < 1:
        raise UsageError(f"the regression threshold is a slowdown ratio >= 1 (1.1 = 10% slower), got {threshold}")
    latest_a = {comparison_key(r): r for r in run_a if r.stats.median_ms}
    latest_b = {comparison_key(r): r for r in run_b if r.stats.median_ms}
    comparisons = []
    for key in latest_a.keys() & latest_b.keys():
        a, b = latest_a[key], latest_b[key]
        speedup = a.stats.median_ms / b.stats.median_ms
        comparisons.append(Comparison(key=key, median_a_ms=a.stats.median_ms, median_b_ms=b.stats.median_ms,
                                      speedup=speedup, bucket=bucket_of(speedup),
                                      regression=b.stats.median_ms / a.stats.median_ms > threshold,
                                      unstable=a.stats.unstable or b.stats.unstable))
    comparisons.sort(key=lambda c: (BUCKET_ORDER.index(c.bucket), c.key))
    only_a = sorted(latest_a.keys() - latest_b.keys(), key=str)
    only_b = sorted(latest_b.keys() - latest_a.keys(), key=str)
    return comparisons, only_a, only_b
