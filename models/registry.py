"""The explicit, lazy model registry: names to family files, specs and builders.

The table below is the only place a model name is declared. Looking a name up imports only its
family's file, so ``import models`` stays cheap. A family file defines ``VARIANTS`` (name to
constructor arguments), ``SPECS`` (name to ``ModelSpec``) and ``build(name, **overrides)``.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import logging
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from models.spec import ModelSpec

# family module (under models/) -> the names it registers, in the order users see them
_FAMILIES: dict[str, tuple[str, ...]] = {
    "repvit": ("repvit_m0_6", "repvit_m0_9", "repvit_m1_0", "repvit_m1_1", "repvit_m1_5", "repvit_m2_3",
               "repvit_m1", "repvit_m2", "repvit_m3"),
    "edgenext": ("edgenext_xx_small", "edgenext_x_small", "edgenext_small", "edgenext_base",
                 "edgenext_xx_small_bn_hs", "edgenext_x_small_bn_hs", "edgenext_small_bn_hs"),
    "edgevit": ("edgevit_xxs", "edgevit_xs", "edgevit_s"),
    "efficientmod": ("efficientmod_xxs", "efficientmod_xs", "efficientmod_s", "efficientmod_s_conv"),
    "mobilevit": ("mobilevit_xxs", "mobilevit_xs", "mobilevit_s"),
    "mobilenet": ("mobilenetv2_100", "mobilenetv3_small_100", "mobilenetv3_large_100"),
    "convnext": ("convnext_atto", "convnext_femto", "convnext_pico", "convnext_nano", "convnext_tiny"),
    "efficientnet": ("efficientnet_b0", "efficientnetv2_b0", "efficientnetv2_s"),
    "swin": ("swin_tiny",),
    "vit": ("vit_tiny_patch16",),
}

_MODEL_TABLE: dict[str, str] = {name: family for family, names in _FAMILIES.items() for name in names}

# Names other sources give our models where they differ from ours (timm, the official repositories):
# accepted by create_model with a note. Each family's CHECKPOINT_LAYOUTS lists the same names.
_ALIASES: dict[str, str] = {
    "tf_efficientnetv2_b0": "efficientnetv2_b0",
    "swin_tiny_patch4_window7_224": "swin_tiny",
    "vit_tiny_patch16_224": "vit_tiny_patch16",
    "efficientMod_xxs": "efficientmod_xxs",
    "efficientMod_xs": "efficientmod_xs",
    "efficientMod_s": "efficientmod_s",
    "efficientMod_s_Conv": "efficientmod_s_conv",
}

_log = logging.getLogger("models.registry")


class UnknownModelError(KeyError):
    """A model name that is not in the registry; the message lists the closest valid names."""

    def __str__(self) -> str:  # KeyError quotes its argument; show the message as written
        return str(self.args[0])


def resolve_name(name: str, note: bool = True) -> str:
    """Our registered name for ``name``: itself, or the model another source's name stands for.

    Accepts timm's names where they differ from ours (``vit_tiny_patch16_224``), a hub id
    (``timm/repvit_m1.dist_in1k``) and a pretrained tag (``repvit_m1.dist_in1k``); says so in one line.
    """
    if name in _MODEL_TABLE:
        return name
    base = name.split("/", 1)[1] if name.startswith("timm/") else name
    base = base.split(".", 1)[0]
    resolved = base if base in _MODEL_TABLE else _ALIASES.get(base)
    if resolved is None:
        return name  # unknown: the lookup that follows lists the closest names
    if note:
        _log.warning("note: %r is %s here", name, resolved)
    return resolved


def aliases_of(name: str) -> list[str]:
    """Other sources' names that stand for registered ``name``."""
    return [alias for alias, target in _ALIASES.items() if target == name]


def family_names(family: str) -> tuple[str, ...]:
    """The registered names of one family, in registry order."""
    return _FAMILIES[family]


def family_module(name: str) -> ModuleType:
    """The family file of a registered name (imported on first use)."""
    return _family_module(name)


def _family_module(name: str) -> ModuleType:
    if name not in _MODEL_TABLE:
        close = difflib.get_close_matches(name, list(_MODEL_TABLE) + list(_ALIASES), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"unknown model {name!r}.{hint} `python -m models list` shows all "
                                f"{len(_MODEL_TABLE)} registered names.")
    return importlib.import_module(f"models.{_MODEL_TABLE[name]}")


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern, in registry order."""
    return [name for name in _MODEL_TABLE if fnmatch.fnmatchcase(name, pattern)]


def list_families() -> list[str]:
    return list(_FAMILIES)


def model_spec(name: str) -> ModelSpec:
    """The I/O contract and reference figures of a registered model (another source's name works too)."""
    name = resolve_name(name, note=False)
    return _family_module(name).SPECS[name]


def create_model(name: str, weights: str | Path | None = None, deploy: bool = False,
                 dtype: torch.dtype | str | None = None, **overrides) -> nn.Module:
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
    name = resolve_name(name)
    module = _family_module(name)
    if weights is not None:
        from models.weights import build_with_weights

        return build_with_weights(name, module, weights, deploy=deploy, dtype=dtype, **overrides).model
    model = module.build(name, **overrides)
    if dtype is not None:
        from models.weights import as_dtype

        model = model.to(as_dtype(dtype))
    if deploy:
        import reparam  # imported here: reparam depends on models, not the other way round

        # a model built without weights has fresh statistics; that is expected here
        model = reparam.reparameterize(model, warn_untrained=False)
    return model
