"""Latency statistics and the measurement protocol, checked against hand-computed figures."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from profiling import protocol
from profiling.protocol import MeasureSettings, run_protocol
from profiling.stats import LatencyStats, StabilityThresholds, compute_stats, spearman, trimmed_mean

pytestmark = pytest.mark.fast

# Two rounds. All 15 values sorted: 1 2 2 3 4 4 5 6 6 7 8 8 9 10 10 (sum 85, sum of squares 605).
ROUND_A = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
ROUND_B = [10, 2, 4, 6, 8]


def test_stats_match_hand_computation():
    stats = compute_stats([ROUND_A, ROUND_B])
    assert stats.count == 15
    assert stats.median_ms == 6  # the 8th of 15 sorted values
    assert stats.mean_ms == pytest.approx(85 / 15)
    assert (stats.min_ms, stats.max_ms) == (1, 10)
    assert stats.p90_ms == pytest.approx(9.6)  # position 0.9 * 14 = 12.6: 9 + 0.6 * (10 - 9)
    assert stats.p99_ms == pytest.approx(10.0)  # position 13.86, between 10 and 10
    std = math.sqrt((605 - 85 ** 2 / 15) / 14)  # sample std, n - 1 = 14
    assert stats.std_ms == pytest.approx(std)
    assert stats.cv == pytest.approx(std / (85 / 15))
    # round A (n=10) drops 1 at each end: mean(2..9) = 5.5; round B (n=5) drops floor(0.5) = 0: 6.0
    assert stats.trimmed_mean_ms == pytest.approx((5.5 + 6.0) / 2)
    assert stats.round_medians_ms == [5.5, 6.0]
    assert stats.drift == pytest.approx(0.5 / 6)


def test_unstable_flag_names_each_reason():
    stats = compute_stats([ROUND_A, ROUND_B])  # cv 0.52 > 0.15, drift 0.083 < 0.10
    assert stats.unstable and len(stats.unstable_reasons) == 1 and stats.unstable_reasons[0].startswith("cv")
    strict = compute_stats([ROUND_A, ROUND_B], StabilityThresholds(max_cv=1.0, max_drift=0.05))
    assert strict.unstable and strict.unstable_reasons[0].startswith("round drift 0.083")
    lenient = compute_stats([ROUND_A, ROUND_B], StabilityThresholds(max_cv=1.0, max_drift=0.5))
    assert not lenient.unstable and lenient.unstable_reasons == []


def test_steady_rounds_are_stable_and_drifting_rounds_are_not():
    steady = compute_stats([[10.0, 10.1, 9.9, 10.0]] * 3)
    assert not steady.unstable and steady.drift == 0
    drifting = compute_stats([[10.0] * 20, [10.0] * 20, [12.0] * 20])  # a phone heating up
    assert drifting.drift == pytest.approx(2 / 10)
    assert drifting.unstable and any("drift" in r for r in drifting.unstable_reasons)


def test_trimmed_mean_drops_ten_percent_each_end():
    values = [1, 1] + list(range(2, 18)) + [500, 1000]  # 20 values: drop 2 lowest and 2 highest
    assert trimmed_mean(values) == pytest.approx(np.mean(range(2, 18)))
    assert trimmed_mean([3.0]) == 3.0
    with pytest.raises(ValueError):
        trimmed_mean([])


def test_single_sample_and_bad_samples():
    one = compute_stats([[4.0]])
    assert (one.median_ms, one.std_ms, one.cv, one.drift) == (4.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="no samples"):
        compute_stats([[], []])
    with pytest.raises(ValueError, match="finite"):
        compute_stats([[1.0, float("nan")]])


def test_from_summary_judges_cv_only():
    stats = LatencyStats.from_summary(count=50, mean_ms=10.0, std_ms=2.0, min_ms=8.0, max_ms=20.0)
    assert stats.cv == pytest.approx(0.2) and stats.unstable
    assert stats.median_ms is None and stats.trimmed_mean_ms is None and stats.drift is None


def test_spearman_with_ties_matches_hand_computation():
    # y ranks with a tie: [1, 2, 3.5, 5, 3.5]; r = 8 / sqrt(10 * 9.5)
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2, 3], [7, 7, 7]))


class FakeClock:
    """perf_counter_ns stand-in: time advances only when a step says so."""

    def __init__(self):
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


def test_protocol_times_each_step_exactly(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(protocol.time, "perf_counter_ns", clock)
    durations_ms = iter([100.0] * 3 + [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])  # 3 warm-ups, then 2 rounds x 3

    def step():
        clock.now_ns += int(next(durations_ms) * 1e6)

    settings = MeasureSettings(warmup_runs=3, warmup_min_s=0.0, min_runs=3, min_duration_s=0.0, rounds=2)
    samples = run_protocol(step, settings)
    assert samples.warmup_runs == 3 and samples.warmup_s == pytest.approx(0.3)
    assert samples.rounds_ms == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


def test_protocol_meets_both_count_and_duration(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(protocol.time, "perf_counter_ns", clock)

    def step():  # 10 ms per call
        clock.now_ns += 10_000_000

    # warm-up: 2 calls by count, but 0.05 s by time -> 5 calls; rounds: 3 by count, 0.1 s -> 10 calls
    settings = MeasureSettings(warmup_runs=2, warmup_min_s=0.05, min_runs=3, min_duration_s=0.1, rounds=2)
    samples = run_protocol(step, settings)
    assert samples.warmup_runs == 5
    assert [len(r) for r in samples.rounds_ms] == [10, 10]
    capped = run_protocol(step, MeasureSettings(warmup_runs=0, warmup_min_s=0, min_runs=3, min_duration_s=10.0,
                                                rounds=1, max_runs=7))
    assert [len(r) for r in capped.rounds_ms] == [7] and capped.warmup_runs == 0


def test_protocol_cools_down_between_rounds_only():
    calls = []
    settings = MeasureSettings(warmup_runs=0, warmup_min_s=0, min_runs=2, min_duration_s=0, rounds=3,
                               cooldown_s=0.05)
    samples = run_protocol(lambda: calls.append(time.monotonic()), settings)
    gaps = np.diff(calls)
    assert (gaps >= 0.05).sum() == 2  # two cool-downs for three rounds
    assert samples.total_s >= 0.1 and samples.count == 6


def test_settings_reject_nonsense():
    with pytest.raises(ValueError, match="rounds=0"):
        MeasureSettings(rounds=0)
    with pytest.raises(ValueError, match="max_runs"):
        MeasureSettings(min_runs=10, max_runs=5)
