"""fp32 parity of every registered model in every export format (ONNX, TFLite, Core ML, ExecuTorch), on
probe weights.

The model carries its probe weights (``models.probe``, seeded from its name: every layer reaches
the logits, which a fresh model's zero-initialised layers and 1e-6 layer scales do not), so the
gate judges every layer and converts once (its own probe copy is the same model).

Parametrized over ``models.list_models()``, so a family added to the registry is covered without
touching this file. Each case is one conversion through the shared wrapper: the parity gate
compares the artifact with the eager deploy and training-form models on three seeded inputs and
raises ``ParityError`` otherwise; the test then reads the manifest back and runs the artifact on an
input the gate did not see, against both eager forms. TFLite and Core ML conversions take ~15-30 s
each, so those cases are ``slow``; ExecuTorch (XNNPACK, ~30 s each here) runs its first model of
each family without ``-m slow`` and the rest as ``slow``. Known failures are listed in ``tests/zoo_xfails.py`` and applied
as strict xfails.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import models
import reparam
from export import load_artifact
from export.capabilities import CAPABILITIES
from export.formats import HANDLERS, export_format
from export.parity import tolerance_for
from export_helpers import signal_model  # tests/ is on sys.path
from zoo_xfails import zoo_xfail_marks  # tests/ is on sys.path (rootdir conftest, no __init__.py)

FRESH_SEED = 17  # the gate's inputs are seeds 0..2


def _first_of_each_family() -> set[str]:
    """One registered model per family: the ExecuTorch cases that run without ``-m slow``."""
    first: dict[str, str] = {}
    for name in models.list_models():
        first.setdefault(models.model_spec(name).family, name)
    return set(first.values())


def _cases():
    fast_executorch = _first_of_each_family()
    for format_name in CAPABILITIES:
        for name in models.list_models():
            fast = format_name == "onnx" or (format_name == "executorch" and name in fast_executorch)
            marks = ([] if fast else [pytest.mark.slow]) + zoo_xfail_marks(name, format_name)
            yield pytest.param(name, format_name, marks=marks, id=f"{format_name}-{name}")


@pytest.mark.parametrize("name,format_name", list(_cases()))
def test_fp32_parity(name, format_name, tmp_path):
    spec = models.model_spec(name)
    model = signal_model(name)
    artifact = export_format(format_name, model, spec, tmp_path, precision="fp32", quiet=True)

    loaded = load_artifact(artifact.path)
    assert loaded.parity["inputs"] >= 3
    assert {c["reference"] for c in loaded.parity["comparisons"]} == {"deploy", "training"}
    assert all(c["ref_max_abs"] > 0 for c in loaded.parity["comparisons"])  # zeros would pass any bound
    assert min(loaded.parity["input_share"].values()) > 0.05  # the logits depend on the image
    assert loaded.input_shape == [1, *spec.input_size]
    assert loaded.reparameterized

    # the artifact itself, on an input the gate did not see, within the fp32 tolerance of both eager forms
    image = spec.sample_inputs(count=1, seed=FRESH_SEED)[0]
    options = CAPABILITIES[format_name].options_class(precision="fp32")
    (got,) = HANDLERS[format_name].run(artifact.path, [image.numpy()], spec, options)
    tolerance = tolerance_for(format_name, "fp32")
    model.eval()
    with torch.no_grad():
        for reference in (reparam.reparameterize(model), model):
            want = reference(image).numpy()
            error = float(np.max(np.abs(got - want)))
            assert error <= tolerance.rtol * float(np.max(np.abs(want))) + tolerance.atol, error
