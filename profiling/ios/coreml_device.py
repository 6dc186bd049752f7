"""Benchmark a Core ML model on this Mac or on a connected iPhone/iPad through coremltools.

    devices = list_devices()                              # iPhones/iPads that devicectl sees as connected
    result = benchmark(artifact, device=devices[0], compute_units="ALL",
                       settings=AppleBenchSettings(iterations=100, warmup_runs=10), team_id="ABCDE12345")

Timing is coremltools' own (``MLModelBenchmarker``): the load duration the Core ML framework reports
and per-prediction durations, in ms, measured on the device by the modelrunner app (so USB transfer
is not in the figures). Every prediction sample is kept. Requirements are checked up front and
raise :class:`AppleToolsUnavailable` with what is missing (macOS, Xcode's ``xcrun devicectl``,
coremltools >= 8.3, a signing team for the phone).
"""
from __future__ import annotations

import asyncio
import json
import platform
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from export.artifact import Artifact, git_commit
from profiling.errors import UsageError
from profiling.result import DeviceInfo, LatencyResult, artifact_provenance, host_device, utc_now
from profiling.runners.common import INSTALL_HINTS, package_version
from profiling.runners.coreml import COMPUTE_UNITS
from profiling.stats import compute_stats


class AppleToolsUnavailable(RuntimeError):
    """This host cannot run the requested Core ML benchmark; the message says what is missing."""


@dataclass
class AppleBenchSettings:
    """How many loads and predictions to time."""

    iterations: int = 100  # timed predictions
    warmup_runs: int = 10  # untimed predictions before them (after the first load)
    load_iterations: int = 3  # timed model loads (compile + specialize caches make the first one slow)

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.warmup_runs < 0 or self.load_iterations < 1:
            raise UsageError("iterations >= 1, warmup_runs >= 0 and load_iterations >= 1 are required")


def require_macos(for_phone: bool) -> None:
    """Raise AppleToolsUnavailable unless this host can run Core ML (and reach a phone, if asked)."""
    if platform.system() != "Darwin":
        where = "an iPhone over USB needs macOS with Xcode (xcrun devicectl)" if for_phone else \
            "Core ML runs only on macOS"
        raise AppleToolsUnavailable(f"{where}; this host is {platform.system()}. Export the .mlpackage here "
                                    "(python -m export.coreml MODEL) and run this command on a Mac")
    if for_phone and shutil.which("xcrun") is None:
        raise AppleToolsUnavailable("xcrun not found: install Xcode (15 or newer, for devicectl) and run "
                                    "`sudo xcode-select -s /Applications/Xcode.app`")
    try:
        from coremltools.models.ml_program.experimental import perf_utils, remote_device  # noqa: F401
    except ImportError as error:
        raise AppleToolsUnavailable("coremltools >= 8.3 with its experimental benchmarking is needed: "
                                    f"{INSTALL_HINTS['coremltools']} ({error})") from None


def list_devices() -> list:
    """Connected iPhones and iPads (coremltools ``remote_device.Device`` objects)."""
    require_macos(for_phone=True)
    from coremltools.models.ml_program.experimental.remote_device import Device, DeviceType

    return [d for kind in (DeviceType.IPHONE, DeviceType.IPAD) for d in Device.get_connected_devices(kind)]


def choose_device(devices: list, wanted: str | None):
    """The device whose name, udid or identifier is ``wanted``; the only one when ``wanted`` is None."""
    listing = ", ".join(f"{d.name} ({d.udid}, iOS {d.os_version})" for d in devices) or "none"
    if wanted is None:
        if len(devices) != 1:
            raise AppleToolsUnavailable(f"{len(devices)} iPhones/iPads connected; choose one with --device "
                                        f"NAME|UDID: {listing}" if devices else
                                        "no iPhone/iPad connected: plug it in, unlock it, trust this Mac, turn on "
                                        "Developer Mode (Settings > Privacy & Security)")
        return devices[0]
    for device in devices:
        if wanted in (device.name, device.udid, device.identifier):
            return device
    raise AppleToolsUnavailable(f"no connected device named {wanted!r}; connected: {listing}")


def parse_devicectl_hardware(listing: dict) -> dict[str, dict]:
    """``xcrun devicectl list devices --json-output F``'s JSON -> {udid: {"model", "product_type", "cpu"}}.

    coremltools keeps only the user's device name ("Jane's iPhone"); the stored device name should be
    the hardware ("iPhone 15 Pro"), which devicectl reports as ``hardwareProperties.marketingName``.
    """
    hardware = {}
    for device in (listing.get("result") or {}).get("devices") or []:
        properties = device.get("hardwareProperties") or {}
        udid = properties.get("udid")
        if udid:
            hardware[udid] = {"model": properties.get("marketingName"), "product_type": properties.get("productType"),
                              "cpu": (properties.get("cpuType") or {}).get("name")}
    return hardware


def devicectl_hardware() -> dict[str, dict]:
    """Hardware of the devices devicectl knows, by udid ({} when it cannot be read)."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "devices.json"
        try:
            subprocess.run(["xcrun", "devicectl", "list", "devices", "--json-output", str(output)],
                           capture_output=True, timeout=60, check=True)
            return parse_devicectl_hardware(json.loads(output.read_text()))
        except (OSError, subprocess.SubprocessError, ValueError):
            return {}


def phone_device_info(device, hardware: dict | None = None) -> DeviceInfo:
    """A coremltools Device (plus devicectl's hardware entry for it) as a DeviceInfo (kind "ios")."""
    hardware = hardware or {}
    os_name = "iPadOS" if getattr(device.type, "value", "") == "ipad" else "iOS"
    return DeviceInfo(kind="ios", name=hardware.get("model") or hardware.get("product_type") or device.name,
                      os=f"{os_name} {device.os_version}", abi=hardware.get("cpu") or "arm64", serial=device.udid,
                      extra={"device_name": device.name, "product_type": hardware.get("product_type"),
                             "os_build": device.os_build_number, "identifier": device.identifier,
                             "developer_mode": device.developer_mode_state})


def mac_device_info() -> DeviceInfo:
    info = host_device()
    info.os = f"macOS {platform.mac_ver()[0]}" if platform.system() == "Darwin" else info.os
    return info


def result_from_measurements(*, load_ms: list[float], predict_ms: list[float], device: DeviceInfo,
                             compute_units: str, settings: AppleBenchSettings, artifact: Artifact | None = None,
                             model: str,
                             precision: str, input_shape: list[int], runtime: str) -> LatencyResult:
    """Load and prediction samples (ms) as one LatencyResult; every prediction sample is kept."""
    return LatencyResult(
        model=model, format="coreml", precision=precision, runtime=runtime,
        runtime_version=f"coremltools {package_version('coremltools')}",
        device=device, threads=None, input_shape=list(input_shape), stats=compute_stats([list(predict_ms)]),
        samples_ms=[list(predict_ms)], warmup_runs=settings.warmup_runs, compute_unit=compute_units,
        settings=asdict(settings), extra={"load_ms": list(load_ms),
                                          "first_load_ms": load_ms[0] if load_ms else None},
        git_commit=git_commit(), created_at=utc_now(), **artifact_provenance(artifact))


async def _measure(model, device, settings: AppleBenchSettings) -> tuple[list[float], list[float]]:
    from coremltools.models.ml_program.experimental.perf_utils import MLModelBenchmarker

    benchmarker = MLModelBenchmarker(model=model, device=device)
    load = await benchmarker.benchmark_load(iterations=settings.load_iterations)
    if settings.warmup_runs:
        await benchmarker.benchmark_predict(iterations=settings.warmup_runs)
    predict = await benchmarker.benchmark_predict(iterations=settings.iterations)
    return list(load.samples), list(predict.samples)


def benchmark(artifact: Artifact, *, device=None, compute_units: str = "ALL", settings: AppleBenchSettings | None = None,
              team_id: str | None = None, working_dir: Path | None = None) -> LatencyResult:
    """Time ``artifact`` (format coreml) on the Mac, or on ``device`` (a coremltools ``remote_device.Device``)."""
    settings = settings or AppleBenchSettings()
    if compute_units not in COMPUTE_UNITS:
        raise UsageError(f"compute units {compute_units!r}: choose from {', '.join(COMPUTE_UNITS)}")
    require_macos(for_phone=device is not None)
    import coremltools as ct

    model = ct.models.MLModel(str(artifact.path), compute_units=getattr(ct.ComputeUnit, compute_units))
    if device is None:
        info, runtime, target = mac_device_info(), "coreml", None
    else:
        from coremltools.models.ml_program.experimental.remote_device import AppSigningCredentials

        if not team_id:
            raise AppleToolsUnavailable("a phone needs the modelrunner app signed: pass --team TEAM_ID "
                                        "(Xcode > Settings > Accounts shows your development team)")
        try:
            target = asyncio.run(device.prepare_for_model_debugging(
                credentials=AppSigningCredentials(development_team=team_id), working_directory=working_dir))
        except (subprocess.SubprocessError, OSError, ValueError) as error:
            raise AppleToolsUnavailable(f"could not build/install the modelrunner app on {device.name}: {error}") \
                from None
        info, runtime = phone_device_info(device, devicectl_hardware().get(device.udid)), "coreml_remote"
    load_ms, predict_ms = asyncio.run(_measure(model, target, settings))
    return result_from_measurements(load_ms=load_ms, predict_ms=predict_ms, device=info, compute_units=compute_units,
                                    settings=settings, artifact=artifact, model=artifact.model,
                                    precision=artifact.precision, input_shape=artifact.input_shape, runtime=runtime)
