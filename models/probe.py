"""Probe weights: a seeded initialization under which every layer of a model reaches its output.

The parity gate (``export/parity.py``) can only catch a conversion error in a layer whose effect
shows in the logits. A fresh model hides many: zero-initialised last convs (RepViT's residual
FFN), layer scales of 1e-6 (ConvNeXt, EdgeNeXt), BatchNorm at identity statistics, and heads
whose logits barely depend on the image (mobilevit, mobilenet, efficientnet: the input-dependent
share of the logits is ~1e-5 with their constructors' init). ``probe_weights`` rewrites a copy
of the model so that none of that is true:

- conv and linear weights ~ N(0, 1/fan_in), biases ~ N(0, 0.1^2): activations keep their scale;
- BatchNorm affine terms ``|weight| ~ U(0.5, 1)`` (random sign), ``bias ~ N(0, 0.2^2)``, and
  running statistics taken from the layer's actual input on seeded images drawn as the gate draws its
  inputs (uniform pixels through the model's mean/std, at its input size), then moved off it
  (``mean + 0.2 * std * N(0, 1)``, ``var * U(0.5, 2)``): far from identity, so a fold that drops a
  term shows, yet activations stay of order one (no fp16 overflow); a quarter of the channels
  entering each BatchNorm are made weak (variance of the order of ``eps``), so ``eps`` matters.
  A pre-norm BatchNorm (its input a residual stream, a sum of layers' outputs: EdgeViT) gets its weak
  channels in the stream: every layer that writes into it has the same quarter of its output
  channels scaled down. A BatchNorm gain under 1 keeps deep nets out of the regime where fp32 rounding compounds layer
  after layer: with ``U(0.5, 1.5)`` repvit_m2_3's fp32 and fp64 logits differed by 1.1e-4 of their
  spread (above the fp32 gate's 1e-4), with ``U(0.5, 1)`` by 5e-5;
- half the LayerNorms fed directly by a conv or linear layer get that layer scaled so their input
  variance is ``4 x eps``: a LayerNorm whose ``eps`` changed shows;
- LayerNorm / GroupNorm affine ``weight ~ U(0.5, 1.5)``, ``bias ~ N(0, 0.1^2)``;
- layer scales (``gamma``, ``gamma_*``) ``~ U(0.1, 1)``; attention temperatures ``~ U(0.5, 1.5)``;
  position embeddings, class tokens and bias tables ``~ N(0, 0.5^2)``.

The same (model, seed) gives the same bytes. ``name_seed`` derives a seed from a model name, so an
export without ``--weights`` can be rebuilt from its manifest (``python -m export verify``).
"""
from __future__ import annotations

import copy
import hashlib
import math

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from models.registry import create_model, model_spec
from models.spec import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["PROBE_PREFIX", "name_seed", "probe_model", "probe_weights"]

PROBE_PREFIX = "probe:"  # how a manifest names probe weights as its weights: "probe:<seed>"

_CALIBRATION_BATCH = 4
LAYER_NORM_VAR_OVER_EPS = 4.0  # half the LayerNorms get inputs of variance 4 x eps: a 10x eps moves them ~40%
WEAK_CHANNEL_SCALE = 3e-3  # a weak channel's variance: ~1e-5 of the others', the order of BatchNorm eps
_NORMS = (nn.LayerNorm, nn.GroupNorm)
BATCH_NORM_GAIN = (0.5, 1.0)  # |weight| of a BatchNorm: under 1, so a deep net's rounding does not compound (see above)


def name_seed(name: str) -> int:
    """A seed from a model name: the first 4 bytes of its sha256 (stable across runs and machines)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


def _uniform(generator: torch.Generator, shape, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator)


def _signed(generator: torch.Generator, values: torch.Tensor) -> torch.Tensor:
    sign = torch.where(torch.rand(values.shape, generator=generator) < 0.5, -1.0, 1.0)
    return values * sign


def _init_module(module: nn.Module, generator: torch.Generator) -> None:
    """Seeded probe values for one module's own parameters (not its children's)."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
        weight = module.weight
        fan_in = weight[0].numel()
        weight.copy_(torch.randn(weight.shape, generator=generator) / math.sqrt(fan_in))
        if module.bias is not None:
            module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
        return
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        if module.affine:
            module.weight.copy_(_signed(generator, _uniform(generator, module.weight.shape, *BATCH_NORM_GAIN)))
            module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.2)
        return
    if isinstance(module, _NORMS):
        if getattr(module, "weight", None) is not None:
            module.weight.copy_(_uniform(generator, module.weight.shape, 0.5, 1.5))
        if getattr(module, "bias", None) is not None:
            module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
        return
    for name, parameter in module.named_parameters(recurse=False):
        if name.startswith("gamma") or "layer_scale" in name:
            parameter.copy_(_uniform(generator, parameter.shape, 0.1, 1.0))
        elif name == "temperature":
            parameter.copy_(_uniform(generator, parameter.shape, 0.5, 1.5))
        else:  # position embeddings, class tokens, relative position bias tables
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)


def _calibrate_norms(model: nn.Module, generator: torch.Generator, images: torch.Tensor) -> None:
    """Running statistics from each BatchNorm's actual input (in eval mode, in execution order), moved off it;
    inputs of order ``eps`` for half the LayerNorms.

    A conv or linear layer that feeds a BatchNorm directly gets a quarter of its output channels scaled
    by ``WEAK_CHANNEL_SCALE``, so those channels' variance is of the order of the BatchNorm's ``eps``:
    a fold that forgets ``eps`` (or misplaces it) moves them by ~40% instead of ~1e-5.
    """
    handles: dict[int, torch.utils.hooks.RemovableHandle] = {}
    last: dict[str, object] = {}  # the latest conv/linear output, and the layer that produced it

    def after_layer(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        last["output"], last["layer"] = output, module

    def before_bn(module: nn.modules.batchnorm._BatchNorm, args: tuple):
        (x,) = args[:1]
        replaced = None
        layer = last.get("layer")
        if last.get("output") is x and layer is not None and layer.weight.shape[0] == module.num_features:
            weak = torch.rand(module.num_features, generator=generator) < 0.25
            factor = torch.where(weak, WEAK_CHANNEL_SCALE, 1.0)
            _scale_out_channels(layer, factor)
            shape = [1, -1] + [1] * (x.dim() - 2)
            x = x * factor.reshape(shape).to(x.dtype)  # what the layer gives now
            replaced = (x, *args[1:])
        dims = [d for d in range(x.dim()) if d != 1]
        mean = x.detach().double().mean(dim=dims)
        var = x.detach().double().var(dim=dims, unbiased=False).clamp_min(1e-12)
        shift = torch.randn(mean.shape, generator=generator, dtype=torch.float64) * 0.2 * var.sqrt()
        module.running_mean.copy_(mean + shift)
        module.running_var.copy_(var * _uniform(generator, var.shape, 0.5, 2.0).double())
        module.num_batches_tracked.fill_(1)  # the statistics are set on purpose: not "untrained"
        handles.pop(id(module)).remove()  # once: a module run twice keeps its first statistics
        return replaced

    def before_layer_norm(module: nn.LayerNorm, args: tuple):
        (x,) = args[:1]
        layer = last.get("layer")
        if last.get("output") is not x or layer is None or torch.rand(1, generator=generator).item() < 0.5:
            return None
        dims = tuple(range(x.dim() - len(module.normalized_shape), x.dim()))
        if isinstance(module, nn.LayerNorm) and type(module).forward is not nn.LayerNorm.forward:
            dims = (1,)  # a channels-first LayerNorm2d normalizes over dim 1
        var = float(x.detach().double().var(dim=dims, unbiased=False).mean())
        factor = math.sqrt(LAYER_NORM_VAR_OVER_EPS * module.eps / var) if var > 0 else 1.0
        layer.weight.mul_(factor)
        if layer.bias is not None:
            layer.bias.mul_(factor)
        handles.pop(id(module)).remove()
        return (x * factor, *args[1:])

    layer_handles = [m.register_forward_hook(after_layer) for m in model.modules()
                     if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))]
    for module in model.modules():
        if isinstance(module, nn.LayerNorm) and module.eps > 0:
            handles[id(module)] = module.register_forward_pre_hook(before_layer_norm)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            handles[id(module)] = module.register_forward_pre_hook(before_bn)
    try:
        model(images)
    finally:
        for handle in [*handles.values(), *layer_handles]:  # a BatchNorm the forward never reached
            handle.remove()


_ADDS = {torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__}
_VIEWS = {torch.Tensor.transpose, torch.Tensor.permute, torch.Tensor.reshape, torch.Tensor.flatten, torch.Tensor.view,
          torch.Tensor.contiguous, torch.transpose, torch.permute, torch.reshape, torch.flatten}
_WRITERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.LayerNorm)


class _SumRecorder(TorchFunctionMode):
    """Records, for one forward, which tensors are sums or channel-preserving views of which others."""

    def __init__(self):
        super().__init__()
        self.sources: dict[int, tuple[torch.Tensor, ...]] = {}
        self.kept: list[torch.Tensor] = []  # every recorded tensor stays alive: ids are not reused

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if isinstance(result, torch.Tensor) and (func in _ADDS or func in _VIEWS):
            operands = tuple(a for a in (args if func in _ADDS else args[:1]) if isinstance(a, torch.Tensor))
            if all(a is not result for a in operands):
                self.sources[id(result)] = operands
                self.kept += [result, *operands]
        return result


def _stream_writers(x: torch.Tensor, outputs: dict[int, nn.Module], sources: dict[int, tuple]) -> list | None:
    """The layers whose outputs sum (through views) to ``x``; None when some term is not a layer's output."""
    writers, pending, seen = [], [x], set()
    while pending:
        t = pending.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if id(t) in outputs:
            writers.append(outputs[id(t)])
        elif id(t) in sources:
            pending.extend(sources[id(t)])
        else:
            return None
    return writers


def _weaken_streams(model: nn.Module, generator: torch.Generator, image: torch.Tensor) -> None:
    """Weak channels for the pre-norm BatchNorms: those whose input is not a layer's output but a residual
    stream, a sum of layers' outputs. Every layer writing into the stream (a conv, linear or LayerNorm with
    as many output channels as the BatchNorm has) gets one quarter of its output channels scaled by
    ``WEAK_CHANNEL_SCALE``, the same quarter for all BatchNorms reading the same stream; a stream with any
    other kind of term (a layer scale, an in-place add) is left as it is."""
    outputs: dict[int, nn.Module] = {}
    streams: list[tuple[nn.Module, list[nn.Module]]] = []
    recorder = _SumRecorder()

    def after_layer(module, args, output):
        outputs[id(output)] = module
        recorder.kept.append(output)

    def before_bn(module, args):
        (x,) = args[:1]
        if id(x) not in outputs:
            writers = _stream_writers(x, outputs, recorder.sources)
            if writers and all(_channels_out(w) == module.num_features for w in writers):
                streams.append((module, writers))

    handles = [m.register_forward_hook(after_layer) for m in model.modules() if isinstance(m, _WRITERS)]
    handles += [m.register_forward_pre_hook(before_bn) for m in model.modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        with recorder:
            model(image)
    finally:
        for handle in handles:
            handle.remove()
    masks: dict[int, torch.Tensor] = {}  # writer -> its weak channels
    for bn, writers in streams:
        known = [masks[id(w)] for w in writers if id(w) in masks]
        weak = known[0] if known else torch.rand(bn.num_features, generator=generator) < 0.25
        for writer in writers:
            if id(writer) not in masks:
                masks[id(writer)] = weak
                _scale_out_channels(writer, torch.where(weak, WEAK_CHANNEL_SCALE, 1.0))


def _channels_out(layer: nn.Module) -> int:
    if isinstance(layer, nn.LayerNorm):
        shape = layer.normalized_shape
        return shape[0] if len(shape) == 1 and layer.weight is not None else -1
    return layer.weight.shape[0]


def _scale_out_channels(layer: nn.Module, factor: torch.Tensor) -> None:
    """Multiply output channel i of a conv, linear or (affine) LayerNorm by ``factor[i]``."""
    weight = layer.weight
    weight.mul_(factor.reshape(-1, *([1] * (weight.dim() - 1))).to(weight.dtype))
    if layer.bias is not None:
        layer.bias.mul_(factor.to(layer.bias.dtype))


@torch.no_grad()
def probe_weights(model: nn.Module, seed: int, input_size: tuple[int, int, int] = (3, 224, 224),
                  images: torch.Tensor | None = None, mean: tuple[float, ...] = IMAGENET_MEAN,
                  std: tuple[float, ...] = IMAGENET_STD) -> nn.Module:
    """A copy of ``model`` (eval mode) with seeded probe weights; ``model`` is not touched.

    The BatchNorm statistics are taken on seeded images drawn like the parity gate's inputs
    (``ModelSpec.sample_inputs``: uniform pixels in [0, 1] through ``mean``/``std``) at ``input_size``
    (C, H, W). Statistics taken on other inputs leave deep layers off scale on the gate's: at 64x64 a
    224x224 repvit_m1_5 reaches logits of 4e6, and calibrated on N(0, 1) noise efficientnetv2_s's logits
    grow 4000x on the gate's inputs, where fp32 and fp64 then differ by 7% of their spread.
    ``images``: NCHW inputs to take them on instead.
    """
    probe = copy.deepcopy(model).eval().float()
    generator = torch.Generator().manual_seed(int(seed))
    for module in probe.modules():
        _init_module(module, generator)
    if images is None:
        pixels = torch.rand((_CALIBRATION_BATCH, *input_size), generator=generator)
        images = (pixels - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in probe.modules()):
        _weaken_streams(probe, generator, images[:1])
    if any(isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)) for m in probe.modules()):
        _calibrate_norms(probe, generator, images)
    zero = [name for name, p in probe.named_parameters() if p.numel() > 0 and not torch.any(p != 0)]
    if zero:  # every rule above draws non-zero values; a zero tensor means a rule is missing
        raise AssertionError(f"probe weights left {len(zero)} all-zero parameter(s): {zero[:3]}")
    return probe.to(next(model.parameters()).dtype).eval()


def probe_model(name: str, seed: int | None = None) -> nn.Module:
    """The registered model ``name`` on its probe weights, at its own input size and normalization:
    what ``python -m export NAME`` converts without ``--weights``. ``seed``: default ``name_seed(name)``."""
    spec = model_spec(name)  # UnknownModelError lists the closest names
    seed = name_seed(spec.name) if seed is None else seed
    return probe_weights(create_model(name), seed, spec.input_size, mean=spec.mean, std=spec.std)
