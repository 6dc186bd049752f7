"""A simulated Android phone for the tests: an ``adb`` executable and stand-ins for the phone tools.

``make_sandbox(root, ...)`` lays out a fake phone (properties, CPU max frequencies, thermal zones,
battery) under ``root`` and writes small shell wrappers into ``root/bin``: ``adb`` (put that folder
first on PATH), ``benchmark_model``, ``onnxruntime_perf_test`` and ``executor_runner`` (pass them as the user's
``--binary``; they run the pushed model with ai-edge-litert / onnxruntime on this host, or with
``ADB_SIM_TIMING=synthetic`` time a stand-in in microseconds without loading anything, and print
the tools' documented output). See ``adb.py`` for the emulated commands and the fault injection
environment variables.

The phone is not tidy: besides its readable thermal zones it has one whose ``temp`` cannot be read
(reading it fails, as a sensor behind SELinux or a powered-down block does) and one that reports a
disabled sensor's -273 C; ``offline_cores`` hot-plugs cores off (their cpufreq is unreadable, as on
many kernels, and ``online`` lists only the others).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

PIXEL_PROPS = {
    "ro.product.model": "Pixel 7", "ro.product.manufacturer": "Google", "ro.product.device": "panther",
    "ro.soc.manufacturer": "Google", "ro.soc.model": "Tensor G2", "ro.board.platform": "gs201",
    "ro.hardware": "panther", "ro.product.cpu.abi": "arm64-v8a", "ro.build.version.release": "14",
    "ro.build.version.sdk": "34", "ro.build.display.id": "UQ1A.240205.004",
    "ro.build.fingerprint": "google/panther/panther:14/UQ1A.240205.004/11269751:user/release-keys",
}
# Tensor G2: 4 little (1.80 GHz), 2 mid (2.35 GHz), 2 big (2.85 GHz) cores
PIXEL_MAX_FREQ_KHZ = [1803000] * 4 + [2348000] * 2 + [2850000] * 2


def _wrapper(path: Path, script: str, *fixed_args: str) -> None:
    fixed = "".join(f' "{arg}"' for arg in fixed_args)
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / script}"{fixed} "$@"\n')
    path.chmod(0o755)


def cpu_list(cores: list[int]) -> str:
    """The kernel's CPU list format: [0, 1, 2, 3, 5] -> "0-3,5"."""
    runs: list[list[int]] = []
    for core in sorted(cores):
        if runs and core == runs[-1][-1] + 1:
            runs[-1].append(core)
        else:
            runs.append([core])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def make_sandbox(root: Path, devices: dict[str, dict] | None = None) -> dict[str, str]:
    """Create the fake phone(s) under ``root``; returns the environment to run ``adb`` with.

    ``devices`` maps serial -> {"state": "device", "props": {...}, "max_freq_khz": [...],
    "battery_c": 31.2, "zones_c": {"cpu-0-0-usr": 38.5}, "offline_cores": [6, 7]}; default: one Pixel 7,
    serial SIM0001, all cores online.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    devices = {"SIM0001": {}} if devices is None else devices
    table = {}
    for serial, spec in devices.items():
        spec = {"state": "device", "props": dict(PIXEL_PROPS), "max_freq_khz": PIXEL_MAX_FREQ_KHZ,
                "battery_c": 31.2, "zones_c": {"cpu-0-0-usr": 38.5, "gpu-usr": 36.0, "battery": 31.0},
                "offline_cores": []} | spec
        table[serial] = {"state": spec["state"], "props": spec["props"]}
        fs = root / serial / "fs"
        (fs / "data/local/tmp").mkdir(parents=True, exist_ok=True)
        cpus = fs / "sys/devices/system/cpu"
        for index, freq in enumerate(spec["max_freq_khz"]):
            (cpus / f"cpu{index}").mkdir(parents=True, exist_ok=True)
            if index not in spec["offline_cores"]:
                (cpus / f"cpu{index}/cpufreq").mkdir(exist_ok=True)
                (cpus / f"cpu{index}/cpufreq/cpuinfo_max_freq").write_text(f"{freq}\n")
        (cpus / "present").write_text(f"0-{len(spec['max_freq_khz']) - 1}\n")
        online = [core for core in range(len(spec["max_freq_khz"])) if core not in spec["offline_cores"]]
        (cpus / "online").write_text(cpu_list(online) + "\n")
        zones = list(spec["zones_c"].items()) + [("tsens_tz_sensor12", None), ("pm8350b_tz", -273.0)]
        for index, (name, celsius) in enumerate(zones):
            zone = fs / f"sys/class/thermal/thermal_zone{index}"
            zone.mkdir(parents=True, exist_ok=True)
            (zone / "type").write_text(name + "\n")
            if celsius is None:  # a directory: `cat` fails on it whoever runs it, root included
                (zone / "temp").mkdir()
            else:
                (zone / "temp").write_text(f"{round(celsius * 1000)}\n")
        (root / serial / "battery_tenths").write_text(str(round(spec["battery_c"] * 10)))
        (root / serial / "logcat.txt").write_text("")
    (root / "devices.json").write_text(json.dumps(table, indent=1))
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    _wrapper(bin_dir / "adb", "adb.py")
    _wrapper(bin_dir / "benchmark_model", "benchmark_model.py")
    _wrapper(bin_dir / "onnxruntime_perf_test", "onnxruntime_perf_test.py")
    _wrapper(bin_dir / "executor_runner", "executor_runner.py")
    tools = root / "tools"  # what the phone's shell finds on its PATH
    tools.mkdir(exist_ok=True)
    for tool in ("getprop", "dumpsys", "am", "logcat", "taskset", "pidof"):
        _wrapper(tools / tool, "devicetools.py", tool)
    return {"ADB_SIM_ROOT": str(root), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
