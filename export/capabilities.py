"""Which formats exist, which precisions each takes, and which options class holds its options.

The table is data: one ``Capability`` per format. A format's options are a typed class
(``export/options.py``), so a field a format does not take cannot be set on it; ``options_for``
turns keyword arguments into that class and refuses a name the format does not take, and
``check_options`` refuses a precision or a value the format cannot take. ``require`` imports a
format's optional backend or names the one install command for it.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from export.errors import MissingDependencyError, UnsupportedOptionError
from export.options import (CoreMLOptions, ExecuTorchOptions, ExportOptions, OnnxOptions, TFLiteOptions, flag_of,
                            own_fields)


@dataclass(frozen=True)
class Capability:
    """What one format accepts."""

    name: str  # format name, as in ``--formats``
    suffix: str  # file (or directory) suffix of its artifacts
    precisions: tuple[str, ...]  # --precision values it accepts
    options_class: type[ExportOptions]  # its typed options: the common fields plus its own
    requires: tuple[str, ...]  # Python modules the converter and the parity runtime need
    install_hint: str  # pip command that installs them: the one place it is written

    @property
    def default_precision(self) -> str:
        """Precision when none is given (its file name carries no precision suffix)."""
        return self.options_class().precision

    @property
    def options(self) -> frozenset[str]:
        """Names of the options fields this format adds to the common ones."""
        return frozenset(f.name for f in own_fields(self.options_class))


CAPABILITIES: dict[str, Capability] = {
    "onnx": Capability(
        name="onnx", suffix=".onnx", precisions=("fp32",), options_class=OnnxOptions,
        requires=("onnx", "onnxruntime", "onnxslim"),
        install_hint="pip install onnx onnxruntime onnxslim"),
    "coreml": Capability(
        name="coreml", suffix=".mlpackage", precisions=("fp16", "fp32"), options_class=CoreMLOptions,
        requires=("coremltools",),
        install_hint="pip install 'coremltools==9.0'  (or: pip install -e '.[coreml]')"),
    "tflite": Capability(
        name="tflite", suffix=".tflite", precisions=("fp32", "fp16", "int8_dynamic", "int8_full"),
        options_class=TFLiteOptions,
        requires=("litert_torch", "ai_edge_litert", "ai_edge_quantizer"),
        install_hint="pip install litert-torch ai-edge-litert ai-edge-quantizer  (or: pip install -e '.[tflite]')"),
    "executorch": Capability(
        name="executorch", suffix=".pte", precisions=("fp32", "fp16", "int8_dynamic", "int8_full"),
        options_class=ExecuTorchOptions, requires=("executorch", "torchao"),
        install_hint="pip install 'executorch==1.5.1'  (or: pip install -e '.[executorch]')"),
}


def capability(format_name: str) -> Capability:
    if format_name not in CAPABILITIES:
        raise UnsupportedOptionError(f"unknown export format {format_name!r}; choose from "
                                     f"{', '.join(CAPABILITIES)}")
    return CAPABILITIES[format_name]


def require(module_name: str, format_name: str) -> ModuleType:
    """Import an optional backend, or raise ``MissingDependencyError`` with the format's install command."""
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        package = module_name.split(".")[0]
        raise MissingDependencyError(f"{format_name} export needs {package!r}, which is not installed: "
                                     f"{capability(format_name).install_hint}") from error


def options_for(format_name: str, **values: Any) -> ExportOptions:
    """The format's options object from keyword arguments; a name it does not take is refused by its flag."""
    cap = capability(format_name)
    known = {f.name: f for f in dataclasses.fields(cap.options_class)}
    refused = [name for name in values if name not in known]
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        takes = ", ".join(sorted(flag_of(f) for f in own_fields(cap.options_class))) or "none"
        raise UnsupportedOptionError(f"{format_name} export does not take {flags}; its own options are: {takes}")
    return cap.options_class(**values)


def check_options(format_name: str, options: ExportOptions) -> None:
    """Raise ``UnsupportedOptionError`` for another format's options, a precision the format does not
    take, or a value the options class refuses."""
    cap = capability(format_name)
    if not isinstance(options, cap.options_class):
        raise UnsupportedOptionError(f"{format_name} export takes {cap.options_class.__name__}, "
                                     f"got {type(options).__name__}")
    if options.precision not in cap.precisions:
        raise UnsupportedOptionError(f"{format_name} export does not take --precision {options.precision}; "
                                     f"it takes {', '.join(cap.precisions)}")
    options.check()
