"""``run_cli(main, argv)``: the one wrapper every ``python -m ...`` entry point runs its command in.

It gives every command the same edges:

- a :class:`~mobilelat.errors.UsageError` (argparse's own errors included, through
  :class:`ArgumentParser`) is one line ``error: ...`` on stderr and exit status 2;
- Ctrl-C (SIGINT) stops the command: the ``finally`` blocks on the way out remove temporaries and
  empty output folders, one line ``interrupted`` goes to stderr, and the exit status is 130. The
  handler also records the signal: code that runs a library known to swallow ``KeyboardInterrupt``
  (litert-torch's converter) calls :func:`raise_if_interrupted` after it, and an error a library
  raised in its place (torch.export wraps it) still ends as an interruption;
- a reader that closes stdout early (``... | head``) ends the command quietly with status 141;
- with ``--json`` in ``argv``, an error is also one JSON document on stdout
  (``{"error": ..., "exit_status": ...}``), so a script reading stdout always gets JSON.

Any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn

from mobilelat.errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_USAGE, UsageError

_interrupted = threading.Event()  # set by the SIGINT handler: the record of a signal, read by raise_if_interrupted


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its errors raised as ``UsageError`` (one line, exit 2, JSON under ``--json``),
    and defaults shown in ``--help`` (:class:`HelpFormatter`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (`{self.prog} --help` lists the options)")


class HelpFormatter(argparse.HelpFormatter):
    """Shows ``(default: X)`` after an option's help when it has a default worth showing and says none itself."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default in (None, False, argparse.SUPPRESS) or not action.option_strings
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
            return text
        return text + " (default: %(default)s)"


def _on_sigint(signum: int, frame: object) -> None:
    _interrupted.set()
    raise KeyboardInterrupt


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C came while a library that swallows it was running."""
    if _interrupted.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def _sigint_recorded() -> Iterator[None]:
    """Install the recording SIGINT handler for the block (main thread only); afterwards the previous
    handler is back and the record is cleared, so the next command starts clean."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    _interrupted.clear()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _interrupted.clear()


def _print_error(text: str, json_mode: bool, status: int) -> None:
    first, _, rest = str(text).partition("\n")
    sys.stderr.write(f"error: {first}\n" + (rest + "\n" if rest else ""))
    sys.stderr.flush()
    if json_mode:
        sys.stdout.write(json.dumps({"error": str(text), "exit_status": status}) + "\n")
        sys.stdout.flush()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not raise on the closed pipe again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def run_cli(main: Callable[[list[str]], int], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)`` with the shared edges above; returns its exit status (or the one they map to).

    ``main`` parses ``argv`` (with :class:`ArgumentParser`) and returns an exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    json_mode = "--json" in argv
    with _sigint_recorded():  # the record is read below, before the block ends and clears it
        try:
            status = main(argv)
            sys.stdout.flush()  # inside: a closed pipe shows here, not in the interpreter's exit
            return status
        except UsageError as error:
            _print_error(str(error), json_mode, EXIT_USAGE)
            return EXIT_USAGE
        except KeyboardInterrupt:
            return _interrupted_exit()
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        except BaseException:
            if _interrupted.is_set():  # a library turned the KeyboardInterrupt into its own error: still Ctrl-C
                return _interrupted_exit()
            raise


def _interrupted_exit() -> int:
    sys.stderr.write("interrupted\n")
    sys.stderr.flush()
    return EXIT_INTERRUPTED
