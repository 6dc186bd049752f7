"""Linear algebra ops of the reference evaluator: linear, matmul, einsum, attention."""
from __future__ import annotations

import numpy as np

from export.coreml.ops.common import Args, OpFunction, softmax


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
    return np.matmul(softmax(scores, -1), value)


OPS: dict[str, OpFunction] = {
    "linear": op_linear,
    "matmul": op_matmul,
    "einsum": op_einsum,
    "scaled_dot_product_attention": op_scaled_dot_product_attention,
}
