"""The device simulator's ``adb``: the subset of adb's command line the profiler uses, on a sandbox.

Emulated: ``devices [-l]``, ``get-state``, ``-s SERIAL``, ``push``, ``pull``, ``install``,
``shell CMD`` (run by the host's ``/bin/sh`` with the phone's paths mapped into the sandbox and the
phone tools ``getprop``/``dumpsys``/``am``/``logcat``/``taskset``/``pidof`` on its PATH). By default
it behaves like adb >= 1.0.36 with Android >= 7 (shell protocol v2): the remote exit status becomes
adb's own and stderr stays apart. ``push`` prints its ``[ NN%] REMOTE`` progress lines (with CRs)
before ``LOCAL: 1 file pushed, 0 skipped. ...``, as adb does on a terminal.

Fault injection (``ADB_SIM_FAULT``, comma-separated; ``ADB_SIM_FAULT_SERIAL`` limits it to one device).
A fault written ``NAME@N`` fires on the N-th matching command only (counted per device):

- ``offline``, ``unauthorized``, ``noperm``: the device's state in ``adb devices -l``;
- ``old_adb``: an old adb/device pair (no shell v2): ``shell`` runs on a pty, so stderr arrives merged
  into stdout, every ``\\n`` becomes ``\\r\\n``, and adb exits 0 whatever the remote status; ``push``
  exits 0 even when it fails;
- ``disconnect``: the device vanishes while the benchmark tool runs (after ``STARTING!``);
- ``disconnect_push``, ``disconnect_getprop``, ``disconnect_thermal``: it vanishes during a push
  (after some progress), during ``getprop``, or during the thermal-zone read;
- ``push_nospace``: a push fails with ``remote No space left on device``;
- ``slow``: the benchmark run hangs for ``ADB_SIM_SLOW_S`` seconds (default 60);
- ``hot``: every benchmark run heats the phone by ``ADB_SIM_HEAT_C`` degrees (default 8);
- ``kill_caller``: the process that called adb (a sweep's worker) is killed with SIGKILL while the tool runs.

Faults can also come from ``faults.json`` in the sandbox root (``{"fault": "disconnect@2", "serial":
"SIM0002", "hold_s": 0.3}``, or per phone ``{"faults": {"SIM0001": "kill_caller@3"}}``), read by every adb call, so a test can inject them into processes that
started before it (a Ray worker) and clear them by deleting the file.

One phone, one job: every benchmark-tool run takes the phone's ``busy`` file (created exclusively)
for its whole duration (``hold_s`` / ``ADB_SIM_HOLD_S`` seconds more, to widen the window), appends
``{"pid", "start", "end"}`` to the phone's ``tool_runs.jsonl``, and a run that finds the phone busy
appends a line to its ``overlaps.log``: a test proves no phone ran two jobs at once by finding no
``overlaps.log`` and no two intervals of ``tool_runs.jsonl`` that intersect.

The tools' own faults (``garbage``, ``zero_runs``, ``nan``, ``no_final_newline``, ...) are listed in
``benchmark_model.py``, ``onnxruntime_perf_test.py`` and ``executor_runner.py``. A device the test "reconnects" is one whose
``gone`` file it deletes.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(os.environ["ADB_SIM_ROOT"])
_FAULT_FILE = json.loads((ROOT / "faults.json").read_text()) if (ROOT / "faults.json").exists() else {}
FAULT_SERIAL = _FAULT_FILE.get("serial", os.environ.get("ADB_SIM_FAULT_SERIAL"))
HOLD_S = float(_FAULT_FILE.get("hold_s", os.environ.get("ADB_SIM_HOLD_S", "0")))
BENCHMARK_TOOLS = ("benchmark_model", "onnxruntime_perf_test", "executor_runner")
DETAILS = "product:panther model:{model} device:panther transport_id:{tid}"


def parse_faults(text: str) -> dict[str, int | None]:
    """``"old_adb,disconnect_push@2"`` -> {"old_adb": None, "disconnect_push": 2}."""
    faults = {}
    for item in (part.strip() for part in text.split(",")):
        if item:
            name, _, at = item.partition("@")
            faults[name] = int(at) if at else None
    return faults


FAULTS = parse_faults(_FAULT_FILE.get("fault", os.environ.get("ADB_SIM_FAULT", "")))


def fail(message: str, status: int = 1) -> None:
    sys.stderr.write(message + "\n")
    sys.exit(status)


def faults_for(serial: str) -> dict[str, int | None]:
    if "faults" in _FAULT_FILE:  # per phone: {"faults": {"SIM0001": "kill_caller@3", "SIM0002": "disconnect@2"}}
        return parse_faults(_FAULT_FILE["faults"].get(serial, ""))
    return FAULTS if FAULT_SERIAL in (None, serial) else {}


def fires(serial: str, fault: str) -> bool:
    """Whether ``fault`` fires now: always when unnumbered, on the N-th call when written ``fault@N``."""
    faults = faults_for(serial)
    if fault not in faults:
        return False
    counters_path = ROOT / serial / "counters.json"
    counters = json.loads(counters_path.read_text()) if counters_path.exists() else {}
    counters[fault] = counters.get(fault, 0) + 1
    counters_path.write_text(json.dumps(counters))
    return faults[fault] is None or counters[fault] == faults[fault]


def disconnect(serial: str, why: str) -> None:
    (ROOT / serial / "gone").write_text(why)


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
        if temp.is_file():
            temp.write_text(f"{int(temp.read_text()) + round(degrees * 1000)}\n")


def runs_tool(command: str) -> bool:
    """Whether the (innermost) command starts one of the benchmark tools, possibly under taskset."""
    inner = command.split("); __rc=", 1)[0].lstrip("( ")
    try:
        words = shlex.split(inner)
    except ValueError:
        return False
    if words[:1] == ["taskset"]:
        words = words[2:]
    return bool(words) and Path(words[0]).name in BENCHMARK_TOOLS


def write_out(data: bytes, old_adb: bool) -> None:
    sys.stdout.buffer.write(data.replace(b"\n", b"\r\n") if old_adb else data)
    sys.stdout.buffer.flush()


def shell(serial: str, command: str) -> int:
    if not runs_tool(command):
        return _shell(serial, command)
    busy = ROOT / serial / "busy"
    try:
        os.close(os.open(busy, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        owner = True
    except FileExistsError:  # another job is on this phone right now
        owner = False
        with open(ROOT / serial / "overlaps.log", "a") as log:
            log.write(f"{time.time():.6f} pid {os.getpid()} found {serial} busy: {command[:120]}\n")
    start = time.time()
    try:
        time.sleep(HOLD_S)
        if fires(serial, "kill_caller"):
            os.kill(os.getppid(), signal.SIGKILL)
        return _shell(serial, command)
    finally:
        with open(ROOT / serial / "tool_runs.jsonl", "a") as log:
            log.write(json.dumps({"pid": os.getpid(), "start": start, "end": time.time()}) + "\n")
        if owner:
            busy.unlink()


def _shell(serial: str, command: str) -> int:
    old_adb = "old_adb" in faults_for(serial)
    tool = runs_tool(command)
    env = dict(os.environ, PATH=f"{ROOT / 'tools'}:{os.environ.get('PATH', '')}", ADB_SIM_SERIAL=serial)
    if tool and "slow" in faults_for(serial):
        time.sleep(float(os.environ.get("ADB_SIM_SLOW_S", "60")))
    if tool and fires(serial, "disconnect"):
        write_out(b"INFO: STARTING!\n", old_adb)
        disconnect(serial, "unplugged mid-run")
        return 255  # the connection dropped: no more output, no remote status
    inner = command.split("); __rc=", 1)[0].lstrip("( ")
    if inner.startswith("getprop") and fires(serial, "disconnect_getprop"):
        write_out(b"[dalvik.vm.heapsize]: [512m]\n[ro.boot", old_adb)
        disconnect(serial, "unplugged during getprop")
        return 255
    if "thermal_zone" in inner and fires(serial, "disconnect_thermal"):
        disconnect(serial, "unplugged during the thermal read")
        return 255
    mapped = map_paths(serial, command)
    if old_adb:  # a pty: one stream, CRLF line ends, and adb's own status is always 0
        done = subprocess.run(["/bin/sh", "-c", mapped], env=env, cwd=ROOT / serial / "fs",
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        write_out(done.stdout, old_adb=True)
    else:
        done = subprocess.run(["/bin/sh", "-c", mapped], env=env, cwd=ROOT / serial / "fs")
    if tool and "hot" in faults_for(serial):
        heat(serial, float(os.environ.get("ADB_SIM_HEAT_C", "8")))
    return 0 if old_adb else done.returncode


def push(serial: str, local: Path, remote: str) -> int:
    old_adb = "old_adb" in faults_for(serial)
    if not local.exists():
        fail(f"adb: error: cannot stat '{local}': No such file or directory")
    target = device_path(serial, remote)
    if target.is_dir():
        target = target / local.name
    size = local.stat().st_size
    progress = "".join(f"\r[{percent:3d}%] {remote}" for percent in (0, 34, 67))
    if fires(serial, "disconnect_push"):
        sys.stdout.write(progress)
        sys.stdout.flush()
        with open(target, "wb") as partial:  # what reached the phone before the cable went
            partial.write(local.read_bytes()[: size // 3])
        disconnect(serial, "unplugged during push")
        sys.stderr.write(f"\nadb: error: failed to copy '{local}' to '{remote}': no response: Connection reset by peer\n")
        return 0 if old_adb else 1
    if fires(serial, "push_nospace"):
        sys.stdout.write(progress)
        sys.stderr.write(f"\nadb: error: failed to copy '{local}' to '{remote}': remote No space left on device\n")
        return 0 if old_adb else 1
    if not target.parent.is_dir():
        sys.stderr.write(f"adb: error: failed to copy '{local}' to '{remote}': remote couldn't create file: "
                         "No such file or directory\n")
        return 0 if old_adb else 1
    shutil.copy(local, target)
    sys.stdout.write(progress + f"\r[100%] {remote}\r{local}: 1 file pushed, 0 skipped. 12.3 MB/s "
                                f"({size} bytes in 0.001s)\n")
    return 0


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
        return push(serial, Path(args[-2]), args[-1])
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
