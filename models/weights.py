"""Loading local checkpoints into registered models (the one place that does weight I/O)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mobilelat.errors import UsageError

# Keys under which official repositories nest the state dict, tried in this order.
_NESTED_KEYS = ("model", "state_dict", "model_ema", "module")


class CheckpointMismatchError(UsageError, RuntimeError):
    """A checkpoint whose keys or shapes do not match the model it is loaded into."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint with ``weights_only=True`` and unwrap the official layouts.

    Accepts a bare state dict or a dict with a ``model`` (or ``state_dict``) key, and strips a
    ``module.`` prefix left by DistributedDataParallel.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (give a local file; nothing is downloaded)")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(f"{path}: expected a state dict or a dict with a 'model' key, "
                                      f"got {type(checkpoint).__name__}")
    for key in _NESTED_KEYS:
        if key in checkpoint and isinstance(checkpoint[key], dict):
            checkpoint = checkpoint[key]
            break
    if checkpoint and all(k.startswith("module.") for k in checkpoint):
        checkpoint = {k[len("module."):]: v for k, v in checkpoint.items()}
    return checkpoint


def load_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load a local checkpoint strictly; on mismatch list missing, unexpected and misshapen keys."""
    state = read_state_dict(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                       for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or misshapen:
        lines = [f"checkpoint {path} does not match {type(model).__name__}:"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)):
            if keys:
                shown = keys[:20]
                more = f" ... and {len(keys) - 20} more" if len(keys) > 20 else ""
                lines.append(f"  {title} ({len(keys)}): {', '.join(shown)}{more}")
        lines.append("  (a deploy-form checkpoint loads with create_model(name, deploy=True, weights=PATH))")
        raise CheckpointMismatchError("\n".join(lines))
    model.load_state_dict(state, strict=True)
