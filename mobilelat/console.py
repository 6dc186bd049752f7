"""What a command shows a person: progress on stderr, results on stdout, other libraries' chatter in a log.

One :class:`Console` per command run, made from its ``--quiet`` / ``--verbose`` / ``--json`` flags
(:func:`add_output_flags` adds them):

- ``err``: progress, stage lines with their times, notes; on a terminal a spinner or a bar with an
  ETA, in a pipe or a file plain lines. Nothing with ``--quiet``.
- ``out``: the results (tables, the artifact path); under ``--json`` only the one JSON document
  (:meth:`Console.emit_json`). Tables written to a pipe or a file are neither cut nor wrapped.
- :meth:`Console.capture`: while the work runs, what converters and runtimes print (torchao's
  ``Failed to load``, absl's ``I0000`` lines, pytree and Future warnings, tqdm bars, LiteRT's
  ``[START]/[DONE]``), from Python or from C, at the file-descriptor level, goes to a log file
  under :func:`log_dir`; the summary names it (:attr:`Console.log_path`), and an empty one is
  deleted, as is any log of an interrupted command. ``--verbose`` shows the chatter on stderr
  instead (never on stdout, which stays the results').
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import io
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from rich.console import Console as RichConsole
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

LOG_DIR_ENV = "MOBILELAT_LOG_DIR"  # where chatter logs go; default ~/.cache/mobilelat/logs
# the project's own loggers: their notes ("'tf_efficientnetv2_b0' is efficientnetv2_b0 here") are ours to show,
# not chatter, so a capture sends them to the console's stderr
OWN_LOGGERS = ("mobilelat", "models", "reparam", "export", "profiling")
KEPT_LOGS = 50  # older logs are pruned when a new one is made
PIPE_WIDTH = 100_000  # columns of a table written to a pipe or file: never cut, never wrapped


def add_output_flags(parser: argparse.ArgumentParser, *, json_flag: bool = True, quiet_flag: bool = True,
                     verbose_flag: bool = True) -> None:
    """``--quiet``, ``--verbose`` and ``--json``, as every command that works takes them (each can be left out)."""
    group = parser.add_argument_group("output")
    if quiet_flag:
        group.add_argument("--quiet", action="store_true",
                           help="no progress; only the result (an artifact's path, a run id)")
    if verbose_flag:
        group.add_argument("--verbose", action="store_true",
                           help="show the converters' and runtimes' own output on stderr instead of logging it")
    if json_flag:
        group.add_argument("--json", action="store_true",
                           help="print one JSON document on stdout (paths, figures, ids) and nothing else there")


def log_dir() -> Path:
    """``$MOBILELAT_LOG_DIR``, else ``$XDG_CACHE_HOME/mobilelat/logs`` (``~/.cache/mobilelat/logs``)."""
    if os.environ.get(LOG_DIR_ENV):
        return Path(os.environ[LOG_DIR_ENV])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "mobilelat" / "logs"


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _rich(stream: IO[str], quiet: bool = False) -> RichConsole:
    terminal = _is_terminal(stream)
    return RichConsole(file=stream, quiet=quiet, width=None if terminal else PIPE_WIDTH,
                       soft_wrap=not terminal, highlight=False)


def _flush_c_stdio() -> None:
    """Flush C's stdio buffers (a C++ library's ``printf``) before file descriptors move."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(None).fflush(None)


class Console:
    """Progress on stderr, results on stdout, chatter in a log; one per command run."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False, json_mode: bool = False,
                 command: str = "mobilelat"):
        self.quiet = quiet  # no progress, notes or stage lines
        self.verbose = verbose  # third-party chatter shown on stderr, not logged
        self.json_mode = json_mode  # stdout holds one JSON document only
        self.command = command  # names the log file
        self._log_kept: Path | None = None  # the chatter log a finished capture kept
        self._log_open: Path | None = None  # the log of the capture running now
        self.out = _rich(sys.stdout)
        self.err = _rich(sys.stderr, quiet=quiet)
        self.terminal = _is_terminal(sys.stderr) and not quiet  # spinners and bars, not lines

    @classmethod
    def from_args(cls, args: argparse.Namespace, command: str) -> "Console":
        return cls(quiet=getattr(args, "quiet", False), verbose=getattr(args, "verbose", False),
                   json_mode=getattr(args, "json", False), command=command)

    # -- results (stdout) -----------------------------------------------------------------------

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """A result on stdout (a table, a line); nothing under ``--json``."""
        if not self.json_mode:
            self.out.print(*objects, **kwargs)

    def emit_json(self, document: object) -> None:
        """The command's one JSON document, on stdout."""
        stream = self.out.file
        stream.write(json.dumps(document, indent=1, default=_json_default) + "\n")
        stream.flush()

    # -- progress (stderr) ----------------------------------------------------------------------

    def note(self, text: str) -> None:
        """A line on stderr (rich markup allowed); nothing with ``--quiet``."""
        self.err.print(text)

    @contextlib.contextmanager
    def stage(self, text: str) -> Iterator[None]:
        """A named stage: a spinner (terminal) or a start line (pipe) while it runs, then ``text (1.2 s)``.

        ``text`` is plain text (``[onnx]`` is shown as written, not read as markup).
        """
        text = escape(text)
        started = time.perf_counter()
        if self.terminal:
            with self.err.status(text, spinner="dots"):
                yield
        else:
            self.err.print(f"{text} ...")
            yield
        self.err.print(f"[green]✓[/green] {text} [dim]({time.perf_counter() - started:.1f} s)[/dim]")

    @contextlib.contextmanager
    def progress(self, total: int) -> Iterator["JobProgress"]:
        """Progress over ``total`` jobs: a bar with the current job, counts, elapsed time and ETA
        (terminal), or one ``[i/N] job`` line per job (pipe)."""
        if not self.terminal:
            yield JobProgress(self, None, None, total)
            return
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=self.err, transient=True) as bar:
            task = bar.add_task("starting", total=total)
            yield JobProgress(self, bar, task, total)

    # -- third-party chatter ----------------------------------------------------------------------

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """Send what other libraries print (Python and C, stdout and stderr) to a log while the block runs.

        With ``--verbose`` it goes to stderr instead. Our own ``out`` and ``err`` keep writing to the
        real stdout and stderr. The log is kept only when something was written to it, and not when
        the block was interrupted; a kept log is :attr:`log_path`, and named on stderr if the block failed.
        """
        if self.verbose:
            with _descriptors_to(None, self), _own_logs_to(self):
                yield
            return
        folder = log_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            folder = Path(os.environ.get("TMPDIR", "/tmp")) / "mobilelat-logs"
            folder.mkdir(parents=True, exist_ok=True)
        _prune(folder)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = folder / f"{self.command}-{stamp}-{os.getpid()}.log"
        self._log_open = path
        try:
            with _descriptors_to(path, self), _own_logs_to(self):
                yield
        except KeyboardInterrupt:
            path.unlink(missing_ok=True)  # an interrupted command leaves nothing behind
            raise
        except BaseException:
            self._log_kept = _kept(path)
            if self._log_kept is not None:
                self.err.print(f"[dim]other libraries' output: {escape(str(self._log_kept))}[/dim]")
            raise
        else:
            self._log_kept = _kept(path)
        finally:
            self._log_open = None

    @property
    def log_path(self) -> Path | None:
        """The chatter log if it holds anything: the one being written now, or the one a capture kept."""
        if self._log_open is not None:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            _flush_c_stdio()
            return self._log_open if self._log_open.exists() and self._log_open.stat().st_size else None
        return self._log_kept

    def log_line(self) -> str | None:
        """``other libraries' output: PATH`` for a summary, or None when nothing was logged."""
        path = self.log_path
        return f"other libraries' output: {path}" if path else None


class JobProgress:
    """The handle :meth:`Console.progress` yields: say which job runs, and when one is done."""

    def __init__(self, console: Console, bar: Progress | None, task: Any, total: int):
        self._console, self._bar, self._task, self._total = console, bar, task, total
        self._done = 0

    def update(self, description: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=escape(description))
        else:
            self._console.err.print(f"[{self._done + 1}/{self._total}] {escape(description)}")

    def advance(self) -> None:
        self._done += 1
        if self._bar is not None:
            self._bar.advance(self._task)

    def print(self, text: str) -> None:
        """A line above the bar (a failed job, a warning)."""
        (self._bar.console if self._bar is not None else self._console.err).print(text)


@contextlib.contextmanager
def _descriptors_to(path: Path | None, console: Console) -> Iterator[None]:
    """Point file descriptors 1 and 2, and ``sys.stdout``/``sys.stderr``, at ``path`` (None: 1 at stderr)
    for the block, after giving ``console``'s own streams duplicates of the real ones."""
    for stream in (sys.stdout, sys.stderr, console.out.file, console.err.file):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.flush()
    _flush_c_stdio()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    originals = {"out": console.out.file, "err": console.err.file}
    duplicates = []
    for name, rich_console in (("out", console.out), ("err", console.err)):
        stream = originals[name]
        try:
            fd = stream.fileno()
        except (AttributeError, ValueError, io.UnsupportedOperation):
            continue  # not a descriptor (a test's capture buffer): moving 1 and 2 does not touch it
        if fd in saved:
            duplicate = os.fdopen(os.dup(saved[fd]), "w", buffering=1, encoding=getattr(stream, "encoding", None),
                                  errors="replace")
            duplicates.append(duplicate)
            rich_console.file = duplicate
    log = open(path, "w", buffering=1, encoding="utf-8", errors="replace") if path else None
    previous_streams = sys.stdout, sys.stderr
    try:
        if log is not None:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            sys.stdout = sys.stderr = log
        else:  # --verbose: chatter on stderr, stdout kept for results
            os.dup2(saved[2], 1)
            sys.stdout = previous_streams[1]
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(ValueError, OSError):
                stream.flush()
        _flush_c_stdio()
        sys.stdout, sys.stderr = previous_streams
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        if log is not None:
            log.close()
        console.out.file, console.err.file = originals["out"], originals["err"]
        for duplicate in duplicates:
            with contextlib.suppress(OSError, ValueError):
                duplicate.close()


class _NoteHandler(logging.Handler):
    """Our own log records, as plain lines on the console's stderr (nothing with ``--quiet``)."""

    def __init__(self, console: Console):
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.err.print(escape(record.getMessage()))


@contextlib.contextmanager
def _own_logs_to(console: Console) -> Iterator[None]:
    """For the block, the project's loggers write to ``console`` (not to stderr, which is the log now)."""
    handler = _NoteHandler(console)
    loggers = [logging.getLogger(name) for name in OWN_LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def _kept(path: Path) -> Path | None:
    """``path`` if the log holds anything; an empty one is deleted."""
    try:
        if path.stat().st_size > 0:
            return path
        path.unlink()
    except OSError:
        pass
    return None


def _prune(folder: Path) -> None:
    """Keep the newest ``KEPT_LOGS - 1`` logs, so the one about to be made brings it to ``KEPT_LOGS``."""
    with contextlib.suppress(OSError):
        logs = sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime)
        for old in logs[:max(0, len(logs) - KEPT_LOGS + 1)]:
            old.unlink(missing_ok=True)


def _json_default(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
