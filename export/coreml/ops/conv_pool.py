"""Convolution and pooling ops of the reference evaluator, on torch's functional kernels."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from export.coreml.ops.common import Args, OpFunction, as_torch, ints, pad_spatial, spatial_padding


def op_conv(args: Args) -> np.ndarray:
    x, weight = as_torch(args["x"]), as_torch(args["weight"])
    dims = x.dim() - 2
    strides = ints(args.get("strides", [1] * dims))
    dilations = ints(args.get("dilations", [1] * dims))
    pairs = spatial_padding(x.shape[2:], weight.shape[2:], strides, dilations,
                            str(args.get("pad_type", "valid")), args.get("pad"))
    bias = as_torch(args["bias"]) if args.get("bias") is not None else None
    conv = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    if all(before == after for before, after in pairs):  # torch pads symmetrically itself (no copy)
        return conv(x, weight, bias, stride=strides, padding=[before for before, _ in pairs],
                    dilation=dilations, groups=int(args.get("groups", 1))).numpy()
    return conv(pad_spatial(x, pairs), weight, bias, stride=strides, dilation=dilations,
                groups=int(args.get("groups", 1))).numpy()


def op_conv_transpose(args: Args) -> np.ndarray:
    x, weight = as_torch(args["x"]), as_torch(args["weight"])
    dims = x.dim() - 2
    strides = ints(args.get("strides", [1] * dims))
    dilations = ints(args.get("dilations", [1] * dims))
    groups = int(args.get("groups", 1))
    bias = as_torch(args["bias"]) if args.get("bias") is not None else None
    conv_t = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[dims - 1]
    full = conv_t(x, weight, bias, stride=strides, dilation=dilations, groups=groups)
    pad_type = str(args.get("pad_type", "valid"))
    if pad_type == "custom":
        pad = ints(args.get("pad", [0] * 2 * dims))
        crops = [(pad[2 * i], pad[2 * i + 1]) for i in range(dims)]
    else:
        crops = [(0, 0)] * dims
        if args.get("output_shape") is not None or pad_type in ("same", "same_lower"):
            target = (ints(args["output_shape"])[2:] if args.get("output_shape") is not None
                      else [size * s for size, s in zip(x.shape[2:], strides)])
            crops = []
            for size, want in zip(full.shape[2:], target):
                total = size - want
                before = total // 2 if pad_type != "same_lower" else total - total // 2
                crops.append((before, total - before))
    index = [slice(None), slice(None)] + [slice(b, full.shape[2 + i] - a) for i, (b, a) in enumerate(crops)]
    return full[tuple(index)].numpy()


def _pool_windows(args: Args, x: torch.Tensor) -> tuple[list[int], list[int], list[tuple[int, int]], list[int]]:
    """Kernel, strides, explicit padding, and the extra end padding ceil_mode adds, per spatial dim."""
    dims = x.dim() - 2
    kernel = ints(args["kernel_sizes"])
    strides = ints(args.get("strides", [1] * dims))
    pairs = spatial_padding(x.shape[2:], kernel, strides, [1] * dims,
                            str(args.get("pad_type", "valid")), args.get("pad"))
    extra = []
    for size, k, s, (before, after) in zip(x.shape[2:], kernel, strides, pairs):
        span = size + before + after - k
        out = span // s + 1
        if args.get("ceil_mode") and span % s:
            out = -(-span // s) + 1
            if (out - 1) * s >= size + before:  # a window must start inside the input or left pad
                out -= 1
        extra.append(max((out - 1) * s + k - (size + before + after), 0))
    return kernel, strides, pairs, extra


def _pool_sum(x: torch.Tensor, kernel: list[int], strides: list[int]) -> torch.Tensor:
    avg = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[x.dim() - 3]
    return avg(x, kernel, strides) * float(np.prod(kernel))


def op_max_pool(args: Args) -> np.ndarray:
    x = as_torch(args["x"])
    kernel, strides, pairs, extra = _pool_windows(args, x)
    padded = pad_spatial(x, [(b, a + e) for (b, a), e in zip(pairs, extra)], value=-np.inf)
    pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[x.dim() - 3]
    return pool(padded, kernel, strides).numpy()


def op_avg_pool(args: Args) -> np.ndarray:
    x = as_torch(args["x"])
    kernel, strides, pairs, extra = _pool_windows(args, x)
    padded = pad_spatial(x, [(b, a + e) for (b, a), e in zip(pairs, extra)])
    ones = torch.ones((1, 1) + tuple(x.shape[2:]))
    if args.get("exclude_padding_from_average", False):
        counted = pad_spatial(ones, [(b, a + e) for (b, a), e in zip(pairs, extra)])
    else:  # explicit padding counts, the ceil_mode overhang does not (as torch's count_include_pad)
        counted = pad_spatial(pad_spatial(ones, pairs, value=1.0), [(0, e) for e in extra])
    return (_pool_sum(padded, kernel, strides) / _pool_sum(counted, kernel, strides)).numpy()


def op_l2_pool(args: Args) -> np.ndarray:
    x = as_torch(args["x"])
    kernel, strides, pairs, extra = _pool_windows(args, x)
    padded = pad_spatial(x * x, [(b, a + e) for (b, a), e in zip(pairs, extra)])
    return torch.sqrt(_pool_sum(padded, kernel, strides)).numpy()


OPS: dict[str, OpFunction] = {
    "conv": op_conv,
    "conv_transpose": op_conv_transpose,
    "avg_pool": op_avg_pool,
    "max_pool": op_max_pool,
    "l2_pool": op_l2_pool,
}
