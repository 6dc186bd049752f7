"""The 1000 ImageNet-1k classes: synset ids and names, shipped as data (``models/imagenet_classes.tsv``).

Class index ``i`` is the ``i``-th synset id in sorted order (the convention every ImageNet-1k
checkpoint follows: torchvision's ImageFolder sorts the ``train/`` folder names). The file holds
one ``synset<TAB>names`` line per class, in that order; the names are WordNet's lemmas as the
ILSVRC ``LOC_synset_mapping.txt`` lists them, the first being the short name shown to users.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

CLASSES_FILE = Path(__file__).with_name("imagenet_classes.tsv")
SYNSET_PATTERN = re.compile(r"^n\d{8}$")


@dataclass(frozen=True)
class ImageNetClass:
    """One ImageNet-1k class."""

    index: int  # the model's output index
    synset: str  # WordNet id, e.g. "n01440764"
    names: str  # every lemma, comma-separated, e.g. "tench, Tinca tinca"

    @property
    def name(self) -> str:
        """The short name: the first lemma ("tench")."""
        return self.names.split(",")[0].strip()


@functools.cache
def classes() -> tuple[ImageNetClass, ...]:
    """The 1000 classes in index order, read once and checked (1000 unique synsets, sorted)."""
    rows = [line.split("\t", 1) for line in CLASSES_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    synsets = [synset for synset, _ in rows]
    if len(rows) != 1000 or len(set(synsets)) != 1000 or synsets != sorted(synsets):
        raise RuntimeError(f"{CLASSES_FILE} must hold 1000 unique synset ids in sorted order")
    return tuple(ImageNetClass(index, synset, names) for index, (synset, names) in enumerate(rows))


@functools.cache
def synset_index() -> dict[str, int]:
    """Synset id -> class index."""
    return {c.synset: c.index for c in classes()}


def class_name(index: int, num_classes: int = 1000) -> str:
    """The short name of output ``index``; a model with another head gets ``class N``."""
    if num_classes == 1000 and 0 <= index < 1000:
        return classes()[index].name
    return f"class {index}"
