"""Normalization and reduction ops of the reference evaluator."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from export.coreml.ops.common import Args, OpFunction, axes_of, channel_view


def op_batch_norm(args: Args) -> np.ndarray:
    x = args["x"]
    view = lambda v: channel_view(v, x.ndim)  # noqa: E731
    out = (x - view(args["mean"])) / np.sqrt(view(args["variance"]) + args.get("epsilon", 1e-5))
    if args.get("gamma") is not None:
        out = out * view(args["gamma"])
    if args.get("beta") is not None:
        out = out + view(args["beta"])
    return out


def op_layer_norm(args: Args) -> np.ndarray:
    x = args["x"]
    axes = axes_of(args, "axes", x.ndim) or tuple(range(x.ndim))
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
        out = out * channel_view(args["gamma"], x.ndim)
    if args.get("beta") is not None:
        out = out + channel_view(args["beta"], x.ndim)
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


def _reduction(reduce: Callable[[np.ndarray, tuple | None], np.ndarray]) -> OpFunction:
    def run(args: Args) -> np.ndarray:
        x = args["x"]
        axes = axes_of(args, "axes", x.ndim)
        out = reduce(x, axes)
        if args.get("keep_dims", False):
            shape = [1 if axes is None or i in axes else n for i, n in enumerate(x.shape)]
            out = np.reshape(out, shape)
        return out
    return run


def _arg_reduction(pick: Callable) -> OpFunction:
    def run(args: Args) -> np.ndarray:
        axis = int(args.get("axis", -1))
        out = pick(args["x"], axis=axis)
        return np.expand_dims(out, axis) if args.get("keep_dims", False) else out
    return run


OPS: dict[str, OpFunction] = {
    "batch_norm": op_batch_norm,
    "layer_norm": op_layer_norm,
    "instance_norm": op_instance_norm,
    "l2_norm": op_l2_norm,
    "local_response_norm": op_local_response_norm,
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
}
