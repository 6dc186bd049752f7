"""Phone temperatures and cool-down waits, so that a hot phone does not pass for a slow model.

Read over adb before and after every run and stored in the result's ``extra["thermal"]``:

- battery: ``dumpsys battery`` prints ``temperature: 312`` in TENTHS of a degree Celsius;
- thermal zones: ``/sys/class/thermal/thermal_zone*/temp`` in MILLIDEGREES Celsius (a few vendor
  kernels print whole degrees: values below 1000 are taken as degrees), named by ``.../type``.

``wait_for_cooldown`` polls until the hottest reading is at or below ``target_c`` or ``max_wait_s``
passed (then it says so in the record instead of waiting forever). A run whose hottest reading
rose by more than ``max_rise_c`` is flagged ``thermal_rise`` in the result.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field

from profiling.android.adb import Adb, AdbError

_ZONES_COMMAND = ("for z in /sys/class/thermal/thermal_zone*; do "
                  "echo \"$z $(cat $z/type 2>/dev/null) $(cat $z/temp 2>/dev/null)\"; done")


@dataclass
class ThermalSettings:
    """How much heat to tolerate and how long to wait for a phone to cool between runs."""

    cooldown_target_c: float | None = None  # wait before each run until the hottest reading is <= this (None: no wait)
    cooldown_max_wait_s: float = 300.0  # give up waiting after this many seconds (the run goes on, flagged)
    poll_interval_s: float = 10.0  # seconds between readings while waiting
    max_rise_c: float = 5.0  # flag a run whose hottest reading rose by more than this, degrees C
    zones: bool = True  # read /sys/class/thermal zones too (not only the battery)


@dataclass
class ThermalReading:
    """Temperatures at one moment, degrees Celsius."""

    battery_c: float | None  # battery sensor (dumpsys battery)
    zones_c: dict[str, float] = field(default_factory=dict)  # "thermal_zone3 cpu-1-0-usr" -> 41.2
    taken_at_s: float = 0.0  # time.time() when read

    @property
    def hottest_c(self) -> float | None:
        values = [v for v in [self.battery_c, *self.zones_c.values()] if v is not None]
        return max(values) if values else None

    def to_dict(self) -> dict:
        return asdict(self) | {"hottest_c": self.hottest_c}


def parse_battery_temperature(dumpsys_output: str) -> float | None:
    """``dumpsys battery``'s ``temperature: 312`` (tenths of a degree) -> 31.2."""
    match = re.search(r"^\s*temperature:\s*(-?\d+)\s*$", dumpsys_output, re.MULTILINE)
    return int(match.group(1)) / 10.0 if match else None


def parse_zone_lines(text: str) -> dict[str, float]:
    """Lines ``/sys/class/thermal/thermal_zone3 cpu-1-0-usr 41200`` -> {"thermal_zone3 cpu-1-0-usr": 41.2}."""
    zones = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        try:
            raw = float(parts[-1])
        except ValueError:
            continue  # zone without a readable temp (permission denied, sensor off)
        name = parts[0].rsplit("/", 1)[-1] + (" " + " ".join(parts[1:-1]) if len(parts) > 2 else "")
        celsius = raw / 1000.0 if abs(raw) >= 1000 else raw
        if -40.0 <= celsius <= 150.0:  # disabled sensors report nonsense such as -273 or 0x7fffffff
            zones[name] = celsius
    return zones


def read_temperatures(adb: Adb, zones: bool = True) -> ThermalReading:
    """Battery and (optionally) thermal-zone temperatures; unreadable sensors are left out."""
    battery = None
    try:
        battery = parse_battery_temperature(adb.shell("dumpsys battery", timeout_s=20)[1])
    except AdbError as error:
        if type(error).__name__ in ("DeviceLost", "AdbTimeout"):
            raise
    zone_values = {}
    if zones:
        _, text = adb.shell(_ZONES_COMMAND, timeout_s=20, check=False)
        zone_values = parse_zone_lines(text)
    return ThermalReading(battery_c=battery, zones_c=zone_values, taken_at_s=time.time())


def wait_for_cooldown(adb: Adb, settings: ThermalSettings, sleep=time.sleep) -> dict:
    """Wait until the phone is at or below ``cooldown_target_c``; returns what happened, for the record."""
    reading = read_temperatures(adb, settings.zones)
    record = {"target_c": settings.cooldown_target_c, "start_c": reading.hottest_c, "waited_s": 0.0,
              "timed_out": False}
    if settings.cooldown_target_c is None or reading.hottest_c is None:
        return record
    started = time.monotonic()
    while reading.hottest_c > settings.cooldown_target_c:
        waited = time.monotonic() - started
        if waited >= settings.cooldown_max_wait_s:
            record["timed_out"] = True
            break
        sleep(min(settings.poll_interval_s, max(settings.cooldown_max_wait_s - waited, 0.0)))
        reading = read_temperatures(adb, settings.zones)
    record["waited_s"] = round(time.monotonic() - started, 3)
    record["end_c"] = reading.hottest_c
    return record


def thermal_record(before: ThermalReading, after: ThermalReading, settings: ThermalSettings,
                   cooldown: dict | None = None) -> dict:
    """What goes into ``extra["thermal"]``: both readings, the rise, and whether it passed the limit."""
    rise = None
    if before.hottest_c is not None and after.hottest_c is not None:
        rise = round(after.hottest_c - before.hottest_c, 3)
    return {"before": before.to_dict(), "after": after.to_dict(), "rise_c": rise,
            "max_rise_c": settings.max_rise_c, "rose_past_limit": rise is not None and rise > settings.max_rise_c,
            "cooldown": cooldown}
