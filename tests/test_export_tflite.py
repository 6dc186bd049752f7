"""TFLite export: fp16 weights for the RepViT family, int8 (dynamic and full) agreement, NHWC I/O.

fp32 parity of every model (RepViT included) is in ``tests/test_zoo_parity.py`` (``tflite-*``).
Each conversion takes ~15-30 s here, so conversion tests are ``slow``; int8 runs at 64x64.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import models
import reparam
from export import tflite as export_tflite
from export.cli import EXIT_USAGE, run_format_cli
from export.errors import InputPathError
from export.options import TFLiteOptions
from export.parity import tolerance_for
from export_helpers import signal_model  # tests/ is on sys.path
from zoo_xfails import zoo_xfail_marks  # tests/ is on sys.path

SMALL = "repvit_m0_6"


def _fresh_outputs(artifact, model, spec, options, seed):
    """(artifact output, eager deploy output) on a seeded input the parity gate did not see."""
    x = spec.sample_inputs(count=1, seed=seed)[0]
    (got,) = export_tflite.HANDLER.run(artifact.path, [x.numpy()], spec, options)
    with torch.no_grad():
        expected = reparam.reparameterize(model)(x).numpy()
    return got, expected


def _cosine(a, b):
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))



@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(name, marks=zoo_xfail_marks(name, "tflite"))
                                  for name in models.list_models("repvit_*")])
def test_repvit_fp16_weights(name, tmp_path):
    spec = models.model_spec(name)
    model = signal_model(name)
    artifact = export_tflite.export(model, spec, tmp_path, precision="fp16", quiet=True)
    assert artifact.path.name == f"{name}_fp16.tflite"
    # fp16 weights: about half the fp32 parameter bytes
    assert artifact.size_bytes < 0.6 * 4 * artifact.params
    # the bound the gate took: the table's, grown with this model's own fp32 rounding gap (deep RepViTs)
    parity = artifact.parity
    rtol = parity["tolerance"]["rtol"]
    assert rtol >= tolerance_for("tflite", "fp16").rtol and parity["fp32_path"]["passed"]
    # within it on an input the gate did not see (against the gate's spread: one input has none)
    got, expected = _fresh_outputs(artifact, model, spec, TFLiteOptions(precision="fp16"), seed=5)
    assert 0 < np.max(np.abs(got - expected)) <= rtol * parity["signals"]["deploy"]["spread"]


@pytest.mark.slow
def test_int8_dynamic_agreement(tmp_path):
    # at the model's own size: probe weights are calibrated there (at 64x64 their logits barely separate classes)
    spec = models.model_spec(SMALL)
    model = signal_model(SMALL)
    artifact = export_tflite.export(model, spec, tmp_path, precision="int8_dynamic",
                                    parity_inputs=8, quiet=True)
    # on probe weights int8 is judged by direction only (no dominant class: int8 flips the close top-1 calls)
    assert artifact.parity["tolerance"]["min_top1_agreement"] is None
    assert artifact.parity["min_cosine"] >= 0.97  # tighter than the gate's 0.95 (measured 0.983, centred)
    assert artifact.parity["fp32_path"]["passed"]  # the flatbuffer it quantized, at the fp32 bound
    assert artifact.parity["fp32_path"]["max_error_over_spread"] <= 1e-4
    assert artifact.size_bytes < 0.4 * 4 * artifact.params  # int8 weights: about a quarter of fp32
    io = artifact.options["io"]
    assert io["input:image"]["dtype"] == "float32"  # dynamic range keeps float I/O
    # quantized weights move the logits a little, not the direction, on inputs the gate did not see
    for seed in (21, 22):
        got, expected = _fresh_outputs(artifact, model, spec, TFLiteOptions(precision="int8_dynamic"), seed)
        # the gate's cosine bound, 0.95, on inputs it did not see (measured 0.971 on seed 21)
        assert 0 < np.max(np.abs(got - expected)) and _cosine(got, expected) >= 0.95


@pytest.mark.slow
def test_int8_full_nhwc_takes_int8_pixels(tmp_path):
    spec = models.model_spec(SMALL)
    model = signal_model(SMALL)
    artifact = export_tflite.export(model, spec, tmp_path, precision="int8_full", nhwc=True,
                                    parity_inputs=8, calibration_count=16, quiet=True)
    assert artifact.input_layout == "NHWC" and artifact.input_shape == [1, 224, 224, 3]
    io = artifact.options["io"]
    assert io["input:image"]["dtype"] == "int8" and io["input:image"]["shape"] == [1, 224, 224, 3]
    assert io["output:logits"]["dtype"] == "int8" and io["input:image"]["scale"] > 0
    # feed it by hand, as an app would: quantize NHWC input with the stored scale, dequantize logits
    x = spec.sample_inputs(count=1, seed=11)[0]
    with torch.no_grad():
        expected = reparam.reparameterize(model)(x).numpy()[0]
    runner = export_tflite.interpreter(artifact.path).get_signature_runner()
    scale, zero_point = io["input:image"]["scale"], io["input:image"]["zero_point"]
    pixels = np.clip(np.round(x.numpy().transpose(0, 2, 3, 1) / scale) + zero_point, -128, 127).astype(np.int8)
    raw = runner(image=pixels)["logits"][0]
    got = (raw.astype(np.float32) - io["output:logits"]["zero_point"]) * io["output:logits"]["scale"]
    assert _cosine(got, expected) > 0.9


@pytest.mark.fast
def test_calibration_images_from_a_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        Image.fromarray(rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)).save(folder / f"img{index}.png")
    (folder / "notes.txt").write_text("not an image")
    spec = models.model_spec(SMALL).with_input_size(32, 48)
    images = export_tflite.calibration_images(spec, TFLiteOptions(precision="int8_full", calibration_dir=str(folder),
                                                                  calibration_count=2))
    assert len(images) == 2 and images[0].shape == (1, 3, 32, 48) and images[0].dtype == np.float32
    # normalized with the spec's mean/std: a white image maps to (1 - mean) / std
    Image.fromarray(np.full((8, 8, 3), 255, dtype=np.uint8)).save(folder / "a_white.png")  # sorts first
    (white, *_) = export_tflite.calibration_images(spec, TFLiteOptions(precision="int8_full",
                                                                       calibration_dir=str(folder)))
    expected = (1.0 - np.array(spec.mean)) / np.array(spec.std)
    np.testing.assert_allclose(white[0, :, 0, 0], expected, rtol=1e-6)


@pytest.mark.fast
def test_calibration_errors(tmp_path):
    spec = models.model_spec(SMALL)
    with pytest.raises(InputPathError, match="not a directory"):  # the user's path: exit 2 on the command line
        export_tflite.calibration_images(spec, TFLiteOptions(precision="int8_full",
                                                             calibration_dir=str(tmp_path / "x")))
    with pytest.raises(InputPathError, match="no images"):
        export_tflite.calibration_images(spec, TFLiteOptions(precision="int8_full", calibration_dir=str(tmp_path)))
    synthetic = export_tflite.calibration_images(spec, TFLiteOptions(precision="int8_full", calibration_count=4))
    parity_inputs = spec.sample_inputs(count=4, seed=0)
    assert len(synthetic) == 4 and not np.allclose(synthetic[0], parity_inputs[0].numpy())


@pytest.mark.fast
def test_missing_calibration_folder_is_a_usage_error(capsys, tmp_path):
    status = run_format_cli(export_tflite.HANDLER, [SMALL, "--precision", "int8_full", "--calibration-dir",
                                                    str(tmp_path / "none"), "--out", str(tmp_path), "--quiet"])
    assert status == EXIT_USAGE and "is not a directory" in capsys.readouterr().err
    assert not (tmp_path / SMALL).exists()  # refused before any model work
