"""``python -m export MODEL --formats onnx,coreml,tflite``: one model to several formats, each gated.
``python -m export verify ARTIFACT [--weights W]``: re-run the gate on an artifact from its manifest.

Each format's optional backend is imported only when that format converts, so a missing one fails
that format (with its install command) and the others still run. Exit status: the worst of the
formats' (0 all exported, 1 a parity failure, 2 bad usage, 3 converter or backend failure).
"""
import os
import sys

# as python -m export.coreml: no per-pass progress bars from the converters;
os.environ.setdefault("TQDM_DISABLE", "1")  # tqdm reads this once, when torch first imports it

if sys.argv[1:2] == ["verify"]:  # no model is named "verify"
    from export.verify import main as verify_main  # noqa: E402

    sys.exit(verify_main(sys.argv[2:]))

from export.cli import run_multi_cli  # noqa: E402
from export.formats import HANDLERS  # noqa: E402

sys.exit(run_multi_cli(HANDLERS))
