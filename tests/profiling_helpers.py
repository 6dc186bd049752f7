"""Helpers shared by the profiling tests: a tiny network, and artifacts of it with manifests as the exporters write.

The tiny network (conv, relu, conv, pool, linear on 3x32x32) converts in seconds, so the runners
and the simulated phone measure a real model without waiting for a zoo export.
"""
from __future__ import annotations

import json
from pathlib import Path

import litert_torch
import torch

from export.artifact import Artifact, load_artifact, sha256_of, size_on_disk
from models.spec import IMAGENET_MEAN, IMAGENET_STD

TINY_SHAPE = [1, 3, 32, 32]


def tiny_module() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()


def write_manifest(path: Path, format_name: str, model: str = "tiny", precision: str = "fp32") -> Artifact:
    """A manifest beside ``path`` as the exporters write it, so runners can load the artifact."""
    artifact = Artifact(
        path=path, model=model, format=format_name, precision=precision, input_name="image",
        input_shape=list(TINY_SHAPE), input_layout="NCHW", output_name="logits",
        mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), params=1000, macs=200_000, reparameterized=True,
        sha256=sha256_of(path), size_bytes=size_on_disk(path), tool_versions={"torch": torch.__version__},
        git_commit=None, parity={}, created_at="2026-11-22T00:00:00Z")
    artifact.manifest_path.write_text(json.dumps(artifact.to_dict()))
    return load_artifact(path)


def save_onnx(path: Path) -> Path:
    """The tiny network as an ONNX file (input "image", output "logits"), no manifest."""
    torch.onnx.export(tiny_module(), (torch.randn(*TINY_SHAPE),), str(path), input_names=["image"],
                      output_names=["logits"], dynamo=False)
    return path


def save_tflite(path: Path) -> Path:
    """The tiny network as a .tflite file (NCHW input, as litert-torch converts it), no manifest."""
    litert_torch.convert(tiny_module(), (torch.randn(*TINY_SHAPE),)).export(str(path))
    return path


def tiny_onnx(folder: Path, model: str = "tiny") -> Artifact:
    return write_manifest(save_onnx(folder / f"{model}.onnx"), "onnx", model)


def tiny_tflite(folder: Path, model: str = "tiny") -> Artifact:
    return write_manifest(save_tflite(folder / f"{model}.tflite"), "tflite", model)
