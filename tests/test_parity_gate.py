"""The parity gate's arithmetic (export/parity.py) and the probe weights (models/probe.py), on plain arrays
and tiny models: bounds on the spread, refused references, zero and non-finite outputs, top-1."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import models
import reparam
from export.common import rounding_gap
from export.parity import (MIN_INPUT_SHARE, TOLERANCES, Tolerance, check_parity, probe_tolerance,
                            reference_signal, scaled_to_model)
from models.probe import name_seed, probe_weights

pytestmark = pytest.mark.fast

FP32 = Tolerance(rtol=1e-4, reason="test")


def _references(offset: float = 0.0, spread: float = 1.0, count: int = 3, classes: int = 10):
    rng = np.random.default_rng(0)
    return [offset + spread * rng.normal(size=(1, classes)) for _ in range(count)]


def test_bound_is_taken_on_the_spread_not_the_offset():
    # a large constant offset shared by every input gives the bound nothing
    references = _references(offset=1000.0, spread=1.0)
    signal = reference_signal(references)
    assert signal.spread < 5 and signal.max_abs > 995
    shifted = [r + 0.01 for r in references]  # 1e-5 of the offset, 1e-2 of the spread
    report = check_parity(shifted, {"deploy": references}, FP32, format_name="onnx", precision="fp32")
    assert not report.passed
    assert report.comparisons[0].bound == pytest.approx(1e-4 * signal.spread)


def test_reference_that_ignores_its_input_is_refused():
    constant = [np.linspace(-1, 1, 10)[None] for _ in range(3)]
    report = check_parity(constant, {"deploy": constant}, FP32, format_name="onnx", precision="fp32")
    assert report.refused == ["deploy"] and not report.passed
    assert "inputs do not reach the output" in report.summary_line()
    # just under the share: refused; the artifact matches exactly, it does not matter
    weak = [c + (MIN_INPUT_SHARE / 2) * np.eye(10)[i:i + 1] for i, c in enumerate(constant)]
    assert not check_parity(weak, {"deploy": weak}, FP32, format_name="onnx", precision="fp32").passed


def test_zero_and_non_finite_outputs_never_give_cosine_one():
    references = _references()
    int8 = Tolerance(rtol=None, min_top1_agreement=0.0, min_cosine=0.5, reason="test")
    for bad in (np.zeros((1, 10)), np.full((1, 10), np.nan), np.full((1, 10), np.inf)):
        report = check_parity([bad] * 3, {"deploy": references}, int8, format_name="tflite", precision="int8_dynamic")
        assert all(c.cosine == 0.0 for c in report.comparisons) and not report.passed
    # a tiny output (fp16 underflow of a broken model) is judged on the bound too
    tiny = [np.full((1, 10), 4e-9)] * 3
    assert not check_parity(tiny, {"deploy": references}, TOLERANCES[("coreml", "fp16")], format_name="coreml",
                            precision="fp16").passed


def test_float_top1_fails_beyond_a_tie():
    # every sample's argmax moves while each error stays within the bound (margin 1.0, bound 0.6)
    references = [np.array([[1.0, 0.0, 0.0]]), np.array([[1.0, 0.0, -1.0]]), np.array([[1.0, 0.0, 1.0 - 1e-9]])]
    outputs = [np.array([[0.5, 0.52, 0.0]]), np.array([[0.5, 0.52, -1.0]]), np.array([[0.5, 0.52, 0.5]])]
    spread = reference_signal(references).spread
    loose = Tolerance(rtol=0.6 / spread, reason="test: the bound alone would pass")
    report = check_parity(outputs, {"deploy": references}, loose, format_name="onnx", precision="fp32")
    assert all(c.max_abs_error <= c.bound for c in report.comparisons)
    assert report.top1_agreement(beyond_ties=True)["deploy"] < 1.0 and not report.passed
    # a tie the bound allows is not a failure
    tied = [np.array([[1.0, 1.0 - 1e-7, 0.0]]), np.array([[0.0, 1.0, 0.0]]), np.array([[0.0, 0.0, 1.0]])]
    moved = [np.array([[1.0 - 1e-7, 1.0, 0.0]]), tied[1], tied[2]]
    assert check_parity(moved, {"deploy": tied}, FP32, format_name="onnx", precision="fp32").passed


def test_int8_top1_excuses_a_close_call_and_nothing_more():
    # references whose spread is 2.0; each sample's top-1 leads its runner-up by 0.05 (2.5% of the spread)
    references = [np.array([[1.0, 0.95, -1.0, 0.0]]), np.array([[-1.0, 0.0, 1.0, 0.95]]),
                  np.array([[0.0, -1.0, 0.95, 1.0]])]
    spread = reference_signal(references).spread
    int8 = TOLERANCES[("tflite", "int8_dynamic")]
    assert int8.rtol is None and 0.05 < int8.tie_rtol * spread < 0.5  # the close call is within the tie margin
    swapped = [r.copy() for r in references]
    for r in swapped:  # each output picks the runner-up: a tie the reference cannot resolve at int8
        order = np.argsort(r[0])
        r[0, order[-1]], r[0, order[-2]] = r[0, order[-2]], r[0, order[-1]]
    report = check_parity(swapped, {"deploy": references}, int8, format_name="tflite", precision="int8_dynamic")
    assert report.top1_agreement()["deploy"] == 0.0 and report.top1_agreement(beyond_ties=True)["deploy"] == 1.0
    assert report.passed
    # picking a class the reference puts a whole spread below its top-1 is a disagreement, cosine or not
    far = [r.copy() for r in references]
    for r in far:
        r[0, np.argmin(r[0])] = 2.0
    report = check_parity(far, {"deploy": references}, Tolerance(rtol=None, min_top1_agreement=0.6, min_cosine=0.0,
                                                                 tie_rtol=int8.tie_rtol, reason="test"),
                          format_name="tflite", precision="int8_dynamic")
    assert report.top1_agreement(beyond_ties=True)["deploy"] == 0.0 and not report.passed


def test_every_float_tolerance_has_no_atol_and_judges_top1():
    for (format_name, precision), tolerance in TOLERANCES.items():
        if tolerance.rtol is not None:
            assert tolerance.atol == 0.0 and tolerance.min_top1_agreement == 1.0, (format_name, precision)
            assert tolerance.rtol <= 5e-2 and tolerance.reason  # fp16 floors: ~2x measured error, not 20x


def test_fp16_bound_grows_with_the_models_rounding_gap_and_never_shrinks():
    fp16 = Tolerance(rtol=1e-2, rounding_gain=2000.0, reason="fp16")
    assert scaled_to_model(fp16, 1e-6) == fp16  # 2e-3 < the floor: the table's rtol
    assert scaled_to_model(fp16, None) == fp16  # no fp64 run: the table's rtol
    steep = scaled_to_model(fp16, 4.2e-5)
    assert steep.rtol == pytest.approx(8.4e-2) and "4.20e-05 x spread from fp64" in steep.reason
    assert scaled_to_model(FP32, 4.2e-5) == FP32  # no gain: fp32 bounds stay put
    references = _references()
    off = [r + 0.05 * reference_signal(references).spread for r in references]  # 5e-2 x spread
    assert not check_parity(off, {"deploy": references}, fp16, format_name="coreml", precision="fp16").passed
    assert check_parity(off, {"deploy": references}, steep, format_name="coreml", precision="fp16").passed
    # every fp16 entry of the table grows so; no fp32 entry does
    for (format_name, precision), tolerance in TOLERANCES.items():
        assert (tolerance.rounding_gain is not None) == (precision == "fp16"), (format_name, precision)


def test_int8_on_probe_weights_is_judged_by_direction_only():
    int8 = TOLERANCES[("tflite", "int8_full")]
    on_probe = probe_tolerance(int8)
    assert on_probe.min_top1_agreement is None and on_probe.min_cosine == int8.min_cosine
    assert "cosine only" in on_probe.reason
    assert probe_tolerance(TOLERANCES[("coreml", "fp16")]) == TOLERANCES[("coreml", "fp16")]  # float: unchanged
    references = _references(count=4)
    flipped = [r.copy() for r in references]
    for r in flipped:  # each top-1 swapped with the runner-up: the direction barely moves
        first, second = np.argsort(r[0])[-2:][::-1]
        r[0, [first, second]] = r[0, [second, first]]
    assert not check_parity(flipped, {"deploy": references}, int8, format_name="tflite", precision="int8_full").passed
    report = check_parity(flipped, {"deploy": references}, on_probe, format_name="tflite", precision="int8_full")
    assert report.passed == (min(c.cosine for c in report.comparisons) >= int8.min_cosine)


def test_rounding_gap_measures_fp32_against_fp64():
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(16, 16) for _ in range(4)]).eval()
    inputs = [np.random.default_rng(i).normal(size=(1, 16)).astype(np.float32) for i in range(3)]
    with torch.no_grad():
        outputs = [model(torch.from_numpy(x)).numpy() for x in inputs]
    gap = rounding_gap(model, inputs, outputs)
    assert 0 < gap < 1e-5  # fp32 rounding of 4 small layers
    assert rounding_gap(model, inputs, [o + 1e-3 for o in outputs]) > 1e-4  # an error it did not make: seen
    assert rounding_gap(model, inputs[:1] * 3, outputs[:1] * 3) is None  # no spread: no gap


@pytest.mark.parametrize("name", ["repvit_m0_6", "mobilenetv3_small_100", "convnext_atto"])
def test_probe_weights_reach_the_output(name):
    model = models.create_model(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe = probe_weights(model, name_seed(name), (3, 64, 64))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the caller's model untouched
    again = probe_weights(model, name_seed(name), (3, 64, 64))
    assert all(torch.equal(a, b) for a, b in zip(probe.state_dict().values(), again.state_dict().values()))
    assert not any(torch.all(p == 0) for p in probe.parameters())
    for module in probe.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            assert float((module.running_var - 1).abs().max()) > 0.05 and float(module.running_mean.abs().max()) > 0.01
        if hasattr(module, "gamma") and isinstance(module.gamma, torch.nn.Parameter):
            assert float(module.gamma.detach().min()) >= 0.1
    inputs = [torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    with torch.no_grad():
        outputs = [probe(x).numpy() for x in inputs]
        deploy = reparam.reparameterize(probe, warn_untrained=False)
        folded = [deploy(x).numpy() for x in inputs]
    signal = reference_signal(outputs)
    assert signal.input_share > 0.05 and signal.max_abs < 1e4
    assert max(float(np.abs(a - b).max()) for a, b in zip(outputs, folded)) < 1e-4 * signal.spread


def test_probe_gives_pre_norm_batchnorms_channels_of_the_order_of_eps():
    """A fold that forgets eps, or shifts by 1e-4 x scale, shows only on channels whose variance is of the
    order of eps. A conv-fed BatchNorm gets them by scaling its conv; a pre-norm one (all 11 of EdgeViT's
    read the residual stream) by scaling every layer that writes into the stream, the same channels for all
    BatchNorms reading it."""
    name = "edgevit_xxs"
    spec = models.model_spec(name)
    probe = probe_weights(models.create_model(name), name_seed(name), (3, 64, 64), mean=spec.mean, std=spec.std)
    seen = []

    def record(module, args):
        (x,) = args[:1]
        variance = x.double().var(dim=(0, 2, 3))
        seen.append((module.eps, variance))

    batch_norms = [m for m in probe.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    handles = [m.register_forward_pre_hook(record) for m in batch_norms]
    with torch.no_grad():
        probe(torch.cat(spec.with_input_size(64).sample_inputs(count=4, seed=5)))
    for handle in handles:
        handle.remove()
    assert len(seen) == len(batch_norms) == 11
    for eps, variance in seen:
        weak = variance < 100 * eps
        assert 0.1 < float(weak.float().mean()) < 0.5  # about a quarter of the channels, the rest of order one
        assert float(variance[~weak].median()) > 1e3 * eps


def test_verify_rechecks_an_artifact_from_its_manifest(tmp_path):
    """An export on probe weights names them in its manifest; verify re-runs the gate from that alone and
    refuses the artifact once one weight in it is scaled by 1.001."""
    import onnx
    from onnx import numpy_helper

    from export.formats import export_format
    from export.verify import main as verify_main, verify_artifact
    from export_helpers import signal_model

    name = "repvit_m0_6"
    artifact = export_format("onnx", signal_model(name), models.model_spec(name), tmp_path, precision="fp32",
                             input_size=(64, 64), quiet=True, weights=f"probe:{name_seed(name)}")
    assert artifact.parity["probe"]["same_as_model"] and artifact.parity["input_share"]["deploy"] > 0.05
    assert verify_artifact(artifact.path).passed
    graph = onnx.load(str(artifact.path))
    weight = [i for i in graph.graph.initializer if len(i.dims) == 4][5]
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * np.float32(1.001), weight.name))
    onnx.save(graph, str(artifact.path))
    result = verify_artifact(artifact.path)
    assert not result.unchanged and not result.report.passed
    assert verify_main([str(artifact.path), "--json"]) == 1


@pytest.mark.slow
def test_verify_judges_int8_on_probe_weights_as_the_export_did(tmp_path):
    """An int8 export on probe weights was gated by cosine only (its top-1 margins are int8-sized); verify
    judges it the same, whether the manifest names the probe or ``--weights probe:<seed>`` does."""
    from export.formats import export_format
    from export.verify import verify_artifact
    from export_helpers import signal_model

    name = "repvit_m0_6"
    probe = f"probe:{name_seed(name)}"
    artifact = export_format("tflite", signal_model(name), models.model_spec(name), tmp_path, precision="int8_full",
                             quiet=True, weights=probe, calibration_count=8)
    assert artifact.parity["passed"] and artifact.parity["tolerance"]["min_top1_agreement"] is None
    for weights in (None, probe):
        result = verify_artifact(artifact.path, weights)
        assert result.report.tolerance["min_top1_agreement"] is None, weights
        assert result.passed, (weights, result.report.summary_line())
    # the int8 top-1 a checkpoint's export is held to would refuse this artifact: the probe terms matter
    assert min(artifact.parity["top1_agreement"].values()) < TOLERANCES[("tflite", "int8_full")].min_top1_agreement
