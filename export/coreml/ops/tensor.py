"""Shape, layout and indexing ops of the reference evaluator: reshape, concat, slice, gather, pad,
sort and the like."""
from __future__ import annotations

import numpy as np

from export.coreml.ops.common import Args, OpFunction, ints


def op_reshape(args: Args) -> np.ndarray:
    x, shape = args["x"], ints(args["shape"])
    shape = [x.shape[i] if n == 0 else n for i, n in enumerate(shape)]  # 0 copies the input dim
    return np.reshape(x, shape)


def op_expand_dims(args: Args) -> np.ndarray:
    x = args["x"]
    axes = ints(args["axes"])
    rank = x.ndim + len(axes)
    for axis in sorted(a % rank for a in axes):
        x = np.expand_dims(x, axis)
    return x


def op_squeeze(args: Args) -> np.ndarray:
    x = args["x"]
    if args.get("axes") is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(a % x.ndim for a in ints(args["axes"])))


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
        sizes = ints(args["split_sizes"])
    else:
        count = int(args["num_splits"])
        size = -(-x.shape[axis] // count)
        sizes = [size] * (count - 1) + [x.shape[axis] - size * (count - 1)]
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def op_slice_by_index(args: Args) -> np.ndarray:
    x = args["x"]
    rank = x.ndim
    begin, end = ints(args["begin"]), ints(args["end"])
    stride = ints(args.get("stride", [1] * rank))
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
    x, begin, size = args["x"], ints(args["begin"]), ints(args["size"])
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
    x, pad = args["x"], ints(args["pad"])
    count = len(pad) // 2
    widths = [(0, 0)] * (x.ndim - count) + [(pad[2 * i], pad[2 * i + 1]) for i in range(count)]
    mode = str(args.get("mode", "constant"))
    if mode == "constant":
        return np.pad(x, widths, constant_values=args.get("constant_val", 0.0))
    return np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge"}[mode])


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


OPS: dict[str, OpFunction] = {
    "reshape": op_reshape,
    "transpose": lambda a: np.transpose(a["x"], ints(a["perm"])),
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
    "tile": lambda a: np.tile(a["x"], ints(a["reps"])),
    "pad": op_pad,
    "reverse": lambda a: np.flip(a["x"], axis=None if a.get("axes") is None else tuple(ints(a["axes"]))),
    "flatten2d": op_flatten2d,
    "select": lambda a: np.where(a["cond"], a["a"], a["b"]),
    "fill": lambda a: np.full(ints(a["shape"]), a.get("value", 0.0)),
    "range_1d": lambda a: np.arange(a["start"], a["end"], a["step"]),
    "shape": lambda a: np.array(a["x"].shape, dtype=np.int32),
    "band_part": op_band_part,
    "topk": op_topk,
    "argsort": op_argsort,
    "cumsum": op_cumsum,
    "one_hot": op_one_hot,
    "non_zero": lambda a: np.transpose(np.nonzero(a["x"])),
}
