"""Find a reusable exported artifact for (model, format, precision, input size), or export one.

Profiling knows an export only through its manifest: an existing artifact is reused when its
manifest says the same model, format and precision, the deploy form and the requested input size.
One whose file (or ``.mlpackage`` folder, hashed whole) no longer has the manifest's sha256 is
refused (:class:`ChangedArtifactError`): its parity figures no longer describe it, and exporting
over it would silently replace what someone changed. Otherwise the format's exporter
(:data:`EXPORTERS`: ``export.<fmt>.export``, parity gate included) writes a new one.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from torch import nn

import models
from export import coreml as coreml_export, executorch as executorch_export, onnx as onnx_export
from export import tflite as tflite_export
from export.artifact import MANIFEST_SUFFIX, Artifact, load_artifact, sha256_of
from models.probe import PROBE_PREFIX, name_seed
from models.probe import probe_model as probe_weights_of
from profiling.errors import UsageError

DEFAULT_ARTIFACTS = Path("artifacts")
# format -> its exporter, ``export(model, spec, out_dir, **options) -> Artifact`` (parity gate included)
EXPORTERS: dict[str, Callable[..., Artifact]] = {
    "onnx": onnx_export.export, "tflite": tflite_export.export, "coreml": coreml_export.export,
    "executorch": executorch_export.export,
}


class ChangedArtifactError(UsageError):
    """A matching artifact whose bytes differ from its manifest's sha256."""

    def __init__(self, path: Path, recorded: str, found: str):
        super().__init__(f"{path} changed since it was exported (sha256 {found[:12]}... on disk, {recorded[:12]}... "
                         f"in its manifest): its parity figures no longer describe it. Check it with "
                         f"`python -m export verify {path}`, or delete it (or pass --reexport) to export afresh")
        self.path = path


def probe_model(model: str) -> tuple[nn.Module, str]:
    """``model`` on its probe weights, seeded from its name at its own input size, as ``python -m export``
    builds it without --weights; and the label manifests give those weights (``probe:<seed>``)."""
    return probe_weights_of(model), probe_label(model)


def probe_label(model: str) -> str:
    """How manifests and result rows name ``model``'s probe weights: ``probe:<seed>``."""
    return f"{PROBE_PREFIX}{name_seed(models.model_spec(model).name)}"


def spatial_size(artifact: Artifact) -> tuple[int, int]:
    """(height, width) of the artifact's input, whatever its layout."""
    shape = artifact.input_shape
    return (shape[1], shape[2]) if artifact.input_layout == "NHWC" else (shape[-2], shape[-1])


def find_artifact(artifacts_dir: Path, model: str, format_name: str, precision: str,
                  input_size: tuple[int, int]) -> Artifact | None:
    """The newest artifact under ``artifacts_dir`` whose manifest matches, or None.

    Raises ChangedArtifactError when a matching artifact's sha256 differs from its manifest's."""
    candidates = []
    for manifest in Path(artifacts_dir).rglob(f"*{MANIFEST_SUFFIX}"):
        try:
            data = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue  # a half-written or foreign file: never reuse it
        if (data.get("model"), data.get("format"), data.get("precision")) != (model, format_name, precision):
            continue
        artifact_path = manifest.with_name(manifest.name[:-len(MANIFEST_SUFFIX)])
        try:
            artifact = load_artifact(artifact_path)
        except (TypeError, FileNotFoundError):
            continue
        if not artifact.reparameterized or spatial_size(artifact) != tuple(input_size):
            continue
        if artifact.options.get("nhwc") or artifact.options.get("dynamic_batch") or artifact.options.get("image_input"):
            continue  # measured configurations use the default I/O
        if artifact.options.get("backend", "xnnpack") != "xnnpack":
            continue  # ExecuTorch: the host measures the XNNPACK program (Core ML runs on Apple devices only)
        if not artifact_path.exists():
            continue
        found = sha256_of(artifact_path)
        if found != artifact.sha256:  # modified since export: refused, never measured nor overwritten
            raise ChangedArtifactError(artifact_path, artifact.sha256, found)
        candidates.append(artifact)
    return max(candidates, key=lambda a: a.created_at) if candidates else None


def ensure_artifact(model: str, format_name: str, precision: str = "fp32", input_size: tuple[int, int] | None = None,
                    artifacts_dir: Path = DEFAULT_ARTIFACTS, reexport: bool = False,
                    weights: str | None = None) -> tuple[Artifact, bool]:
    """An artifact to measure and whether it was exported now (False: reused from disk)."""
    if format_name not in EXPORTERS:
        raise UsageError(f"format {format_name!r} has no exporter; choose from {', '.join(EXPORTERS)}")
    spec = models.model_spec(model)
    if input_size is not None:
        spec = spec.with_input_size(*input_size)
    size = (spec.input_size[1], spec.input_size[2])
    if not reexport and weights is None:
        found = find_artifact(artifacts_dir, model, format_name, precision, size)
        if found is not None:
            return found, False
    if weights is None:  # as `python -m export` without --weights: probe weights seeded from the name
        network, label = probe_model(model)
    else:
        network, label = models.create_model(model, weights=weights), str(weights)
    # quiet: the caller shows its own progress; the manifest records where the weights came from
    options = {"precision": precision, "quiet": True, "weights": label}
    if input_size is not None:
        options["input_size"] = tuple(input_size)
    return EXPORTERS[format_name](network, spec, Path(artifacts_dir), **options), True
