"""TFLite export with litert-torch, optionally quantized with ai-edge-quantizer, behind the parity gate.

``python -m export.tflite repvit_m1`` writes ``artifacts/repvit_m1/repvit_m1.tflite``.

- I/O: one input named ``image`` (NCHW like the torch model by default; ``--nhwc`` makes the graph
  take (N, H, W, C), as Android apps feed it: the permute is inside the graph) and one output
  named ``logits``. litert-torch names inputs after the forward's keyword arguments and outputs
  after the keys of a returned dict, so the model is wrapped in ``TFLiteIO`` for the names.
  (``litert_torch.to_channel_last_io`` does the permute too, but only for positional inputs,
  which litert-torch names ``args_0``.)
- Precision: litert-torch converts to fp32; the other precisions are ai-edge-quantizer recipes
  applied to that flatbuffer (the quantization path litert-torch 0.10 documents for non-generative
  models): ``fp16`` = fp16 weights, fp32 compute (FLOAT_CASTING weight-only); ``int8_dynamic`` =
  int8 per-channel weights, activations quantized on the fly (``dynamic_wi8_afp32``);
  ``int8_full`` = int8 weights and activations, int8 input and output (``static_wi8_ai8``),
  calibrated on ``--calibration-dir`` images (PIL, resized, normalized with the spec's mean/std)
  or on seeded synthetic images. The parity runner quantizes inputs and dequantizes outputs with
  the scales stored in the file, so the gate compares real-valued logits.
- Parity: the ai-edge-litert interpreter (XNNPACK on CPU). A quantized artifact's fp32 flatbuffer
  is gated too, at the fp32 bound (``fp32_intermediate``): the gate checks the conversion at fp32
  resolution without converting twice.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import nn

from export.artifact import Artifact
from export.capabilities import options_for, require
from export.common import export_model
from export.errors import ExportError, InputPathError
from export.options import TFLiteOptions
from mobilelat.cli import raise_if_interrupted
from models import ModelSpec

if TYPE_CHECKING:  # an optional backend: imported when an interpreter is made
    from ai_edge_litert.interpreter import Interpreter

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SIGNATURE = "serving_default"  # litert-torch's signature name
CALIBRATION_SEED = 1000  # synthetic calibration images: another seed than the parity inputs (0)


class TFLiteIO(nn.Module):
    """Names the input ``image`` and the output ``logits``; with ``nhwc`` the input is channel-last."""

    def __init__(self, model: nn.Module, output_name: str, nhwc: bool):
        super().__init__()
        self.model = model
        self.output_name = output_name
        self.nhwc = nhwc

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.nhwc:
            image = image.permute(0, 3, 1, 2)
        return {self.output_name: self.model(image)}


def _to_layout(image: np.ndarray, nhwc: bool) -> np.ndarray:
    return np.ascontiguousarray(image.transpose(0, 2, 3, 1)) if nhwc else image


def calibration_images(spec: ModelSpec, options: TFLiteOptions) -> list[np.ndarray]:
    """Normalized NCHW float32 images (batch 1) to calibrate int8_full on: the user's folder, or synthetic."""
    count = options.calibration_count
    if options.calibration_dir is None:
        return [x.numpy() for x in spec.sample_inputs(count=count, seed=CALIBRATION_SEED)]
    folder = Path(options.calibration_dir)
    if not folder.is_dir():
        raise InputPathError(f"--calibration-dir {folder} is not a directory")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
    if not files:
        raise InputPathError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under --calibration-dir {folder}")
    _, height, width = spec.input_size
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(spec.std, dtype=np.float32).reshape(3, 1, 1)
    images = []
    for file in files:
        with Image.open(file) as image:
            pixels = np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR), dtype=np.float32)
        images.append((((pixels.transpose(2, 0, 1) / 255.0) - mean) / std)[None].astype(np.float32))
    return images


def _quantize(float_path: Path, out_path: Path, spec: ModelSpec, options: TFLiteOptions) -> None:
    """Apply the ai-edge-quantizer recipe for ``options.precision`` to the fp32 flatbuffer."""
    require("ai_edge_quantizer", "tflite")
    from ai_edge_quantizer import qtyping, quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    quant = quantizer.Quantizer(str(float_path))
    if options.precision == "fp16":
        quant.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                     num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING)
        calibration = None
    elif options.precision == "int8_dynamic":
        quant.load_quantization_recipe(recipe.dynamic_wi8_afp32())
        calibration = None
    elif options.precision == "int8_full":
        quant.load_quantization_recipe(recipe.static_wi8_ai8())
        samples = [{spec.input_name: _to_layout(x, options.nhwc)} for x in calibration_images(spec, options)]
        calibration = quant.calibrate({SIGNATURE: samples}, num_threads=1)
    else:
        raise ValueError(f"no TFLite quantization for precision {options.precision!r}")
    result = quant.quantize(calibration, enable_progress_report=False)
    out_path.write_bytes(bytes(result.quantized_model))


def _float_path(tmp_path: Path) -> Path:
    """Where the fp32 flatbuffer waits while it is quantized."""
    return tmp_path.with_name(tmp_path.name + ".fp32.tflite")


def interpreter(path: str | Path, threads: int | None = None) -> Interpreter:
    """An ai-edge-litert interpreter (tflite_runtime's if that is what is installed), tensors allocated."""
    try:
        interpreter_class = require("ai_edge_litert.interpreter", "tflite").Interpreter
    except ImportError:
        if importlib.util.find_spec("tflite_runtime") is None:
            raise
        interpreter_class = importlib.import_module("tflite_runtime.interpreter").Interpreter
    runner = interpreter_class(model_path=str(path), num_threads=threads)
    runner.allocate_tensors()
    return runner


def _quantize_input(value: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype == np.float32:
        return value.astype(np.float32)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(value / scale) + zero_point, info.min, info.max).astype(dtype)


def _dequantize_output(value: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return value
    scale, zero_point = detail["quantization"]
    return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)


class TFLiteFormat:
    """TFLite for the shared wrapper (a ``FormatHandler``)."""

    name = "tflite"

    def convert(self, model: nn.Module, spec: ModelSpec, tmp_path: Path, options: TFLiteOptions) -> None:
        """Convert with litert-torch to fp32, then quantize if asked; the flatbuffer lands at ``tmp_path``."""
        litert_torch = require("litert_torch", "tflite")
        if spec.input_name != "image":
            raise ExportError(f"TFLite export names the input 'image'; {spec.name} declares {spec.input_name!r}",
                              format="tflite", hint="rename the input in the model's spec")
        wrapper = TFLiteIO(model, spec.output_name, options.nhwc).eval()
        sample = torch.from_numpy(_to_layout(spec.sample_inputs(count=1, seed=0)[0].numpy(), options.nhwc))
        edge_model = litert_torch.convert(wrapper, sample_kwargs={"image": sample})
        raise_if_interrupted()  # litert-torch swallows a KeyboardInterrupt raised inside its converter callback
        if options.precision == "fp32":
            edge_model.export(str(tmp_path))
            return
        float_path = _float_path(tmp_path)
        edge_model.export(str(float_path))
        _quantize(float_path, tmp_path, spec, options)

    def run(self, path: Path, inputs: list[np.ndarray], spec: ModelSpec, options: TFLiteOptions) -> list[np.ndarray]:
        """Outputs on normalized NCHW float inputs: laid out, quantized if the file takes int8, dequantized back."""
        runner = interpreter(path).get_signature_runner(SIGNATURE)
        input_detail = runner.get_input_details()[spec.input_name]
        output_detail = runner.get_output_details()[spec.output_name]
        outputs = []
        for x in inputs:
            feed = _quantize_input(_to_layout(x, options.nhwc), input_detail)
            outputs.append(_dequantize_output(runner(**{spec.input_name: feed})[spec.output_name], output_detail))
        return outputs

    def tool_versions(self) -> dict[str, str]:
        versions = {"torch": torch.__version__}
        for package in ("litert-torch", "ai-edge-quantizer", "ai-edge-litert"):
            try:
                versions[package] = version(package)
            except PackageNotFoundError:
                versions[package] = "not installed"
        return versions

    def io_details(self, path: Path) -> dict:
        """Input/output dtypes and (for int8 I/O) scale and zero point, for whoever feeds the file."""
        runner = interpreter(path).get_signature_runner(SIGNATURE)
        details = {}
        for role, table in (("input", runner.get_input_details()), ("output", runner.get_output_details())):
            for name, detail in table.items():
                scale, zero_point = detail["quantization"]
                details[f"{role}:{name}"] = {"dtype": np.dtype(detail["dtype"]).name,
                                             "shape": detail["shape"].tolist(),
                                             "scale": float(scale), "zero_point": int(zero_point)}
        return details

    def input_layout(self, options: TFLiteOptions) -> str:
        return "NHWC" if options.nhwc else "NCHW"

    def temp_paths(self, tmp_path: Path) -> list[Path]:
        return [_float_path(tmp_path)]

    def fp32_intermediate(self, tmp_path: Path) -> Path | None:
        """The fp32 flatbuffer a quantized conversion at ``tmp_path`` was made from (the gate checks it at fp32)."""
        path = _float_path(tmp_path)
        return path if path.exists() else None

    def prepare_command_line(self) -> None:
        # our progress shows; litert-torch's per-stage log (it reads this per call) does not
        os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")


HANDLER = TFLiteFormat()


def export(model: nn.Module, spec: ModelSpec, out_dir: str | Path = "artifacts", **options) -> Artifact:
    """Export ``model`` to ``out_dir/<model>/<model>[_<precision>].tflite``.

    ``options``: fields of ``TFLiteOptions`` (precision, input_size, nhwc, calibration_dir, ...).
    """
    return export_model(HANDLER, model, spec, Path(out_dir), options_for("tflite", **options))


if __name__ == "__main__":  # `python -m export.tflite`
    from export.cli import run_format_cli

    sys.exit(run_format_cli(HANDLER))
