"""Which options each export format accepts: an option a format does not take is an error.

The table is data: one ``Capability`` per format. ``check_options`` compares an ``ExportOptions``
with its defaults and refuses any option that was set for a format that does not take it, so
``--nhwc`` on ONNX fails loudly instead of being ignored.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# ExportOptions fields every format takes (they steer the shared wrapper, not the converter)
COMMON_OPTIONS = frozenset({"precision", "input_size", "reparameterize", "parity_inputs", "parity_seed",
                            "tolerance", "quiet"})


@dataclass(frozen=True)
class Capability:
    """What one format accepts."""

    name: str  # format name, as in ``--formats``
    suffix: str  # file (or directory) suffix of its artifacts
    precisions: tuple[str, ...]  # --precision values it accepts
    default_precision: str  # precision when none is given (its file name carries no precision suffix)
    options: frozenset[str]  # format-specific ExportOptions fields it accepts
    requires: tuple[str, ...]  # Python modules the converter and the parity runtime need
    install_hint: str  # pip command that installs them


MIN_ONNX_OPSET = 17  # LayerNormalization is a single op from 17 on; older runtimes are not targets here

CAPABILITIES: dict[str, Capability] = {
    "onnx": Capability(
        name="onnx", suffix=".onnx", precisions=("fp32",), default_precision="fp32",
        options=frozenset({"dynamic_batch", "opset"}),
        requires=("onnx", "onnxruntime", "onnxslim"),
        install_hint="pip install onnx onnxruntime onnxslim"),
    "coreml": Capability(
        name="coreml", suffix=".mlpackage", precisions=("fp16", "fp32"), default_precision="fp16",
        options=frozenset({"image_input", "coreml_target"}),
        requires=("coremltools",),
        install_hint="pip install 'coremltools==9.0'  (or: pip install -e '.[coreml]')"),
    "tflite": Capability(
        name="tflite", suffix=".tflite", precisions=("fp32", "fp16", "int8_dynamic", "int8_full"),
        default_precision="fp32",
        options=frozenset({"nhwc", "calibration_dir", "calibration_count"}),
        requires=("litert_torch", "ai_edge_litert"),
        install_hint="pip install litert-torch ai-edge-litert  (or: pip install -e '.[tflite]')"),
}


class UnsupportedOptionError(ValueError):
    """An option (or precision) the chosen format does not take."""


def capability(format_name: str) -> Capability:
    if format_name not in CAPABILITIES:
        raise UnsupportedOptionError(f"unknown export format {format_name!r}; choose from "
                                     f"{', '.join(CAPABILITIES)}")
    return CAPABILITIES[format_name]


def check_options(format_name: str, options) -> None:
    """Raise ``UnsupportedOptionError`` for a precision or a set option the format does not take."""
    cap = capability(format_name)
    if options.precision not in cap.precisions:
        raise UnsupportedOptionError(f"{format_name} export does not take --precision {options.precision}; "
                                     f"it takes {', '.join(cap.precisions)}")
    defaults = type(options)()
    set_options = [f.name for f in dataclasses.fields(options)
                   if getattr(options, f.name) != getattr(defaults, f.name)]
    refused = [name for name in set_options if name not in COMMON_OPTIONS | cap.options]
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        takes = ", ".join("--" + name.replace("_", "-") for name in sorted(cap.options)) or "none"
        raise UnsupportedOptionError(f"{format_name} export does not take {flags}; its own options are: {takes}")
    if format_name == "onnx" and options.opset < MIN_ONNX_OPSET:
        # checked here, before any model work, rather than after reparameterizing and tracing
        raise UnsupportedOptionError(f"onnx export takes --opset {MIN_ONNX_OPSET} or newer, got opset {options.opset} "
                                     "(LayerNormalization is a single op from 17 on)")
    if options.calibration_dir is not None and options.precision != "int8_full":
        raise UnsupportedOptionError("--calibration-dir is used only with --precision int8_full")
