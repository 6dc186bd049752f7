"""The Core ML reference evaluator, op by op, against numpy / torch references.

Each case builds a one-op MIL program with coremltools' Builder, saves it as an ``.mlpackage``,
reads it back with the evaluator and compares with a reference computed independently in
float64 numpy or torch. Every case runs in fp32 and (unless the op is integer-valued) in fp16,
where the reference sees fp16-rounded inputs and the tolerance is a few fp16 ulps. A few cases
convert small torch modules instead, to cover the ops the torch frontend emits for them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import coremltools as ct
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from coremltools.converters.mil.mil import Builder as mb
from coremltools.converters.mil.mil import types

from export.coreml.evaluator import MILEvalError, MILEvaluator, UnsupportedMILOpError
from export.coreml.ops import FAMILIES, MIL_OPS, union_of

pytestmark = pytest.mark.fast


def _save(program, tmp_path, name="case") -> MILEvaluator:
    mlmodel = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18,
                         pass_pipeline=ct.PassPipeline.EMPTY, compute_precision=ct.precision.FLOAT32,
                         skip_model_load=True)
    path = tmp_path / f"{name}.mlpackage"
    mlmodel.save(str(path))
    return MILEvaluator(path)


@dataclass
class Case:
    """One op under test: how to build it with ``mb`` and what it must equal."""

    op: str  # the MIL op type that must appear in the saved program
    shapes: list[tuple[int, ...]]  # input shapes
    build: Callable  # (f, *inputs) -> var; f casts a python/numpy constant to the program's float dtype
    reference: Callable  # (*float64 inputs) -> expected array (or tuple for several outputs)
    domain: str = "normal"  # "normal", "positive" (> 0.5) or "unit" (inside (-0.9, 0.9))
    fp16: bool = True  # also run with an fp16 program
    label: str = ""  # distinguishes cases of the same op
    extra: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.op + (f"-{self.label}" if self.label else "")


def _ref_torch(fn):
    return lambda *xs: fn(*[torch.from_numpy(np.asarray(x)) for x in xs]).numpy()


W3 = np.random.default_rng(1).normal(size=(4, 3, 3, 3)) * 0.3
WD = np.random.default_rng(2).normal(size=(6, 1, 3, 3)) * 0.3
B4 = np.random.default_rng(3).normal(size=(4,))
WT = np.random.default_rng(4).normal(size=(3, 4, 3, 3)) * 0.3
WL = np.random.default_rng(5).normal(size=(5, 8)) * 0.3
G8 = np.random.default_rng(6).normal(size=(8,))
C3 = np.random.default_rng(7).normal(size=(3,))
IDX = np.array([2, 0, 1, 2], dtype=np.int32)


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _bilinear_torch(x, size, align):
    return F.interpolate(torch.from_numpy(x), size=size, mode="bilinear", align_corners=align).numpy()


CASES = [
    # elementwise binary
    Case("add", [(2, 3, 4), (3, 1)], lambda f, x, y: mb.add(x=x, y=y), lambda x, y: x + y),
    Case("sub", [(2, 3, 4), (4,)], lambda f, x, y: mb.sub(x=x, y=y), lambda x, y: x - y),
    Case("mul", [(2, 3, 4), (2, 3, 4)], lambda f, x, y: mb.mul(x=x, y=y), lambda x, y: x * y),
    Case("real_div", [(2, 3, 4), (2, 3, 4)], lambda f, x, y: mb.real_div(x=x, y=y), lambda x, y: x / y,
         domain="positive"),
    Case("pow", [(2, 3, 4)], lambda f, x: mb.pow(x=x, y=f(1.7)), lambda x: x ** 1.7, domain="positive"),
    Case("maximum", [(2, 3, 4), (2, 3, 4)], lambda f, x, y: mb.maximum(x=x, y=y), np.maximum),
    Case("minimum", [(2, 3, 4), (2, 3, 4)], lambda f, x, y: mb.minimum(x=x, y=y), np.minimum),
    Case("floor_div", [(2, 3, 4), (2, 3, 4)], lambda f, x, y: mb.floor_div(x=x, y=y),
         lambda x, y: np.floor(x / y), domain="positive", fp16=False),
    # elementwise unary
    Case("sqrt", [(2, 3, 4)], lambda f, x: mb.sqrt(x=x), np.sqrt, domain="positive"),
    Case("rsqrt", [(2, 3, 4)], lambda f, x: mb.rsqrt(x=x, epsilon=f(1e-3)), lambda x: 1 / np.sqrt(x + 1e-3),
         domain="positive"),
    Case("exp", [(2, 3, 4)], lambda f, x: mb.exp(x=x), np.exp),
    Case("log", [(2, 3, 4)], lambda f, x: mb.log(x=x), np.log, domain="positive"),
    Case("erf", [(2, 3, 4)], lambda f, x: mb.erf(x=x), _ref_torch(torch.erf)),
    Case("tanh", [(2, 3, 4)], lambda f, x: mb.tanh(x=x), np.tanh),
    Case("abs", [(2, 3, 4)], lambda f, x: mb.abs(x=x), np.abs),
    Case("inverse", [(2, 3, 4)], lambda f, x: mb.inverse(x=x), lambda x: 1 / (x + 1e-4), domain="positive"),
    Case("square", [(2, 3, 4)], lambda f, x: mb.square(x=x), np.square),
    Case("sin", [(2, 3, 4)], lambda f, x: mb.sin(x=x), np.sin),
    Case("atanh", [(2, 3, 4)], lambda f, x: mb.atanh(x=x), np.arctanh, domain="unit"),
    Case("floor", [(2, 3, 4)], lambda f, x: mb.floor(x=x), np.floor),
    Case("clip", [(2, 3, 4)], lambda f, x: mb.clip(x=x, alpha=f(-0.5), beta=f(0.7)),
         lambda x: np.clip(x, -0.5, 0.7)),
    # activations
    Case("relu", [(2, 3, 4)], lambda f, x: mb.relu(x=x), lambda x: np.maximum(x, 0)),
    Case("relu6", [(2, 3, 4)], lambda f, x: mb.relu6(x=x),
         lambda x: np.clip(x, 0, 6), extra={"scale": 5.0}),
    Case("sigmoid", [(2, 3, 4)], lambda f, x: mb.sigmoid(x=x), _sigmoid),
    Case("sigmoid_hard", [(2, 3, 4)], lambda f, x: mb.sigmoid_hard(x=x, alpha=f(1 / 6), beta=f(0.5)),
         lambda x: np.clip(x / 6 + 0.5, 0, 1), extra={"scale": 4.0}),
    Case("silu", [(2, 3, 4)], lambda f, x: mb.silu(x=x), lambda x: x * _sigmoid(x)),
    Case("gelu", [(2, 3, 4)], lambda f, x: mb.gelu(x=x, mode="EXACT"), _ref_torch(F.gelu), label="exact"),
    Case("gelu", [(2, 3, 4)], lambda f, x: mb.gelu(x=x, mode="TANH_APPROXIMATION"), _gelu_tanh, label="tanh"),
    Case("gelu", [(2, 3, 4)], lambda f, x: mb.gelu(x=x, mode="SIGMOID_APPROXIMATION"),
         lambda x: x * _sigmoid(1.702 * x), label="sigmoid"),
    Case("softmax", [(2, 3, 4)], lambda f, x: mb.softmax(x=x, axis=1), _ref_torch(lambda x: F.softmax(x, 1))),
    Case("softplus", [(2, 3, 4)], lambda f, x: mb.softplus(x=x), _ref_torch(F.softplus)),
    Case("leaky_relu", [(2, 3, 4)], lambda f, x: mb.leaky_relu(x=x, alpha=f(0.1)),
         lambda x: np.where(x >= 0, x, 0.1 * x)),
    Case("elu", [(2, 3, 4)], lambda f, x: mb.elu(x=x, alpha=f(0.5)), _ref_torch(lambda x: F.elu(x, 0.5))),
    Case("prelu", [(2, 3, 4, 4)], lambda f, x: mb.prelu(x=x, alpha=f(np.abs(C3))),
         lambda x: np.where(x > 0, x, np.abs(C3).reshape(1, 3, 1, 1) * x)),
    # convolution and products
    Case("conv", [(1, 3, 9, 9)], lambda f, x: mb.conv(x=x, weight=f(W3), bias=f(B4), strides=[2, 2],
                                                       pad_type="custom", pad=[1, 0, 2, 1]),
         lambda x: F.conv2d(F.pad(torch.from_numpy(x), [2, 1, 1, 0]), torch.from_numpy(W3),
                            torch.from_numpy(B4), stride=2).numpy(), label="custom"),
    Case("conv", [(1, 3, 9, 10)], lambda f, x: mb.conv(x=x, weight=f(W3), strides=[2, 3], pad_type="same"),
         lambda x: F.conv2d(F.pad(torch.from_numpy(x), [1, 1, 1, 1]), torch.from_numpy(W3),
                            stride=(2, 3)).numpy(), label="same"),
    Case("conv", [(1, 6, 8, 8)], lambda f, x: mb.conv(x=x, weight=f(WD), groups=6, dilations=[2, 2],
                                                       pad_type="valid"),
         lambda x: F.conv2d(torch.from_numpy(x), torch.from_numpy(WD), groups=6, dilation=2).numpy(),
         label="depthwise_dilated"),
    Case("conv_transpose", [(1, 3, 5, 5)],
         lambda f, x: mb.conv_transpose(x=x, weight=f(WT), strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1]),
         lambda x: F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(WT), stride=2, padding=1).numpy()),
    Case("linear", [(2, 8)], lambda f, x: mb.linear(x=x, weight=f(WL), bias=f(C3.repeat(2)[:5])),
         lambda x: x @ WL.T + C3.repeat(2)[:5]),
    Case("matmul", [(2, 4, 3), (2, 5, 3)], lambda f, x, y: mb.matmul(x=x, y=y, transpose_y=True),
         lambda x, y: x @ np.swapaxes(y, -1, -2)),
    Case("einsum", [(2, 3, 4, 5), (2, 5, 4, 6)], lambda f, x, y: mb.einsum(values=(x, y), equation="nchw,nwhu->nchu"),
         lambda x, y: np.einsum("nchw,nwhu->nchu", x, y)),
    Case("scaled_dot_product_attention", [(1, 2, 4, 8), (1, 2, 6, 8), (1, 2, 6, 8)],
         lambda f, q, k, v: mb.scaled_dot_product_attention(query=q, key=k, value=v),
         _ref_torch(F.scaled_dot_product_attention)),
    # normalization
    Case("batch_norm", [(2, 3, 4, 4)], lambda f, x: mb.batch_norm(
        x=x, mean=f(C3), variance=f(np.abs(C3) + 0.5), gamma=f(C3 * 2), beta=f(-C3), epsilon=f(1e-3)),
        lambda x: (x - C3.reshape(1, 3, 1, 1)) / np.sqrt(np.abs(C3).reshape(1, 3, 1, 1) + 0.5 + 1e-3)
        * (2 * C3).reshape(1, 3, 1, 1) - C3.reshape(1, 3, 1, 1)),
    Case("layer_norm", [(2, 5, 8)], lambda f, x: mb.layer_norm(x=x, axes=[-1], gamma=f(G8), beta=f(-G8),
                                                               epsilon=f(1e-5)),
         lambda x: F.layer_norm(torch.from_numpy(x), (8,), torch.from_numpy(G8), torch.from_numpy(-G8)).numpy()),
    Case("instance_norm", [(2, 3, 4, 5)], lambda f, x: mb.instance_norm(x=x, gamma=f(C3), beta=f(C3), epsilon=f(1e-5)),
         lambda x: F.instance_norm(torch.from_numpy(x), weight=torch.from_numpy(C3), bias=torch.from_numpy(C3)).numpy()),
    Case("l2_norm", [(2, 3, 4, 5)], lambda f, x: mb.l2_norm(x=x, epsilon=f(1e-6)),
         lambda x: x / np.sqrt(np.sum(x ** 2, axis=(1, 2, 3), keepdims=True) + 1e-6)),
    # pooling
    Case("avg_pool", [(1, 2, 7, 7)], lambda f, x: mb.avg_pool(
        x=x, kernel_sizes=[3, 3], strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1],
        exclude_padding_from_average=False),
        lambda x: F.avg_pool2d(torch.from_numpy(x), 3, 2, 1, count_include_pad=True).numpy(), label="include_pad"),
    Case("avg_pool", [(1, 2, 7, 7)], lambda f, x: mb.avg_pool(
        x=x, kernel_sizes=[3, 3], strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1],
        exclude_padding_from_average=True),
        lambda x: F.avg_pool2d(torch.from_numpy(x), 3, 2, 1, count_include_pad=False).numpy(), label="exclude_pad"),
    Case("avg_pool", [(1, 2, 8, 8)], lambda f, x: mb.avg_pool(
        x=x, kernel_sizes=[3, 3], strides=[2, 2], pad_type="valid", ceil_mode=True),
        lambda x: F.avg_pool2d(torch.from_numpy(x), 3, 2, ceil_mode=True).numpy(), label="ceil"),
    Case("max_pool", [(1, 2, 7, 7)], lambda f, x: mb.max_pool(
        x=x, kernel_sizes=[3, 3], strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1]),
        lambda x: F.max_pool2d(torch.from_numpy(x), 3, 2, 1).numpy()),
    # reductions
    Case("reduce_mean", [(2, 3, 4, 5)], lambda f, x: mb.reduce_mean(x=x, axes=[2, 3], keep_dims=True),
         lambda x: x.mean(axis=(2, 3), keepdims=True)),
    Case("reduce_sum", [(2, 3, 4)], lambda f, x: mb.reduce_sum(x=x, axes=[1], keep_dims=False),
         lambda x: x.sum(axis=1)),
    Case("reduce_max", [(2, 3, 4)], lambda f, x: mb.reduce_max(x=x, axes=[-1]), lambda x: x.max(axis=-1)),
    Case("reduce_min", [(2, 3, 4)], lambda f, x: mb.reduce_min(x=x), lambda x: x.min()),
    Case("reduce_l2_norm", [(2, 3, 4)], lambda f, x: mb.reduce_l2_norm(x=x, axes=[1, 2]),
         lambda x: np.sqrt((x ** 2).sum(axis=(1, 2)))),
    Case("reduce_argmax", [(2, 3, 4)], lambda f, x: mb.reduce_argmax(x=x, axis=1), lambda x: x.argmax(axis=1)),
    # shape and layout
    Case("reshape", [(2, 3, 4)], lambda f, x: mb.reshape(x=x, shape=[4, -1]), lambda x: x.reshape(4, -1)),
    Case("transpose", [(2, 3, 4)], lambda f, x: mb.transpose(x=x, perm=[2, 0, 1]), lambda x: x.transpose(2, 0, 1)),
    Case("expand_dims", [(2, 3)], lambda f, x: mb.expand_dims(x=x, axes=[0, -1]), lambda x: x[None, :, :, None]),
    Case("squeeze", [(2, 1, 3, 1)], lambda f, x: mb.squeeze(x=x, axes=[1]), lambda x: x[:, 0]),
    Case("concat", [(2, 3), (2, 4)], lambda f, x, y: mb.concat(values=(x, y), axis=1),
         lambda x, y: np.concatenate([x, y], 1)),
    Case("concat", [(2, 3), (2, 3)], lambda f, x, y: mb.concat(values=(x, y), axis=1, interleave=True),
         lambda x, y: np.stack([x, y], 2).reshape(2, 6), label="interleave"),
    Case("split", [(2, 7)], lambda f, x: mb.split(x=x, split_sizes=[3, 4], axis=1),
         lambda x: (x[:, :3], x[:, 3:])),
    Case("stack", [(2, 3), (2, 3)], lambda f, x, y: mb.stack(values=(x, y), axis=1), lambda x, y: np.stack([x, y], 1)),
    Case("slice_by_index", [(4, 6, 5)], lambda f, x: mb.slice_by_index(
        x=x, begin=[1, 0, 4], end=[4, 6, 0], stride=[2, 1, 1], end_mask=[False, True, False],
        squeeze_mask=[False, False, True]), lambda x: x[1:4:2, :, 4]),
    Case("slice_by_size", [(4, 6)], lambda f, x: mb.slice_by_size(x=x, begin=[1, 2], size=[2, -1]),
         lambda x: x[1:3, 2:]),
    Case("gather", [(3, 5)], lambda f, x: mb.gather(x=x, indices=IDX, axis=0), lambda x: x[IDX]),
    Case("gather_along_axis", [(3, 4)], lambda f, x: mb.gather_along_axis(
        x=x, indices=np.array([[0, 3, 1, 1]] * 3, np.int32), axis=1),
        lambda x: np.take_along_axis(x, np.array([[0, 3, 1, 1]] * 3), 1)),
    Case("tile", [(2, 3)], lambda f, x: mb.tile(x=x, reps=[2, 1]), lambda x: np.tile(x, (2, 1))),
    Case("pad", [(1, 2, 4, 4)], lambda f, x: mb.pad(x=x, pad=[1, 2, 0, 1], mode="reflect", constant_val=f(0.0)),
         lambda x: np.pad(x, [(0, 0), (0, 0), (1, 2), (0, 1)], mode="reflect"), label="reflect"),
    Case("pad", [(1, 2, 4, 4)], lambda f, x: mb.pad(x=x, pad=[1, 2, 0, 1], mode="constant", constant_val=f(0.5)),
         lambda x: np.pad(x, [(0, 0), (0, 0), (1, 2), (0, 1)], constant_values=0.5), label="constant"),
    Case("upsample_nearest_neighbor", [(1, 2, 3, 4)], lambda f, x: mb.upsample_nearest_neighbor(
        x=x, scale_factor_height=2, scale_factor_width=3),
        lambda x: F.interpolate(torch.from_numpy(x), scale_factor=(2, 3), mode="nearest").numpy()),
    Case("upsample_bilinear", [(1, 2, 3, 4)], lambda f, x: mb.upsample_bilinear(
        x=x, scale_factor_height=2.0, scale_factor_width=2.0, align_corners=False),
        lambda x: _bilinear_torch(x, (6, 8), False), label="half_pixel"),
    Case("upsample_bilinear", [(1, 2, 3, 4)], lambda f, x: mb.upsample_bilinear(
        x=x, scale_factor_height=2.0, scale_factor_width=2.0, align_corners=True),
        lambda x: _bilinear_torch(x, (6, 8), True), label="align_corners"),
    Case("resize_bilinear", [(1, 2, 3, 4)], lambda f, x: mb.resize_bilinear(
        x=x, target_size_height=5, target_size_width=7, sampling_mode="UNALIGN_CORNERS"),
        lambda x: _bilinear_torch(x, (5, 7), False)),
    Case("pixel_shuffle", [(1, 8, 3, 3)], lambda f, x: mb.pixel_shuffle(x=x, upscale_factor=2),
         _ref_torch(lambda x: F.pixel_shuffle(x, 2))),
    Case("space_to_depth", [(1, 2, 4, 4)], lambda f, x: mb.space_to_depth(x=x, block_size=2),
         # TF order: output channel = (row_offset * 2 + col_offset) * C + c
         lambda x: np.concatenate([x[:, :, r::2, c::2] for r in range(2) for c in range(2)], axis=1)),
    Case("select", [(2, 3), (2, 3)], lambda f, x, y: mb.select(cond=mb.greater(x=x, y=y), a=x, b=y),
         np.maximum),
    Case("fill", [(2, 3)], lambda f, x: mb.add(x=x, y=mb.fill(shape=[2, 3], value=f(1.5))), lambda x: x + 1.5),
    Case("range_1d", [(5,)], lambda f, x: mb.range_1d(start=1, end=11, step=2),
         lambda x: np.arange(1, 11, 2), fp16=False),
    Case("shape", [(2, 3, 4)], lambda f, x: mb.shape(x=x), lambda x: np.array(x.shape), fp16=False),
    Case("band_part", [(4, 5)], lambda f, x: mb.band_part(x=x, lower=1, upper=0),
         lambda x: np.tril(x) - np.tril(x, -2)),
    Case("topk", [(3, 6)], lambda f, x: mb.topk(x=x, k=2, axis=-1),
         lambda x: (-np.sort(-x, axis=-1)[:, :2], np.argsort(-x, axis=-1)[:, :2]), fp16=False),
    Case("argsort", [(3, 6)], lambda f, x: mb.argsort(x=x, axis=1, ascending=True),
         lambda x: np.argsort(x, axis=1), fp16=False),
    Case("cumsum", [(3, 6)], lambda f, x: mb.cumsum(x=x, axis=1, exclusive=True, reverse=True),
         lambda x: np.flip(np.cumsum(np.flip(x, 1), 1), 1) - x),
    # less common activations, reductions and layout ops (every function in the table is exercised)
    Case("thresholded_relu", [(2, 3, 4)], lambda f, x: mb.thresholded_relu(x=x, alpha=f(0.3)),
         lambda x: np.where(x > 0.3, x, 0)),
    Case("clamped_relu", [(2, 3, 4)], lambda f, x: mb.clamped_relu(x=x, alpha=f(0.1), beta=f(0.8)),
         lambda x: np.minimum(np.where(x >= 0, x, 0.1 * x), 0.8)),
    Case("softplus_parametric", [(1, 3, 2, 2)], lambda f, x: mb.softplus_parametric(
        x=x, alpha=f(np.abs(C3) + 0.5), beta=f(np.abs(C3) + 0.2)),
        lambda x: (np.abs(C3) + 0.5).reshape(1, 3, 1, 1) * np.log1p(np.exp((np.abs(C3) + 0.2).reshape(1, 3, 1, 1) * x))),
    Case("scaled_tanh", [(2, 3)], lambda f, x: mb.scaled_tanh(x=x, alpha=f(1.5), beta=f(0.5)),
         lambda x: 1.5 * np.tanh(0.5 * x)),
    Case("linear_activation", [(2, 3)], lambda f, x: mb.linear_activation(x=x, alpha=f(2.0), beta=f(-1.0)),
         lambda x: 2 * x - 1),
    Case("softsign", [(2, 3)], lambda f, x: mb.softsign(x=x), lambda x: x / (1 + np.abs(x))),
    Case("local_response_norm", [(1, 5, 3, 3)], lambda f, x: mb.local_response_norm(
        x=x, size=3, alpha=f(0.5), beta=f(0.75), k=f(1.0)),
        _ref_torch(lambda x: F.local_response_norm(x, 3, alpha=0.5, beta=0.75, k=1.0))),
    Case("l2_pool", [(1, 2, 6, 6)], lambda f, x: mb.l2_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid"),
         _ref_torch(lambda x: F.lp_pool2d(x, 2, 2, 2))),
    Case("reduce_prod", [(2, 3, 4)], lambda f, x: mb.reduce_prod(x=x, axes=[2]), lambda x: x.prod(axis=2),
         domain="positive"),
    Case("reduce_log_sum_exp", [(2, 3, 4)], lambda f, x: mb.reduce_log_sum_exp(x=x, axes=[0, 2], keep_dims=True),
         lambda x: np.log(np.exp(x).sum(axis=(0, 2), keepdims=True))),
    Case("reduce_sum_square", [(2, 3, 4)], lambda f, x: mb.reduce_sum_square(x=x, axes=[1]),
         lambda x: (x ** 2).sum(axis=1)),
    Case("reduce_l1_norm", [(2, 3, 4)], lambda f, x: mb.reduce_l1_norm(x=x, axes=[-1]), lambda x: np.abs(x).sum(-1)),
    Case("reduce_argmin", [(2, 3, 4)], lambda f, x: mb.reduce_argmin(x=x, axis=-1, keep_dims=True),
         lambda x: x.argmin(axis=-1)[..., None]),
    Case("gather_nd", [(3, 4, 2)], lambda f, x: mb.gather_nd(x=x, indices=np.array([[0, 1], [2, 3]], np.int32)),
         lambda x: x[[0, 2], [1, 3]]),
    Case("crop", [(1, 2, 6, 7)], lambda f, x: mb.crop(x=x, crop_height=[1, 2], crop_width=[0, 3]),
         lambda x: x[..., 1:4, 0:4]),
    Case("resize_nearest_neighbor", [(1, 2, 3, 4)], lambda f, x: mb.resize_nearest_neighbor(
        x=x, target_size_height=5, target_size_width=6),
        lambda x: F.interpolate(torch.from_numpy(x), size=(5, 6), mode="nearest").numpy()),
    Case("depth_to_space", [(1, 8, 2, 3)], lambda f, x: mb.depth_to_space(x=x, block_size=2),
         # TF (DCR) order, the inverse of space_to_depth
         lambda x: x.reshape(1, 2, 2, 2, 2, 3).transpose(0, 3, 4, 1, 5, 2).reshape(1, 2, 4, 6)),
    Case("pixel_unshuffle", [(1, 2, 4, 6)], lambda f, x: mb.pixel_unshuffle(x=x, downscale_factor=np.uint32(2)),
         _ref_torch(lambda x: F.pixel_unshuffle(x, 2))),
    Case("one_hot", [(4,)], lambda f, x: mb.one_hot(indices=IDX, one_hot_vector_size=3, axis=0),
         lambda x: np.eye(3, dtype=np.int32)[IDX].T, fp16=False),
    Case("flatten2d", [(2, 3, 4)], lambda f, x: mb.flatten2d(x=x, axis=2), lambda x: x.reshape(6, 4)),
    Case("reverse", [(2, 3, 4)], lambda f, x: mb.reverse(x=x, axes=[0, 2]), lambda x: x[::-1, :, ::-1]),
    Case("mod", [(2, 3), (2, 3)], lambda f, x, y: mb.mod(x=x, y=y), np.mod, domain="positive", fp16=False),
    Case("round", [(2, 3)], lambda f, x: mb.round(x=mb.mul(x=x, y=f(3.0))), lambda x: np.round(x * 3)),
    Case("sign", [(2, 3)], lambda f, x: mb.sign(x=x), np.sign),
    Case("logical_and", [(2, 3), (2, 3)], lambda f, x, y: mb.select(
        cond=mb.logical_and(x=mb.greater(x=x, y=f(0.0)), y=mb.less_equal(x=y, y=f(0.0))), a=x, b=y),
        lambda x, y: np.where((x > 0) & (y <= 0), x, y)),
    Case("conv", [(1, 3, 11)], lambda f, x: mb.conv(x=x, weight=f(W3[:, :, 0]), pad_type="same_lower", strides=[2]),
         lambda x: F.conv1d(F.pad(torch.from_numpy(x), [1, 1]), torch.from_numpy(W3[:, :, 0]), stride=2).numpy(),
         label="1d"),
    Case("cast", [(2, 3)], lambda f, x: mb.cast(x=mb.cast(x=x, dtype="fp16"), dtype="fp32"),
         lambda x: x.astype(np.float16).astype(np.float64), fp16=False),
]


def _inputs(case: Case, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = case.extra.get("scale", 1.0)
    arrays = []
    for shape in case.shapes:
        if case.domain == "positive":
            arrays.append(np.abs(rng.normal(size=shape)) + 0.5)
        elif case.domain == "unit":
            arrays.append(rng.uniform(-0.9, 0.9, size=shape))
        else:
            arrays.append(rng.normal(size=shape) * scale)
    return arrays


# fp16 only where the op is float-valued: integer-valued and dtype cases are fp32 alone
PRECISION_CASES = [pytest.param(case, precision, id=f"{case.id}-{precision}")
                   for case in CASES for precision in (("fp32", "fp16") if case.fp16 else ("fp32",))]


@pytest.mark.parametrize("case, precision", PRECISION_CASES)
def test_op_matches_reference(case: Case, precision: str, tmp_path):
    dtype, mil_dtype = (np.float32, types.fp32) if precision == "fp32" else (np.float16, types.fp16)
    cast = lambda value: np.asarray(value).astype(dtype) if np.ndim(value) else dtype(value)  # noqa: E731

    body = {  # mb.program reads the argument count off the function, so no *args here
        1: lambda x: case.build(cast, x),
        2: lambda x, y: case.build(cast, x, y),
        3: lambda x, y, z: case.build(cast, x, y, z),
    }[len(case.shapes)]
    program = mb.program(input_specs=[mb.TensorSpec(shape=s, dtype=mil_dtype) for s in case.shapes],
                         opset_version=ct.target.iOS18)(body)
    evaluator = _save(program, tmp_path)
    assert case.op in evaluator.op_types, f"{case.op} was rewritten away: {evaluator.op_types}"
    inputs = _inputs(case)
    feeds = {name: x.astype(dtype) for name, x in zip(evaluator.input_names, inputs)}
    outputs = evaluator.run(feeds)
    expected = case.reference(*[x.astype(dtype).astype(np.float64) for x in inputs])
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(outputs) == len(expected)
    for name, want in zip(evaluator.output_names, expected):
        got = outputs[name]
        want = np.asarray(want)
        assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
        if np.issubdtype(got.dtype, np.integer) or got.dtype == np.bool_:
            np.testing.assert_array_equal(got, want)
            continue
        assert got.dtype == dtype, f"{name}: dtype {got.dtype}, the program holds {dtype.__name__}"
        scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
        # fp32: float32 arithmetic vs a float64 reference. fp16: the result is rounded to fp16
        # (half an ulp, 2**-11 relative), and each fp16-rounded intermediate adds its share.
        tolerance = 2e-5 * scale if precision == "fp32" else 4e-3 * scale
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=0, atol=tolerance,
                                   err_msg=f"{case.id} at {precision}")


def test_op_table_is_the_union_of_its_families():
    """Each op type has one function, in one family module; none is lost or shadowed in the union."""
    counted = sum(len(family.OPS) for family in FAMILIES)
    assert len(MIL_OPS) == counted
    for family in FAMILIES:
        assert all(MIL_OPS[op] is function for op, function in family.OPS.items())
    with pytest.raises(RuntimeError, match=r"'relu'.*defined twice"):
        union_of(FAMILIES + (FAMILIES[0],))


def test_fp16_is_emulated_op_by_op(tmp_path):
    """An fp16 chain rounds after every op: equal to a step-by-step float16 reference, not to fp32."""

    @mb.program(input_specs=[mb.TensorSpec(shape=(64,), dtype=types.fp32)], opset_version=ct.target.iOS16)
    def program(x):
        h = mb.cast(x=x, dtype="fp16")
        h = mb.mul(x=h, y=np.float16(1.0 / 3.0))
        h = mb.add(x=h, y=np.float16(1000.0))
        h = mb.sub(x=h, y=np.float16(1000.0))
        return mb.cast(x=h, dtype="fp32")

    evaluator = _save(program, tmp_path)
    assert evaluator.holds_fp16
    x = np.random.default_rng(0).uniform(0.1, 1.0, size=64).astype(np.float32)
    got = evaluator.run({"x": x})[evaluator.output_names[0]]
    h = np.float16(x) * np.float16(1.0 / 3.0)
    h = (h.astype(np.float16) + np.float16(1000.0)).astype(np.float16)
    expected = (h - np.float16(1000.0)).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(got, expected)
    exact = x / 3.0
    # near 1000 an fp16 ulp is 0.5: the round trip through 1000 must lose that much precision
    assert np.max(np.abs(got - exact)) > 0.1
    assert np.max(np.abs(got - exact)) <= 0.25 + 1e-3


def test_unknown_op_is_a_clear_error(tmp_path, monkeypatch):
    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3))], opset_version=ct.target.iOS16)
    def program(x):
        return mb.tanh(x=mb.relu(x=x))

    mlmodel = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                         pass_pipeline=ct.PassPipeline.EMPTY, skip_model_load=True)
    path = tmp_path / "unknown.mlpackage"
    mlmodel.save(str(path))
    monkeypatch.delitem(MIL_OPS, "tanh")
    with pytest.raises(UnsupportedMILOpError) as raised:
        MILEvaluator(path)
    assert raised.value.op_type == "tanh"
    assert "'tanh'" in str(raised.value) and raised.value.op_name in str(raised.value)
    assert "MIL_OPS" in str(raised.value)


def test_wrong_shape_from_an_op_is_caught(tmp_path, monkeypatch):
    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3))], opset_version=ct.target.iOS16)
    def program(x):
        return mb.relu(x=x)

    evaluator = _save(program, tmp_path)
    monkeypatch.setitem(MIL_OPS, "relu", lambda args: args["x"].T)
    with pytest.raises(MILEvalError, match=r"relu.*shape \(3, 2\).*\(2, 3\)"):
        evaluator.run({"x": np.ones((2, 3), np.float32)})


def test_missing_input_and_non_package_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an .mlpackage"):
        MILEvaluator(tmp_path)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3))], opset_version=ct.target.iOS16)
    def program(x):
        return mb.relu(x=x)

    with pytest.raises(ValueError, match="missing input"):
        _save(program, tmp_path).run({})


class _Block(torch.nn.Module):
    """Ops the torch frontend lowers in ways the one-op cases do not show."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.norm = torch.nn.LayerNorm(8)
        self.up = torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.pool = torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
        self.attention = torch.nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        x = F.hardswish(self.conv(x))
        x = self.pool(self.up(x))
        tokens = self.norm(x.flatten(2).transpose(1, 2))
        tokens = tokens + self.attention(tokens, tokens, tokens, need_weights=False)[0]
        x = tokens.transpose(1, 2).reshape(x.shape)
        x = F.pixel_shuffle(F.hardsigmoid(x), 2)
        return F.adaptive_avg_pool2d(x, 1).flatten(1) + x.amax(dim=(2, 3))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_converted_torch_block(precision, tmp_path):
    model = _Block().eval()
    x = torch.randn(1, 3, 12, 12)
    exported = torch.export.export(model, (x,)).run_decompositions({})
    mlmodel = ct.convert(exported, inputs=[ct.TensorType(name="x", shape=x.shape, dtype=np.float32)],
                         outputs=[ct.TensorType(name="y", dtype=np.float32)], convert_to="mlprogram",
                         minimum_deployment_target=ct.target.iOS16, skip_model_load=True,
                         compute_precision=getattr(ct.precision, "FLOAT32" if precision == "fp32" else "FLOAT16"))
    path = tmp_path / "block.mlpackage"
    mlmodel.save(str(path))
    evaluator = MILEvaluator(path)
    assert evaluator.holds_fp16 == (precision == "fp16")
    got = evaluator.run({"x": x.numpy()})["y"]
    with torch.no_grad():
        want = model(x).numpy()
    error = float(np.max(np.abs(got - want)))
    bound = (1e-5 if precision == "fp32" else 1e-2) * max(1.0, float(np.max(np.abs(want))))
    assert error <= bound, f"max abs error {error:.3g} > {bound:.3g}; ops {evaluator.op_types}"
