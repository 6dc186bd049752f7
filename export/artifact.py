"""The public object an export produces: a file, its manifest, and its parity figures.

Profiling knows an export only through this: the artifact path and ``manifest.json`` beside it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST_SUFFIX = ".manifest.json"


@dataclass
class Artifact:
    """An exported model file that passed the parity gate, and what is known about it."""

    path: Path  # the .onnx file, .mlpackage directory or .tflite file
    model: str  # registry name
    format: str  # "onnx", "coreml" or "tflite"
    precision: str  # "fp32", "fp16", "int8_dynamic", "int8_full"
    input_name: str  # name of the single input
    input_shape: list[int]  # shape of the single input as the artifact takes it
    input_layout: str  # "NCHW" or "NHWC"
    output_name: str  # name of the single output
    mean: list[float]  # per-channel normalization the caller applies (or folded in: see options)
    std: list[float]
    params: int  # parameters of the exported (deploy) model
    macs: int  # multiply-accumulates of one forward pass at input_shape
    reparameterized: bool  # whether the deploy form was exported
    sha256: str  # of the file, or of the directory's files in sorted order
    size_bytes: int  # on disk
    tool_versions: dict[str, str]  # torch, converter, runtime versions used
    git_commit: str | None  # of this repository when exported, None outside a checkout
    parity: dict  # figures of the parity gate (per input, per reference)
    options: dict = field(default_factory=dict)  # format options used (dynamic_batch, image_input, ...)
    export_seconds: float = 0.0  # wall time of conversion plus parity
    created_at: str = ""  # ISO-8601 UTC

    @property
    def manifest_path(self) -> Path:
        return manifest_path_for(self.path)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["path"] = str(self.path)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Artifact":
        data = dict(data)
        data["path"] = Path(data["path"])
        return cls(**data)


def manifest_path_for(artifact_path: str | Path) -> Path:
    """``artifacts/m/m.onnx`` -> ``artifacts/m/m.onnx.manifest.json``."""
    artifact_path = Path(artifact_path)
    return artifact_path.with_name(artifact_path.name + MANIFEST_SUFFIX)


def load_artifact(artifact_path: str | Path) -> Artifact:
    """Read the manifest beside an artifact; the path in it is made relative to where it lies now."""
    artifact_path = Path(artifact_path)
    manifest = manifest_path_for(artifact_path)
    if not manifest.is_file():
        raise FileNotFoundError(f"no manifest beside {artifact_path} (expected {manifest}); "
                                f"export it with `python -m export.<format> MODEL`")
    artifact = Artifact.from_dict(json.loads(manifest.read_text()))
    artifact.path = artifact_path
    return artifact
