"""What one sweep job does, wherever it runs: export (or reuse) an artifact and ship it, or measure one.

Both engines call these same functions: the local engine in its own process, the Ray engine inside
tasks on whatever node holds the resource. An export returns a :class:`ShippedArtifact`: the
manifest, the file's sha256 and, when the artifact must travel (Ray), the file's bytes. The
measuring side calls :func:`receive`, which writes the bytes into a node-local folder and checks
their sha256 against the manifest's before anything runs on them (a mismatch is an
:class:`ArtifactMismatch`, the job fails, nothing is measured). Host targets measure with the
profiling runners (``RUNNERS``); phone targets with ``profiling.android`` over adb.

A phone that stops answering raises :class:`PhoneLost` (an ``AdbError`` underneath): the engines
stop sending that phone work and the driver marks what is left for it ``not_run``.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from export.artifact import Artifact, load_artifact, manifest_path_for, sha256_of
from profiling.android.adb import Adb, AdbError, RemoteCommandError
from profiling.android.runner import (check_delegation, find_binary, run_benchmark_model, run_ort_perf_test,
                                      to_latency_result)
from profiling.android.thermal import ThermalSettings
from profiling.result import LatencyResult
from profiling.runners import RUNNERS, litert, onnxruntime
from profiling.sweep.plan import HOST, ExportJob, MeasureJob, SweepSpec


class ArtifactMismatch(RuntimeError):
    """An artifact arrived (or lies on disk) with another sha256 than its manifest's."""


class PhoneLost(RuntimeError):
    """The job's phone is gone (unplugged, offline, hung): no more jobs can run on it now."""


@dataclass
class ShippedArtifact:
    """An export as it travels to the node that measures it."""

    key: str  # the export job's key
    path: str  # where the exporting node wrote it
    manifest: dict  # the manifest (Artifact.to_dict())
    sha256: str  # of the file, checked on arrival
    exported_now: bool  # False: reused from disk
    data: bytes | None = None  # the file's bytes when it travels; None: measure ``path`` where it is

    @property
    def parity(self) -> dict:
        return self.manifest.get("parity") or {}


def export(job: ExportJob, spec: SweepSpec, exporter: Callable, ship: bool) -> ShippedArtifact:
    """Export ``job`` with ``exporter`` (``ensure_artifact``: reuse the artifact on disk, or export it
    behind the parity gate); with ``ship`` the file's bytes come along."""
    artifact, exported_now = exporter(job.model, job.format, job.precision, job.input_size,
                                            Path(spec.artifacts), weights=job.weights)
    path = Path(artifact.path)
    if path.is_dir():
        raise ArtifactMismatch(f"{path} is a folder; a sweep ships single-file artifacts (onnx, tflite)")
    data = path.read_bytes() if ship else None
    return ShippedArtifact(job.key, str(path), artifact.to_dict(), artifact.sha256, exported_now, data)


def receive(shipped: ShippedArtifact, folder: Path) -> Artifact:
    """The artifact on this node, its sha256 verified: written under ``folder`` when it travelled."""
    if shipped.data is None:
        path = Path(shipped.path)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / Path(shipped.path).name
        path.write_bytes(shipped.data)
        manifest_path_for(path).write_text(json.dumps(shipped.manifest))
    actual = sha256_of(path)
    if actual != shipped.sha256 or actual != shipped.manifest.get("sha256"):
        raise ArtifactMismatch(f"artifact {Path(shipped.path).name} arrived with sha256 {actual[:12]}, "
                               f"expected {shipped.sha256[:12]}: not measured")
    if shipped.data is None:
        return load_artifact(path)
    artifact = Artifact.from_dict(shipped.manifest)
    artifact.path = path
    return artifact


def _host_options(format_name: str) -> object:
    return onnxruntime.OrtOptions() if format_name == "onnx" else litert.LiteRtOptions()


def measure_host(job: MeasureJob, spec: SweepSpec, artifact: Artifact) -> LatencyResult:
    runner = RUNNERS[job.export.format]
    return runner.measure(artifact, spec.measure_settings(job.threads), _host_options(job.export.format))


def measure_phone(job: MeasureJob, spec: SweepSpec, artifact: Artifact) -> LatencyResult:
    """One run of the phone tool; ``PhoneLost`` when the phone is gone, the tool's own error otherwise."""
    tools = spec.android
    options = spec.benchmark_options(job.threads)
    try:
        adb = Adb.connect(job.serial, tools.get("adb"))
        device = adb.device_info()
        if job.export.format == "onnx":
            run = run_ort_perf_test(adb, Path(artifact.path), Path(tools["ort_binary"]), options, ThermalSettings())
        else:
            binary = find_binary(tools.get("binary"), tools.get("binary_dir"), device.abi)
            run = run_benchmark_model(adb, Path(artifact.path), binary, options, ThermalSettings())
    except RemoteCommandError:
        raise  # the tool failed; the phone answers
    except AdbError as error:
        raise PhoneLost(f"phone {job.serial}: {type(error).__name__}: {error}") from None
    check_delegation(run, options)
    return to_latency_result(run, device=device, model=artifact.model, format=job.export.format,
                             precision=artifact.precision, options=options, artifact=artifact)


def measure(job: MeasureJob, spec: SweepSpec, shipped: ShippedArtifact) -> LatencyResult:
    """Measure ``job`` on its target with the shipped artifact; the result names the exporting node's path."""
    with tempfile.TemporaryDirectory(prefix="mobilelat-sweep-") as folder:
        artifact = receive(shipped, Path(folder))
        if job.target == HOST:
            result = measure_host(job, spec, artifact)
        else:
            result = measure_phone(job, spec, artifact)
    result.artifact_path = shipped.path
    result.extra["sweep"] = {"job": job.key, "export": job.export.key, "exported_now": shipped.exported_now,
                             "parity": shipped.parity, "shipped": shipped.data is not None}
    result.extra["weights"] = job.export.weights
    return result
