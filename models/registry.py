"""The explicit, lazy model registry: names to family files, specs and builders.

The table below is the only place a model name is declared. Looking a name up imports only its
family's file, so ``import models`` stays cheap. A family file defines ``VARIANTS`` (name to
constructor arguments), ``SPECS`` (name to ``ModelSpec``) and ``build(name, **overrides)``.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
from pathlib import Path
from types import ModuleType

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


class UnknownModelError(KeyError):
    """A model name that is not in the registry; the message lists the closest valid names."""

    def __str__(self) -> str:  # KeyError quotes its argument; show the message as written
        return str(self.args[0])


def _family_module(name: str) -> ModuleType:
    if name not in _MODEL_TABLE:
        close = difflib.get_close_matches(name, _MODEL_TABLE, n=5, cutoff=0.5)
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
    """The I/O contract and reference figures of a registered model."""
    return _family_module(name).SPECS[name]


def create_model(name: str, weights: str | Path | None = None, deploy: bool = False, **overrides) -> nn.Module:
    """Build a registered model, optionally in deploy form, optionally loading a local checkpoint.

    ``deploy=True`` builds the training form and reparameterizes it (see ``reparam``), so that a
    checkpoint saved from a deploy model (``python -m reparam NAME --out PATH``) loads directly.
    ``weights`` is a local path; nothing is downloaded. The model is returned in eval mode when
    weights are loaded, and in the constructor's default (training) mode otherwise.
    """
    module = _family_module(name)
    model = module.build(name, **overrides)
    if deploy:
        import reparam  # imported here: reparam depends on models, not the other way round

        # the statistics come with the checkpoint loaded below, so fresh ones are expected here
        model = reparam.reparameterize(model, warn_untrained=False)
    if weights is not None:
        from models.weights import load_checkpoint

        load_checkpoint(model, weights)
        model.eval()
    return model
