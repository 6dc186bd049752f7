"""The op table of the Core ML reference evaluator: one numpy/torch function per MIL op type.

Each function takes ``args``, a dict from the op's input names (as the MIL op definitions in
``coremltools/converters/mil/mil/ops/defs/iOS15..iOS18`` name them) to values, and returns the
op's output (a tuple for ops with several outputs). Tensors arrive as numpy arrays; floating
point ones always as float32, already rounded to float16 where the program holds them in fp16.
The evaluator (``export/mil_eval.py``) rounds every result to its output variable's dtype, which
is what emulates fp16: inputs and results of every op are float16 values, arithmetic in between
is float32. Optional inputs may be absent; each function applies the default the op documents.

Adding an op: write one function here and add one entry to ``MIL_OPS`` at the bottom.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

Args = dict[str, Any]


# ----------------------------------------------------------------------------- helpers

def _torch(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _ints(value) -> list[int]:
    return [int(v) for v in np.atleast_1d(value)]


def _axes(args: Args, key: str, rank: int) -> tuple[int, ...] | None:
    """Normalized reduction axes; None (the op's default) means every axis."""
    axes = args.get(key)
    if axes is None:
        return None
    return tuple(sorted(a % rank for a in _ints(axes)))


def _spatial_padding(in_sizes, kernel, strides, dilations, pad_type, pad) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dim for MIL's pad_type valid / custom / same / same_lower."""
    dims = len(in_sizes)
    if pad_type == "valid":
        return [(0, 0)] * dims
    if pad_type == "custom":
        pad = _ints(pad) if pad is not None else [0] * 2 * dims
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


def _pad_spatial(x: torch.Tensor, pairs: list[tuple[int, int]], value: float = 0.0) -> torch.Tensor:
    flat = [p for pair in reversed(pairs) for p in pair]  # torch pads the last dim first
    return F.pad(x, flat, value=value) if any(flat) else x


def _channel_view(vector, rank: int) -> np.ndarray:
    """A per-channel (axis 1) vector shaped to broadcast against a rank-``rank`` tensor."""
    return np.asarray(vector, dtype=np.float32).reshape((1, -1) + (1,) * (rank - 2))


# ----------------------------------------------------------------------------- convolution, linear

def op_conv(args: Args) -> np.ndarray:
    x, weight = _torch(args["x"]), _torch(args["weight"])
    dims = x.dim() - 2
    strides = _ints(args.get("strides", [1] * dims))
    dilations = _ints(args.get("dilations", [1] * dims))
    pairs = _spatial_padding(x.shape[2:], weight.shape[2:], strides, dilations,
                             str(args.get("pad_type", "valid")), args.get("pad"))
    bias = _torch(args["bias"]) if args.get("bias") is not None else None
    conv = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    if all(before == after for before, after in pairs):  # torch pads symmetrically itself (no copy)
        return conv(x, weight, bias, stride=strides, padding=[before for before, _ in pairs],
                    dilation=dilations, groups=int(args.get("groups", 1))).numpy()
    return conv(_pad_spatial(x, pairs), weight, bias, stride=strides, dilation=dilations,
                groups=int(args.get("groups", 1))).numpy()


def op_conv_transpose(args: Args) -> np.ndarray:
    x, weight = _torch(args["x"]), _torch(args["weight"])
    dims = x.dim() - 2
    strides = _ints(args.get("strides", [1] * dims))
    dilations = _ints(args.get("dilations", [1] * dims))
    groups = int(args.get("groups", 1))
    bias = _torch(args["bias"]) if args.get("bias") is not None else None
    conv_t = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[dims - 1]
    full = conv_t(x, weight, bias, stride=strides, dilation=dilations, groups=groups)
    pad_type = str(args.get("pad_type", "valid"))
    if pad_type == "custom":
        pad = _ints(args.get("pad", [0] * 2 * dims))
        crops = [(pad[2 * i], pad[2 * i + 1]) for i in range(dims)]
    else:
        crops = [(0, 0)] * dims
        if args.get("output_shape") is not None or pad_type in ("same", "same_lower"):
            target = (_ints(args["output_shape"])[2:] if args.get("output_shape") is not None
                      else [size * s for size, s in zip(x.shape[2:], strides)])
            crops = []
            for size, want in zip(full.shape[2:], target):
                total = size - want
                before = total // 2 if pad_type != "same_lower" else total - total // 2
                crops.append((before, total - before))
    index = [slice(None), slice(None)] + [slice(b, full.shape[2 + i] - a) for i, (b, a) in enumerate(crops)]
    return full[tuple(index)].numpy()


def op_linear(args: Args) -> np.ndarray:
    out = np.matmul(args["x"], np.swapaxes(args["weight"], -1, -2))
    return out + args["bias"] if args.get("bias") is not None else out


def op_matmul(args: Args) -> np.ndarray:
    x, y = args["x"], args["y"]
    if args.get("transpose_x") and x.ndim >= 2:
        x = np.swapaxes(x, -1, -2)
    if args.get("transpose_y") and y.ndim >= 2:
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


def op_einsum(args: Args) -> np.ndarray:
    return np.einsum(str(args["equation"]), *args["values"])


def op_scaled_dot_product_attention(args: Args) -> np.ndarray:
    query, key, value = args["query"], args["key"], args["value"]
    scores = np.matmul(query, np.swapaxes(key, -1, -2)) / np.sqrt(np.float32(query.shape[-1]))
    mask = args.get("attn_mask")
    if mask is not None:
        scores = np.where(mask, scores, -np.inf) if mask.dtype == np.bool_ else scores + mask
    return np.matmul(_softmax(scores, -1), value)


# ----------------------------------------------------------------------------- activations

def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return torch.sigmoid(_torch(x)).numpy()


def _erf(x: np.ndarray) -> np.ndarray:
    return torch.erf(_torch(x)).numpy()


def op_gelu(args: Args) -> np.ndarray:
    x, mode = args["x"], str(args.get("mode", "EXACT"))
    if mode == "EXACT":
        return 0.5 * x * (1.0 + _erf(x / np.sqrt(np.float32(2.0))))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(np.float32(2.0 / np.pi)) * (x + 0.044715 * x ** 3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * _sigmoid(1.702 * x)
    raise ValueError(f"gelu: unknown mode {mode!r}")


def op_softmax(args: Args) -> np.ndarray:
    return _softmax(args["x"], int(args.get("axis", -1)))


def op_softplus_parametric(args: Args) -> np.ndarray:
    x = args["x"]
    alpha, beta = _channel_view(args["alpha"], x.ndim), _channel_view(args["beta"], x.ndim)
    return alpha * np.logaddexp(0.0, beta * x)


def op_prelu(args: Args) -> np.ndarray:
    x = args["x"]
    return np.where(x > 0, x, _channel_view(args["alpha"], x.ndim) * x)


def op_clamped_relu(args: Args) -> np.ndarray:
    x = args["x"]
    return np.minimum(np.where(x >= 0, x, args.get("alpha", 0.01) * x), args.get("beta", 1.0))


# ----------------------------------------------------------------------------- normalization

def op_batch_norm(args: Args) -> np.ndarray:
    x = args["x"]
    view = lambda v: _channel_view(v, x.ndim)  # noqa: E731
    out = (x - view(args["mean"])) / np.sqrt(view(args["variance"]) + args.get("epsilon", 1e-5))
    if args.get("gamma") is not None:
        out = out * view(args["gamma"])
    if args.get("beta") is not None:
        out = out + view(args["beta"])
    return out


def op_layer_norm(args: Args) -> np.ndarray:
    x = args["x"]
    axes = _axes(args, "axes", x.ndim) or tuple(range(x.ndim))
    mean = np.mean(x, axis=axes, keepdims=True)
    variance = np.mean(np.square(x - mean), axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(variance + args.get("epsilon", 1e-5))
    shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    if args.get("gamma") is not None:
        out = out * np.reshape(args["gamma"], shape)
    if args.get("beta") is not None:
        out = out + np.reshape(args["beta"], shape)
    return out


def op_instance_norm(args: Args) -> np.ndarray:
    x = args["x"]
    axes = tuple(range(2, x.ndim))
    mean = np.mean(x, axis=axes, keepdims=True)
    variance = np.mean(np.square(x - mean), axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(variance + args.get("epsilon", 1e-5))
    if args.get("gamma") is not None:
        out = out * _channel_view(args["gamma"], x.ndim)
    if args.get("beta") is not None:
        out = out + _channel_view(args["beta"], x.ndim)
    return out


def op_l2_norm(args: Args) -> np.ndarray:
    x = args["x"]  # the last three dims are normalized together, leading dims are batch
    squares = np.sum(np.square(x), axis=(-3, -2, -1), keepdims=True)
    return x / np.sqrt(squares + args.get("epsilon", 1e-6))


def op_local_response_norm(args: Args) -> np.ndarray:
    x, size = args["x"], int(args["size"])
    alpha, beta, k = args.get("alpha", 1e-4), args.get("beta", 0.75), args.get("k", 1.0)
    squares = np.square(x)
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    padded = np.pad(squares, [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2))
    window = sum(padded[:, i:i + x.shape[1]] for i in range(size))
    return x / np.power(k + alpha / size * window, beta)


# ----------------------------------------------------------------------------- pooling

def _pool_windows(args: Args, x: torch.Tensor) -> tuple[list[int], list[int], list[tuple[int, int]], list[int]]:
    """Kernel, strides, explicit padding, and the extra end padding ceil_mode adds, per spatial dim."""
    dims = x.dim() - 2
    kernel = _ints(args["kernel_sizes"])
    strides = _ints(args.get("strides", [1] * dims))
    pairs = _spatial_padding(x.shape[2:], kernel, strides, [1] * dims,
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
    x = _torch(args["x"])
    kernel, strides, pairs, extra = _pool_windows(args, x)
    padded = _pad_spatial(x, [(b, a + e) for (b, a), e in zip(pairs, extra)], value=-np.inf)
    pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[x.dim() - 3]
    return pool(padded, kernel, strides).numpy()


def op_avg_pool(args: Args) -> np.ndarray:
    x = _torch(args["x"])
    kernel, strides, pairs, extra = _pool_windows(args, x)
    padded = _pad_spatial(x, [(b, a + e) for (b, a), e in zip(pairs, extra)])
    ones = torch.ones((1, 1) + tuple(x.shape[2:]))
    if args.get("exclude_padding_from_average", False):
        counted = _pad_spatial(ones, [(b, a + e) for (b, a), e in zip(pairs, extra)])
    else:  # explicit padding counts, the ceil_mode overhang does not (as torch's count_include_pad)
        counted = _pad_spatial(_pad_spatial(ones, pairs, value=1.0), [(0, e) for e in extra])
    return (_pool_sum(padded, kernel, strides) / _pool_sum(counted, kernel, strides)).numpy()


def op_l2_pool(args: Args) -> np.ndarray:
    x = _torch(args["x"])
    kernel, strides, pairs, extra = _pool_windows(args, x)
    padded = _pad_spatial(x * x, [(b, a + e) for (b, a), e in zip(pairs, extra)])
    return torch.sqrt(_pool_sum(padded, kernel, strides)).numpy()


# ----------------------------------------------------------------------------- reductions

def _reduction(reduce: Callable[[np.ndarray, tuple | None], np.ndarray]) -> Callable[[Args], np.ndarray]:
    def run(args: Args) -> np.ndarray:
        x = args["x"]
        axes = _axes(args, "axes", x.ndim)
        out = reduce(x, axes)
        if args.get("keep_dims", False):
            shape = [1 if axes is None or i in axes else n for i, n in enumerate(x.shape)]
            out = np.reshape(out, shape)
        return out
    return run


def _arg_reduction(pick: Callable) -> Callable[[Args], np.ndarray]:
    def run(args: Args) -> np.ndarray:
        axis = int(args.get("axis", -1))
        out = pick(args["x"], axis=axis)
        return np.expand_dims(out, axis) if args.get("keep_dims", False) else out
    return run


# ----------------------------------------------------------------------------- shape and layout

def op_reshape(args: Args) -> np.ndarray:
    x, shape = args["x"], _ints(args["shape"])
    shape = [x.shape[i] if n == 0 else n for i, n in enumerate(shape)]  # 0 copies the input dim
    return np.reshape(x, shape)


def op_expand_dims(args: Args) -> np.ndarray:
    x = args["x"]
    axes = _ints(args["axes"])
    rank = x.ndim + len(axes)
    for axis in sorted(a % rank for a in axes):
        x = np.expand_dims(x, axis)
    return x


def op_squeeze(args: Args) -> np.ndarray:
    x = args["x"]
    if args.get("axes") is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(a % x.ndim for a in _ints(args["axes"])))


def op_concat(args: Args) -> np.ndarray:
    values, axis = list(args["values"]), int(args["axis"])
    if not args.get("interleave", False):
        return np.concatenate(values, axis=axis)
    axis %= values[0].ndim  # interleave: take one slice of each input in turn along axis
    stacked = np.stack(values, axis=axis + 1)
    shape = list(values[0].shape)
    shape[axis] *= len(values)
    return np.reshape(stacked, shape)


def op_split(args: Args) -> tuple[np.ndarray, ...]:
    x, axis = args["x"], int(args.get("axis", 0))
    if args.get("split_sizes") is not None:
        sizes = _ints(args["split_sizes"])
    else:
        count = int(args["num_splits"])
        size = -(-x.shape[axis] // count)
        sizes = [size] * (count - 1) + [x.shape[axis] - size * (count - 1)]
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def op_slice_by_index(args: Args) -> np.ndarray:
    x = args["x"]
    rank = x.ndim
    begin, end = _ints(args["begin"]), _ints(args["end"])
    stride = _ints(args.get("stride", [1] * rank))
    begin_mask = np.atleast_1d(args.get("begin_mask", [False] * rank))
    end_mask = np.atleast_1d(args.get("end_mask", [False] * rank))
    squeeze_mask = np.atleast_1d(args.get("squeeze_mask", [False] * rank))
    index = []
    for i in range(rank):
        if squeeze_mask[i]:
            index.append(begin[i])
            continue
        start = None if begin_mask[i] else begin[i]
        stop = None if end_mask[i] else end[i]
        index.append(slice(start, stop, stride[i]))
    return np.asarray(x[tuple(index)])


def op_slice_by_size(args: Args) -> np.ndarray:
    x, begin, size = args["x"], _ints(args["begin"]), _ints(args["size"])
    index = tuple(slice(b % n if n else 0, None if s == -1 else (b % n if n else 0) + s)
                  for b, s, n in zip(begin, size, x.shape))
    return x[index]


def op_gather(args: Args) -> np.ndarray:
    x, indices = args["x"], np.asarray(args["indices"]).astype(np.int64)
    axis, batch_dims = int(args.get("axis", 0)) % x.ndim, int(args.get("batch_dims", 0))
    if batch_dims == 0:
        return np.take(x, indices, axis=axis)
    return np.stack([op_gather({"x": x[i], "indices": indices[i], "axis": axis - 1,
                                "batch_dims": batch_dims - 1}) for i in range(x.shape[0])])


def op_gather_nd(args: Args) -> np.ndarray:
    x, indices = args["x"], np.asarray(args["indices"]).astype(np.int64)
    batch_dims = int(args.get("batch_dims", 0))
    if batch_dims:
        return np.stack([op_gather_nd({"x": x[i], "indices": indices[i], "batch_dims": batch_dims - 1})
                         for i in range(x.shape[0])])
    return x[tuple(np.moveaxis(indices, -1, 0))]


def op_pad(args: Args) -> np.ndarray:
    x, pad = args["x"], _ints(args["pad"])
    count = len(pad) // 2
    widths = [(0, 0)] * (x.ndim - count) + [(pad[2 * i], pad[2 * i + 1]) for i in range(count)]
    mode = str(args.get("mode", "constant"))
    if mode == "constant":
        return np.pad(x, widths, constant_values=args.get("constant_val", 0.0))
    return np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge"}[mode])


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
    top, bottom = _ints(args["crop_height"])
    left, right = _ints(args["crop_width"])
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


def op_band_part(args: Args) -> np.ndarray:
    x = args["x"]
    lower, upper = int(args.get("lower", -1)), int(args.get("upper", -1))
    rows = np.arange(x.shape[-2])[:, None]
    cols = np.arange(x.shape[-1])[None, :]
    keep = ((lower < 0) | (rows - cols <= lower)) & ((upper < 0) | (cols - rows <= upper))
    return np.where(keep, x, np.zeros_like(x))


def op_topk(args: Args) -> tuple[np.ndarray, np.ndarray]:
    x, k, axis = args["x"], int(args.get("k", 1)), int(args.get("axis", -1))
    order = np.argsort(x if args.get("ascending", False) else -x, axis=axis, kind="stable")
    indices = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, indices, axis=axis), indices


def op_argsort(args: Args) -> np.ndarray:
    x = args["x"]
    return np.argsort(x if args.get("ascending", False) else -x, axis=int(args.get("axis", -1)), kind="stable")


def op_cumsum(args: Args) -> np.ndarray:
    x, axis = args["x"], int(args.get("axis", 0))
    if args.get("reverse", False):
        x = np.flip(x, axis)
    out = np.cumsum(x, axis=axis)
    if args.get("exclusive", False):
        out = out - x
    return np.flip(out, axis) if args.get("reverse", False) else out


def op_one_hot(args: Args) -> np.ndarray:
    indices, size = np.asarray(args["indices"]).astype(np.int64), int(args["one_hot_vector_size"])
    hot = np.arange(size) == indices[..., None]
    out = np.where(hot, args.get("on_value", 1), args.get("off_value", 0))
    return np.moveaxis(out, -1, int(args.get("axis", -1)))


def op_flatten2d(args: Args) -> np.ndarray:
    x, axis = args["x"], int(args.get("axis", 1)) % (args["x"].ndim + 1)
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def _binary(fn: Callable) -> Callable[[Args], np.ndarray]:
    return lambda args: fn(args["x"], args["y"])


def _unary(fn: Callable) -> Callable[[Args], np.ndarray]:
    return lambda args: fn(args["x"])


def _floor_div(x, y):
    return np.floor_divide(x, y) if np.issubdtype(np.asarray(x).dtype, np.integer) else np.floor(x / y)


MIL_OPS: dict[str, Callable[[Args], Any]] = {
    # identity-like: the evaluator casts every result to its output's dtype, which is all cast does
    "cast": lambda a: a["x"],
    "identity": lambda a: a["x"],
    # convolution and products
    "conv": op_conv,
    "conv_transpose": op_conv_transpose,
    "linear": op_linear,
    "matmul": op_matmul,
    "einsum": op_einsum,
    "scaled_dot_product_attention": op_scaled_dot_product_attention,
    # elementwise binary (numpy broadcasting is MIL's broadcasting)
    "add": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "real_div": _binary(np.divide),
    "pow": _binary(np.power),
    "maximum": _binary(np.maximum),
    "minimum": _binary(np.minimum),
    "floor_div": _binary(_floor_div),
    "mod": _binary(np.mod),
    "equal": _binary(np.equal),
    "not_equal": _binary(np.not_equal),
    "greater": _binary(np.greater),
    "greater_equal": _binary(np.greater_equal),
    "less": _binary(np.less),
    "less_equal": _binary(np.less_equal),
    "logical_and": _binary(np.logical_and),
    "logical_or": _binary(np.logical_or),
    "logical_xor": _binary(np.logical_xor),
    # elementwise unary
    "abs": _unary(np.abs),
    "acos": _unary(np.arccos),
    "asin": _unary(np.arcsin),
    "atan": _unary(np.arctan),
    "atanh": _unary(np.arctanh),
    "ceil": _unary(np.ceil),
    "cos": _unary(np.cos),
    "cosh": _unary(np.cosh),
    "erf": _unary(_erf),
    "exp": _unary(np.exp),
    "exp2": _unary(np.exp2),
    "floor": _unary(np.floor),
    "round": _unary(np.round),
    "sign": _unary(np.sign),
    "sin": _unary(np.sin),
    "sinh": _unary(np.sinh),
    "sqrt": _unary(np.sqrt),
    "square": _unary(np.square),
    "tan": _unary(np.tan),
    "tanh": _unary(np.tanh),
    "logical_not": _unary(np.logical_not),
    "inverse": lambda a: 1.0 / (a["x"] + a.get("epsilon", 1e-4)),
    "log": lambda a: np.log(a["x"] + a.get("epsilon", 1e-45)),
    "rsqrt": lambda a: 1.0 / np.sqrt(a["x"] + a.get("epsilon", 1e-12)),
    "clip": lambda a: np.minimum(np.maximum(a["x"], a["alpha"]), a["beta"]),
    "threshold": lambda a: np.maximum(a["x"], a["alpha"]),
    # activations
    "relu": _unary(lambda x: np.maximum(x, 0)),
    "relu6": _unary(lambda x: np.clip(x, 0, 6)),
    "sigmoid": _unary(_sigmoid),
    "sigmoid_hard": lambda a: np.clip(a.get("alpha", 0.2) * a["x"] + a.get("beta", 0.5), 0, 1),
    "silu": _unary(lambda x: x * _sigmoid(x)),
    "gelu": op_gelu,
    "softmax": op_softmax,
    "softplus": _unary(lambda x: np.logaddexp(0.0, x)),
    "softplus_parametric": op_softplus_parametric,
    "softsign": _unary(lambda x: x / (1 + np.abs(x))),
    "leaky_relu": lambda a: np.where(a["x"] >= 0, a["x"], a.get("alpha", 0.01) * a["x"]),
    "elu": lambda a: np.where(a["x"] > 0, a["x"], a.get("alpha", 1.0) * np.expm1(a["x"])),
    "prelu": op_prelu,
    "thresholded_relu": lambda a: np.where(a["x"] > a.get("alpha", 1.0), a["x"], 0),
    "scaled_tanh": lambda a: a.get("alpha", 1.0) * np.tanh(a.get("beta", 1.0) * a["x"]),
    "linear_activation": lambda a: a.get("alpha", 1.0) * a["x"] + a.get("beta", 0.0),
    "clamped_relu": op_clamped_relu,
    # normalization
    "batch_norm": op_batch_norm,
    "layer_norm": op_layer_norm,
    "instance_norm": op_instance_norm,
    "l2_norm": op_l2_norm,
    "local_response_norm": op_local_response_norm,
    # pooling
    "avg_pool": op_avg_pool,
    "max_pool": op_max_pool,
    "l2_pool": op_l2_pool,
    # reductions (axes None: all axes; keep_dims False by default)
    "reduce_mean": _reduction(lambda x, axes: np.mean(x, axis=axes)),
    "reduce_sum": _reduction(lambda x, axes: np.sum(x, axis=axes)),
    "reduce_max": _reduction(lambda x, axes: np.max(x, axis=axes)),
    "reduce_min": _reduction(lambda x, axes: np.min(x, axis=axes)),
    "reduce_prod": _reduction(lambda x, axes: np.prod(x, axis=axes)),
    "reduce_l1_norm": _reduction(lambda x, axes: np.sum(np.abs(x), axis=axes)),
    "reduce_l2_norm": _reduction(lambda x, axes: np.sqrt(np.sum(np.square(x), axis=axes))),
    "reduce_sum_square": _reduction(lambda x, axes: np.sum(np.square(x), axis=axes)),
    "reduce_log_sum": _reduction(lambda x, axes: np.log(np.sum(x, axis=axes))),
    "reduce_log_sum_exp": _reduction(lambda x, axes: np.logaddexp.reduce(x, axis=axes)
                                     if axes is None or len(axes) == 1 else
                                     np.log(np.sum(np.exp(x), axis=axes))),
    "reduce_argmax": _arg_reduction(np.argmax),
    "reduce_argmin": _arg_reduction(np.argmin),
    # shape, layout, indexing
    "reshape": op_reshape,
    "transpose": lambda a: np.transpose(a["x"], _ints(a["perm"])),
    "expand_dims": op_expand_dims,
    "squeeze": op_squeeze,
    "concat": op_concat,
    "split": op_split,
    "stack": lambda a: np.stack(list(a["values"]), axis=int(a["axis"])),
    "slice_by_index": op_slice_by_index,
    "slice_by_size": op_slice_by_size,
    "gather": op_gather,
    "gather_along_axis": lambda a: np.take_along_axis(
        a["x"], np.asarray(a["indices"]).astype(np.int64), axis=int(a.get("axis", 0))),
    "gather_nd": op_gather_nd,
    "tile": lambda a: np.tile(a["x"], _ints(a["reps"])),
    "pad": op_pad,
    "reverse": lambda a: np.flip(a["x"], axis=None if a.get("axes") is None else tuple(_ints(a["axes"]))),
    "flatten2d": op_flatten2d,
    "upsample_nearest_neighbor": op_upsample_nearest_neighbor,
    "resize_nearest_neighbor": op_resize_nearest_neighbor,
    "upsample_bilinear": op_upsample_bilinear,
    "resize_bilinear": op_resize_bilinear,
    "crop": op_crop,
    "pixel_shuffle": lambda a: F.pixel_shuffle(_torch(a["x"]), int(a["upscale_factor"])).numpy(),
    "pixel_unshuffle": lambda a: F.pixel_unshuffle(_torch(a["x"]), int(a["downscale_factor"])).numpy(),
    "space_to_depth": op_space_to_depth,
    "depth_to_space": op_depth_to_space,
    "select": lambda a: np.where(a["cond"], a["a"], a["b"]),
    "fill": lambda a: np.full(_ints(a["shape"]), a.get("value", 0.0)),
    "range_1d": lambda a: np.arange(a["start"], a["end"], a["step"]),
    "shape": lambda a: np.array(a["x"].shape, dtype=np.int32),
    "band_part": op_band_part,
    "topk": op_topk,
    "argsort": op_argsort,
    "cumsum": op_cumsum,
    "one_hot": op_one_hot,
    "non_zero": lambda a: np.transpose(np.nonzero(a["x"])),
}
