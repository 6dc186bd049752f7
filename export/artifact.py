"""The public object an export produces: a file, its manifest, and its parity figures.

Profiling knows an export only through this: the artifact path and ``manifest.json`` beside it.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
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
    # the evaluation transform the phone app and `profiling accuracy` apply before mean/std (ModelSpec)
    crop_pct: float | None = None  # resize the shorter side to floor(size / crop_pct), center crop; None: older manifest
    interpolation: str | None = None  # the resize filter ("bicubic", "bilinear")

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


def sha256_of(path: str | Path) -> str:
    """Hash of a file, or of a directory's relative paths and contents in sorted order."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(child.relative_to(path).as_posix().encode() + b"\0")
            _hash_file(child, digest)
    else:
        _hash_file(path, digest)
    return digest.hexdigest()


def _hash_file(path: Path, digest) -> None:
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)


def size_on_disk(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def git_commit() -> str | None:
    """``git rev-parse HEAD`` of this repository, with ``-dirty`` when tracked files have local
    changes (as profiling records it), None outside a checkout."""
    root = Path(__file__).resolve().parent
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=root)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10, cwd=root).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = result.stdout.strip() if result.returncode == 0 else ""
    return commit + ("-dirty" if dirty else "") if commit else None
