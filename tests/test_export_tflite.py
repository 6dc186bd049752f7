"""TFLite export: fp16 weights for the RepViT family, int8 (dynamic and full) agreement, NHWC I/O.

fp32 parity of every model (RepViT included) is in ``tests/test_zoo_parity.py`` (``tflite-*``).
Each conversion takes ~15-30 s here, so conversion tests are ``slow``; int8 runs at 64x64.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import models
from export_helpers import needs_reparam, signal_model  # tests/ is on sys.path

pytest.importorskip("litert_torch", reason="TFLite export needs litert-torch: pip install litert-torch")
pytest.importorskip("ai_edge_litert", reason="TFLite parity needs ai-edge-litert: pip install ai-edge-litert")

from export import load_artifact  # noqa: E402
from export import tflite as export_tflite  # noqa: E402
from export.common import ExportOptions  # noqa: E402
from export.parity import tolerance_for  # noqa: E402

SMALL = "repvit_m0_6"


@needs_reparam
@pytest.mark.slow
@pytest.mark.parametrize("name", models.list_models("repvit_*"))
def test_repvit_fp16_weights(name, tmp_path):
    spec = models.model_spec(name)
    artifact = export_tflite.export(signal_model(name), spec, tmp_path, precision="fp16", quiet=True)
    assert artifact.path.name == f"{name}_fp16.tflite"
    tolerance = tolerance_for("tflite", "fp16")
    for c in load_artifact(artifact.path).parity["comparisons"]:
        assert c["max_abs_error"] <= tolerance.rtol * c["ref_max_abs"] + tolerance.atol
    # fp16 weights: about half the fp32 parameter bytes
    assert artifact.size_bytes < 0.6 * 4 * artifact.params


@needs_reparam
@pytest.mark.slow
def test_int8_dynamic_agreement(tmp_path):
    spec = models.model_spec(SMALL)
    artifact = export_tflite.export(signal_model(SMALL), spec, tmp_path, precision="int8_dynamic",
                                    input_size=(64, 64), parity_inputs=8, quiet=True)
    parity = artifact.parity
    assert parity["top1_agreement"]["deploy"] >= 0.75
    assert parity["min_cosine"] >= 0.95
    assert artifact.size_bytes < 0.4 * 4 * artifact.params  # int8 weights: about a quarter of fp32
    io = artifact.options["io"]
    assert io["input:image"]["dtype"] == "float32"  # dynamic range keeps float I/O


@needs_reparam
@pytest.mark.slow
def test_int8_full_nhwc_takes_int8_pixels(tmp_path):
    spec = models.model_spec(SMALL)
    model = signal_model(SMALL)
    artifact = export_tflite.export(model, spec, tmp_path, precision="int8_full", nhwc=True, input_size=(64, 64),
                                    parity_inputs=8, calibration_count=16, quiet=True)
    assert artifact.input_layout == "NHWC" and artifact.input_shape == [1, 64, 64, 3]
    io = artifact.options["io"]
    assert io["input:image"]["dtype"] == "int8" and io["input:image"]["shape"] == [1, 64, 64, 3]
    assert io["output:logits"]["dtype"] == "int8" and io["input:image"]["scale"] > 0
    # the gate's own int8 thresholds (a random-weight model's logits are nearly flat, so top-1
    # agreement over 8 inputs moves by 1/8 between conversions; the cosine bound is the tight one)
    tolerance = tolerance_for("tflite", "int8_full")
    assert artifact.parity["top1_agreement"]["deploy"] >= tolerance.min_top1_agreement
    assert artifact.parity["min_cosine"] >= tolerance.min_cosine

    # feed it by hand, as an app would: quantize NHWC input with the stored scale, dequantize logits
    import reparam

    x = spec.with_input_size(64, 64).sample_inputs(count=1, seed=11)[0]
    with torch.no_grad():
        expected = reparam.reparameterize(model)(x).numpy()[0]
    runner = export_tflite.interpreter(artifact.path).get_signature_runner()
    scale, zero_point = io["input:image"]["scale"], io["input:image"]["zero_point"]
    pixels = np.clip(np.round(x.numpy().transpose(0, 2, 3, 1) / scale) + zero_point, -128, 127).astype(np.int8)
    raw = runner(image=pixels)["logits"][0]
    got = (raw.astype(np.float32) - io["output:logits"]["zero_point"]) * io["output:logits"]["scale"]
    cosine = float(got @ expected / np.linalg.norm(got) / np.linalg.norm(expected))
    assert cosine > 0.9


@pytest.mark.fast
def test_calibration_images_from_a_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        Image.fromarray(rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)).save(folder / f"img{index}.png")
    (folder / "notes.txt").write_text("not an image")
    spec = models.model_spec(SMALL).with_input_size(32, 48)
    images = export_tflite.calibration_images(spec, ExportOptions(precision="int8_full", calibration_dir=str(folder),
                                                                  calibration_count=2))
    assert len(images) == 2 and images[0].shape == (1, 3, 32, 48) and images[0].dtype == np.float32
    # normalized with the spec's mean/std: a white image maps to (1 - mean) / std
    Image.fromarray(np.full((8, 8, 3), 255, dtype=np.uint8)).save(folder / "a_white.png")  # sorts first
    (white, *_) = export_tflite.calibration_images(spec, ExportOptions(precision="int8_full",
                                                                       calibration_dir=str(folder)))
    expected = (1.0 - np.array(spec.mean)) / np.array(spec.std)
    np.testing.assert_allclose(white[0, :, 0, 0], expected, rtol=1e-6)


@pytest.mark.fast
def test_calibration_errors(tmp_path):
    spec = models.model_spec(SMALL)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        export_tflite.calibration_images(spec, ExportOptions(precision="int8_full", calibration_dir=str(tmp_path / "x")))
    with pytest.raises(FileNotFoundError, match="no images"):
        export_tflite.calibration_images(spec, ExportOptions(precision="int8_full", calibration_dir=str(tmp_path)))
    synthetic = export_tflite.calibration_images(spec, ExportOptions(precision="int8_full", calibration_count=4))
    parity_inputs = spec.sample_inputs(count=4, seed=0)
    assert len(synthetic) == 4 and not np.allclose(synthetic[0], parity_inputs[0].numpy())
