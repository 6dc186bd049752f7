"""Elementwise ops of the reference evaluator: casts, binary and unary math, activations.

Numpy's broadcasting is MIL's broadcasting, so the binary ops are numpy's ufuncs as they are.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from export.coreml.ops.common import Args, OpFunction, channel_view, erf, sigmoid, softmax


def _binary(fn: Callable) -> OpFunction:
    return lambda args: fn(args["x"], args["y"])


def _unary(fn: Callable) -> OpFunction:
    return lambda args: fn(args["x"])


def _floor_div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.floor_divide(x, y) if np.issubdtype(np.asarray(x).dtype, np.integer) else np.floor(x / y)


def op_gelu(args: Args) -> np.ndarray:
    x, mode = args["x"], str(args.get("mode", "EXACT"))
    if mode == "EXACT":
        return 0.5 * x * (1.0 + erf(x / np.sqrt(np.float32(2.0))))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(np.float32(2.0 / np.pi)) * (x + 0.044715 * x ** 3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * sigmoid(1.702 * x)
    raise ValueError(f"gelu: unknown mode {mode!r}")


def op_softmax(args: Args) -> np.ndarray:
    return softmax(args["x"], int(args.get("axis", -1)))


def op_softplus_parametric(args: Args) -> np.ndarray:
    x = args["x"]
    alpha, beta = channel_view(args["alpha"], x.ndim), channel_view(args["beta"], x.ndim)
    return alpha * np.logaddexp(0.0, beta * x)


def op_prelu(args: Args) -> np.ndarray:
    x = args["x"]
    return np.where(x > 0, x, channel_view(args["alpha"], x.ndim) * x)


def op_clamped_relu(args: Args) -> np.ndarray:
    x = args["x"]
    return np.minimum(np.where(x >= 0, x, args.get("alpha", 0.01) * x), args.get("beta", 1.0))


OPS: dict[str, OpFunction] = {
    # identity-like: the evaluator casts every result to its output's dtype, which is all cast does
    "cast": lambda a: a["x"],
    "identity": lambda a: a["x"],
    # binary
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
    # unary
    "abs": _unary(np.abs),
    "acos": _unary(np.arccos),
    "asin": _unary(np.arcsin),
    "atan": _unary(np.arctan),
    "atanh": _unary(np.arctanh),
    "ceil": _unary(np.ceil),
    "cos": _unary(np.cos),
    "cosh": _unary(np.cosh),
    "erf": _unary(erf),
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
    "sigmoid": _unary(sigmoid),
    "sigmoid_hard": lambda a: np.clip(a.get("alpha", 0.2) * a["x"] + a.get("beta", 0.5), 0, 1),
    "silu": _unary(lambda x: x * sigmoid(x)),
    "gelu": op_gelu,
    "softmax": op_softmax,
    "softplus": _unary(lambda x: np.logaddexp(0.0, x)),
    "softplus_parametric": op_softplus_parametric,
    "softsign": _unary(lambda x: x / (1 + np.abs(x))),
    "leaky_relu": lambda a: np.where(a["x"] >= 0, a["x"], a.get("alpha", 0.01) * a["x"]),
    "elu": lambda a: np.where(a["x"] > 0, a["x"], a.get("alpha", 1.0) * np.expm1(a["x"])),
    "prelu": op_prelu,
    "thresholded_relu": lambda a: np.where(a["x"] >= a.get("alpha", 1.0), a["x"], 0),  # MIL: x >= alpha
    "scaled_tanh": lambda a: a.get("alpha", 1.0) * np.tanh(a.get("beta", 1.0) * a["x"]),
    "linear_activation": lambda a: a.get("alpha", 1.0) * a["x"] + a.get("beta", 0.0),
    "clamped_relu": op_clamped_relu,
}
