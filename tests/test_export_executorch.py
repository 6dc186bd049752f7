"""ExecuTorch export (.pte): backends, precisions, delegation summary, option checks, the command line.

The cases export a tiny conv net with a hand-built spec at 32x32 (``export_helpers.TinyNet``; lowering
cost grows with the node count, ~5 s of CPU each); fp16, int8, Core ML and the command line on a
registered model are ``slow``. fp32 parity
of every registered model is in ``tests/test_zoo_parity.py`` (``executorch-*``).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from export import executorch as export_executorch
from export import load_artifact
from export.capabilities import check_options
from export.cli import EXIT_OK, run_format_cli
from export.common import artifact_path
from export.errors import InputPathError, UnsupportedOptionError
from export.options import ExecuTorchOptions
from export.parity import tolerance_for
from export_helpers import TINY_SPEC as SPEC, tiny_net as _model  # tests/ is on sys.path

def _fresh(artifact, options: ExecuTorchOptions, model: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    x = SPEC.sample_inputs(count=1, seed=11)[0]
    (got,) = export_executorch.HANDLER.run(artifact.path, [x.numpy()], SPEC, options)
    with torch.no_grad():
        want = model.eval()(x).numpy()
    return got, want


@pytest.mark.fast
def test_options_are_checked_before_any_work(tmp_path):
    with pytest.raises(UnsupportedOptionError, match="unknown ExecuTorch backend --backend vulkan"):
        check_options("executorch", ExecuTorchOptions(backend="vulkan"))
    with pytest.raises(UnsupportedOptionError, match="takes --backend xnnpack, not coreml"):
        check_options("executorch", ExecuTorchOptions(precision="int8_dynamic", backend="coreml"))
    with pytest.raises(UnsupportedOptionError, match="fp16 needs a delegate"):
        check_options("executorch", ExecuTorchOptions(precision="fp16", backend="portable"))
    with pytest.raises(UnsupportedOptionError, match="only with --precision int8_full"):
        check_options("executorch", ExecuTorchOptions(calibration_dir=str(tmp_path)))
    with pytest.raises(InputPathError, match="is not a directory"):
        check_options("executorch", ExecuTorchOptions(precision="int8_full", calibration_dir=str(tmp_path / "no")))
    check_options("executorch", ExecuTorchOptions(precision="fp16", backend="coreml"))


@pytest.mark.fast
def test_backend_goes_into_the_file_name_unless_default():
    assert artifact_path("a", "m", "executorch", "fp32").as_posix() == "a/m/m.pte"
    assert artifact_path("a", "m", "executorch", "fp16", variant="coreml").as_posix() == "a/m/m_fp16_coreml.pte"
    assert artifact_path("a", "m", "executorch", "fp32", (64, 64), "portable").as_posix() == "a/m/m_portable_64x64.pte"


@pytest.mark.fast
def test_xnnpack_fp32_matches_eager_and_records_delegation(tmp_path):
    model = _model()
    artifact = export_executorch.export(model, SPEC, tmp_path, quiet=True)
    assert artifact.path.name == "tiny_et.pte" and artifact.path.read_bytes()[4:8] == b"ET12"
    loaded = load_artifact(artifact.path)
    delegation = loaded.options["delegation"]
    assert delegation["backend"] == "xnnpack" and delegation["delegated_subgraphs"] >= 1
    assert delegation["ops"]["aten_convolution_default"]["fallback"] == 0
    # XNNPACK takes a mean over the last two dims only with keepdim: the head's mean falls back, and is said so
    assert delegation["fallback_ops"] == ["aten_mean_dim"]
    assert delegation["ops"]["aten_mean_dim"] == {"delegated": 0, "fallback": 1}
    assert loaded.tool_versions["executorch"] == "1.5.1"
    got, want = _fresh(artifact, ExecuTorchOptions(), model)
    assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want)) + 1e-5


@pytest.mark.fast
def test_portable_backend_delegates_nothing(tmp_path):
    model = _model()
    artifact = export_executorch.export(model, SPEC, tmp_path, backend="portable", quiet=True)
    assert artifact.path.name == "tiny_et_portable.pte"
    delegation = artifact.options["delegation"]
    assert delegation["delegated_subgraphs"] == 0 and delegation["delegated_nodes"] == 0
    assert "aten_convolution_default" in delegation["fallback_ops"]
    got, want = _fresh(artifact, ExecuTorchOptions(backend="portable"), model)
    assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want)) + 1e-5


@pytest.mark.slow
def test_fp16_on_xnnpack_within_its_tolerance(tmp_path):
    model = _model()
    artifact = export_executorch.export(model, SPEC, tmp_path, precision="fp16", quiet=True)
    assert artifact.path.name == "tiny_et_fp16.pte"
    got, want = _fresh(artifact, ExecuTorchOptions(precision="fp16"), model)
    tolerance = tolerance_for("executorch", "fp16")
    error = np.max(np.abs(got - want))
    assert 0 < error <= tolerance.rtol * np.max(np.abs(want)) + tolerance.atol  # not zero: it did run in half


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8_dynamic", "int8_full"])
def test_int8_through_the_xnnpack_quantizer(precision, tmp_path):
    model = _model()
    options = {"calibration_count": 8} if precision == "int8_full" else {}
    artifact = export_executorch.export(model, SPEC, tmp_path, precision=precision, parity_inputs=8, quiet=True,
                                        **options)
    assert artifact.parity["passed"]
    assert artifact.parity["top1_agreement"]["deploy"] >= 0.75
    assert artifact.options["delegation"]["delegated_subgraphs"] >= 1


@pytest.mark.slow
def test_coreml_delegate_is_gated_on_its_ml_program(tmp_path):
    model = _model()
    artifact = export_executorch.export(model, SPEC, tmp_path, backend="coreml", precision="fp32", quiet=True)
    assert artifact.path.name == "tiny_et_coreml.pte"
    delegation = artifact.options["delegation"]
    assert delegation["backend"] == "coreml" and delegation["delegated_subgraphs"] == 1
    assert artifact.parity["passed"] and artifact.parity["max_abs_error"] < 1e-4
    assert "CoreMLBackend" not in export_executorch.registered_backends()  # so the numpy evaluator judged it
    assert not list(tmp_path.rglob("*.coreml")) and not list(tmp_path.rglob("*.delegation.json"))  # no leftovers


@pytest.mark.slow
def test_command_line_writes_a_pte_and_its_manifest(tmp_path, capsys):
    status = run_format_cli(export_executorch.HANDLER, ["mobilenetv3_small_100", "--input-size", "64",
                                                        "--out", str(tmp_path), "--json"])
    assert status == EXIT_OK
    document = json.loads(capsys.readouterr().out)
    (record,) = document["artifacts"]
    path = tmp_path / "mobilenetv3_small_100" / "mobilenetv3_small_100_64x64.pte"
    assert path.exists() and load_artifact(path).format == "executorch"
