"""The measurement protocol every runner uses: warm-up, timed rounds, cool-down, every sample kept.

A runner prepares its session (load the model, build the input) and hands this module a
``step()`` callable that does exactly one inference. :func:`run_protocol` then

1. warms up until BOTH ``warmup_runs`` calls were made AND ``warmup_min_s`` seconds went by;
2. runs ``rounds`` rounds; in each, times ``step()`` with ``time.perf_counter_ns`` until BOTH
   ``min_runs`` samples were taken AND ``min_duration_s`` seconds went by (``max_runs`` caps a round);
3. sleeps ``cooldown_s`` between rounds (not before the first, not after the last);

and returns every sample in milliseconds, grouped by round. Only ``step()`` sits between the two
clock reads, so a runner's per-call overhead (input conversion, output copies) belongs in ``step``
only if it is part of what is being measured.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from profiling.errors import UsageError
from profiling.stats import DEFAULT_MAX_CV, DEFAULT_MAX_DRIFT, StabilityThresholds


@dataclass
class MeasureSettings:
    """How long and how often to measure; shared by every runner (phone runners map it to flags)."""

    warmup_runs: int = 10  # warm-up calls, at least
    warmup_min_s: float = 0.5  # warm-up wall time, at least, seconds
    min_runs: int = 50  # timed calls per round, at least
    min_duration_s: float = 1.0  # timed wall time per round, at least, seconds
    rounds: int = 3  # rounds; drift between their medians marks a run unstable
    cooldown_s: float = 0.0  # sleep between rounds, seconds (lets a phone or laptop cool)
    max_runs: int = 100_000  # timed calls per round, at most (stops a round early)
    threads: int = 1  # intra-op threads the runner gives its runtime
    max_cv: float = DEFAULT_MAX_CV  # coefficient of variation above which the run is unstable
    max_drift: float = DEFAULT_MAX_DRIFT  # relative spread of round medians above which it is unstable
    extra: dict = field(default_factory=dict)  # runner-specific options, recorded with the result

    def __post_init__(self) -> None:
        problems = []
        for name in ("warmup_runs", "min_runs", "threads"):
            if getattr(self, name) < (0 if name == "warmup_runs" else 1):
                problems.append(f"{name}={getattr(self, name)}")
        if self.rounds < 1:
            problems.append(f"rounds={self.rounds}")
        if self.max_runs < self.min_runs:
            problems.append(f"max_runs={self.max_runs} < min_runs={self.min_runs}")
        for name in ("warmup_min_s", "min_duration_s", "cooldown_s", "max_cv", "max_drift"):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)}")
        if problems:
            raise UsageError("invalid measurement settings: " + ", ".join(problems)
                             + " (counts and rounds must be >= 1, times and thresholds >= 0)")

    def thresholds(self) -> StabilityThresholds:
        return StabilityThresholds(max_cv=self.max_cv, max_drift=self.max_drift)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def quick(cls, **overrides) -> "MeasureSettings":
        """A short protocol for tests and smoke runs (seconds, not minutes)."""
        values = dict(warmup_runs=2, warmup_min_s=0.0, min_runs=5, min_duration_s=0.0, rounds=2)
        values.update(overrides)
        return cls(**values)


@dataclass
class ProtocolSamples:
    """What the protocol measured: every sample, grouped by round, and how warm-up went."""

    rounds_ms: list[list[float]]  # per round, per timed call, milliseconds
    warmup_runs: int  # warm-up calls actually made
    warmup_s: float  # warm-up wall time, seconds
    total_s: float  # wall time of the whole protocol including cool-downs, seconds

    @property
    def count(self) -> int:
        return sum(len(r) for r in self.rounds_ms)


ProgressCallback = Callable[[str, int, int], None]  # (phase, round index, samples so far)


def run_protocol(step: Callable[[], object], settings: MeasureSettings,
                 progress: ProgressCallback | None = None) -> ProtocolSamples:
    """Warm up, then time ``step()`` in rounds as ``settings`` says; returns every sample."""
    clock = time.perf_counter_ns
    start_ns = clock()
    warmup_min_ns = int(settings.warmup_min_s * 1e9)
    warmups = 0
    while warmups < settings.warmup_runs or clock() - start_ns < warmup_min_ns:
        step()
        warmups += 1
    warmup_ns = clock() - start_ns

    min_duration_ns = int(settings.min_duration_s * 1e9)
    rounds_ms: list[list[float]] = []
    for round_index in range(settings.rounds):
        if round_index and settings.cooldown_s > 0:
            time.sleep(settings.cooldown_s)
        if progress:
            progress("round", round_index, 0)
        durations_ns: list[int] = []
        round_start_ns = clock()
        while ((len(durations_ns) < settings.min_runs or clock() - round_start_ns < min_duration_ns)
               and len(durations_ns) < settings.max_runs):
            before = clock()
            step()
            durations_ns.append(clock() - before)
        rounds_ms.append([d / 1e6 for d in durations_ns])
        if progress:
            progress("round done", round_index, len(durations_ns))
    return ProtocolSamples(rounds_ms=rounds_ms, warmup_runs=warmups, warmup_s=warmup_ns / 1e9,
                           total_s=(clock() - start_ns) / 1e9)
