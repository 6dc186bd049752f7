"""Resampling and spatial rearrangement ops of the reference evaluator: upsample, resize, crop,
pixel and depth shuffles."""
from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from export.coreml.ops.common import Args, OpFunction, as_torch, ints


def op_upsample_nearest_neighbor(args: Args) -> np.ndarray:
    x = args["x"]
    scale_h, scale_w = float(args.get("scale_factor_height", 1)), float(args.get("scale_factor_width", 1))
    height, width = x.shape[-2:]
    rows = np.minimum(np.floor(np.arange(int(np.floor(height * scale_h))) / scale_h), height - 1).astype(int)
    cols = np.minimum(np.floor(np.arange(int(np.floor(width * scale_w))) / scale_w), width - 1).astype(int)
    return x[..., rows, :][..., cols]


def op_resize_nearest_neighbor(args: Args) -> np.ndarray:
    x = args["x"]
    height, width = x.shape[-2:]
    out_h, out_w = int(args["target_size_height"]), int(args["target_size_width"])
    rows = np.minimum(np.floor(np.arange(out_h) * height / out_h), height - 1).astype(int)
    cols = np.minimum(np.floor(np.arange(out_w) * width / out_w), width - 1).astype(int)
    return x[..., rows, :][..., cols]


def _grid(size_in: int, size_out: int, mode: str) -> np.ndarray:
    """Sampling positions of resize/upsample_bilinear, as the op definitions document them."""
    i = np.arange(size_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if size_out == 1:
            points = np.array([(size_in - 1) / 2.0 if mode == "ALIGN_CORNERS" else 0.0])
        else:
            points = i * (size_in - 1) / (size_out - 1)
    elif mode == "DEFAULT":
        points = i * (size_in - size_in / size_out) / (size_out - 1) if size_out > 1 else i * 0
    elif mode == "OFFSET_CORNERS":
        delta = max(1, size_in - 1) / size_out
        points = 0.5 * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        spacing = size_in / size_out
        points = i * spacing + 0.5 * spacing - 0.5
    elif mode == "ASYMMETRIC":  # upsample_bilinear with align_corners=False, half_pixel_centers=False
        points = i * size_in / size_out
    else:
        raise ValueError(f"unknown bilinear sampling mode {mode!r}")
    return np.clip(points, 0, size_in - 1)


def _bilinear(x: np.ndarray, out_h: int, out_w: int, mode: str) -> np.ndarray:
    for axis, size_out in ((-2, out_h), (-1, out_w)):
        points = _grid(x.shape[axis], size_out, mode)
        low = np.floor(points).astype(int)
        high = np.minimum(low + 1, x.shape[axis] - 1)
        frac = (points - low).astype(np.float32)
        shape = [1] * x.ndim
        shape[axis] = size_out
        frac = frac.reshape(shape)
        x = np.take(x, low, axis=axis) * (1 - frac) + np.take(x, high, axis=axis) * frac
    return x


def op_upsample_bilinear(args: Args) -> np.ndarray:
    x = args["x"]
    out_h = int(np.floor(x.shape[-2] * float(args.get("scale_factor_height", 1))))
    out_w = int(np.floor(x.shape[-1] * float(args.get("scale_factor_width", 1))))
    align = bool(args.get("align_corners", True))
    half_pixel = bool(args.get("half_pixel_centers", not align))
    mode = "STRICT_ALIGN_CORNERS" if align else ("UNALIGN_CORNERS" if half_pixel else "ASYMMETRIC")
    return _bilinear(x, out_h, out_w, mode)


def op_resize_bilinear(args: Args) -> np.ndarray:
    return _bilinear(args["x"], int(args.get("target_size_height", 1)), int(args.get("target_size_width", 1)),
                     str(args.get("sampling_mode", "DEFAULT")))


def op_crop(args: Args) -> np.ndarray:
    x = args["x"]
    top, bottom = ints(args["crop_height"])
    left, right = ints(args["crop_width"])
    return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]


def op_space_to_depth(args: Args) -> np.ndarray:
    x, block = args["x"], int(args["block_size"])
    n, c, h, w = x.shape  # output channel = (row_offset * block + col_offset) * C + c, as TF
    y = x.reshape(n, c, h // block, block, w // block, block).transpose(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * block * block, h // block, w // block)


def op_depth_to_space(args: Args) -> np.ndarray:
    x, block = args["x"], int(args["block_size"])
    n, c, h, w = x.shape  # the inverse of space_to_depth
    y = x.reshape(n, block, block, c // (block * block), h, w).transpose(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (block * block), h * block, w * block)


OPS: dict[str, OpFunction] = {
    "upsample_nearest_neighbor": op_upsample_nearest_neighbor,
    "resize_nearest_neighbor": op_resize_nearest_neighbor,
    "upsample_bilinear": op_upsample_bilinear,
    "resize_bilinear": op_resize_bilinear,
    "crop": op_crop,
    "pixel_shuffle": lambda a: F.pixel_shuffle(as_torch(a["x"]), int(a["upscale_factor"])).numpy(),
    "pixel_unshuffle": lambda a: F.pixel_unshuffle(as_torch(a["x"]), int(a["downscale_factor"])).numpy(),
    "space_to_depth": op_space_to_depth,
    "depth_to_space": op_depth_to_space,
}
