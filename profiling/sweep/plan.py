"""The sweep's plan: a grid spec (TOML file or flags) expanded into export jobs and measurement jobs.

    models = ["repvit_m0_9", "mobilenetv3_small_100"]
    formats = ["tflite", "onnx"]
    precisions = ["fp32", "fp16"]
    threads = [1, 4]
    targets = ["host", "android:0a388e93"]     # host runtimes, and phones by adb serial
    [host]                                     # profiling.protocol.MeasureSettings fields
    min_runs = 20
    [android]                                  # benchmark tools and profiling.android BenchmarkOptions fields
    binary = "tools/android_aarch64_benchmark_model"
    ort_binary = "tools/onnxruntime_perf_test"
    num_runs = 50

An export job is keyed by (model, format, precision, input size, weights) and done once, whatever
number of targets and thread counts measure it. A measurement job is (export, target, threads);
its key (``model|format|precision|Nt|target``) names it in the store's ``jobs`` table. A combination
the capability table refuses (a precision a format cannot take) or a target that cannot run a format
(onnx on a phone without ``ort_binary``) is left out of the grid and listed in ``Plan.skipped``.
"""
from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import models
from export.capabilities import capability
from mobilelat.errors import UsageError
from profiling.artifacts import ensure_artifact
from profiling.android.runner import BenchmarkOptions
from profiling.protocol import MeasureSettings

FORMATS = ("onnx", "tflite")  # what a sweep exports and measures (Core ML needs a Mac to measure)
HOST = "host"  # the target "this node's host runtimes": onnxruntime for onnx, LiteRT for tflite
ANDROID_PREFIX = "android:"
ANDROID_TOOL_KEYS = ("binary", "binary_dir", "ort_binary", "adb")  # [android] keys that are not BenchmarkOptions


class SpecError(UsageError):
    """A sweep spec that cannot be planned; the message names the key and what it takes."""


@dataclass
class SweepSpec:
    """The grid and the settings every job shares (stored with each job, so ``--resume`` needs nothing else)."""

    models: list[str]
    formats: list[str] = field(default_factory=lambda: ["onnx"])
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    threads: list[int] = field(default_factory=lambda: [1])
    targets: list[str] = field(default_factory=lambda: [HOST])
    input_size: list[int] | None = None  # (height, width); None: each model's own
    weights: str | None = None  # a local checkpoint for every model; None: random initialization
    artifacts: str = "artifacts"  # where exports are found or written (on the node that exports)
    host: dict = field(default_factory=dict)  # MeasureSettings fields (threads come from the grid)
    android: dict = field(default_factory=dict)  # binary / binary_dir / ort_binary / adb + BenchmarkOptions fields
    label: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SweepSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"unknown sweep key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "models" not in data:
            raise SpecError("a sweep spec needs `models = [...]` (registry names)")
        return cls(**data)

    def measure_settings(self, threads: int) -> MeasureSettings:
        return MeasureSettings(**{**self.host, "threads": threads})

    def benchmark_options(self, threads: int) -> BenchmarkOptions:
        options = {k: v for k, v in self.android.items() if k not in ANDROID_TOOL_KEYS}
        return BenchmarkOptions(**{**options, "num_threads": threads})


def load_spec(path: Path) -> SweepSpec:
    """A ``SweepSpec`` from a TOML file (keys as in :class:`SweepSpec`)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SpecError(f"sweep spec {path} not found") from None
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"sweep spec {path} is not valid TOML: {error}") from None
    return SweepSpec.from_dict(data)


@dataclass(frozen=True)
class ExportJob:
    """One artifact to export (or reuse), shared by every measurement of it."""

    model: str
    format: str
    precision: str
    input_size: tuple[int, int] | None
    weights: str | None

    @property
    def key(self) -> str:
        size = "x".join(map(str, self.input_size)) if self.input_size else "default"
        return f"{self.model}|{self.format}|{self.precision}|{size}|{self.weights or 'random'}"


@dataclass(frozen=True)
class MeasureJob:
    """One measurement: an export on a target with a thread count."""

    export: ExportJob
    target: str  # "host" or "android:SERIAL"
    threads: int

    @property
    def key(self) -> str:
        """The job's name in the store's ``jobs`` table."""
        return f"{self.export.model}|{self.export.format}|{self.export.precision}|{self.threads}t|{self.target}"

    @property
    def serial(self) -> str | None:
        return self.target[len(ANDROID_PREFIX):] if self.target.startswith(ANDROID_PREFIX) else None

    def to_dict(self) -> dict:
        return {"export": asdict(self.export), "target": self.target, "threads": self.threads}

    @classmethod
    def from_dict(cls, data: dict) -> "MeasureJob":
        export = dict(data["export"])
        export["input_size"] = tuple(export["input_size"]) if export["input_size"] else None
        return cls(ExportJob(**export), data["target"], data["threads"])


@dataclass
class Plan:
    """The jobs of a sweep: exports in order, measurements in order, and what the grid left out."""

    spec: SweepSpec
    exports: list[ExportJob]
    jobs: list[MeasureJob]
    skipped: list[str] = field(default_factory=list)  # "onnx fp16: ..." lines
    exporter: Callable = ensure_artifact  # (model, format, precision, input size, folder, weights=) -> (Artifact, new)

    def jobs_of(self, export: ExportJob) -> list[MeasureJob]:
        return [job for job in self.jobs if job.export == export]

    @classmethod
    def of_jobs(cls, spec: SweepSpec, jobs: list[MeasureJob], exporter: Callable = ensure_artifact) -> "Plan":
        """The plan that runs exactly ``jobs`` (a resume): their exports, once each, in job order."""
        return cls(spec, list(dict.fromkeys(job.export for job in jobs)), jobs, exporter=exporter)


def _check_list(name: str, values: object, kind: type) -> list:
    if not isinstance(values, list) or not values or not all(isinstance(v, kind) for v in values):
        raise SpecError(f"`{name}` takes a non-empty list of {kind.__name__}s, got {values!r}")
    return values


def check_spec(spec: SweepSpec) -> None:
    """Every key of ``spec`` checked before any work (names, formats, targets, settings, tools)."""
    _check_list("models", spec.models, str)
    for name in spec.models:
        models.model_spec(name)  # unknown names fail here with close matches
    for format_name in _check_list("formats", spec.formats, str):
        if format_name not in FORMATS:
            raise SpecError(f"format {format_name!r}: a sweep measures {', '.join(FORMATS)}")
    _check_list("precisions", spec.precisions, str)
    if any(isinstance(t, bool) or t < 1 for t in _check_list("threads", spec.threads, int)):
        raise SpecError(f"`threads` takes counts >= 1, got {spec.threads}")
    for target in _check_list("targets", spec.targets, str):
        if target != HOST and not (target.startswith(ANDROID_PREFIX) and len(target) > len(ANDROID_PREFIX)):
            raise SpecError(f"target {target!r}: use `host` or `android:SERIAL` (`adb devices` lists serials)")
    if spec.input_size is not None and (len(spec.input_size) != 2 or min(spec.input_size) < 1):
        raise SpecError(f"`input_size` takes [height, width], got {spec.input_size}")
    try:
        spec.measure_settings(spec.threads[0])
    except TypeError as error:
        raise SpecError(f"[host]: {error} (keys are profiling.protocol.MeasureSettings fields)") from None
    if any(t.startswith(ANDROID_PREFIX) for t in spec.targets):
        try:
            spec.benchmark_options(spec.threads[0])
        except TypeError as error:
            raise SpecError(f"[android]: {error} (keys are {', '.join(ANDROID_TOOL_KEYS)} and BenchmarkOptions "
                            "fields)") from None
        if "tflite" in spec.formats and not (spec.android.get("binary") or spec.android.get("binary_dir")):
            raise SpecError("tflite on a phone needs [android] binary = PATH or binary_dir = DIR "
                            "(LiteRT's benchmark_model for Android)")


def expand(spec: SweepSpec, exporter: Callable = ensure_artifact) -> Plan:
    """The grid as export jobs (each key once) and measurement jobs, in model, format, precision order."""
    check_spec(spec)
    exports, jobs, skipped = [], [], []
    size = tuple(spec.input_size) if spec.input_size else None
    for model in dict.fromkeys(spec.models):
        for format_name in dict.fromkeys(spec.formats):
            for precision in dict.fromkeys(spec.precisions):
                if precision not in capability(format_name).precisions:
                    line = f"{format_name} {precision}: the format does not take this precision"
                    if line not in skipped:
                        skipped.append(line)
                    continue
                export = ExportJob(model, format_name, precision, size, spec.weights)
                measured = []
                for target in dict.fromkeys(spec.targets):
                    if target != HOST and format_name == "onnx" and not spec.android.get("ort_binary"):
                        line = f"onnx on {target}: no [android] ort_binary (onnxruntime_perf_test) given"
                        if line not in skipped:
                            skipped.append(line)
                        continue
                    measured += [MeasureJob(export, target, t) for t in dict.fromkeys(spec.threads)]
                if measured:
                    exports.append(export)
                    jobs += measured
    if not jobs:
        raise SpecError("the grid holds no job: " + ("; ".join(skipped) or "nothing to measure"))
    return Plan(spec, exports, jobs, skipped, exporter)
