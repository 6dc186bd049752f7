"""A small, strict wrapper around the ``adb`` command line: devices, properties, files, shell.

Every call runs ``adb [-s SERIAL] ...`` as a subprocess with a timeout (the whole process group is
killed when it runs out) and turns adb's failure modes into exceptions that say what to do:

- :class:`AdbNotFound`: no ``adb`` on PATH (or at the configured path);
- :class:`NoDeviceError`: nothing attached, the serial is not attached, or several are attached
  and none was chosen (the message lists them, with their states);
- :class:`DeviceUnauthorized` / :class:`DeviceOffline` / :class:`DeviceNoPermissions`: the device
  is listed but cannot be used (``adb devices -l`` states ``unauthorized``, ``offline``,
  ``no permissions (...)``);
- :class:`DeviceLost`: a command failed and the device is no longer attached (cable, reboot);
- :class:`AdbTimeout`: a command ran past its timeout;
- :class:`RemoteCommandError`: the command ran on the phone and exited non-zero.

Remote exit codes: adb >= 1.0.36 on Android >= 7 (the shell v2 protocol) returns the remote exit
status as ``adb shell``'s own and keeps stderr apart. Older pairs run the command on a pty: adb
always exits 0, stderr arrives merged into stdout and every newline becomes CRLF. So every shell
command is sent as ``(CMD); rc=$?; echo; echo __mobilelat_rc=$rc`` and the status is read from that
last line, which works on both: the ``echo`` first puts the marker on a line of its own even when
the command's output does not end with a newline (a crash mid-line, ``printf abc``).

``adb push`` prints progress lines and ``N file pushed, M skipped.`` on success and ``adb: error:
failed to copy 'A' to 'B': remote ...`` on failure; old adb returned 0 even then, so the text is
checked too, and the pushed file's size is read back from the phone.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from profiling.result import DeviceInfo

REMOTE_TMP = "/data/local/tmp"  # where binaries and models go; executable and writable over adb
DEFAULT_TIMEOUT_S = 60.0  # for quick commands (getprop, push of a small file)
_RC_MARKER = "__mobilelat_rc="
# the marker line our `echo; echo MARKER$rc` appends: always preceded by the newline of the bare echo
_RC_LINE = re.compile(r"\n__mobilelat_rc=(\d+)\s*$")
_PUSH_FAILED = re.compile(r"(?:^|\n)\s*(?:adb: )?error: |failed to copy", re.IGNORECASE)


class AdbError(RuntimeError):
    """Anything that went wrong talking to a phone; the message says what to do."""


class AdbNotFound(AdbError):
    pass


class NoDeviceError(AdbError):
    pass


class DeviceUnauthorized(AdbError):
    pass


class DeviceOffline(AdbError):
    pass


class DeviceNoPermissions(AdbError):
    pass


class DeviceLost(AdbError):
    pass


class AdbTimeout(AdbError):
    pass


class RemoteCommandError(AdbError):
    """A remote command exited non-zero; ``exit_code`` and ``output`` hold what it returned."""

    def __init__(self, command: str, exit_code: int, output: str):
        self.command, self.exit_code, self.output = command, exit_code, output
        tail = "\n".join(output.rstrip().splitlines()[-15:])
        super().__init__(f"remote command exited with status {exit_code}: {command}\n"
                         f"--- last lines of its output ---\n{tail or '(no output)'}")


@dataclass
class AdbDevice:
    """One line of ``adb devices -l``."""

    serial: str  # "emulator-5554", "0a388e93", "192.168.1.7:5555"
    state: str  # "device", "offline", "unauthorized", "no permissions (...)", "recovery", ...
    details: dict[str, str] = field(default_factory=dict)  # product, model, device, transport_id, usb

    def describe(self) -> str:
        model = self.details.get("model", "")
        return f"{self.serial} ({self.state}{', ' + model if model else ''})"


def parse_devices(output: str) -> list[AdbDevice]:
    """Parse ``adb devices -l``: a header line, then ``SERIAL <spaces> STATE [key:value ...]``.

    The state may contain spaces (``no permissions (user in plugdev group; ...); see [URL]``), so
    it runs from after the serial to the first `` key:value`` detail that follows a known pattern.
    Daemon start-up chatter (``* daemon not running; starting now ...``) is skipped.
    """
    devices = []
    for line in output.splitlines():
        line = line.rstrip()
        if not line or line.startswith("*") or line.startswith("List of devices") or line.startswith("adb "):
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            continue
        serial, rest = parts
        details = {}
        # details are the trailing run of key:value tokens
        tokens = rest.split()
        while tokens and re.fullmatch(r"[a-z_]+:\S+", tokens[-1]) and not tokens[-1].startswith("http"):
            key, value = tokens.pop().split(":", 1)
            details[key] = value
        state = " ".join(tokens)
        if state.startswith("no permissions"):
            state = rest[:rest.rfind("]") + 1] if "]" in rest else state
        devices.append(AdbDevice(serial=serial, state=state, details=dict(reversed(list(details.items())))))
    return devices


def _state_error(device: AdbDevice) -> AdbError | None:
    """The error for a device that is listed but not usable, None when it is ready."""
    if device.state == "device":
        return None
    if device.state == "unauthorized":
        return DeviceUnauthorized(
            f"device {device.serial} is unauthorized: unlock the phone and accept the 'Allow USB debugging?' "
            "dialog (tick 'Always allow from this computer'); if no dialog shows, revoke USB debugging "
            "authorizations in Developer options and reconnect")
    if device.state == "offline":
        return DeviceOffline(
            f"device {device.serial} is offline: reconnect the cable, or run `adb kill-server` and try again; "
            "a phone that is still booting shows offline for a while")
    if device.state.startswith("no permissions"):
        return DeviceNoPermissions(
            f"device {device.serial}: {device.state}. On Linux add a udev rule for the phone's vendor id "
            "and put your user in the plugdev group, then reconnect")
    return NoDeviceError(f"device {device.serial} is in state {device.state!r}, not 'device': boot it into "
                         "Android with USB debugging on")


def find_adb(adb_path: str | None = None) -> str:
    """The adb executable: ``adb_path``, else $ADB, else ``adb`` on PATH."""
    candidate = adb_path or os.environ.get("ADB") or "adb"
    found = shutil.which(candidate)
    if found is None:
        raise AdbNotFound(f"adb not found ({candidate!r}): install Android SDK platform-tools "
                          "(https://developer.android.com/tools/releases/platform-tools) and put it on PATH, "
                          "or pass its path (--adb PATH / $ADB)")
    return found


def run_process(argv: list[str], timeout_s: float, input_bytes: bytes | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` in its own process group; on timeout kill the whole group and raise AdbTimeout."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(input_bytes, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.communicate()
        raise AdbTimeout(f"timed out after {timeout_s:g} s: {shlex.join(argv)}; the phone may be busy, "
                         "hot or hung: raise the timeout or check the phone") from None
    return subprocess.CompletedProcess(argv, process.returncode, stdout.decode(errors="replace"),
                                       stderr.decode(errors="replace"))


def list_devices(adb_path: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[AdbDevice]:
    """Every device adb sees, usable or not."""
    done = run_process([find_adb(adb_path), "devices", "-l"], timeout_s)
    if done.returncode != 0:
        raise AdbError(f"`adb devices -l` failed (status {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return parse_devices(done.stdout)


def choose_device(devices: list[AdbDevice], serial: str | None) -> AdbDevice:
    """The device to use: the one with ``serial``, or the only one attached."""
    listing = ", ".join(d.describe() for d in devices)
    if serial is not None:
        matches = [d for d in devices if d.serial == serial]
        if not matches:
            raise NoDeviceError(f"device {serial!r} is not attached; attached: {listing or 'none'}")
        device = matches[0]
    elif not devices:
        raise NoDeviceError("no Android device attached: connect a phone with USB debugging enabled "
                            "(Settings > Developer options) and check `adb devices -l`")
    elif len(devices) > 1:
        raise NoDeviceError(f"{len(devices)} devices attached, choose one with --serial: {listing}")
    else:
        device = devices[0]
    error = _state_error(device)
    if error is not None:
        raise error
    return device


class Adb:
    """adb bound to one device. ``Adb.connect(serial)`` checks that it is attached and usable."""

    def __init__(self, serial: str, adb_path: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.serial = serial  # adb serial of the device every command goes to
        self.adb = find_adb(adb_path)  # absolute path of the adb executable
        self.timeout_s = timeout_s  # default timeout of one command, seconds

    @classmethod
    def connect(cls, serial: str | None = None, adb_path: str | None = None,
                timeout_s: float = DEFAULT_TIMEOUT_S) -> "Adb":
        device = choose_device(list_devices(adb_path, timeout_s), serial)
        return cls(device.serial, adb_path, timeout_s)

    # ---- plumbing -------------------------------------------------------------------------------

    def _run(self, args: list[str], timeout_s: float | None) -> subprocess.CompletedProcess:
        return run_process([self.adb, "-s", self.serial, *args], timeout_s or self.timeout_s)

    def _diagnose(self, done: subprocess.CompletedProcess, what: str) -> AdbError:
        """The error for an adb call that failed on the host side (no remote exit status)."""
        message = (done.stderr.strip() or done.stdout.strip())
        try:
            devices = list_devices(self.adb, 15)
        except AdbError:
            devices = []
        mine = [d for d in devices if d.serial == self.serial]
        if not mine:
            return DeviceLost(f"device {self.serial} disconnected during {what} ({message or 'no message'}); "
                              "reconnect it (check the cable, that it did not reboot) and run again")
        state_error = _state_error(mine[0])
        if state_error is not None:
            return state_error
        return AdbError(f"adb failed during {what} (status {done.returncode}): {message or 'no message'}")

    # ---- commands -------------------------------------------------------------------------------

    def shell(self, command: str, timeout_s: float | None = None, check: bool = True) -> tuple[int, str]:
        """Run ``command`` in the phone's shell; returns (remote exit status, stdout+stderr).

        ``check=True`` raises :class:`RemoteCommandError` on a non-zero remote status. Output comes back
        with LF line ends whatever the adb version; stderr (kept apart by shell v2) is appended last.
        """
        # a subshell, so that an `exit N` in the command still lets the marker print
        done = self._run(["shell", f"({command}); __rc=$?; echo; echo {_RC_MARKER}$__rc"], timeout_s)
        stdout = re.sub(r"\r+\n", "\n", done.stdout)
        found = _RC_LINE.search(stdout)
        if found is None:
            # the marker never came back: the shell was cut off (or adb itself failed)
            raise self._diagnose(done, f"`adb shell {command}`")
        exit_code = int(found.group(1))
        text = stdout[:found.start()].rstrip("\n")
        stderr = re.sub(r"\r+\n", "\n", done.stderr).rstrip()
        if stderr:
            text = f"{text}\n{stderr}" if text else stderr
        if check and exit_code != 0:
            raise RemoteCommandError(command, exit_code, text)
        return exit_code, text

    def getprop(self, name: str) -> str:
        return self.shell(f"getprop {shlex.quote(name)}")[1].strip()

    def push(self, local: str | Path, remote: str, timeout_s: float | None = None) -> None:
        """Copy ``local`` to ``remote``; raises unless the phone then holds a file of the same size."""
        local = Path(local)
        if not local.exists():
            raise FileNotFoundError(f"cannot push {local}: no such file")
        done = self._run(["push", str(local), remote], timeout_s or max(self.timeout_s, 300))
        said = re.sub(r"\r+\n", "\n", done.stdout + "\n" + done.stderr)
        if done.returncode != 0 or _PUSH_FAILED.search(said):
            raise self._diagnose(done, f"`adb push {local} {remote}`")
        size = self.remote_size(remote)
        if size is not None and size != local.stat().st_size:
            raise AdbError(f"`adb push {local} {remote}` reported success but the phone holds {size} of "
                           f"{local.stat().st_size} bytes; check the free space on the phone and push again")

    def remote_size(self, remote: str) -> int | None:
        """The size of a file on the phone in bytes (None when neither stat nor wc can tell)."""
        code, text = self.shell(f"stat -c %s {shlex.quote(remote)} 2>/dev/null || wc -c < {shlex.quote(remote)}",
                                check=False)
        digits = text.strip().split()
        return int(digits[0]) if code == 0 and digits and digits[0].isdigit() else None

    def pull(self, remote: str, local: str | Path, timeout_s: float | None = None) -> Path:
        """Copy ``remote`` to ``local`` through a temporary name, so ``local`` appears whole or not at all."""
        local = Path(local)
        partial = local.with_name(local.name + ".partial")
        done = self._run(["pull", remote, str(partial)], timeout_s or max(self.timeout_s, 300))
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            said = done.stderr + done.stdout
            if "does not exist" in said or "No such file or directory" in said:  # old and current adb
                raise AdbError(f"cannot pull {remote} from {self.serial}: no such file on the device")
            raise self._diagnose(done, f"`adb pull {remote}`")
        os.replace(partial, local)
        return local

    def install(self, apk: str | Path, timeout_s: float | None = None) -> None:
        """``adb install -r -d -g APK`` (replace, allow downgrade, grant permissions)."""
        done = self._run(["install", "-r", "-d", "-g", str(apk)], timeout_s or max(self.timeout_s, 300))
        if done.returncode != 0 or "Failure" in done.stdout:
            if "Failure" in done.stdout + done.stderr:
                raise AdbError(f"installing {apk} failed: {(done.stdout + done.stderr).strip()}")
            raise self._diagnose(done, f"`adb install {apk}`")

    def device_info(self) -> DeviceInfo:
        """The phone as a ``DeviceInfo``: model, SoC, ABI, Android version, core count, build."""
        props = self.properties()
        soc = props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware") or None
        manufacturer = props.get("ro.soc.manufacturer")
        if soc and manufacturer and not soc.lower().startswith(manufacturer.lower()):
            soc = f"{manufacturer} {soc}"
        release, sdk = props.get("ro.build.version.release"), props.get("ro.build.version.sdk")
        os_name = f"Android {release}" + (f" (SDK {sdk})" if sdk else "") if release else None
        cores = None
        try:
            present = self.shell("cat /sys/devices/system/cpu/present")[1].strip()  # "0-7"
            cores = sum(int(b) - int(a) + 1 for a, _, b in (r.partition("-") if "-" in r else (r, "-", r)
                                                             for r in present.split(",")))
        except (AdbError, ValueError):
            pass
        name = props.get("ro.product.model") or self.serial
        extra = {key: props[key] for key in ("ro.build.fingerprint", "ro.build.display.id", "ro.product.manufacturer",
                                             "ro.product.device", "ro.hardware", "ro.board.platform")
                 if props.get(key)}
        return DeviceInfo(kind="android", name=name, cores=cores, os=os_name, soc=soc,
                          abi=props.get("ro.product.cpu.abi") or None, serial=self.serial,
                          extra=extra)

    def properties(self) -> dict[str, str]:
        """Every system property (``getprop`` with no argument prints ``[name]: [value]`` lines)."""
        text = self.shell("getprop")[1]
        return {m.group(1): m.group(2) for m in re.finditer(r"^\[([^\]]+)\]: \[(.*)\]\s*$", text, re.MULTILINE)}
