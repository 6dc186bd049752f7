"""Export to ONNX, Core ML and TFLite behind a numerical parity gate.

One file per format; optional backends are imported lazily, so ``import export`` never fails
for a missing converter.
"""
from export.artifact import Artifact, load_artifact, manifest_path_for

__all__ = ["Artifact", "load_artifact", "manifest_path_for"]
