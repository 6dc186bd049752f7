"""The simulated phone's own commands, run inside ``adb shell``: getprop, dumpsys, am, logcat, taskset.

Called as ``devicetools.py TOOL ARGS...`` by the wrappers ``make_sandbox`` writes. State lives in
``$ADB_SIM_ROOT/<serial>/`` (``$ADB_SIM_SERIAL`` says which phone).
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(os.environ["ADB_SIM_ROOT"])
SERIAL = os.environ["ADB_SIM_SERIAL"]
HOME = ROOT / SERIAL
HERE = Path(__file__).resolve().parent
PACKAGE = "org.tensorflow.lite.benchmark"
ACTIVITY = f"{PACKAGE}/.BenchmarkModelActivity"


def getprop(args: list[str]) -> int:
    props = json.loads((ROOT / "devices.json").read_text())[SERIAL]["props"]
    if args:
        print(props.get(args[0], ""))
    else:
        for name in sorted(props):
            print(f"[{name}]: [{props[name]}]")
    return 0


def dumpsys(args: list[str]) -> int:
    if args[:1] != ["battery"]:
        print(f"Can't find service: {args[0] if args else ''}")
        return 0
    tenths = int((HOME / "battery_tenths").read_text())
    print("Current Battery Service state:\n  AC powered: false\n  USB powered: true\n  Wireless powered: false\n"
          "  Max charging current: 500000\n  status: 2\n  health: 2\n  present: true\n  level: 85\n  scale: 100\n"
          f"  voltage: 4201\n  temperature: {tenths}\n  technology: Li-ion")
    return 0


def log_line(tag: str, message: str, level: str = "I") -> str:
    now = datetime.now()
    stamp = now.strftime("%m-%d %H:%M:%S.") + f"{now.microsecond // 1000:03d}"
    return f"{stamp}  {os.getpid():5d}  {os.getpid():5d} {level} {tag:<8}: {message}\n"


def logcat(args: list[str]) -> int:
    log = HOME / "logcat.txt"
    if "-c" in args:
        log.write_text("")
        return 0
    tags = []
    if "-s" in args:
        tags = args[args.index("-s") + 1:]
    print("--------- beginning of main")
    for line in log.read_text().splitlines():
        fields = line.split()
        if not tags or (len(fields) > 5 and fields[5].rstrip(":") in tags):
            print(line)
    return 0


def am(args: list[str]) -> int:
    if args[:1] != ["start"]:
        print(f"am: unsupported {args[:1]} (device simulator)")
        return 1
    component = args[args.index("-n") + 1] if "-n" in args else ""
    extras = args[args.index("--es") + 1:args.index("--es") + 3] if "--es" in args else []
    print(f"Starting: Intent {{ cmp={component}{' (has extras)' if extras else ''} }}")
    installed = (HOME / "installed.txt").exists()
    if component != ACTIVITY or not installed:
        print("Error type 3")
        print(f"Error: Activity class {{{PACKAGE}/{PACKAGE}.BenchmarkModelActivity}} does not exist.")
        return 0
    tool_args = shlex.split(extras[1]) if len(extras) == 2 and extras[0] == "args" else []
    # the activity runs on its own, after `am start` returned; it logs each output line under tag tflite
    subprocess.Popen([sys.executable, str(HERE / "devicetools.py"), "_activity", *tool_args],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, env=os.environ)
    return 0


def activity(args: list[str]) -> int:
    time.sleep(0.2)  # the app starts after `am start` has returned
    done = subprocess.run([sys.executable, str(HERE / "benchmark_model.py"), *args], capture_output=True, text=True)
    with open(HOME / "logcat.txt", "a") as log:
        for line in (done.stdout + done.stderr).splitlines():
            level = "E" if line.startswith("ERROR") else "I"
            for prefix in ("INFO: ", "ERROR: ", "WARN: "):
                line = line.removeprefix(prefix)
            log.write(log_line("tflite", line, level))
    return 0


def taskset(args: list[str]) -> int:
    mask, command = args[0], args[1:]
    with open(HOME / "taskset.log", "a") as record:
        record.write(mask + "\n")
    os.execvp(command[0], command)
    return 127


TOOLS = {"getprop": getprop, "dumpsys": dumpsys, "logcat": logcat, "am": am, "_activity": activity,
         "taskset": taskset}

if __name__ == "__main__":
    sys.exit(TOOLS[sys.argv[1]](sys.argv[2:]))
