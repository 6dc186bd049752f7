"""Phone temperatures and cool-down waits, so that a hot phone does not pass for a slow model.

Read over adb before and after every run; the :class:`ThermalRecord` is stored as the result's
``extra["thermal"]`` (``ThermalRecord.from_dict`` reads it back):

- battery: ``dumpsys battery`` prints ``temperature: 312`` in TENTHS of a degree Celsius;
- thermal zones: ``/sys/class/thermal/thermal_zone*/temp`` in MILLIDEGREES Celsius (a few vendor
  kernels print whole degrees: values below 1000 are taken as degrees), named by ``.../type``.

``wait_for_cooldown`` polls until the hottest reading is at or below ``target_c`` or ``max_wait_s``
passed (then it says so in its :class:`CooldownRecord` instead of waiting forever). A run whose
hottest reading rose by more than ``max_rise_c`` is flagged unstable in the result.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from profiling.android.adb import Adb, AdbError, AdbTimeout, DeviceLost

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

    @classmethod
    def from_dict(cls, data: dict) -> "ThermalReading":
        return cls(battery_c=data["battery_c"], zones_c=dict(data["zones_c"]), taken_at_s=data["taken_at_s"])


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
    except (DeviceLost, AdbTimeout):
        raise  # the phone is gone or hung: the run cannot go on
    except AdbError:
        pass  # no battery service (or it failed): the zones may still tell
    zone_values = {}
    if zones:
        _, text = adb.shell(_ZONES_COMMAND, timeout_s=20, check=False)
        zone_values = parse_zone_lines(text)
    return ThermalReading(battery_c=battery, zones_c=zone_values, taken_at_s=time.time())


@dataclass
class CooldownRecord:
    """What a wait for the phone to cool did, for the record."""

    target_c: float | None  # the temperature waited for, degrees C (None: no wait was asked for)
    start_c: float | None  # hottest reading when the wait began, degrees C (None: nothing readable)
    waited_s: float = 0.0  # seconds spent waiting
    timed_out: bool = False  # gave up at cooldown_max_wait_s, still hotter than target_c
    end_c: float | None = None  # hottest reading when the wait ended; None when no wait happened

    def to_dict(self) -> dict:
        """The stored shape: ``end_c`` only when a wait happened (as results stored before this class)."""
        data = asdict(self)
        if data["end_c"] is None:
            del data["end_c"]
        return data


@dataclass
class ThermalRecord:
    """Temperatures around one run, stored as ``extra["thermal"]``: both readings, the rise, the verdict."""

    before: ThermalReading  # just before the tool started
    after: ThermalReading  # just after it finished
    rise_c: float | None  # hottest after minus hottest before, degrees C (None: a reading was missing)
    max_rise_c: float  # the limit it was judged against, degrees C
    rose_past_limit: bool  # rise_c above max_rise_c: the run is flagged unstable
    cooldown: CooldownRecord | None = None  # the wait before the run, if one was made
    after_error: str | None = None  # why the reading after the run failed (the run itself finished and counts)

    def to_dict(self) -> dict:
        """The stored shape; ``after_error`` only when the reading after the run failed."""
        data = {"before": self.before.to_dict(), "after": self.after.to_dict(), "rise_c": self.rise_c,
                "max_rise_c": self.max_rise_c, "rose_past_limit": self.rose_past_limit,
                "cooldown": self.cooldown.to_dict() if self.cooldown else None}
        if self.after_error is not None:
            data["after_error"] = self.after_error
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ThermalRecord":
        """A record as stored in a result's ``extra["thermal"]`` (by this class or the dict that preceded it)."""
        cooldown = data.get("cooldown")
        return cls(before=ThermalReading.from_dict(data["before"]), after=ThermalReading.from_dict(data["after"]),
                   rise_c=data["rise_c"], max_rise_c=data["max_rise_c"], rose_past_limit=data["rose_past_limit"],
                   cooldown=CooldownRecord(**cooldown) if cooldown else None, after_error=data.get("after_error"))


def wait_for_cooldown(adb: Adb, settings: ThermalSettings, sleep: Callable[[float], None] = time.sleep
                      ) -> CooldownRecord:
    """Wait until the phone is at or below ``cooldown_target_c``; returns what happened, for the record."""
    reading = read_temperatures(adb, settings.zones)
    record = CooldownRecord(target_c=settings.cooldown_target_c, start_c=reading.hottest_c)
    if settings.cooldown_target_c is None or reading.hottest_c is None:
        return record
    started = time.monotonic()
    while reading.hottest_c > settings.cooldown_target_c:
        waited = time.monotonic() - started
        if waited >= settings.cooldown_max_wait_s:
            record.timed_out = True
            break
        sleep(min(settings.poll_interval_s, max(settings.cooldown_max_wait_s - waited, 0.0)))
        reading = read_temperatures(adb, settings.zones)
    record.waited_s = round(time.monotonic() - started, 3)
    record.end_c = reading.hottest_c
    return record


def read_temperatures_after(adb: Adb, zones: bool = True) -> tuple[ThermalReading, str | None]:
    """The reading after a run, which must not cost the run: a phone lost or hung right after the
    tool finished gives an empty reading and the reason, and the next adb command reports the loss."""
    try:
        return read_temperatures(adb, zones), None
    except AdbError as error:
        return ThermalReading(battery_c=None, taken_at_s=time.time()), f"{type(error).__name__}: {error}"


def thermal_record(before: ThermalReading, after: ThermalReading, settings: ThermalSettings,
                   cooldown: CooldownRecord | None = None, after_error: str | None = None) -> ThermalRecord:
    """Both readings, the rise, and whether it passed ``settings.max_rise_c``."""
    rise = None
    if before.hottest_c is not None and after.hottest_c is not None:
        rise = round(after.hottest_c - before.hottest_c, 3)
    return ThermalRecord(before=before, after=after, rise_c=rise, max_rise_c=settings.max_rise_c,
                         rose_past_limit=rise is not None and rise > settings.max_rise_c, cooldown=cooldown,
                         after_error=after_error)
