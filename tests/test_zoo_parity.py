"""fp32 parity of every registered model in every export format (ONNX, TFLite, Core ML).

Parametrized over ``models.list_models()``, so a family added to the registry is covered without
touching this file. Each case is one conversion through the shared wrapper: the parity gate
compares the artifact with the eager deploy and training-form models on three seeded inputs and
raises ``ParityError`` otherwise; the test then checks the figures the manifest carries.
TFLite and Core ML conversions take ~15-30 s each, so those cases are ``slow``. Known failures
are listed in ``tests/zoo_xfails.py`` and applied as strict xfails.
"""
from __future__ import annotations

import importlib
import importlib.util

import pytest

import models
from export_helpers import needs_reparam, signal_model  # tests/ is on sys.path
from export import load_artifact
from export.parity import tolerance_for
from zoo_xfails import ZOO_XFAILS  # tests/ is on sys.path (rootdir conftest, no __init__.py)

FORMATS = ("onnx", "tflite", "coreml")
# optional backends each format needs: a missing one is a skip that says what to install
BACKENDS = {"onnx": ("onnx", "onnxruntime", "onnxslim"), "tflite": ("litert_torch", "ai_edge_litert"),
            "coreml": ("coremltools",)}


def _cases():
    for format_name in FORMATS:
        for name in models.list_models():
            marks = [pytest.mark.slow] if format_name != "onnx" else []
            if (name, format_name) in ZOO_XFAILS:
                marks.append(pytest.mark.xfail(strict=True, reason=ZOO_XFAILS[(name, format_name)]))
            yield pytest.param(name, format_name, marks=marks, id=f"{format_name}-{name}")


def _format_module(format_name: str):
    missing = [m for m in BACKENDS[format_name] if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{format_name} backend not installed: {', '.join(missing)}")
    # export.coreml is written in parallel with this test; skip only while the module is absent
    if importlib.util.find_spec(f"export.{format_name}") is None:
        pytest.skip(f"export/{format_name}.py does not exist yet")
    return importlib.import_module(f"export.{format_name}")


@needs_reparam
@pytest.mark.parametrize("name,format_name", list(_cases()))
def test_fp32_parity(name, format_name, tmp_path):
    module = _format_module(format_name)
    spec = models.model_spec(name)
    artifact = module.export(signal_model(name), spec, tmp_path, precision="fp32", quiet=True)

    loaded = load_artifact(artifact.path)
    parity = loaded.parity
    assert parity["passed"] and parity["inputs"] >= 3
    tolerance = tolerance_for(format_name, "fp32")
    comparisons = parity["comparisons"]
    assert {c["reference"] for c in comparisons} == {"deploy", "training"}
    for c in comparisons:  # recheck the gate's arithmetic from the recorded figures
        assert c["max_abs_error"] <= tolerance.rtol * c["ref_max_abs"] + tolerance.atol
        assert c["ref_max_abs"] > 0  # a model that outputs zeros would pass any bound
    assert loaded.input_shape == [1, *spec.input_size]
    assert loaded.reparameterized
