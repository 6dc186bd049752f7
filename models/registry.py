"""The explicit, lazy model registry: family files, and the names they register, to specs and builders.

``_FAMILIES`` lists the family files in the order ``python -m models list`` shows them. Each
family file declares its models once, in ``VARIANTS`` (name to ``Variant``: constructor arguments
and spec fields), and defines ``build(name, **overrides)``. ``import models`` imports no family
file; the first name looked up imports all of them once and indexes their names (see
``_index``), so a name is written in one place only and unknown names can list the closest ones.
"""
from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

import reparam
from mobilelat.errors import UsageError
from models.spec import ModelSpec, Variant
from models.weights import load_checkpoint

# family files under models/, in the order users see their models
_FAMILIES: tuple[str, ...] = ("repvit", "edgenext", "edgevit", "efficientmod", "mobilevit", "mobilenet",
                              "convnext", "efficientnet", "swin", "vit")


class UnknownModelError(UsageError, KeyError):
    """A model name that is not in the registry; the message lists the closest valid names."""

    def __str__(self) -> str:  # KeyError quotes its argument; show the message as written
        return str(self.args[0])


@dataclass(frozen=True)
class _Entry:
    """What the registry knows about one registered name."""

    family: str  # family file under models/
    spec: ModelSpec  # the name's I/O contract and reference figures


def build_index(tables: Iterable[tuple[str, Mapping[str, Variant]]]) -> dict[str, _Entry]:
    """Name -> entry from ``(family, VARIANTS)`` pairs, in table order; a name registered twice is an error."""
    index: dict[str, _Entry] = {}
    for family, variants in tables:
        for name, variant in variants.items():
            if name in index:
                raise ValueError(f"model name {name!r} is registered twice: by models/{index[name].family}.py "
                                 f"and by models/{family}.py; rename one of them")
            index[name] = _Entry(family, variant.to_spec(name, family))
    return index


def _family_module(family: str) -> ModuleType:
    # The registry's one dynamic import: a family file by name, imported on first lookup only.
    return importlib.import_module(f"models.{family}")


@functools.cache
def _index() -> dict[str, _Entry]:
    """Every registered name, built once on the first lookup (importing each family file once)."""
    return build_index((family, _family_module(family).VARIANTS) for family in _FAMILIES)


def closest_names(name: str, families: Mapping[str, str], count: int = 5, cutoff: float = 0.45) -> list[str]:
    """The registered names most like ``name``, best first, from ``families`` (name -> family).

    A name is scored on its spelling and, as much, on its family: the first word of ``name``
    against the candidate's family, so ``swin_tiny_patch4_window7_224`` suggests ``swin_tiny``
    before ``vit_tiny_patch16``, which shares more letters but not the family; a name that begins
    the other (``convnext_t``, ``convnext_tiny``) counts extra.
    """
    query = name.lower()
    head = query.split("_", 1)[0]

    def score(candidate: str) -> float:
        spelling = difflib.SequenceMatcher(None, query, candidate).ratio()
        family = difflib.SequenceMatcher(None, head, families[candidate]).ratio()
        prefix = 0.2 if candidate.startswith(query) or query.startswith(candidate) else 0.0
        return 0.6 * spelling + 0.4 * family + prefix

    scored = sorted(((score(c), c) for c in families), key=lambda pair: -pair[0])
    return [candidate for value, candidate in scored[:count] if value >= cutoff]


def _entry(name: str) -> _Entry:
    index = _index()
    if name not in index:
        close = closest_names(name, {n: entry.family for n, entry in index.items()})
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"unknown model {name!r}.{hint} `python -m models list` shows all "
                                f"{len(index)} registered names.")
    return index[name]


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern, in registry order."""
    return [name for name in _index() if fnmatch.fnmatchcase(name, pattern)]


def list_families() -> list[str]:
    return list(_FAMILIES)


def model_spec(name: str) -> ModelSpec:
    """The I/O contract and reference figures of a registered model."""
    return _entry(name).spec


def create_model(name: str, weights: str | Path | None = None, deploy: bool = False, **overrides: Any) -> nn.Module:
    """Build a registered model, optionally in deploy form, optionally loading a local checkpoint.

    ``deploy=True`` builds the training form and reparameterizes it (see ``reparam``), so that a
    checkpoint saved from a deploy model (``python -m reparam NAME --out PATH``) loads directly.
    ``weights`` is a local path; nothing is downloaded. The model is returned in eval mode when
    weights are loaded, and in the constructor's default (training) mode otherwise.
    """
    model = _family_module(_entry(name).family).build(name, **overrides)
    if deploy:
        # the statistics come with the checkpoint loaded below, so fresh ones are expected here
        model = reparam.reparameterize(model, warn_untrained=False)
    if weights is not None:
        load_checkpoint(model, weights)
        model.eval()
    return model
