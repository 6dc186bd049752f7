"""``python -m export.coreml MODEL``: export a registered model to Core ML behind the parity gate.

coremltools probes optional packages when it is imported (``coremltools/_deps``): transformers and
torchao (installed here as litert-torch dependencies) cost ~3 s of a ~18 s export and serve only
converting Hugging Face or torchao-quantized models, which this command never does. A None entry
in ``sys.modules`` makes their import fail, so coremltools records them as absent. Only this entry
point does it: the library and ``python -m export`` (which may run litert-torch, which needs them)
import them normally. coremltools itself is imported only when the conversion starts, after this.
"""
import sys

for _optional in ("transformers", "torchao"):
    sys.modules.setdefault(_optional, None)

from export.cli import run_format_cli  # noqa: E402
from export.coreml.converter import HANDLER  # noqa: E402

sys.exit(run_format_cli(HANDLER))
