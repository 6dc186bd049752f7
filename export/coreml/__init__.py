"""Core ML: the converter (``converter.py``), the numpy reference evaluator of saved ML programs
(``evaluator.py``) and its op table, one module per op family (``ops/``).

``python -m export.coreml MODEL`` (``__main__.py``) exports a registered model. As that command,
this package quiets coremltools' progress bars before torch is first imported: tqdm reads
``TQDM_DISABLE`` once, when it is imported, and torch imports it. The library import leaves the
environment alone.
"""
import os
import sys


def _launched_as_command() -> bool:
    """Whether this process is ``python -m export.coreml`` (runpy imports this package first)."""
    argv = sys.orig_argv
    return "-m" in argv[:-1] and argv[argv.index("-m") + 1] == __name__


if _launched_as_command():
    os.environ.setdefault("TQDM_DISABLE", "1")

from export.coreml.converter import (HANDLER, CoreMLFormat, InputChannelScale, export,  # noqa: E402
                                     image_preprocessing, pixels_from_normalized, quiet_converter_chatter)
from export.coreml.evaluator import MILEvalError, MILEvaluator, UnsupportedMILOpError  # noqa: E402
from export.coreml.ops import MIL_OPS  # noqa: E402

__all__ = ["HANDLER", "MIL_OPS", "CoreMLFormat", "InputChannelScale", "MILEvalError", "MILEvaluator",
           "UnsupportedMILOpError", "export", "image_preprocessing", "pixels_from_normalized",
           "quiet_converter_chatter"]
