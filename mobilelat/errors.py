"""The one error base for "the person running the command can fix this", and the exit statuses.

Every package's usage errors derive from :class:`UsageError` (``export.errors``, ``profiling.errors``,
``models``' unknown names and checkpoints that do not fit), so every command line maps them the
same way: one line on stderr and :data:`EXIT_USAGE`. Anything that is not a ``UsageError`` and
has no status of its own is a bug and keeps its traceback.
"""
from __future__ import annotations

EXIT_OK = 0  # done
EXIT_CHECK_FAILED = 1  # the work ran and its check said no: parity gate, exactness, a regression, a failed job
EXIT_USAGE = 2  # bad usage or input: a name, a flag, a size, a path, a file, a database
EXIT_INCOMPLETE = 3  # the work could not be done: a converter failed, a backend is missing, nothing to compare
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (128 + SIGPIPE), as `yes | head` reports it


class UsageError(Exception):
    """Bad usage or input: the message says what was wrong and what to do."""


class OutputPathError(UsageError):
    """An output path that is a file where a folder is needed (or the reverse), or cannot be written."""


class InputSizeError(UsageError, ValueError):
    """An ``--input-size`` that is not N or HxW, or outside the range every command accepts."""
