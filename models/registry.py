"""The explicit, lazy model registry: family files, and the names they register, to specs and builders.

``_FAMILIES`` lists the family files in the order ``python -m models list`` shows them. Each
family file declares its models once, in ``VARIANTS`` (name to ``Variant``: constructor arguments
and spec fields), and defines ``build(name, **overrides)``. ``import models`` imports no family
file; the first name looked up imports all of them once and indexes their names (see
``_index``), so a name is written in one place only and unknown names can list the closest ones.

Other sources' names for our models (timm's ``tf_efficientnetv2_b0``, the official
``efficientMod_xxs``) are written once too, in the family's ``CHECKPOINT_LAYOUTS`` (where its
checkpoints come from, under which name); where they differ from ours they are aliases
(``_aliases``): accepted with a one-line note, listed by ``python -m models info``.
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import importlib
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

import reparam
from mobilelat.errors import UsageError
from models.spec import ModelSpec, Variant
from models.weights import (Candidates, CheckpointLayout, LoadedCheckpoint, as_dtype, build_with_weights,
                            floating_dtype, read_checkpoint, save_our_layout)

# family files under models/, in the order users see their models
_FAMILIES: tuple[str, ...] = ("repvit", "edgenext", "edgevit", "efficientmod", "mobilevit", "mobilenet",
                              "convnext", "efficientnet", "swin", "vit")

_log = logging.getLogger("models.registry")


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


def build_aliases(index: Mapping[str, _Entry],
                  layouts: Iterable[tuple[str, Iterable[CheckpointLayout]]]) -> dict[str, str]:
    """Other sources' names -> ours, from ``(family, CHECKPOINT_LAYOUTS)`` pairs: every source name that
    differs from ours. A source name that is one of our names, or that stands for two models, is an error."""
    aliases: dict[str, str] = {}
    for family, family_layouts in layouts:
        for layout in family_layouts:
            for ours, theirs in layout.names.items():
                if index.get(ours) is None or index[ours].family != family:
                    raise ValueError(f"models/{family}.py: checkpoint layout {layout.name!r} names {ours!r}, "
                                     f"which that file does not register")
                if theirs == ours:
                    continue
                if theirs in index:
                    raise ValueError(f"models/{family}.py: {layout.name} name {theirs!r} for {ours} is another "
                                     f"registered model's name")
                if aliases.setdefault(theirs, ours) != ours:
                    raise ValueError(f"source name {theirs!r} stands for both {aliases[theirs]} and {ours}")
    return aliases


def _family_module(family: str) -> ModuleType:
    # The registry's one dynamic import: a family file by name, imported on first lookup only.
    return importlib.import_module(f"models.{family}")


@functools.cache
def _index() -> dict[str, _Entry]:
    """Every registered name, built once on the first lookup (importing each family file once)."""
    return build_index((family, _family_module(family).VARIANTS) for family in _FAMILIES)


@functools.cache
def _aliases() -> dict[str, str]:
    """Every other source's name for one of our models, from the families' checkpoint layouts."""
    return build_aliases(_index(), ((family, getattr(_family_module(family), "CHECKPOINT_LAYOUTS", ()))
                                    for family in _FAMILIES))


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
        families = {n: entry.family for n, entry in index.items()}
        families.update({alias: index[target].family for alias, target in _aliases().items() if target in index})
        close = closest_names(name, families)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"unknown model {name!r}.{hint} `python -m models list` shows all "
                                f"{len(index)} registered names.")
    return index[name]


def resolve_name(name: str, note: bool = True) -> str:
    """Our registered name for ``name``: itself, or the model another source's name stands for.

    Accepts timm's names where they differ from ours (``vit_tiny_patch16_224``), a hub id
    (``timm/repvit_m1.dist_in1k``) and a pretrained tag (``repvit_m1.dist_in1k``); says so in one line.
    An unknown name is returned as it is (the lookup that follows lists the closest names).
    """
    index = _index()
    if name in index:
        return name
    base = name.split("/", 1)[1] if name.startswith("timm/") else name
    base = base.split(".", 1)[0]
    resolved = base if base in index else _aliases().get(base)
    if resolved is None:
        return name
    if note:
        _log.warning("note: %r is %s here", name, resolved)
    return resolved


def aliases_of(name: str) -> list[str]:
    """Other sources' names that stand for registered ``name``."""
    return [alias for alias, target in _aliases().items() if target == name]


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern, in registry order."""
    return [name for name in _index() if fnmatch.fnmatchcase(name, pattern)]


def list_families() -> list[str]:
    return list(_FAMILIES)


def family_names(family: str) -> list[str]:
    """The registered names of one family, in registry order."""
    return [name for name, entry in _index().items() if entry.family == family]


def family_module(name: str) -> ModuleType:
    """The family file of registered model ``name``."""
    return _family_module(_entry(name).family)


def model_spec(name: str) -> ModelSpec:
    """The I/O contract and reference figures of a registered model (another source's name works too)."""
    return _entry(resolve_name(name, note=False)).spec


def _candidates() -> Candidates:
    """Every family file with its names, in registry order: what a checkpoint of another model is matched to."""
    return [(_family_module(family), family_names(family)) for family in _FAMILIES]


def load_model(name: str, weights: str | os.PathLike, deploy: bool = False, dtype: torch.dtype | str | None = None,
               **overrides: Any) -> LoadedCheckpoint:
    """``create_model`` with weights, and what the loading found (the layout recognised, notes)."""
    name = resolve_name(name)
    loaded = build_with_weights(name, family_module(name), weights, _candidates(), deploy=deploy, dtype=dtype,
                                **overrides)
    if loaded.hub_model is not None and resolve_name(loaded.hub_model, note=False) != name:
        # same keys, maybe other numerics (timm's tf_* variants pad like TensorFlow): say what the folder holds
        text = (f"{loaded.path.parent} holds timm's {loaded.hub_model!r}, loaded into {name}; "
                f"check they are the same model")
        _log.warning("note: %s", text)
        loaded = dataclasses.replace(loaded, notes=(text, *loaded.notes))
    return loaded


def create_model(name: str, weights: str | os.PathLike | None = None, deploy: bool = False,
                 dtype: torch.dtype | str | None = None, **overrides: Any) -> nn.Module:
    """Build a registered model, optionally in deploy form, optionally loading a local checkpoint.

    ``weights`` is a local file (.pth/.pt/.bin/.safetensors) or Hugging Face hub snapshot folder in
    our layout, timm's or the official repository's (see ``models.weights``); nothing is downloaded.
    The checkpoint's class count and distillation head are used unless given in ``overrides``.
    ``deploy=True`` returns the reparameterized form (see ``reparam``), from a training-form
    checkpoint or one saved by ``python -m reparam NAME --out PATH``. ``dtype`` (e.g. torch.float64)
    converts the model before loading, so weights are not rounded through float32. The model is
    returned in eval mode when weights are loaded, and in the constructor's default (training) mode
    otherwise. ``name`` may be timm's name for the model (noted in one line).
    """
    if weights is not None:
        return load_model(name, weights, deploy=deploy, dtype=dtype, **overrides).model
    name = resolve_name(name)
    model = family_module(name).build(name, **overrides)
    if dtype is not None:
        model = model.to(as_dtype(dtype))
    if deploy:
        # a model built without weights has fresh statistics; that is expected here
        model = reparam.reparameterize(model, warn_untrained=False)
    return model


def convert_weights(name: str, source: str | os.PathLike, out: str | os.PathLike) -> LoadedCheckpoint:
    """Convert a checkpoint of model ``name`` to our layout and write it as safetensors at ``out``.

    The result is the state dict of the model the checkpoint builds (training form), in the
    checkpoint's own dtype, so ``create_model(name, weights=out)`` loads it back exactly.
    """
    name = resolve_name(name)
    loaded = load_model(name, source, dtype=floating_dtype(read_checkpoint(source).state_dict))
    save_our_layout(loaded, name, Path(out))
    return loaded
