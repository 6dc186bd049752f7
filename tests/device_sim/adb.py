"""The device simulator's ``adb``: the subset of adb's command line the profiler uses, on a sandbox.

Emulated: ``devices [-l]``, ``get-state``, ``-s SERIAL``, ``push``, ``pull``, ``install``,
``shell CMD`` (run by the host's ``/bin/sh`` with the phone's paths mapped into the sandbox and the
phone tools ``getprop``/``dumpsys``/``am``/``logcat``/``taskset`` on its PATH; the remote exit
status becomes adb's own, as with adb >= 1.0.36 and Android >= 7).

Fault injection (``ADB_SIM_FAULT``, comma-separated; ``ADB_SIM_FAULT_SERIAL`` limits it to one device):
``offline``, ``unauthorized``, ``noperm`` (device state), ``old_adb`` (adb always exits 0, as old
adb/Android pairs did), ``disconnect`` (the device vanishes during the benchmark run), ``slow`` (the
benchmark run hangs for ``ADB_SIM_SLOW_S`` seconds, default 60), ``garbage`` (the tool prints
nonsense), ``hot`` (every benchmark run heats the phone by ``ADB_SIM_HEAT_C`` degrees, default 8).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(os.environ["ADB_SIM_ROOT"])
FAULTS = {f for f in os.environ.get("ADB_SIM_FAULT", "").split(",") if f}
FAULT_SERIAL = os.environ.get("ADB_SIM_FAULT_SERIAL")
BENCHMARK_TOOLS = ("benchmark_model", "onnxruntime_perf_test")
DETAILS = "product:panther model:{model} device:panther transport_id:{tid}"


def fail(message: str, status: int = 1) -> None:
    sys.stderr.write(message + "\n")
    sys.exit(status)


def faults_for(serial: str) -> set[str]:
    return FAULTS if FAULT_SERIAL in (None, serial) else set()


def attached() -> dict[str, dict]:
    table = json.loads((ROOT / "devices.json").read_text())
    result = {}
    for serial, spec in table.items():
        if (ROOT / serial / "gone").exists():
            continue
        faults = faults_for(serial)
        for state in ("offline", "unauthorized"):
            if state in faults:
                spec["state"] = state
        if "noperm" in faults:
            spec["state"] = ("no permissions (user in plugdev group; are your udev rules wrong?); "
                             "see [http://developer.android.com/tools/device.html]")
        result[serial] = spec
    return result


def print_devices(long: bool) -> None:
    print("List of devices attached")
    for tid, (serial, spec) in enumerate(attached().items(), start=1):
        line = f"{serial:<22}{spec['state']}"
        if long and spec["state"] == "device":
            model = spec["props"].get("ro.product.model", "phone").replace(" ", "_")
            line += " " + DETAILS.format(model=model, tid=tid)
        elif long:
            line += f" usb:1-{tid} transport_id:{tid}"
        print(line)
    print()


def select(serial: str | None) -> str:
    devices = attached()
    if serial is None:
        serial = os.environ.get("ANDROID_SERIAL")
    if serial is None:
        if not devices:
            fail("adb: no devices/emulators found")
        if len(devices) > 1:
            fail("adb: more than one device/emulator")
        serial = next(iter(devices))
    if serial not in devices:
        fail(f"adb: device '{serial}' not found")
    state = devices[serial]["state"]
    if state == "offline":
        fail("adb: device offline")
    if state == "unauthorized":
        fail("adb: device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n"
             "Try 'adb kill-server' if that seems wrong.\nOtherwise check for a confirmation dialog on your device.")
    if state != "device":
        fail(f"adb: insufficient permissions for device: {state}")
    return serial


def device_path(serial: str, remote: str) -> Path:
    return ROOT / serial / "fs" / remote.lstrip("/")


_DEVICE_PATH = re.compile(r"(?<![\w./-])/(data|sys|sdcard)(?=/|\b)")


def map_paths(serial: str, command: str) -> str:
    fs = str(ROOT / serial / "fs")
    return _DEVICE_PATH.sub(lambda m: f"{fs}/{m.group(1)}", command)


def heat(serial: str, degrees: float) -> None:
    battery = ROOT / serial / "battery_tenths"
    battery.write_text(str(int(battery.read_text()) + round(degrees * 10)))
    for temp in (ROOT / serial / "fs/sys/class/thermal").glob("thermal_zone*/temp"):
        temp.write_text(f"{int(temp.read_text()) + round(degrees * 1000)}\n")


def shell(serial: str, command: str) -> int:
    faults = faults_for(serial)
    runs_benchmark = any(tool in command for tool in BENCHMARK_TOOLS) and "chmod" not in command
    env = dict(os.environ, PATH=f"{ROOT / 'tools'}:{os.environ.get('PATH', '')}", ADB_SIM_SERIAL=serial)
    if runs_benchmark and "slow" in faults:
        time.sleep(float(os.environ.get("ADB_SIM_SLOW_S", "60")))
    if runs_benchmark and "disconnect" in faults:
        print("INFO: STARTING!", flush=True)
        (ROOT / serial / "gone").write_text("unplugged mid-run")
        return 255  # the connection dropped: no output, no remote status
    done = subprocess.run(["/bin/sh", "-c", map_paths(serial, command)], env=env, cwd=ROOT / serial / "fs")
    if runs_benchmark and "hot" in faults:
        heat(serial, float(os.environ.get("ADB_SIM_HEAT_C", "8")))
    return 0 if "old_adb" in faults else done.returncode


def main(argv: list[str]) -> int:
    serial = None
    while argv and argv[0] in ("-s", "-d", "-e", "-t"):
        if argv[0] == "-s":
            serial = argv[1]
            argv = argv[2:]
        else:
            argv = argv[1:]
    if not argv:
        fail("adb: usage: adb [-s SERIAL] COMMAND")
    command, args = argv[0], argv[1:]
    if command == "devices":
        print_devices("-l" in args)
        return 0
    if command == "version":
        print("Android Debug Bridge version 1.0.41 (device simulator)")
        return 0
    serial = select(serial)
    if command == "get-state":
        print("device")
        return 0
    if command == "shell":
        return shell(serial, " ".join(args))
    if command == "push":
        local, remote = Path(args[-2]), args[-1]
        target = device_path(serial, remote)
        if target.is_dir():
            target = target / local.name
        if not target.parent.is_dir():
            fail(f"adb: error: failed to copy '{local}' to '{remote}': remote couldn't create file: No such file or directory")
        shutil.copy(local, target)
        size = local.stat().st_size
        print(f"{local}: 1 file pushed, 0 skipped. 12.3 MB/s ({size} bytes in 0.001s)")
        return 0
    if command == "pull":
        remote, local = args[-2], Path(args[-1])
        source = device_path(serial, remote)
        if not source.exists():
            fail(f"adb: error: failed to stat remote object '{remote}': No such file or directory")
        shutil.copy(source, local)
        print(f"{remote}: 1 file pulled, 0 skipped.")
        return 0
    if command == "install":
        apk = Path(args[-1])
        if not apk.is_file():
            fail(f"adb: failed to stat {apk}: No such file or directory")
        print("Performing Streamed Install")
        (ROOT / serial / "installed.txt").write_text("org.tensorflow.lite.benchmark\n")
        print("Success")
        return 0
    fail(f"adb: unknown command {command} (device simulator)")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
