"""What every op family of the reference evaluator shares: the argument type and small conversions.

An op function takes ``args``, a dict from the op's input names (as the MIL op definitions in
``coremltools/converters/mil/mil/ops/defs/iOS15..iOS18`` name them) to values, and returns the
op's output (a tuple for ops with several outputs).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

Args = dict[str, Any]
OpFunction = Callable[[Args], Any]


def as_torch(array: np.ndarray) -> torch.Tensor:
    """A float32 torch view of ``array`` (for the ops computed with torch's functional kernels)."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def ints(value: Any) -> list[int]:
    """A scalar or 1-D value as a list of Python ints."""
    return [int(v) for v in np.atleast_1d(value)]


def axes_of(args: Args, key: str, rank: int) -> tuple[int, ...] | None:
    """Normalized reduction axes; None (the op's default) means every axis."""
    axes = args.get(key)
    if axes is None:
        return None
    return tuple(sorted(a % rank for a in ints(axes)))


def channel_view(vector: Any, rank: int) -> np.ndarray:
    """A per-channel (axis 1) vector shaped to broadcast against a rank-``rank`` tensor."""
    return np.asarray(vector, dtype=np.float32).reshape((1, -1) + (1,) * (rank - 2))


def spatial_padding(in_sizes: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                    dilations: Sequence[int], pad_type: str, pad: Any) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dim for MIL's pad_type valid / custom / same / same_lower."""
    dims = len(in_sizes)
    if pad_type == "valid":
        return [(0, 0)] * dims
    if pad_type == "custom":
        pad = ints(pad) if pad is not None else [0] * 2 * dims
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(dims)]
    if pad_type in ("same", "same_lower"):
        pairs = []
        for size, k, s, d in zip(in_sizes, kernel, strides, dilations):
            out = math.ceil(size / s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            small, large = total // 2, total - total // 2
            pairs.append((small, large) if pad_type == "same" else (large, small))
        return pairs
    raise ValueError(f"unknown pad_type {pad_type!r} (expected valid, custom, same or same_lower)")


def pad_spatial(x: torch.Tensor, pairs: list[tuple[int, int]], value: float = 0.0) -> torch.Tensor:
    """``x`` padded by (before, after) per spatial dim with ``value``."""
    flat = [p for pair in reversed(pairs) for p in pair]  # torch pads the last dim first
    return F.pad(x, flat, value=value) if any(flat) else x


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return torch.sigmoid(as_torch(x)).numpy()


def erf(x: np.ndarray) -> np.ndarray:
    return torch.erf(as_torch(x)).numpy()
