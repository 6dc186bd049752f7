"""Output paths checked before any work, and output folders that vanish again when nothing lands in them.

A command that writes checks its output path first (:func:`check_output_dir`,
:func:`check_output_file`): a file where a folder is needed, or a folder nothing can be written in,
is an ``OutputPathError`` (exit 2) before seconds of conversion, not after. :func:`output_dir`
creates the folders a write needs and, when the write fails or is interrupted, removes the ones it
created that are still empty, so Ctrl-C leaves no empty ``artifacts/<model>/`` behind.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mobilelat.errors import OutputPathError


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (a file ancestor included)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_dir(path: str | Path, flag: str = "--out") -> None:
    """Raise ``OutputPathError`` unless ``path`` is, or can be created as, a folder we can write in."""
    path = Path(path)
    existing = _nearest_existing(path)
    if not existing.is_dir():
        where = "is a file" if existing == Path(os.path.abspath(path)) else f"lies under the file {existing}"
        raise OutputPathError(f"{flag} {path} {where}; give a folder (it is created if missing)")
    try:  # a real write: root ignores permission bits, a read-only mount does not
        handle, probe = tempfile.mkstemp(prefix=".mobilelat-write-check-", dir=existing)
    except OSError as error:
        raise OutputPathError(f"{flag} {path}: cannot write in {existing} ({error.strerror or error}); "
                              f"choose a writable folder") from None
    os.close(handle)
    os.unlink(probe)


def check_output_file(path: str | Path, flag: str = "--out") -> None:
    """Raise ``OutputPathError`` unless ``path`` can be written as a file (its folder checked as above)."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{flag} {path} is a folder; give a file path, e.g. {path / 'out'}")
    check_output_dir(path.parent, flag=f"{flag} {path}: its folder")


def make_dirs(path: str | Path) -> list[Path]:
    """``mkdir -p path``; returns the folders it created, outermost first."""
    path = Path(path)
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    created = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:  # made meanwhile by another process: not ours to remove
            continue
        created.append(folder)
    return created


def remove_if_empty(folders: list[Path]) -> None:
    """Remove each of ``folders`` that is empty, innermost first (an outer one empties as inner ones go)."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()  # refuses a folder that holds anything


@contextlib.contextmanager
def output_dir(path: str | Path, flag: str = "--out") -> Iterator[Path]:
    """Check ``path``, create it, and remove what was created if the block fails and left it empty."""
    check_output_dir(path, flag)
    created = make_dirs(path)
    try:
        yield Path(path)
    except BaseException:
        remove_if_empty(created)
        raise
