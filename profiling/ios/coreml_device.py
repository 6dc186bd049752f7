"""Benchmark a Core ML model on this Mac or on a connected iPhone/iPad through coremltools.

    devices = list_devices()                              # every iPhone/iPad devicectl knows, with its state
    phone = choose_device(devices, "Jane's iPhone")       # refuses one whose tunnel is not connected
    with prepared_phone(phone, team_id="ABCDE12345") as target:   # build + install the app ONCE
        for unit in ("ALL", "CPU_ONLY"):
            result = benchmark(artifact, target=target, device_info=phone_device_info(phone),
                               compute_units=unit, settings=AppleBenchSettings(iterations=100))

Timing is coremltools' own (``MLModelBenchmarker``): the load duration the Core ML framework reports
and per-prediction durations, in ms, measured on the device by the modelrunner app (so USB transfer
is not in the figures). Every prediction sample is kept. Requirements are checked up front and
raise :class:`AppleToolsUnavailable` with what is missing (macOS, Xcode's ``xcrun devicectl``,
coremltools >= 8.3, a signing team for the phone).

coremltools 9 raises its own exceptions when the phone side fails: ``_AppBuilder.Error`` when
``xcodebuild`` cannot build or sign the modelrunner app (its message is empty: xcodebuild's output
went to stdout), ``_DeviceCtlError`` when ``xcrun devicectl`` fails (a locked phone, Developer Mode
off; the message is devicectl's stderr, as bytes), and ``ValueError`` when the device is not
connected or the app's console session has died (``devicectl device process launch --console``
exits at once on a locked phone, and the first model load then finds no session).
:func:`explain_apple_error` turns each into one :class:`AppleToolsUnavailable` that says what
happened and what to do. ``prepared_phone`` builds and installs the app once for a whole sweep and
stops the console session it started when the sweep ends, however it ends.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import platform
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from export.artifact import Artifact, git_commit
from profiling.errors import UsageError
from profiling.result import DeviceInfo, LatencyResult, artifact_provenance, host_device, utc_now
from profiling.runners.common import INSTALL_HINTS, package_version
from profiling.runners.coreml import COMPUTE_UNITS
from profiling.stats import compute_stats

REMOTE_DEVICE_MODULE = "coremltools.models.ml_program.experimental.remote_device"
SESSION_GRACE_S = 3.0  # devicectl's console launch fails within this on a locked phone
# devicectl's words for a phone it cannot use yet -> what to do
_DEVICECTL_HINTS = [
    (re.compile(r"could not be, unlocked|device is (?:currently )?locked|CoreDeviceError error 10003|Locked",
                re.IGNORECASE), "the phone is locked: unlock it and keep the screen on while it is measured"),
    (re.compile(r"Developer Mode", re.IGNORECASE),
     "turn on Developer Mode (Settings > Privacy & Security > Developer Mode) and restart the phone"),
    (re.compile(r"not paired|pairing|trust", re.IGNORECASE),
     "the phone does not trust this Mac: unlock it, tap Trust on the dialog, and run again"),
    (re.compile(r"tunnel|not connected|timed out|disconnected", re.IGNORECASE),
     "the connection to the phone dropped: check the cable (or Wi-Fi pairing), unlock it, and run again"),
]


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


def _text(value: object) -> str:
    """coremltools hands devicectl's stderr over as bytes (or None); make it readable."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "" if value is None else str(value)


def _hint(text: str) -> str | None:
    for pattern, hint in _DEVICECTL_HINTS:
        if pattern.search(text):
            return hint
    return None


def _session_stderr(device: object) -> str:
    """What the app's console session (``devicectl device process launch --console``) said before it died."""
    process = getattr(getattr(device, "session", None), "_process", None)
    if process is None or process.poll() is None:
        return ""
    try:
        _, stderr = process.communicate(timeout=5)
    except (subprocess.SubprocessError, OSError, ValueError):
        return ""
    return _text(stderr)


def explain_apple_error(error: BaseException, doing: str, device: object | None = None,
                        team_id: str | None = None) -> AppleToolsUnavailable | None:
    """The AppleToolsUnavailable that explains ``error`` raised while ``doing``; None for an error that is a bug.

    Recognises coremltools' own exception classes by name, so coremltools need not be imported here.
    """
    kind = type(error)
    name = getattr(device, "name", "the phone")
    if kind.__module__ == REMOTE_DEVICE_MODULE and kind.__qualname__.endswith("Error") and "AppBuilder" in kind.__qualname__:
        said = _text(getattr(error, "message", None)).strip()
        return AppleToolsUnavailable(
            f"{doing}: xcodebuild could not build or sign coremltools' modelrunner app for {name} (status "
            f"{getattr(error, 'error_code', '?')}{': ' + said[-500:] if said and said != 'None' else ''}). Usual causes: "
            f"the signing team{' ' + team_id if team_id else ''} cannot sign for this phone (Xcode > Settings > "
            "Accounts; pass --team TEAM_ID), the phone is not registered with that team, or Xcode's license and "
            "first launch are pending (`sudo xcodebuild -license`, then open Xcode once)")
    if kind.__module__ == REMOTE_DEVICE_MODULE and kind.__qualname__ == "_DeviceCtlError":
        said = _text(getattr(error, "message", None)).strip()
        lines = [line.strip() for line in said.splitlines() if line.strip()]
        hint = _hint(said) or "run `xcrun devicectl list devices` to see the phone's state"
        return AppleToolsUnavailable(f"{doing}: xcrun devicectl failed on {name} (code {getattr(error, 'error_code', '?')})"
                                     f"{': ' + ' / '.join(lines[:3]) if lines else ''}; {hint}")
    if isinstance(error, ValueError) and kind.__module__ == "builtins":
        text = str(error)
        if "session is not active" in text or "not prepared for debugging" in text:
            said = _session_stderr(device)
            hint = _hint(said) or "unlock the phone, keep it awake, and run again"
            quoted = " / ".join(line.strip() for line in said.splitlines() if line.strip())[:400]
            return AppleToolsUnavailable(f"{doing}: the modelrunner app on {name} is not running (its devicectl "
                                         f"console session ended{': ' + quoted if quoted else ''}); {hint}")
        if "Current state" in text or "xcodebuild" in text or "devicectl" in text or "Workspace" in text:
            return AppleToolsUnavailable(f"{doing}: {text}")
    if isinstance(error, AttributeError) and _raised_in_remote_device(error):
        # coremltools reads `response.error` of a request the app never answered
        return AppleToolsUnavailable(f"{doing}: the modelrunner app on {name} did not answer; "
                                     f"{_hint(_session_stderr(device)) or 'unlock the phone, keep it awake, and run again'}")
    if isinstance(error, (subprocess.SubprocessError, OSError)):
        return AppleToolsUnavailable(f"{doing}: {type(error).__name__}: {error}")
    return None


def _raised_in_remote_device(error: BaseException) -> bool:
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and frame.tb_frame.f_code.co_filename.replace("\\", "/").endswith(
        "ml_program/experimental/remote_device.py")


def check_session(target, doing: str, grace_s: float = 0.0) -> None:
    """Raise AppleToolsUnavailable when the app's console session has ended (waiting up to ``grace_s`` for it to).

    coremltools checks ``session.is_alive`` without calling it, so a dead session would otherwise show up
    as a load that polls the phone for seconds and fails obscurely.
    """
    session = getattr(target, "session", None)
    if session is None:
        return
    deadline = time.monotonic() + grace_s
    while session.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not session.is_alive():
        said = _session_stderr(target)
        quoted = " / ".join(line.strip() for line in said.splitlines() if line.strip())[:400]
        raise AppleToolsUnavailable(f"{doing}: the modelrunner app on {target.name} is not running (its devicectl "
                                    f"console session ended{': ' + quoted if quoted else ''}); "
                                    f"{_hint(said) or 'unlock the phone, keep it awake, and run again'}")


def list_devices() -> list:
    """Every iPhone and iPad devicectl knows (coremltools ``remote_device.Device``), whatever its tunnel state."""
    require_macos(for_phone=True)
    from coremltools.models.ml_program.experimental.remote_device import Device, DeviceType

    try:
        devices = Device.get_devices()
    except Exception as error:
        explained = explain_apple_error(error, "listing devices")
        if explained is None:
            raise
        raise explained from None
    return [d for d in devices if d.type in (DeviceType.IPHONE, DeviceType.IPAD)]


def _state(device: object) -> str:
    return getattr(getattr(device, "state", None), "value", str(getattr(device, "state", "unknown")))


def describe_device(device: object) -> str:
    """``Jane's iPhone (00008110-..., iOS 17.5, connected)``."""
    return f"{device.name} ({device.udid}, iOS {device.os_version}, {_state(device)})"


def choose_device(devices: list, wanted: str | None):
    """The device whose name, udid or identifier is ``wanted``, or the only connected one; it must be connected."""
    listing = ", ".join(describe_device(d) for d in devices) or "none"
    if wanted is None:
        connected = [d for d in devices if _state(d) == "connected"]
        if len(connected) == 1:
            return connected[0]
        if len(connected) > 1:
            raise AppleToolsUnavailable(f"{len(connected)} iPhones/iPads connected; choose one with --device "
                                        f"NAME|UDID: {listing}")
        if devices:
            raise AppleToolsUnavailable(f"no iPhone/iPad is connected yet; devicectl lists {listing}: unlock it and "
                                        "wait for its tunnel to connect (`xcrun devicectl list devices`)")
        raise AppleToolsUnavailable("no iPhone/iPad connected: plug it in, unlock it, trust this Mac, turn on "
                                    "Developer Mode (Settings > Privacy & Security)")
    for device in devices:
        if wanted in (device.name, device.udid, device.identifier):
            if _state(device) != "connected":
                raise AppleToolsUnavailable(f"{describe_device(device)}: devicectl lists it but its tunnel is "
                                            f"{_state(device)}, not connected; unlock it, keep it near (or on the "
                                            "cable), and try again when `xcrun devicectl list devices` says connected")
            return device
    raise AppleToolsUnavailable(f"no device named {wanted!r}; devicectl lists: {listing}")


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


@contextlib.contextmanager
def prepared_phone(device, team_id: str | None, working_dir: Path | None = None) -> Iterator[object]:
    """Build, sign and install the modelrunner app on ``device`` once; yields the prepared device.

    The app's console session (a ``devicectl`` process) is stopped when the block ends, however it ends.
    """
    if not team_id:
        raise AppleToolsUnavailable("a phone needs the modelrunner app signed: pass --team TEAM_ID "
                                    "(Xcode > Settings > Accounts shows your development team)")
    from coremltools.models.ml_program.experimental.remote_device import AppSigningCredentials

    try:
        target = asyncio.run(device.prepare_for_model_debugging(
            credentials=AppSigningCredentials(development_team=team_id), working_directory=working_dir))
    except Exception as error:
        explained = explain_apple_error(error, f"preparing {device.name}", device, team_id)
        if explained is None:
            raise
        raise explained from None
    try:
        check_session(target, f"preparing {device.name}", SESSION_GRACE_S)
        yield target
    finally:
        session = getattr(target, "session", None)
        if session is not None:
            session.stop()


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


def _load_mlmodel(path: Path, compute_units: str):
    """The artifact as a coremltools MLModel (which loads it on this Mac only when predictions run here)."""
    import coremltools as ct

    return ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units))


async def _measure(model, device, settings: AppleBenchSettings) -> tuple[list[float], list[float]]:
    from coremltools.models.ml_program.experimental.perf_utils import MLModelBenchmarker

    benchmarker = MLModelBenchmarker(model=model, device=device)
    load = await benchmarker.benchmark_load(iterations=settings.load_iterations)
    if settings.warmup_runs:
        await benchmarker.benchmark_predict(iterations=settings.warmup_runs)
    predict = await benchmarker.benchmark_predict(iterations=settings.iterations)
    return list(load.samples), list(predict.samples)


def benchmark(artifact: Artifact, *, target=None, device_info: DeviceInfo | None = None, compute_units: str = "ALL",
              settings: AppleBenchSettings | None = None) -> LatencyResult:
    """Time ``artifact`` (format coreml) on this Mac, or on ``target``: a device from ``prepared_phone``."""
    settings = settings or AppleBenchSettings()
    if compute_units not in COMPUTE_UNITS:
        raise UsageError(f"compute units {compute_units!r}: choose from {', '.join(COMPUTE_UNITS)}")
    require_macos(for_phone=target is not None)
    model = _load_mlmodel(Path(artifact.path), compute_units)
    if target is None:
        info, runtime = mac_device_info(), "coreml"
    else:
        check_session(target, f"measuring {artifact.model} ({compute_units})")
        info, runtime = device_info or phone_device_info(target), "coreml_remote"
    try:
        load_ms, predict_ms = asyncio.run(_measure(model, target, settings))
    except Exception as error:
        explained = explain_apple_error(error, f"measuring {artifact.model} ({compute_units})", target)
        if explained is None:
            raise
        raise explained from None
    return result_from_measurements(load_ms=load_ms, predict_ms=predict_ms, device=info, compute_units=compute_units,
                                    settings=settings, artifact=artifact, model=artifact.model,
                                    precision=artifact.precision, input_shape=artifact.input_shape, runtime=runtime)
