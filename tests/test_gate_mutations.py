"""The gate's own test: break the pipeline on purpose and require every format's parity gate to fail.

Each mutation is one way a conversion or a fold goes wrong without an error: a wrong fold
(``reparam.fuse.bn_affine`` or ``identity_kernel`` patched: the eager deploy reference is wrong
too, so only the training-form reference can catch it), or a converter that mangles the model it
is given (the deploy model edited inside ``convert``: swapped or zeroed input, a transposed or
zeroed weight, a conv's padding or dilation, GELU's approximation, a LayerNorm's eps). The model
carries its probe weights (``models.probe``), as the gate's own probe copy would. Every case must
raise ``ParityError``; a mutation that survives is a failing test, or a strict xfail saying why
the precision cannot resolve it (none today: an fp16 artifact's path is gated at fp32 too, and
``test_fp16_gate_catches_below_its_rounding_through_the_fp32_path`` shows which stage catches it).

Fast tier: ONNX (about 3 s a conversion at 64x64) on two families; the other families and the
TFLite and Core ML formats are ``slow``. The table of what each format caught is in docs/export.md.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import models
import reparam.fuse
from export.capabilities import CAPABILITIES
from export.errors import ParityError
from export.formats import HANDLERS
from export.common import export_model
from export_helpers import signal_model  # tests/ is on sys.path

SIZE = (64, 64)


class InputEdit(nn.Module):
    """Runs ``edit`` on the input, then the model: a converter that mangled the input."""

    def __init__(self, model: nn.Module, edit: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.model = model
        self.edit = edit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.edit(x))


class ShiftedConv(nn.Module):
    """A kxk conv whose zero padding moved from (p, p) to (p + 1, p - 1): its output shifted by one pixel."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv
        self.pad = conv.padding[0]
        conv.padding = (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pad
        return self.conv(nn.functional.pad(x, (p + 1, p - 1, p + 1, p - 1)))


def _convs(model: nn.Module, predicate: Callable[[nn.Conv2d], bool]) -> list[tuple[str, nn.Conv2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and predicate(m)]


def _middle(items: list):
    if not items:
        pytest.fail("the representative has no layer this mutation edits; pick another model")
    return items[len(items) // 2]


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _spatial(conv: nn.Conv2d) -> bool:
    """A kxk (k odd, > 1) stride-1 conv padded to keep its size."""
    k = conv.kernel_size[0]
    return (conv.kernel_size == (k, k) and k > 1 and k % 2 == 1 and conv.stride == (1, 1)
            and conv.padding == (k // 2, k // 2) and conv.dilation == (1, 1))


def swap_rgb(model):
    return InputEdit(model, lambda x: x.flip(1))


def zero_input(model):
    return InputEdit(model, lambda x: x * 0.0)


def transpose_weight(model):
    """A kxk kernel with its height and width swapped (the NCHW/NHWC mix-up)."""
    _, conv = _middle(_convs(model, _spatial))
    with torch.no_grad():
        conv.weight.copy_(conv.weight.transpose(2, 3).clone())
    return model


def zero_mid_conv(model):
    _, conv = _middle(_convs(model, lambda c: True))
    with torch.no_grad():
        conv.weight.zero_()
    return model


def shift_padding(model):
    name, conv = _middle(_convs(model, _spatial))
    _set(model, name, ShiftedConv(conv))
    return model


def dilate(model):
    _, conv = _middle(_convs(model, _spatial))
    conv.dilation, conv.padding = (2, 2), (2 * conv.padding[0], 2 * conv.padding[1])
    return model


def gelu_tanh(model):
    gelus = [m for m in model.modules() if isinstance(m, nn.GELU)]
    if not gelus:
        pytest.fail("no nn.GELU in the representative")
    for gelu in gelus:
        gelu.approximate = "tanh"
    return model


def layer_norm_eps(model):
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    if not norms:
        pytest.fail("no LayerNorm in the representative")
    for norm in norms:
        norm.eps *= 10
    return model


def _patch_bn_affine(monkeypatch, change: Callable[[torch.Tensor, torch.Tensor, nn.Module], tuple], only_one: bool):
    original = reparam.fuse.bn_affine
    calls = []  # the test checks that the mutation reached a fold (a model without one proves nothing)

    def patched(bn):
        scale, shift = original(bn)
        calls.append(bn)
        if only_one and len(calls) != 2:  # the second fold: not the stem's, not one at the end
            return scale, shift
        return change(scale, shift, bn)
    monkeypatch.setattr(reparam.fuse, "bn_affine", patched)
    return lambda: len(calls) >= (2 if only_one else 1)  # after the export: whether the mutation was made


def forget_eps(monkeypatch):
    def change(scale, shift, bn):
        std = torch.sqrt(bn.running_var.double())
        weight = bn.weight.double() if bn.weight is not None else torch.ones_like(std)
        bias = bn.bias.double() if bn.bias is not None else torch.zeros_like(std)
        return weight / std, bias - bn.running_mean.double() * weight / std
    return _patch_bn_affine(monkeypatch, change, only_one=False)


def scale_one_bn(monkeypatch):
    return _patch_bn_affine(monkeypatch, lambda scale, shift, bn: (scale * 1.001, shift), only_one=True)


def shift_one_bn(monkeypatch):
    return _patch_bn_affine(monkeypatch, lambda scale, shift, bn: (scale, shift + 1e-4 * scale.abs()), only_one=True)


def drop_identity_branch(monkeypatch):
    import models.repvit
    original = reparam.fuse.identity_kernel
    calls = []

    def dropped(*args, **kwargs):
        calls.append(1)
        return torch.zeros_like(original(*args, **kwargs))
    monkeypatch.setattr(models.repvit, "identity_kernel", dropped)
    return lambda: bool(calls)


@dataclass(frozen=True)
class Mutation:
    name: str  # what broke
    edit_model: Callable | None = None  # deploy model -> mangled model, inside convert
    patch_fold: Callable | None = None  # monkeypatch -> (() -> whether it was applied): a wrong fold
    families: tuple[str, ...] = ()  # only these representatives have the layer it breaks (empty: all)


MUTATIONS = [
    Mutation("drop identity branch (fold)", patch_fold=drop_identity_branch, families=("repvit",)),
    Mutation("scale one folded BN by 1.001", patch_fold=scale_one_bn),
    Mutation("shift one folded BN by 1e-4 x scale", patch_fold=shift_one_bn),
    Mutation("forget eps in every BN fold", patch_fold=forget_eps),
    Mutation("transpose a weight", edit_model=transpose_weight),
    Mutation("swap RGB/BGR", edit_model=swap_rgb),
    Mutation("zero the input", edit_model=zero_input),
    Mutation("zero a mid-network conv", edit_model=zero_mid_conv),
    Mutation("shift a conv's padding", edit_model=shift_padding),
    Mutation("dilate a conv", edit_model=dilate),
    # not edgenext: its representative (the BatchNorm + hardswish variant, which has folds) has neither layer
    Mutation("GELU exact -> tanh", edit_model=gelu_tanh, families=("convnext", "edgevit", "efficientmod")),
    Mutation("LayerNorm eps x10", edit_model=layer_norm_eps, families=("convnext", "edgevit", "efficientmod")),
]

# one model per family that takes 64x64 and has BatchNorm folds or the layer a mutation needs
REPRESENTATIVES = {"repvit": "repvit_m0_6", "convnext": "convnext_atto", "mobilenet": "mobilenetv3_small_100",
                   "edgenext": "edgenext_xx_small_bn_hs", "efficientnet": "efficientnet_b0",
                   "mobilevit": "mobilevit_xxs", "edgevit": "edgevit_xxs", "efficientmod": "efficientmod_xxs"}
FAST = {("onnx", "repvit"), ("onnx", "convnext")}
# representatives with BatchNorm folds (efficientmod_xxs has no BatchNorm: its norms are LayerNorm/GroupNorm)
FOLDS = {"repvit", "mobilenet", "edgenext", "efficientnet", "mobilevit", "edgevit"}

# mutations a precision cannot resolve: (format, precision, model, mutation) -> reason, applied as strict xfails.
# Empty: fp16 and int8 artifacts have their conversion path gated at fp32 as well (export/common.py), which
# resolves what fp16's own rounding hides (one BatchNorm scaled by 1.001, GELU's tanh form).
SURVIVES: dict[tuple[str, str, str, str], str] = {}


class MutatingHandler:
    """A format's handler whose converter receives the deploy model after ``edit``."""

    def __init__(self, handler, edit: Callable[[nn.Module], nn.Module]):
        self.handler = handler
        self.name = handler.name
        self.edit = edit

    def convert(self, model, spec, tmp_path, options):
        self.handler.convert(self.edit(copy.deepcopy(model)).eval(), spec, tmp_path, options)

    def run(self, path, inputs, spec, options):
        return self.handler.run(path, inputs, spec, options)

    def tool_versions(self):
        return self.handler.tool_versions()

    def io_details(self, path):
        return self.handler.io_details(path)

    def input_layout(self, options):
        return self.handler.input_layout(options)

    def temp_paths(self, tmp_path):
        return self.handler.temp_paths(tmp_path)

    def prepare_command_line(self):
        self.handler.prepare_command_line()


def _cases():
    for format_name, precision in (("onnx", "fp32"), ("tflite", "fp32"), ("coreml", "fp32"), ("coreml", "fp16"),
                                   ("tflite", "fp16")):
        for family, model_name in REPRESENTATIVES.items():
            for mutation in MUTATIONS:
                if mutation.families and family not in mutation.families:
                    continue
                if mutation.patch_fold is not None and family not in FOLDS:
                    continue
                if (format_name, family) in FAST and precision == "fp32":
                    marks = []
                elif (format_name, precision) == ("onnx", "fp32"):
                    marks = [pytest.mark.slow]  # every family through ONNX: in `make test`
                else:  # TFLite and Core ML, fp32 and fp16, every family: ~20 s a case, `make test-mutations`
                    marks = [pytest.mark.slow, pytest.mark.mutation_matrix]
                reason = SURVIVES.get((format_name, precision, model_name, mutation.name))
                if reason:
                    marks.append(pytest.mark.xfail(strict=True, reason=reason))
                yield pytest.param(format_name, precision, model_name, mutation, marks=marks,
                                   id=f"{format_name}-{precision}-{model_name}-{mutation.name}")


@pytest.fixture(scope="module")
def probe_models():
    return {}


@pytest.mark.parametrize("format_name,precision,model_name,mutation", list(_cases()))
def test_gate_catches_mutation(format_name, precision, model_name, mutation, monkeypatch, tmp_path, probe_models):
    if model_name not in probe_models:
        probe_models[model_name] = signal_model(model_name)
    model, spec = probe_models[model_name], models.model_spec(model_name)
    handler = HANDLERS[format_name]
    applied = None
    if mutation.patch_fold is not None:
        applied = mutation.patch_fold(monkeypatch)
    else:
        handler = MutatingHandler(handler, mutation.edit_model)
    options = CAPABILITIES[format_name].options_class(precision=precision, input_size=SIZE, quiet=True)
    try:
        export_model(handler, model, spec, tmp_path, options)
        caught = None
    except ParityError as error:
        caught = error
    if applied is not None:  # a fold mutation on a model without that fold changes nothing: a test defect
        assert applied(), f"{mutation.name!r} never reached a fold of {model_name}: remove the family from FOLDS"
    assert caught is not None, f"the {format_name} {precision} gate passed {model_name} with {mutation.name!r}"
    assert not caught.report.passed
    assert not list(tmp_path.rglob("*.onnx")) and not list(tmp_path.rglob("*.tflite"))


@pytest.mark.slow
@pytest.mark.parametrize("format_name", ["coreml", "tflite"])
def test_fp16_gate_catches_below_its_rounding_through_the_fp32_path(format_name, monkeypatch, tmp_path):
    """A 1.001 scale of one folded BatchNorm is within fp16's own error: the fp16 artifact passes its bound,
    and the same conversion path at fp32 (TFLite: the flatbuffer it quantized, no second conversion) fails."""
    model, spec = signal_model("repvit_m0_6"), models.model_spec("repvit_m0_6")
    applied = scale_one_bn(monkeypatch)
    converts = []
    handler = HANDLERS[format_name]
    monkeypatch.setattr(handler, "convert", lambda *args, _convert=handler.convert: converts.append(1) or _convert(*args))
    options = CAPABILITIES[format_name].options_class(precision="fp16", input_size=SIZE, quiet=True)
    with pytest.raises(ParityError) as caught:
        export_model(handler, model, spec, tmp_path, options)
    report = caught.value.report
    assert applied()
    assert all(c.passed for c in report.comparisons)  # fp16 alone cannot tell the mutation from rounding
    fp32 = report.fp32_path
    assert fp32 is not None and fp32.precision == "fp32" and not fp32.passed
    worst = fp32.worst("training")
    assert worst.max_abs_error > worst.bound  # against the training form: the eager deploy model has the bad fold too
    assert len(converts) == (1 if format_name == "tflite" else 2)
    assert "the same path at fp32: FAILED" in report.summary_line()
    assert not list(tmp_path.rglob("*.tflite")) and not list(tmp_path.rglob("*.mlpackage"))
