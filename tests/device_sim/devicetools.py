"""The simulated phone's own commands, run inside ``adb shell``: getprop, dumpsys, am, logcat, taskset, pidof.

Called as ``devicetools.py TOOL ARGS...`` by the wrappers ``make_sandbox`` writes. State lives in
``$ADB_SIM_ROOT/<serial>/`` (``$ADB_SIM_SERIAL`` says which phone).

logcat holds more than the benchmark: other apps log under the same ``tflite`` tag (LiteRT inside
Play services initialising, another app applying its own GPU delegate and even printing a
benchmark-style summary of its model, a harmless ``Failed to`` line), interleaved with the
benchmark APK's own lines, each under its own PID, in ``threadtime`` format (the default of
``logcat -d``). The benchmark app's process lives while it runs (``pidof`` sees it) and exits after.
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
NEIGHBOUR_PID = 2718  # another app that uses LiteRT and logs under tag tflite
# what the neighbour logs while the benchmark runs: (level, message)
NEIGHBOUR_LINES = [
    ("I", "Initialized TensorFlow Lite runtime."),
    ("I", "Created TensorFlow Lite delegate for GPU."),
    ("V", "Replacing 64 out of 64 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 1 partitions for "
          "the whole graph."),
    ("I", "Explicitly applied GPU delegate, and the model graph will be completely executed by the delegate."),
    ("E", "Failed to load delegate from libedgetpu.so.1"),
    ("I", "count=200 first=900 curr=800 min=700 max=900 avg=812 std=50"),
    ("I", "Inference timings in us: Init: 9000, First inference: 1500, Warmup (avg): 1200, Inference (avg): 812"),
]


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


def log_line(tag: str, message: str, level: str = "I", pid: int | None = None) -> str:
    now = datetime.now()
    stamp = now.strftime("%m-%d %H:%M:%S.") + f"{now.microsecond // 1000:03d}"
    pid = os.getpid() if pid is None else pid
    return f"{stamp}  {pid:5d}  {pid + 7:5d} {level} {tag:<8}: {message}\n"


def logcat(args: list[str]) -> int:
    log = HOME / "logcat.txt"
    if "-c" in args:
        log.write_text("")
        return 0
    tags = []
    if "-s" in args:
        tags = [tag.split(":")[0] for tag in args[args.index("-s") + 1:]]
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
    (HOME / "app.pid").write_text(str(os.getpid()))
    try:
        time.sleep(0.2)  # the app starts after `am start` has returned
        with open(HOME / "logcat.txt", "a") as log:
            for level, message in NEIGHBOUR_LINES[:4]:
                log.write(log_line("tflite", message, level, pid=NEIGHBOUR_PID))
        done = subprocess.run([sys.executable, str(HERE / "benchmark_model.py"), *args], capture_output=True, text=True)
        with open(HOME / "logcat.txt", "a") as log:
            # the APK's JNI entry point calls Run() directly: no "Benchmarking failed." line as main() prints
            lines = [line for line in (done.stdout + done.stderr).splitlines() if "Benchmarking failed." not in line]
            for index, line in enumerate(lines):
                level = "E" if line.startswith("ERROR") else ("W" if line.startswith("WARN") else "I")
                for prefix in ("INFO: ", "ERROR: ", "WARN: ", "VERBOSE: "):
                    line = line.removeprefix(prefix)
                log.write(log_line("tflite", line, level))
                if index == len(lines) // 2:  # the neighbour keeps logging while the benchmark runs
                    for neighbour_level, message in NEIGHBOUR_LINES[4:]:
                        log.write(log_line("tflite", message, neighbour_level, pid=NEIGHBOUR_PID))
    finally:
        (HOME / "app.pid").unlink(missing_ok=True)
    return 0


def pidof(args: list[str]) -> int:
    pid_file = HOME / "app.pid"
    if args[:1] == [PACKAGE] and pid_file.exists():
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return 1
        print(pid)
        return 0
    return 1


def taskset(args: list[str]) -> int:
    """``taskset MASK CMD...``: sched_setaffinity fails only when no core of MASK is online."""
    mask, command = args[0], args[1:]
    online_text = (HOME / "fs/sys/devices/system/cpu/online").read_text().strip()
    online = set()
    for part in online_text.split(","):
        first, _, last = part.partition("-")
        online.update(range(int(first), int(last or first) + 1))
    wanted = {core for core in range(64) if int(mask, 16) >> core & 1}
    if not wanted & online:
        sys.stderr.write("taskset: sched_setaffinity: Invalid argument\n")
        return 1
    with open(HOME / "taskset.log", "a") as record:
        record.write(mask + "\n")
    os.execvp(command[0], command)
    return 127


TOOLS = {"getprop": getprop, "dumpsys": dumpsys, "logcat": logcat, "am": am, "_activity": activity,
         "taskset": taskset, "pidof": pidof}

if __name__ == "__main__":
    sys.exit(TOOLS[sys.argv[1]](sys.argv[2:]))
