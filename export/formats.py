"""Every export format by name: the handler the shared wrapper drives for it.

The explicit table the command lines (and anyone choosing a format by name) dispatch through;
``export.capabilities.CAPABILITIES`` says what each format accepts, this says who converts it.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from export import coreml, executorch, onnx, tflite
from export.artifact import Artifact
from export.capabilities import capability, options_for
from export.common import FormatHandler, export_model
from export.options import ExportOptions
from models import ModelSpec

# one entry per format of the capability table, in its order (tests/test_export_common.py checks it)
HANDLERS: dict[str, FormatHandler] = {"onnx": onnx.HANDLER, "coreml": coreml.HANDLER, "tflite": tflite.HANDLER,
                                      "executorch": executorch.HANDLER}


def handler(format_name: str) -> FormatHandler:
    """The handler of a format; an unknown name is an ``UnsupportedOptionError`` listing the formats."""
    capability(format_name)
    return HANDLERS[format_name]


def export_format(format_name: str, model: nn.Module, spec: ModelSpec, out_dir: str | Path = "artifacts",
                  options: ExportOptions | None = None, **values) -> Artifact:
    """Export ``model`` to the format named ``format_name``: with its options object, or with its fields
    as keyword arguments (``precision="fp16"``, ``input_size=(256, 256)``, ...)."""
    if options is not None and values:
        raise TypeError("give the options object or its fields as keyword arguments, not both")
    return export_model(handler(format_name), model, spec, Path(out_dir),
                        options if options is not None else options_for(format_name, **values))
