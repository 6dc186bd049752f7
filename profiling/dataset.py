"""Labelled images for ``profiling accuracy``: an ImageFolder tree or a ``path,label`` list, decoded in parallel.

Two layouts are read:

- a folder of class folders, each named by an ImageNet synset id (``n01440764``) or a class index
  (``0`` .. ``999``); every non-hidden file below a class folder is one image of that class;
- a CSV or TXT list, one ``path,label`` per line (a comma, a tab or spaces between them; a first
  line ``path,label`` is a header), paths relative to the list's folder, labels as above.

Every listed file counts: one Pillow cannot decode (not an image, truncated, unreadable) is
*skipped and counted* (``Batch.skipped``), and the metrics keep it in their denominator as a miss.
Labels outside the model's classes are refused before anything runs, naming them. ``--limit N``
keeps N images spread evenly over the sorted list, so a small run still sees every class.

Decoding runs on a thread pool (Pillow releases the GIL while it decodes and resizes), one batch
ahead of the model (:func:`iter_batches`).
"""
from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.imagenet import SYNSET_PATTERN, synset_index
from profiling.errors import UsageError

LIST_SUFFIXES = (".csv", ".txt", ".tsv")


class DatasetError(UsageError):
    """A --data path that cannot be evaluated: missing, empty, unknown labels, a malformed list."""


@dataclass(frozen=True)
class Dataset:
    """The labelled images of one ``--data`` path, sorted by path."""

    root: Path  # the folder or list file given
    items: tuple[tuple[Path, int], ...]  # (image path, class index)
    layout: str  # "folder" or "list"

    def __len__(self) -> int:
        return len(self.items)

    def limited(self, limit: int | None) -> "Dataset":
        """At most ``limit`` images, spread evenly over the sorted list (deterministic)."""
        if limit is None or limit >= len(self.items):
            return self
        if limit < 1:
            raise DatasetError(f"--limit must be >= 1, got {limit}")
        count = len(self.items)
        chosen = tuple(self.items[i * count // limit] for i in range(limit))
        return Dataset(self.root, chosen, self.layout)

    def fingerprint(self) -> str:
        """sha256 of the (path relative to the root, label) list: which images, not their bytes."""
        base = self.root if self.root.is_dir() else self.root.parent
        digest = hashlib.sha256()
        for path, label in self.items:
            try:
                shown = path.relative_to(base)
            except ValueError:
                shown = path
            digest.update(f"{shown.as_posix()}\t{label}\n".encode())
        return digest.hexdigest()

    def classes(self) -> list[int]:
        return sorted({label for _, label in self.items})


def parse_label(text: str, where: str) -> int:
    """A synset id or a class index -> class index; anything else is a DatasetError naming ``where``."""
    text = text.strip()
    if SYNSET_PATTERN.match(text):
        index = synset_index().get(text)
        if index is None:
            raise DatasetError(f"{where}: {text} is not one of the 1000 ImageNet-1k synsets")
        return index
    if text.isdigit():
        return int(text)
    raise DatasetError(f"{where}: label {text!r} is neither a synset id (n01440764) nor a class index")


def _folder(root: Path) -> list[tuple[Path, int]]:
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = [p.name for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
    if not class_dirs:
        extra = f" (it holds {len(loose)} loose file(s): images go in class folders)" if loose else ""
        raise DatasetError(f"--data {root} has no class folders{extra}; expected {root}/n01440764/*.JPEG "
                           f"or {root}/0/*.png, or a path,label list file")
    bad, unknown = [], []
    items = []
    for folder in class_dirs:
        try:
            label = parse_label(folder.name, str(folder))
        except DatasetError:
            (unknown if SYNSET_PATTERN.match(folder.name) else bad).append(folder.name)
            continue
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            items += [(Path(dirpath) / name, label) for name in sorted(filenames) if not name.startswith(".")]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise DatasetError(f"--data {root}: synset(s) {shown} are not one of the 1000 ImageNet-1k classes")
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise DatasetError(f"--data {root}: folder name(s) {shown} are neither ImageNet synset ids nor class indices")
    return items


def _list(path: Path) -> list[tuple[Path, int]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"--data {path}: cannot read the list ({error})") from None
    items = []
    first = True  # the first non-empty line may be a header
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "," in line or "\t" in line:
            fields = next(csv.reader([line], delimiter="\t" if "\t" in line and "," not in line else ","))
        else:
            fields = line.rsplit(None, 1)
        if len(fields) != 2:
            raise DatasetError(f"{path}:{number}: expected 'path,label', got {line.strip()!r}")
        name, label = (f.strip() for f in fields)
        if first and label.lower() == "label":
            first = False
            continue  # a header
        first = False
        image = Path(name)
        items.append((image if image.is_absolute() else path.parent / image, parse_label(label, f"{path}:{number}")))
    return items


def load_dataset(path: str | Path | None, num_classes: int = 1000) -> Dataset:
    """The labelled images at ``path`` (folder or list), every label checked against ``num_classes``."""
    if path is None:
        raise DatasetError("--data is required: a folder of class folders or a path,label list")
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"--data {root} does not exist")
    if root.is_dir():
        items, layout = _folder(root), "folder"
    elif root.suffix.lower() in LIST_SUFFIXES:
        items, layout = _list(root), "list"
    else:
        raise DatasetError(f"--data {root} is a file but not a .csv/.txt/.tsv path,label list")
    if not items:
        raise DatasetError(f"--data {root} holds no images")
    outside = sorted({label for _, label in items if label >= num_classes})
    if outside:
        shown = ", ".join(map(str, outside[:8])) + (f" and {len(outside) - 8} more" if len(outside) > 8 else "")
        raise DatasetError(f"--data {root}: label(s) {shown} are outside the model's {num_classes} classes")
    return Dataset(root, tuple(sorted(items)), layout)


@dataclass
class Batch:
    """One batch of decoded images: their tensors and labels, and the files that could not be read."""

    inputs: np.ndarray  # (n, 3, H, W) float32, the decoded images in order
    labels: np.ndarray  # (n,) int64
    paths: list[Path]  # of the decoded images
    skipped: list[tuple[Path, int, str]] = field(default_factory=list)  # (path, label, why) not decodable


def decode_batch(items: list[tuple[Path, int]], transform: Callable[[Path], np.ndarray],
                 pool: ThreadPoolExecutor, shape: tuple[int, int, int]) -> Batch:
    """Decode ``items`` on ``pool``; a file Pillow cannot read becomes a skip with its reason."""
    def one(item: tuple[Path, int]) -> np.ndarray | str:
        try:
            return transform(item[0])
        except (OSError, ValueError, SyntaxError) as error:  # Pillow: UnidentifiedImageError, truncated, EXIF
            return f"{type(error).__name__}: {error}".splitlines()[0][:200]
    results = list(pool.map(one, items))
    good = [(item, array) for item, array in zip(items, results) if not isinstance(array, str)]
    skipped = [(item[0], item[1], why) for item, why in zip(items, results) if isinstance(why, str)]
    inputs = np.stack([a for _, a in good]) if good else np.zeros((0, *shape), np.float32)
    return Batch(inputs, np.asarray([i[1] for i, _ in good], dtype=np.int64), [i[0] for i, _ in good], skipped)


def iter_batches(dataset: Dataset, transform: Callable[[Path], np.ndarray], shape: tuple[int, int, int],
                 batch_size: int = 64, workers: int | None = None) -> Iterator[Batch]:
    """The dataset in decoded batches, the next one decoding on the pool while the caller uses this one."""
    workers = workers or min(32, (os.cpu_count() or 1) + 1)
    chunks = [list(dataset.items[i:i + batch_size]) for i in range(0, len(dataset.items), batch_size)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as ahead:
        pending: Future | None = None
        for index, chunk in enumerate(chunks):
            current = pending.result() if pending is not None else decode_batch(chunk, transform, pool, shape)
            pending = (ahead.submit(decode_batch, chunks[index + 1], transform, pool, shape)
                       if index + 1 < len(chunks) else None)
            yield current
