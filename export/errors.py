"""What can go wrong in an export, as types the command line maps to exit statuses.

``UsageError`` (the one base of every package, ``mobilelat.errors``) and its subclasses are
mistakes the person running the export can fix (a flag, a size, a path): exit 2. ``ParityError``:
the artifact does not match the eager model: exit 1. ``ExportError`` and ``MissingDependencyError``: the converter failed or is not installed: exit 3.
Anything else is a bug and is raised as it is, never reported as bad usage.
"""
from __future__ import annotations

from export.parity import ParityReport
from mobilelat.errors import InputSizeError, OutputPathError, UsageError

__all__ = ["ExportError", "InputPathError", "InputSizeError", "MissingDependencyError", "OutputPathError",
           "ParityError", "UnsupportedOptionError", "UsageError"]


class UnsupportedOptionError(UsageError, ValueError):
    """An option (or precision) the chosen format does not take, or a value it cannot take."""


class InputPathError(UsageError, FileNotFoundError):
    """A path the user gave (a checkpoint, a calibration folder) that is missing or holds nothing usable."""


class ExportError(RuntimeError):
    """A conversion that failed: which format, what failed (op or module when known), what to try."""

    def __init__(self, message: str, *, format: str, hint: str = "", failing: str | None = None):
        self.format = format
        self.hint = hint
        self.failing = failing
        text = f"[{format}] {message}"
        if failing:
            text += f"\n  failing op/module: {failing}"
        if hint:
            text += f"\n  what to try: {hint}"
        super().__init__(text)


class MissingDependencyError(ImportError):
    """An optional backend that is not installed; the message carries the pip command."""


class ParityError(RuntimeError):
    """The artifact's outputs do not match the eager model's; carries the full report."""

    def __init__(self, report: ParityReport):
        self.report = report
        super().__init__("parity gate failed; no artifact written\n" + report.format_text())
