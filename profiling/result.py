"""What one measurement is: ``LatencyResult`` (samples, stats, provenance) and ``DeviceInfo``.

Every runner (host runtimes here, phones in ``profiling/android`` and ``profiling/ios``, imported
files in ``profiling/importer.py``) returns a ``LatencyResult``; ``profiling.store`` keeps one row
per result. Host runners fill it with :func:`result_from_samples`; a phone runner whose tool prints
only a summary builds ``LatencyStats.from_summary(...)`` and leaves ``samples_ms`` empty.
"""
from __future__ import annotations

import os
import platform
import secrets
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from export.artifact import Artifact, git_commit
from profiling.protocol import MeasureSettings, ProtocolSamples
from profiling.stats import LatencyStats, compute_stats


@dataclass
class DeviceInfo:
    """Where a measurement ran: the host, or a phone (fields a source cannot tell are ``None``)."""

    kind: str  # "host", "android" or "ios"
    name: str  # host CPU model ("AMD EPYC 7B13"), or phone model ("Pixel 8")
    cores: int | None = None  # logical CPU cores
    os: str | None = None  # "Linux-6.8-x86_64", "Android 14 (SDK 34)", "iOS 17.5"
    soc: str | None = None  # phone system on chip ("Tensor G3"); None on a host
    abi: str | None = None  # CPU ABI / architecture ("arm64-v8a", "x86_64")
    serial: str | None = None  # adb serial or device identifier, phones only
    extra: dict = field(default_factory=dict)  # anything else (build fingerprint, RAM, ...)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DeviceInfo":
        return cls(**data)


@dataclass
class LatencyResult:
    """One measurement of one model in one configuration on one device, with every sample."""

    model: str  # registry name
    format: str  # "onnx", "tflite", "coreml" or "torch" (eager)
    precision: str  # "fp32", "fp16", "int8_dynamic", "int8_full"
    runtime: str  # "onnxruntime", "litert", "torch", "coreml", "benchmark_model", ...
    runtime_version: str  # version string of that runtime
    device: DeviceInfo  # where it ran
    threads: int | None  # threads the runtime was given (None: runtime default)
    input_shape: list[int]  # shape fed to the model, as the artifact takes it
    stats: LatencyStats  # median (the headline) and the rest
    samples_ms: list[list[float]] = field(default_factory=list)  # per round, per call; [] if unknown
    warmup_runs: int = 0  # warm-up calls made
    compute_unit: str | None = None  # Core ML compute units or delegate ("xnnpack", "gpu", "CPU_ONLY")
    reparameterized: bool | None = None  # deploy form measured (None: unknown)
    artifact_sha256: str | None = None  # of the measured artifact; None for torch eager
    artifact_path: str | None = None  # where the artifact lay when measured
    params: int | None = None  # parameters of the measured model
    macs: int | None = None  # multiply-accumulates of one forward pass at input_shape
    settings: dict = field(default_factory=dict)  # the MeasureSettings used, as a dict
    extra: dict = field(default_factory=dict)  # op profile, load time, temperatures, ...
    run_id: str | None = None  # the sweep this belongs to (set by the CLI or the caller)
    git_commit: str | None = None  # of this repository when measured
    created_at: str = ""  # ISO-8601 UTC
    id: int | None = None  # row id once stored

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def achieved_gflops(self) -> float | None:
        """Achieved GFLOP/s: 2 x MACs per forward pass over the median latency (None without either).

        Derived from the stored MAC count and median, so every stored result has it; set it against
        the machine's peak (``bench/bench_peak.py``) to see how far a model is from the limit."""
        median = self.stats.median_ms
        if not self.macs or not median or median <= 0:
            return None
        return 2.0 * self.macs / (median / 1e3) / 1e9

    @classmethod
    def from_dict(cls, data: dict) -> "LatencyResult":
        data = dict(data)
        data["device"] = DeviceInfo.from_dict(data["device"])
        data["stats"] = LatencyStats.from_dict(data["stats"])
        return cls(**data)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    """A sortable, unique run id: ``20261122T135012Z-3fa9c1``."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def host_cpu_name() -> str:
    """The host CPU's marketing name, from /proc/cpuinfo or sysctl; the platform's guess otherwise."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=5).stdout.strip() or platform.processor()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown CPU"


def host_device() -> DeviceInfo:
    """This machine as a ``DeviceInfo``."""
    return DeviceInfo(kind="host", name=host_cpu_name(), cores=os.cpu_count(),
                      os=f"{platform.system()} {platform.release()}", abi=platform.machine(),
                      extra={"python": platform.python_version()})


def artifact_provenance(artifact: Artifact | None) -> dict:
    """The ``LatencyResult`` fields an artifact's manifest fills (sha256, path, params, MACs, deploy form)."""
    if artifact is None:
        return {}
    return dict(artifact_sha256=artifact.sha256, artifact_path=str(artifact.path), params=artifact.params,
                macs=artifact.macs, reparameterized=artifact.reparameterized)


def result_from_samples(*, samples: ProtocolSamples, settings: MeasureSettings, model: str, format: str,
                        precision: str, runtime: str, runtime_version: str, input_shape: list[int],
                        device: DeviceInfo | None = None, artifact: Artifact | None = None,
                        **fields) -> LatencyResult:
    """A ``LatencyResult`` from the protocol's samples; provenance copied from ``artifact`` if given.

    ``fields`` sets any other ``LatencyResult`` field (compute_unit, extra, params, ...).
    """
    provenance = artifact_provenance(artifact) | fields
    provenance.setdefault("threads", settings.threads)
    return LatencyResult(
        model=model, format=format, precision=precision, runtime=runtime, runtime_version=runtime_version,
        device=device or host_device(), input_shape=list(input_shape),
        stats=compute_stats(samples.rounds_ms, settings.thresholds()), samples_ms=samples.rounds_ms,
        warmup_runs=samples.warmup_runs, settings=settings.to_dict(), git_commit=git_commit(),
        created_at=utc_now(), **provenance)
