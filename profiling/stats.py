"""Latency statistics over per-iteration samples, and the "unstable" verdict.

Every runner's samples (milliseconds, grouped by round) end up here. The median is the headline;
the rest says how far to trust it. Definitions, so that a reader can recompute any figure:

- percentiles (median, p90, p99) interpolate linearly between order statistics (numpy's default);
- ``std_ms`` is the sample standard deviation (n - 1 in the denominator), 0 for a single sample;
- ``cv`` (coefficient of variation) is ``std_ms / mean_ms`` over all samples;
- ``trimmed_mean_ms`` drops the lowest and the highest ``trim_fraction`` (10%) of EACH round
  (``floor(n * fraction)`` samples at each end), takes each round's mean, and averages the rounds;
- ``drift`` is ``(max round median - min round median) / overall median``: 0 with one round.

A run is flagged unstable when ``cv > max_cv`` or ``drift > max_drift``; the reasons are kept.
Results recovered from a tool that prints only a summary (``benchmark_model``'s count/avg/std)
use :meth:`LatencyStats.from_summary`, which leaves unknown figures as ``None``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

DEFAULT_MAX_CV = 0.15  # above this coefficient of variation a run is flagged unstable
DEFAULT_MAX_DRIFT = 0.10  # above this relative spread of round medians a run is flagged unstable
DEFAULT_TRIM_FRACTION = 0.10  # share of each round dropped at each end for the trimmed mean


@dataclass
class StabilityThresholds:
    """When a run counts as unstable."""

    max_cv: float = DEFAULT_MAX_CV  # coefficient of variation (std / mean) above which it is unstable
    max_drift: float = DEFAULT_MAX_DRIFT  # (max - min round median) / median above which it is unstable


@dataclass
class LatencyStats:
    """Summary of one measurement's samples; figures a source did not give are ``None``."""

    count: int  # timed iterations over all rounds
    median_ms: float | None  # the headline figure
    mean_ms: float | None
    min_ms: float | None
    max_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    std_ms: float | None  # sample standard deviation (ddof=1)
    cv: float | None  # std_ms / mean_ms
    trimmed_mean_ms: float | None  # mean of per-round 10%-trimmed means
    round_medians_ms: list[float] = field(default_factory=list)  # one median per round
    drift: float | None = None  # (max - min round median) / median; 0 for one round
    unstable: bool = False  # cv or drift above its threshold
    unstable_reasons: list[str] = field(default_factory=list)  # e.g. "cv 0.31 > 0.15"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LatencyStats":
        return cls(**data)

    @classmethod
    def from_summary(cls, *, count: int, mean_ms: float | None, min_ms: float | None = None,
                     max_ms: float | None = None, std_ms: float | None = None,
                     median_ms: float | None = None, p90_ms: float | None = None,
                     p99_ms: float | None = None,
                     thresholds: StabilityThresholds | None = None) -> "LatencyStats":
        """Stats from a tool that prints a summary but not the samples (only CV can be judged)."""
        thresholds = thresholds or StabilityThresholds()
        cv = std_ms / mean_ms if std_ms is not None and mean_ms else None
        reasons = _reasons(cv, None, thresholds)
        return cls(count=count, median_ms=median_ms, mean_ms=mean_ms, min_ms=min_ms, max_ms=max_ms,
                   p90_ms=p90_ms, p99_ms=p99_ms, std_ms=std_ms, cv=cv, trimmed_mean_ms=None,
                   round_medians_ms=[], drift=None, unstable=bool(reasons), unstable_reasons=reasons)


def trimmed_mean(samples: list[float] | np.ndarray, fraction: float = DEFAULT_TRIM_FRACTION) -> float:
    """Mean after dropping ``floor(n * fraction)`` samples at each end of the sorted samples."""
    values = np.sort(np.asarray(samples, dtype=np.float64))
    if values.size == 0:
        raise ValueError("trimmed_mean of no samples")
    if not 0 <= fraction < 0.5:
        raise ValueError(f"trim fraction must be in [0, 0.5), got {fraction}")
    cut = int(math.floor(values.size * fraction))
    return float(values[cut:values.size - cut].mean())


def compute_stats(rounds: list[list[float]], thresholds: StabilityThresholds | None = None,
                  trim_fraction: float = DEFAULT_TRIM_FRACTION) -> LatencyStats:
    """All statistics of samples in milliseconds, grouped by round (``[[r0 samples], [r1 ...]]``)."""
    thresholds = thresholds or StabilityThresholds()
    rounds = [list(r) for r in rounds if len(r)]
    if not rounds:
        raise ValueError("no samples: a measurement needs at least one timed iteration")
    values = np.concatenate([np.asarray(r, dtype=np.float64) for r in rounds])
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("latency samples must be finite and non-negative milliseconds")
    median = float(np.median(values))
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    cv = std / mean if mean > 0 else 0.0
    round_medians = [float(np.median(r)) for r in rounds]
    drift = (max(round_medians) - min(round_medians)) / median if median > 0 else 0.0
    trimmed = float(np.mean([trimmed_mean(r, trim_fraction) for r in rounds]))
    reasons = _reasons(cv, drift, thresholds)
    return LatencyStats(
        count=int(values.size), median_ms=median, mean_ms=mean, min_ms=float(values.min()),
        max_ms=float(values.max()), p90_ms=float(np.percentile(values, 90)),
        p99_ms=float(np.percentile(values, 99)), std_ms=std, cv=cv, trimmed_mean_ms=trimmed,
        round_medians_ms=round_medians, drift=drift, unstable=bool(reasons), unstable_reasons=reasons)


def _reasons(cv: float | None, drift: float | None, thresholds: StabilityThresholds) -> list[str]:
    reasons = []
    if cv is not None and cv > thresholds.max_cv:
        reasons.append(f"cv {cv:.3f} > {thresholds.max_cv:g}")
    if drift is not None and drift > thresholds.max_drift:
        reasons.append(f"round drift {drift:.3f} > {thresholds.max_drift:g}")
    return reasons


def spearman(x: list[float] | np.ndarray, y: list[float] | np.ndarray) -> float:
    """Spearman rank correlation: Pearson correlation of average ranks (ties share a rank)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.size < 2:
        raise ValueError("spearman needs two sequences of the same length, at least 2 long")
    rx, ry = _average_ranks(x), _average_ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")  # a constant sequence has no rank order
    return float(np.corrcoef(rx, ry)[0, 1])


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.arange(1, values.size + 1)
    for value in np.unique(values):  # ties get the mean of the ranks they span
        tied = values == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks
