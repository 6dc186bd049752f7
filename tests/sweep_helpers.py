"""A stand-in exporter for the sweep tests: the tiny network's files, labelled with registry names.

A zoo export takes minutes; the sweep's logic does not depend on what network a file holds. So
``make_tiny_cache(folder)`` converts the tiny network (tests/profiling_helpers.py) to ONNX and
TFLite once, with its parity figures measured against eager PyTorch, and :func:`tiny_export`
(``ensure_artifact``'s signature; the tests set ``profiling.sweep.cli.EXPORTER`` to it, and Ray
ships it to the workers by reference) copies those files under the sweep's artifacts folder with a
manifest as the exporters write, reusing an intact one. It imports nothing heavy, so a Ray worker
runs it in milliseconds. Its cache folder comes from ``$MOBILELAT_TINY_CACHE``. A file ``FAIL_EXPORT`` in the artifacts folder listing ``model|format``
lines makes those exports fail as a parity gate refusal would.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from export.artifact import Artifact, load_artifact, sha256_of

CACHE_ENV = "MOBILELAT_TINY_CACHE"
SHAPE = [1, 3, 32, 32]


class StandInParityError(RuntimeError):
    """The stand-in of the parity gate refusing an export."""


def make_tiny_cache(folder: Path) -> Path:
    """Convert the tiny network once and measure its parity; returns ``folder``."""
    import numpy as np
    import onnxruntime
    import torch
    from ai_edge_litert import interpreter as litert

    from profiling_helpers import save_onnx, save_tflite, tiny_module  # heavy (litert_torch): not in Ray workers

    folder.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    reference = tiny_module()(torch.from_numpy(image)).detach().numpy()
    onnx_out = onnxruntime.InferenceSession(str(save_onnx(folder / "tiny.onnx"))).run(None, {"image": image})[0]
    interpreter = litert.Interpreter(model_path=str(save_tflite(folder / "tiny.tflite")))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    tflite_out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    parity = {name: {"max_abs": float(np.abs(out - reference).max())}
              for name, out in (("onnx", onnx_out), ("tflite", tflite_out))}
    (folder / "parity.json").write_text(json.dumps(parity))
    return folder


def tiny_export(model: str, format_name: str, precision: str = "fp32", input_size=None,
                artifacts_dir: Path = Path("artifacts"), reexport: bool = False,
                weights: str | None = None) -> tuple[Artifact, bool]:
    """The tiny network's file as ``model``'s artifact under ``artifacts_dir``; (artifact, exported now)."""
    artifacts_dir = Path(artifacts_dir)
    fail = artifacts_dir / "FAIL_EXPORT"
    if fail.exists() and f"{model}|{format_name}" in fail.read_text().split():
        raise StandInParityError(f"parity gate refused {model} {format_name} (stand-in failure)")
    path = artifacts_dir / model / f"{model}_{precision}.{format_name}"
    if not reexport and path.exists():
        try:
            found = load_artifact(path)
            if found.sha256 == sha256_of(path):
                return found, False
        except (FileNotFoundError, ValueError):
            pass
    cache = Path(os.environ[CACHE_ENV])
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    shutil.copyfile(cache / f"tiny.{format_name}", partial)
    artifact = Artifact(path=path, model=model, format=format_name, precision=precision, input_name="image",
                        input_shape=list(SHAPE), input_layout="NCHW", output_name="logits",
                        mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], params=1000, macs=200_000,
                        reparameterized=True, sha256=sha256_of(partial), size_bytes=partial.stat().st_size,
                        tool_versions={}, git_commit=None,
                        parity=json.loads((cache / "parity.json").read_text())[format_name],
                        options={"weights": weights}, created_at="2026-12-02T00:00:00Z")
    artifact.manifest_path.write_text(json.dumps(artifact.to_dict()))
    os.replace(partial, path)
    return artifact, True
