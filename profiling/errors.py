"""The error type that means "the caller asked for something profiling refuses".

It derives from the one base of every package (``mobilelat.errors.UsageError``), and from
``ValueError`` as it always has.

:class:`UsageError` covers the project's own checks of what it is given: measurement settings,
runner and tool options, a regression threshold, an empty selection for a report, an import file
that breaks the schema. The message says what was wrong and what to do. ``python -m profiling``
prints a ``UsageError`` (and the store's and the registry's own errors) as one line with exit
status 2; every other exception, a ``ValueError`` from inside a runtime or a plot included, is a
bug and keeps its traceback.
"""
from __future__ import annotations

from mobilelat import errors


class UsageError(errors.UsageError, ValueError):
    """Invalid input from the caller (settings, options, a selection, a file); the message says what to do."""
