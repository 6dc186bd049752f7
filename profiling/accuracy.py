"""Accuracy beside latency: top-1/top-5 of a model's forms and exported artifacts on labelled images.

For one model, every *target* sees the same decoded images (``profiling.dataset``, the model's
evaluation transform from ``models.preprocess``): the eval-mode training form in torch (the
reference), the deploy form (reparameterized), and each artifact through its runtime (ONNX
Runtime, LiteRT, the Core ML ML program through the project's numpy MIL evaluator). Per target:

- ``top1`` / ``top5``: percent of *all listed images* whose label ranks first / in the first five;
  an image that could not be decoded counts as a miss (``skipped`` says how many);
- ``agreement``: percent of decoded images whose top-1 equals the reference's top-1;
- ``mean_abs_dev`` / ``max_abs_dev``: mean and max |logit - reference logit| over decoded images;
- ``top1_drop``: reference top-1 minus this target's, in points (an int8 artifact's cost).

Ranking ties are broken by the lower class index (a stable sort on -logit), so ``top1`` is the
first argmax and a target with constant logits is not counted right everywhere.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from export.artifact import Artifact, load_artifact, sha256_of
from export.coreml.evaluator import MILEvaluator
from profiling.errors import UsageError
from profiling.runners.litert import quantize_input

Logits = Callable[[np.ndarray], np.ndarray]  # (n, 3, H, W) float32 NCHW -> (n, classes) float32


def ranks(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rank of each label among its row's logits (0 = top-1): classes with a higher logit, plus tied
    ones with a lower index."""
    rows = np.arange(len(labels))
    label_logit = logits[rows, labels][:, None]
    higher = (logits > label_logit).sum(axis=1)
    tied_before = ((logits == label_logit) & (np.arange(logits.shape[1])[None, :] < labels[:, None])).sum(axis=1)
    return higher + tied_before


@dataclass
class Tally:
    """Running counts of one target over the batches."""

    top1: int = 0
    top5: int = 0
    agree: int = 0
    abs_dev_sum: float = 0.0
    abs_dev_count: int = 0
    max_abs_dev: float = 0.0
    seconds: float = 0.0  # inside the target's forward passes

    def add(self, logits: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> None:
        rank = ranks(logits, labels)
        self.top1 += int((rank < 1).sum())
        self.top5 += int((rank < 5).sum())
        self.agree += int((logits.argmax(axis=1) == reference.argmax(axis=1)).sum())
        deviation = np.abs(logits.astype(np.float64) - reference.astype(np.float64))
        self.abs_dev_sum += float(deviation.sum())
        self.abs_dev_count += deviation.size
        if deviation.size:
            self.max_abs_dev = max(self.max_abs_dev, float(deviation.max()))


@dataclass
class AccuracyResult:
    """One target's figures on one dataset: a row of the store's ``accuracy`` table."""

    model: str  # registry name
    form: str  # "training" (eval mode), "deploy" (reparameterized) or "artifact"
    format: str  # "torch", "onnx", "tflite", "coreml"
    precision: str  # "fp32", "fp16", "int8_dynamic", "int8_full"
    runtime: str  # "torch", "onnxruntime", "litert", "coreml-mil-evaluator"
    dataset: str  # the --data path as given
    dataset_sha256: str  # of the (path, label) list evaluated
    images: int  # listed images (the denominator of top1/top5)
    evaluated: int  # decoded and run
    skipped: int  # could not be decoded (counted as misses)
    top1: float  # percent of images
    top5: float  # percent of images
    agreement: float  # percent of evaluated images with the reference's top-1
    mean_abs_dev: float  # mean |logit - reference logit|
    max_abs_dev: float  # max |logit - reference logit|
    top1_drop: float  # reference top1 - top1, points
    images_per_s: float  # evaluated images per second inside this target's forward passes
    input_shape: list[int]  # (1, 3, H, W)
    crop_pct: float  # the evaluation transform used
    interpolation: str
    weights: str | None = None  # --weights, or probe:<seed> (the model's probe weights, without --weights)
    artifact_sha256: str | None = None
    artifact_path: str | None = None
    extra: dict = field(default_factory=dict)  # skipped files and reasons, tool versions
    run_id: str | None = None
    git_commit: str | None = None
    created_at: str | None = None
    id: int | None = None  # row id once stored

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Target:
    """Something to evaluate: its identity and a batch forward function."""

    form: str
    format: str
    precision: str
    runtime: str
    forward: Logits
    artifact: Artifact | None = None
    tally: Tally = field(default_factory=Tally)

    @property
    def label(self) -> str:
        return f"{self.format}/{self.precision}" + (f" ({self.form})" if self.format == "torch" else "")

    def run(self, inputs: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        logits = self.forward(inputs)
        self.tally.seconds += time.perf_counter() - started
        return np.asarray(logits, dtype=np.float32).reshape(len(inputs), -1)


# -- forward functions ---------------------------------------------------------------------------

def torch_forward(model: torch.nn.Module) -> Logits:
    """A torch module in eval mode on float32 batches."""
    model.eval()

    def forward(inputs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(inputs)).float().numpy()
    return forward


def _layout(inputs: np.ndarray, artifact: Artifact) -> np.ndarray:
    return np.ascontiguousarray(inputs.transpose(0, 2, 3, 1)) if artifact.input_layout == "NHWC" else inputs


def _fixed_batch(artifact: Artifact) -> bool:
    first = artifact.input_shape[0] if artifact.input_shape else 1
    return isinstance(first, int) and first >= 1


def onnx_forward(artifact: Artifact, threads: int = 0) -> Logits:
    """ONNX Runtime's CPU provider; a fixed-batch file runs image by image."""
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(artifact.path), options, providers=["CPUExecutionProvider"])
    input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name
    per_image = _fixed_batch(artifact)

    def forward(inputs: np.ndarray) -> np.ndarray:
        feed = _layout(inputs, artifact)
        if not per_image:
            return session.run([output_name], {input_name: feed})[0]
        return np.concatenate([session.run([output_name], {input_name: feed[i:i + 1]})[0]
                               for i in range(len(feed))]) if len(feed) else np.zeros((0, 0), np.float32)
    return forward


def tflite_forward(artifact: Artifact, threads: int = 0) -> Logits:
    """The ai-edge-litert interpreter; int8 inputs quantized and outputs dequantized with the file's scales."""
    from ai_edge_litert import interpreter as litert
    interpreter = litert.Interpreter(model_path=str(artifact.path), num_threads=threads or None)
    interpreter.allocate_tensors()
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]

    def dequantize(value: np.ndarray) -> np.ndarray:
        if np.dtype(output_detail["dtype"]).kind == "f":
            return value.astype(np.float32)
        scale, zero_point = output_detail["quantization"]
        return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)

    def forward(inputs: np.ndarray) -> np.ndarray:
        feed = _layout(inputs, artifact)
        outputs = []
        for i in range(len(feed)):
            interpreter.set_tensor(input_detail["index"], quantize_input(feed[i:i + 1], input_detail))
            interpreter.invoke()
            outputs.append(dequantize(interpreter.get_tensor(output_detail["index"])))
        return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)
    return forward


def coreml_forward(artifact: Artifact) -> Logits:
    """The ML program evaluated by the project's numpy MIL evaluator (no macOS needed; slow: use --limit)."""
    if artifact.options.get("image_input"):
        raise UsageError(f"{artifact.path} takes an image input; evaluate a Core ML export with a tensor input")
    evaluator = MILEvaluator(artifact.path)

    def forward(inputs: np.ndarray) -> np.ndarray:
        feed = _layout(inputs, artifact)
        outputs = [evaluator.run({artifact.input_name: feed[i:i + 1]})[artifact.output_name].astype(np.float32)
                   for i in range(len(feed))]
        return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)
    return forward


ARTIFACT_RUNTIMES: dict[str, tuple[str, Callable[[Artifact], Logits]]] = {
    "onnx": ("onnxruntime", onnx_forward),
    "tflite": ("litert", tflite_forward),
    "coreml": ("coreml-mil-evaluator", coreml_forward),
}


def artifact_target(artifact: Artifact) -> Target:
    """The target that runs ``artifact`` on its format's runtime."""
    if artifact.format not in ARTIFACT_RUNTIMES:
        raise UsageError(f"{artifact.path}: format {artifact.format!r} cannot be evaluated; "
                         f"choose from {', '.join(ARTIFACT_RUNTIMES)}")
    runtime, make = ARTIFACT_RUNTIMES[artifact.format]
    form = "artifact"
    return Target(form, artifact.format, artifact.precision, runtime, make(artifact), artifact=artifact)


def summarize(target: Target, model: str, images: int, evaluated: int, skipped: list, reference_top1: float,
              **fields) -> AccuracyResult:
    """The target's tally as a result (percentages of ``images``, deviations over ``evaluated``)."""
    tally = target.tally
    top1 = 100.0 * tally.top1 / images if images else 0.0
    artifact = target.artifact
    extra = dict(fields.pop("extra", {}))
    if skipped:
        extra["skipped_files"] = [{"path": str(p), "label": int(label), "reason": why} for p, label, why in skipped[:50]]
    return AccuracyResult(
        model=model, form=target.form, format=target.format, precision=target.precision, runtime=target.runtime,
        images=images, evaluated=evaluated, skipped=len(skipped), top1=top1,
        top5=100.0 * tally.top5 / images if images else 0.0,
        agreement=100.0 * tally.agree / evaluated if evaluated else 0.0,
        mean_abs_dev=tally.abs_dev_sum / tally.abs_dev_count if tally.abs_dev_count else 0.0,
        max_abs_dev=tally.max_abs_dev, top1_drop=reference_top1 - top1,
        images_per_s=evaluated / tally.seconds if tally.seconds > 0 else 0.0,
        artifact_sha256=artifact.sha256 if artifact else None,
        artifact_path=str(artifact.path) if artifact else None, extra=extra, **fields)


def evaluate(model: str, targets: list[Target], batches, images: int, on_batch: Callable[[int], None] | None = None,
             **fields) -> list[AccuracyResult]:
    """Run every target on every batch; the first target is the reference. One result per target, in order."""
    if not targets:
        raise UsageError("nothing to evaluate")
    evaluated, skipped = 0, []
    for batch in batches:
        skipped += batch.skipped
        if len(batch.inputs):
            reference = targets[0].run(batch.inputs)
            targets[0].tally.add(reference, batch.labels, reference)
            for target in targets[1:]:
                target.tally.add(target.run(batch.inputs), batch.labels, reference)
            evaluated += len(batch.inputs)
        if on_batch is not None:
            on_batch(len(batch.inputs) + len(batch.skipped))
    reference_top1 = 100.0 * targets[0].tally.top1 / images if images else 0.0
    return [summarize(t, model, images, evaluated, skipped, reference_top1, **fields) for t in targets]


def artifact_from_path(path: str | Path) -> Artifact:
    """An exported artifact by its path, its manifest beside it; refused when the file changed since export."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"--artifact {path} does not exist")
    try:
        artifact = load_artifact(path)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    except (TypeError, ValueError) as error:
        raise UsageError(f"--artifact {path}: unreadable manifest ({error})") from None
    if sha256_of(path) != artifact.sha256:
        raise UsageError(f"--artifact {path} changed since it was exported (sha256 differs from its manifest); "
                         f"re-export it")
    return artifact
