"""Loading the checkpoints users actually have into registered models (the one place that does weight I/O).

A checkpoint is a local file or folder; nothing is downloaded:

* ``.pth`` / ``.pt`` / ``.bin``: ``torch.load(weights_only=True)`` (a pickle that needs code is refused);
* ``.safetensors``: the ``safetensors`` package (what the Hugging Face hub ships);
* a local hub cache folder (``.../models--timm--repvit_m1.dist_in1k`` or one of its ``snapshots/<sha>``),
  read through its ``model.safetensors`` or ``pytorch_model.bin``.

The format is told from the file's first bytes, not its name. The state dict is unwrapped from the
dicts training scripts save (``{"model": ...}``, ``{"state_dict": ...}``, a ``module.`` prefix), then
its *layout* is recognised by key patterns each family declares (``CHECKPOINT_LAYOUTS``: ours, timm,
the official repository) and converted to ours by the family's pure ``convert_checkpoint``. What the
checkpoint implies about the model (its class count, a distillation head) comes from the family's
``checkpoint_options``; a family whose tables depend on the input size (ViT, Swin) adapts them in
``fit_checkpoint``, as timm does, and says so in one line. A training-form checkpoint loads into the
training form (and is reparameterized after when ``deploy=True``); a deploy-form one (saved by
``python -m reparam NAME --out``) into the deploy form.

Errors are one line saying what was wrong and what to do (``CheckpointError`` and its subclasses),
except for a layout nothing recognises, which gets the full missing / unexpected / wrong-shape report.
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
import pickle
import re
import struct
import threading
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

import reparam
from mobilelat.errors import UsageError

_log = logging.getLogger(__name__)

# Keys under which training scripts nest the state dict, tried in this order.
_NESTED_KEYS = ("model", "state_dict", "model_ema", "state_dict_ema", "module")
# File names a Hugging Face hub snapshot holds weights under, in order of preference.
_HUB_FILES = ("model.safetensors", "pytorch_model.bin")
# A URL-like location (two or more scheme letters, so a Windows drive "C:/" is not one).
_NETWORK = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/|^hf-hub:|^hf_hub:")


class CheckpointError(UsageError, RuntimeError):
    """A checkpoint that cannot be used: unreadable, not a checkpoint, of another model, or not fitting."""


class CheckpointFormatError(CheckpointError):
    """A file that cannot be read as a checkpoint (empty, truncated, corrupt, text, a pickle needing code)."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint whose keys or shapes do not match the model it is loaded into."""


class DeployCheckpointError(CheckpointMismatchError):
    """A deploy-form checkpoint (saved by ``python -m reparam``) given where the training form was asked for."""


@dataclass(frozen=True)
class CheckpointLayout:
    """One way a family's checkpoints are written, declared in the family file beside ``VARIANTS``."""

    name: str  # "ours", "timm" or "official": the ``source`` passed to ``convert_checkpoint``
    origin: str  # where such files come from, e.g. "timm 1.0 (huggingface.co/timm)"
    markers: tuple[str, ...]  # key patterns (fnmatch) that each occur in every checkpoint of this layout
    names: dict[str, str] = field(default_factory=dict)  # our registered name -> the source's name for it

    def matches(self, keys: Iterable[str]) -> bool:
        keys = keys if isinstance(keys, (dict, set, frozenset)) else set(keys)
        return all(marker in keys if not any(c in marker for c in "*?[") else
                   any(fnmatch.fnmatchcase(key, marker) for key in keys) for marker in self.markers)


@dataclass(frozen=True)
class Checkpoint:
    """A state dict read from disk, and what the file said about itself."""

    path: Path  # the file the tensors came from
    file_format: str  # "safetensors", "torch zip" or "torch pickle"
    state_dict: dict[str, torch.Tensor]  # unwrapped, in the source's layout
    hub_model: str | None = None  # the model name a hub snapshot's config.json gives ("architecture")


@dataclass(frozen=True)
class LoadedCheckpoint:
    """What ``build_with_weights`` did, for the CLI and tests."""

    model: nn.Module  # the model, weights loaded, in eval mode
    layout: str  # the layout recognised ("ours", "timm", "official", "ours (deploy form)", ...)
    notes: tuple[str, ...]  # one-line notes already logged (interpolated tables, ...)
    path: Path  # the file the tensors came from (a hub folder's weights file)
    hub_model: str | None = None  # the model name a hub snapshot's config.json gives, if it is one


def rename_keys(state_dict: dict[str, torch.Tensor], rules: Sequence[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Apply regex substitutions, in order, to every key; values are passed through untouched."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    out = {}
    for key, value in state_dict.items():
        for pattern, replacement in compiled:
            key = pattern.sub(replacement, key)
        out[key] = value
    return out


def class_count(state_dict: dict[str, torch.Tensor], head_key: str) -> dict[str, int]:
    """``{"num_classes": N}`` from the classifier weight at ``head_key`` (N rows), or ``{}`` without one.

    A family's ``checkpoint_options`` calls this with its classifier's key, so a checkpoint
    fine-tuned to N classes builds a head of N.
    """
    head = state_dict.get(head_key)
    return {} if head is None else {"num_classes": head.shape[0]}


def timm_efficientnet_blocks(state_dict: dict[str, torch.Tensor], stem: str) -> dict[str, torch.Tensor]:
    """timm's ``_efficientnet_builder`` names (MobileNetV2/V3, EfficientNet/V2) to ours.

    timm names each conv and its BatchNorm apart (``conv_pw`` + ``bn1``, ``conv_dw`` + ``bn2``); ours
    pairs them as ``ConvBN`` (``conv_pw.c`` + ``conv_pw.bn``). Which conv ``bnN`` belongs to depends on
    the block type, told by the convs the block has: depthwise-separable (dw, pw), inverted residual
    (pw, dw, pwl), Fused-MBConv (exp, pwl), conv-BN-act (conv). ``stem`` is our stem ``ConvBN``'s prefix.
    """
    block_convs: dict[str, set[str]] = {}
    for key in state_dict:
        match = re.match(r"^(blocks\.\d+\.\d+)\.(conv\w*)\.weight$", key)
        if match:
            block_convs.setdefault(match.group(1), set()).add(match.group(2))
    orders = (("conv_pw", "conv_dw", "conv_pwl"), ("conv_dw", "conv_pw"), ("conv_exp", "conv_pwl"), ("conv",))
    has_head_bn = "bn2.weight" in state_dict
    out = {}
    for key, value in state_dict.items():
        new_key = key
        match = re.match(r"^(blocks\.\d+\.\d+)\.(.+)$", key)
        if match and match.group(1) in block_convs:
            prefix, rest = match.groups()
            convs = block_convs[prefix]
            order = next((o for o in orders if set(o) == convs), ())
            bn = re.match(r"^bn(\d)\.(.+)$", rest)
            conv = re.match(r"^(conv\w*)\.weight$", rest)
            if bn and 0 < int(bn.group(1)) <= len(order):
                new_key = f"{prefix}.{order[int(bn.group(1)) - 1]}.bn.{bn.group(2)}"
            elif conv and conv.group(1) in order:
                new_key = f"{prefix}.{conv.group(1)}.c.weight"
        elif key == "conv_stem.weight":
            new_key = f"{stem}.c.weight"
        elif key.startswith("bn1."):
            new_key = f"{stem}.bn.{key[4:]}"
        elif has_head_bn and key == "conv_head.weight":
            new_key = "conv_head.c.weight"
        elif has_head_bn and key.startswith("bn2."):
            new_key = f"conv_head.bn.{key[4:]}"
        out[new_key] = value
    return out


# --- reading files -----------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def resolve_path(weights: str | os.PathLike) -> tuple[Path, str | None]:
    """The local file ``weights`` names, and the model a hub snapshot's config.json gives (or None).

    A URL or hub id is refused (nothing is downloaded); a folder must be a hub cache snapshot (or the
    model folder above its ``snapshots``) holding one of ``model.safetensors`` / ``pytorch_model.bin``.
    """
    text = os.fspath(weights)
    if _NETWORK.match(text):
        raise CheckpointFormatError(
            f"{text} is a network location and nothing is downloaded: download it first (e.g. "
            f"`huggingface-cli download timm/repvit_m1.dist_in1k`) and pass the local file or snapshot folder")
    path = Path(text).expanduser()
    if path.is_dir():
        return _hub_snapshot_file(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path} (give a local file; nothing is downloaded)")
    if not path.is_file():
        raise CheckpointFormatError(f"{path} is not a regular file; give a checkpoint file or a hub snapshot folder")
    return path, None


def _hub_snapshot_file(folder: Path) -> tuple[Path, str | None]:
    snapshot = folder
    if (folder / "snapshots").is_dir():  # the model folder: take the snapshot refs/main points at, or the only one
        ref = folder / "refs" / "main"
        snapshots = sorted(p for p in (folder / "snapshots").iterdir() if p.is_dir())
        if ref.is_file() and (folder / "snapshots" / ref.read_text().strip()).is_dir():
            snapshot = folder / "snapshots" / ref.read_text().strip()
        elif len(snapshots) == 1:
            snapshot = snapshots[0]
        else:
            raise CheckpointFormatError(f"{folder} holds {len(snapshots)} hub snapshots and no refs/main; "
                                        f"pass one of {folder / 'snapshots'}/<sha>")
    for name in _HUB_FILES:
        if (snapshot / name).is_file():
            return snapshot / name, _hub_architecture(snapshot)
    raise CheckpointFormatError(f"{folder} is a folder without {' or '.join(_HUB_FILES)}; pass a checkpoint file "
                                f"or a Hugging Face hub snapshot folder that holds one")


def _hub_architecture(snapshot: Path) -> str | None:
    config = snapshot / "config.json"
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return None
    name = data.get("architecture") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def _sniff(path: Path) -> str:
    """The file's format from its first bytes: "torch zip", "torch pickle", "safetensors"; or raise."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointFormatError(f"{path} is empty (0 bytes): the download or save did not finish; fetch it again")
    with path.open("rb") as handle:
        head = handle.read(64)
    if head.startswith(b"PK\x03\x04"):
        return "torch zip"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "torch pickle"
    if len(head) >= 9:
        header_len = struct.unpack("<Q", head[:8])[0]
        if head[8:9] == b"{":
            if 8 + header_len > size:
                raise CheckpointFormatError(f"{path} is a truncated safetensors file (its header says "
                                            f"{header_len} bytes of metadata, the file has {size - 8}); fetch it again")
            return "safetensors"
    if head.startswith(b"PK"):
        return "torch zip"  # a damaged zip; torch.load says what is wrong
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head) / max(len(head), 1)
    kind = "a text file" if printable > 0.95 else "not a checkpoint"
    sample = head[:24].decode("ascii", "replace").replace("\n", " ")
    raise CheckpointFormatError(f"{path} is {kind} (starts with {sample!r}), not a PyTorch or safetensors checkpoint; "
                                f"pass the .pth/.bin/.safetensors weights file")


def _read_torch(path: Path, zip_format: bool = False) -> object:
    """``torch.load(weights_only=True)``; a zip-format file (what torch.save writes since 1.6) is memory-mapped,
    so its tensors are not read twice (the legacy pickle format cannot be)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zip_format)
    except pickle.UnpicklingError as error:
        text = str(error)
        needed = re.search(r"Unsupported (?:global|class):? (?:GLOBAL )?([\w.]+)", text)
        if needed:
            raise CheckpointFormatError(
                f"{path} needs code to load (it pickles {needed.group(1)}), and only weights are loaded "
                f"(torch.load weights_only=True, so a file cannot run code); if you trust it, re-save just its "
                f"state dict: torch.save(torch.load(f, weights_only=False).state_dict(), 'weights.pth')") from None
        reason = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", text, re.S)
        detail = _one_line(reason.group(1) if reason else text)[:160]
        raise CheckpointFormatError(f"{path} is corrupt: its pickle does not parse ({detail}); fetch or save it "
                                    f"again") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        raise CheckpointFormatError(f"{path} is truncated or corrupt ({_one_line(error)[:160]}); "
                                    f"fetch or save it again") from None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointFormatError(f"{path} is a truncated or corrupt safetensors file ({_one_line(error)[:160]}); "
                                    f"fetch it again") from None


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict):
        raise CheckpointFormatError(f"{path} holds a {type(obj).__name__}, not a state dict (a dict of tensors, "
                                    f"or a dict with a 'model' or 'state_dict' entry)")
    for key in _NESTED_KEYS:
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointFormatError(f"{path} holds no tensors (top-level keys: {', '.join(map(str, list(obj)[:6]))}); "
                                    f"it is not a model checkpoint")
    for prefix in ("module.", "_orig_mod."):  # DistributedDataParallel, torch.compile
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


def read_checkpoint(weights: str | os.PathLike) -> Checkpoint:
    """Read a local checkpoint file or hub snapshot folder into an unwrapped state dict (source layout)."""
    path, hub_model = resolve_path(weights)
    file_format = _sniff(path)
    raw = _read_safetensors(path) if file_format == "safetensors" else _read_torch(path, file_format == "torch zip")
    return Checkpoint(path=path, file_format=file_format, state_dict=_unwrap(raw, path), hub_model=hub_model)


# --- layouts -------------------------------------------------------------------------------------------


def family_layouts(module: ModuleType) -> tuple[CheckpointLayout, ...]:
    return tuple(getattr(module, "CHECKPOINT_LAYOUTS", ()))


def recognise_layout(state_dict: dict[str, torch.Tensor], module: ModuleType) -> CheckpointLayout | None:
    """The first of the family's layouts whose markers all occur in the checkpoint, or None."""
    return next((layout for layout in family_layouts(module) if layout.matches(state_dict)), None)


def to_our_layout(state_dict: dict[str, torch.Tensor], module: ModuleType
                  ) -> tuple[dict[str, torch.Tensor], str | None]:
    """The checkpoint in our key layout (unchanged where no layout is recognised) and the layout's name."""
    layout = recognise_layout(state_dict, module)
    if layout is None:
        return state_dict, None
    if layout.name == "ours":
        return state_dict, layout.name
    return module.convert_checkpoint(state_dict, layout.name), layout.name


def _shape_problems(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]):
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                       for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    return missing, unexpected, misshapen


def _fits(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> bool:
    return state.keys() == expected.keys() and all(state[k].shape == expected[k].shape for k in expected)


def mismatch_report(path: Path | str, model: nn.Module, state: dict[str, torch.Tensor], layout: str | None) -> str:
    """The precise report: missing, unexpected and misshapen keys (20 of each at most)."""
    missing, unexpected, misshapen = _shape_problems(state, model.state_dict())
    seen = f" (read as the {layout} layout)" if layout else ""
    lines = [f"checkpoint {path} does not match {type(model).__name__}{seen}:"]
    for title, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)):
        if keys:
            shown = keys[:20]
            more = f" ... and {len(keys) - 20} more" if len(keys) > 20 else ""
            lines.append(f"  {title} ({len(keys)}): {', '.join(shown)}{more}")
    lines.append("  (a deploy-form checkpoint loads with create_model(name, deploy=True, weights=PATH))")
    return "\n".join(lines)


def _build_shapes(module: ModuleType, name: str, options: dict) -> dict[str, torch.Tensor] | None:
    """The state dict (shapes only where possible) of ``name`` built with ``options``, or None if it cannot be built."""
    try:
        with torch.device("meta"):
            return module.build(name, **options).state_dict()
    except Exception:  # noqa: BLE001 - some builders compute on tensors; build for real then
        pass
    try:
        return module.build(name, **options).state_dict()
    except Exception:  # noqa: BLE001 - arguments read from another family's checkpoint may not fit this builder
        return None


# Family files and the names each registers, in the order to try them (the registry supplies them).
Candidates = Sequence[tuple[ModuleType, Sequence[str]]]


def identify(state_dict: dict[str, torch.Tensor], candidates: Candidates) -> tuple[str, str] | None:
    """(registered name, layout) of the first candidate model a checkpoint fits exactly, or None."""
    for module, names in candidates:
        for layout in family_layouts(module):
            if not layout.matches(state_dict):
                continue
            converted = state_dict if layout.name == "ours" else module.convert_checkpoint(state_dict, layout.name)
            options = _checkpoint_options(module, converted)
            for name in names:
                expected = _build_shapes(module, name, options)
                if expected is not None and _fits(converted, expected):
                    return name, layout.name
    return None


def _checkpoint_options(module: ModuleType, state: dict[str, torch.Tensor]) -> dict:
    options_of = getattr(module, "checkpoint_options", None)
    return dict(options_of(state)) if callable(options_of) else {}


def _note(text: str, notes: list[str]) -> None:
    notes.append(text)
    _log.warning("note: %s", text)


def as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(f"dtype {dtype!r} is not a floating torch dtype (e.g. torch.float64 or 'float64')")
    return resolved


def build_with_weights(name: str, module: ModuleType, weights: str | os.PathLike, candidates: Candidates = (),
                       deploy: bool = False, dtype: torch.dtype | str | None = None, **overrides) -> LoadedCheckpoint:
    """Build registered model ``name`` of family file ``module`` and load a local checkpoint of any
    recognised layout into it.

    Constructor arguments the checkpoint implies (class count, distillation head) are used unless
    given in ``overrides``; ``dtype`` sets the model's dtype before loading, so float64 weights are
    not rounded through float32. The model is built without random initialization (nothing to throw
    away) and the checkpoint's tensors are assigned to it (no second pass copying every tensor).
    A checkpoint that does not fit is matched against ``candidates`` (the registry's families and
    names), so the error can name the model it is of.
    """
    dtype = as_dtype(dtype)
    checkpoint = read_checkpoint(weights)
    state, layout = to_our_layout(checkpoint.state_dict, module)
    options = {**_checkpoint_options(module, state), **overrides}
    model = _build_empty(module, name, options)
    uninitialised = model is not None
    if model is None:
        try:
            model = module.build(name, **options)
        except TypeError:  # an option this variant's builder does not take (read from a foreign checkpoint)
            options = overrides
            model = module.build(name, **options)
    if dtype is not None:
        model = model.to(dtype)  # before loading: float64 weights are not rounded through float32
    notes: list[str] = []
    expected = model.state_dict()
    fit = getattr(module, "fit_checkpoint", None)
    if callable(fit) and layout is not None:
        state, fit_notes = fit(state, expected)
        for text in fit_notes:
            _note(text, notes)
    if _fits(state, expected):
        model = _assign(model, state) if uninitialised else _copy_into(model, state)
        if deploy:
            model = reparam.reparameterize(model, warn_untrained=False)
        return LoadedCheckpoint(model.eval(), layout or "ours", tuple(notes), checkpoint.path, checkpoint.hub_model)

    # It does not fit: find out why, on a real model (the deploy form is computed from one).
    if uninitialised:
        model = _real(module.build(name, **options), dtype)
    deploy_model = _deploy_form(model)
    if deploy_model is not None and _fits(checkpoint.state_dict, deploy_model.state_dict()):
        if deploy:
            _copy_into(deploy_model, checkpoint.state_dict)
            return LoadedCheckpoint(deploy_model.eval(), "ours (deploy form)", tuple(notes), checkpoint.path,
                                    checkpoint.hub_model)
        raise DeployCheckpointError(
            f"{checkpoint.path} is a deploy-form checkpoint of {name} (saved by python -m reparam); load it with "
            f"create_model({name!r}, deploy=True, weights=PATH)")
    own_family_first = sorted(candidates, key=lambda candidate: candidate[0] is not module)
    found = identify(checkpoint.state_dict, own_family_first)
    if found is not None and found[0] != name:
        other, other_layout = found
        raise CheckpointMismatchError(
            f"{checkpoint.path} is a checkpoint of {other} ({other_layout} layout), not of {name}: "
            f"use create_model({other!r}, weights=PATH) or pass {name}'s own checkpoint")
    if found is not None:  # the model fits with the checkpoint's own arguments, not with the caller's
        given = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        raise CheckpointMismatchError(
            f"{checkpoint.path} is a checkpoint of {name} ({found[1]} layout) built with other arguments than "
            f"{given or 'the defaults'}: leave those out to take the checkpoint's (e.g. its class count)")
    raise CheckpointMismatchError(mismatch_report(checkpoint.path, model, state, layout))


_INIT_FUNCTIONS = tuple(n for n in dir(nn.init) if n.endswith("_") and not n.startswith("_"))
_INIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _initialisation_skipped():
    """``torch.nn.init``'s fill functions (``kaiming_uniform_``, ``trunc_normal_``, ``ones_``, ...) as no-ops.

    Every ``reset_parameters`` of torch's layers and the families' own init code go through them, and
    they are most of the time a model takes to build; a model whose every parameter and buffer a
    checkpoint then replaces does not need them. The torch.nn.init module is patched for the duration
    (under a lock, restored on exit, also on error)."""
    with _INIT_LOCK:
        saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS}
        try:
            for name in _INIT_FUNCTIONS:
                setattr(nn.init, name, _leave_as_is)
            yield
        finally:
            for name, function in saved.items():
                setattr(nn.init, name, function)


def _leave_as_is(tensor: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return tensor


def _build_empty(module: ModuleType, name: str, options: dict) -> nn.Module | None:
    """``name`` built without random initialization (parameters hold whatever memory held), or None where
    the builder fails so. Buffers computed at build time (Swin's masks, attention bias indices) are
    computed as usual. Building on the meta device instead would cost nearly as much as a normal build
    (every tensor creation goes through the device mode) and lose those buffers."""
    try:
        with _initialisation_skipped():
            return module.build(name, **options)
    except Exception:  # noqa: BLE001 - any failure means: build normally instead
        return None


def _real(model: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    return model.to(dtype) if dtype is not None else model


def _copy_into(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    model.load_state_dict(state, strict=True)
    return model


def _assign(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """An uninitialised ``model`` (``_build_empty``) given the checkpoint's tensors (in the model's dtypes;
    no copy where they agree).

    This is ``load_state_dict(assign=True)`` for a state dict whose keys and shapes were checked
    before (every persistent parameter and buffer is replaced; non-persistent buffers, computed at
    build time, are left as built), so each module's
    parameter and buffer tables are filled directly: the per-tensor checks of
    ``load_state_dict``/``register_parameter`` would be most of what a checkpoint adds to
    ``create_model``.
    """
    for module_name, submodule in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        parameters, buffers = submodule._parameters, submodule._buffers
        for name, param in parameters.items():
            if param is not None:
                parameters[name] = nn.Parameter(state[prefix + name].to(param.dtype), param.requires_grad)
        for name, buffer in buffers.items():
            if buffer is not None and name not in submodule._non_persistent_buffers_set:
                buffers[name] = state[prefix + name].to(buffer.dtype)
    return model


def _deploy_form(model: nn.Module) -> nn.Module | None:
    """The model's deploy form, when reparameterizing changes its keys (else None)."""
    deploy = reparam.reparameterize(model, warn_untrained=False)
    return deploy if deploy.state_dict().keys() != model.state_dict().keys() else None


# --- writing our layout once -------------------------------------------------------------------------


def save_safetensors(state_dict: dict[str, torch.Tensor], out: Path, metadata: dict[str, str]) -> None:
    """Write tensors as safetensors atomically: a temporary name beside ``out``, then a rename."""
    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().clone() for k, v in state_dict.items()}  # no shared storage
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def floating_dtype(state_dict: dict[str, torch.Tensor]) -> torch.dtype | None:
    """The one floating dtype of a state dict's tensors, or None when it holds several (or none)."""
    dtypes = {v.dtype for v in state_dict.values() if v.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else None


def save_our_layout(loaded: LoadedCheckpoint, name: str, out: str | os.PathLike) -> None:
    """Write a loaded checkpoint's model (training form, our keys) as safetensors at ``out``, with where it came from.

    ``create_model(name, weights=out)`` then loads it without any mapping; a checkpoint that was in
    our deploy layout already is refused (there is nothing to convert).
    """
    if loaded.layout.endswith("(deploy form)"):
        raise CheckpointMismatchError(f"{loaded.path} is already in our (deploy) layout; nothing to convert")
    metadata = {"format": "pt", "model": name, "source_layout": loaded.layout, "source_file": loaded.path.name}
    save_safetensors(loaded.model.state_dict(), Path(out), metadata)
