"""The parity gate: an artifact is written only if its outputs match the eager model's.

Each artifact is run on seeded inputs (``spec.sample_inputs``) and compared, output by output,
with two references: the eager deploy model that was converted, and the training-form eval model
it came from. Float artifacts pass when ``max|out - ref| <= rtol * max|ref| + atol``; int8
artifacts are judged by top-1 agreement and cosine similarity, because quantization moves every
logit a little and an absolute bound would only measure the quantizer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """How close an artifact's outputs must be to a reference's."""

    rtol: float | None  # relative bound on the max abs error, times max|ref| (None: not judged so)
    atol: float  # absolute slack added to the bound
    min_top1_agreement: float | None = None  # fraction of samples whose argmax must agree (None: not judged)
    min_cosine: float | None = None  # lowest cosine similarity of any sample's output vs the reference
    reason: str = ""  # why this entry is as loose as it is

    def to_dict(self) -> dict:
        return asdict(self)


_INT8_REASON = ("int8 rounds every weight (and with int8_full every activation) to 256 levels: logits "
                "move by a few percent, so the gate checks the decision (top-1) and the direction (cosine)")

# (format, precision) -> tolerance. Entries looser than fp32's 1e-4 say why.
TOLERANCES: dict[tuple[str, str], Tolerance] = {
    ("onnx", "fp32"): Tolerance(rtol=1e-4, atol=1e-5, reason="fp32 throughout; only summation order differs"),
    ("tflite", "fp32"): Tolerance(rtol=1e-4, atol=1e-5, reason="fp32 throughout; XNNPACK reorders sums"),
    ("coreml", "fp32"): Tolerance(rtol=1e-4, atol=1e-5, reason="fp32 throughout; only summation order differs"),
    ("coreml", "fp16"): Tolerance(
        rtol=2e-2, atol=1e-3,
        reason="fp16 compute: 11-bit mantissa (~5e-4 per op) accumulates over ~20 blocks"),
    ("tflite", "fp16"): Tolerance(
        rtol=1e-2, atol=1e-3,
        reason="fp16 weights (rounded to 11-bit mantissa, ~5e-4 each), fp32 compute"),
    ("tflite", "int8_dynamic"): Tolerance(rtol=None, atol=0.0, min_top1_agreement=0.6, min_cosine=0.95,
                                          reason=_INT8_REASON),
    ("tflite", "int8_full"): Tolerance(rtol=None, atol=0.0, min_top1_agreement=0.6, min_cosine=0.9,
                                       reason=_INT8_REASON + "; activations too, so looser than dynamic"),
    ("executorch", "fp32"): Tolerance(rtol=1e-4, atol=1e-5, reason="fp32 throughout; XNNPACK reorders sums"),
    ("executorch", "fp16"): Tolerance(
        rtol=2e-2, atol=1e-3,
        reason="fp16 compute (XNNPACK half kernels, or Core ML fp16): 11-bit mantissa accumulates over ~20 blocks"),
    ("executorch", "int8_dynamic"): Tolerance(rtol=None, atol=0.0, min_top1_agreement=0.6, min_cosine=0.95,
                                              reason=_INT8_REASON),
    ("executorch", "int8_full"): Tolerance(rtol=None, atol=0.0, min_top1_agreement=0.6, min_cosine=0.9,
                                           reason=_INT8_REASON + "; activations too, so looser than dynamic"),
}


def tolerance_for(format_name: str, precision: str) -> Tolerance:
    try:
        return TOLERANCES[(format_name, precision)]
    except KeyError:
        raise KeyError(f"no parity tolerance for {format_name} at {precision}; add one to "
                       f"export/parity.py TOLERANCES with the reason beside it") from None


@dataclass
class Comparison:
    """One artifact output against one reference output."""

    reference: str  # "deploy" or "training"
    input_index: int  # which seeded input
    output_name: str  # which output
    max_abs_error: float  # max |out - ref|
    mean_abs_error: float  # mean |out - ref|
    where: list[int]  # index of the max error in the output tensor
    ref_max_abs: float  # max |ref|: the scale the relative bound is taken against
    bound: float | None  # the max abs error allowed (None for int8: judged by top-1 and cosine)
    cosine: float  # lowest cosine similarity over the batch
    top1_agreement: float  # fraction of the batch whose argmax agrees
    passed: bool


@dataclass
class ParityReport:
    """All comparisons of one artifact; ``passed`` only if every one passed."""

    format: str  # format judged
    precision: str  # precision judged
    tolerance: dict  # the Tolerance applied, with its reason
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.comparisons) and all(c.passed for c in self.comparisons) and self._aggregate_passed()

    def _aggregate_passed(self) -> bool:
        min_top1 = self.tolerance.get("min_top1_agreement")
        if min_top1 is None:
            return True
        return all(agreement >= min_top1 for agreement in self.top1_agreement().values())

    def top1_agreement(self) -> dict[str, float]:
        """Per reference: fraction of all inputs whose argmax agrees."""
        by_reference: dict[str, list[float]] = {}
        for c in self.comparisons:
            by_reference.setdefault(c.reference, []).append(c.top1_agreement)
        return {ref: float(np.mean(values)) for ref, values in by_reference.items()}

    def worst(self, reference: str | None = None) -> Comparison:
        """The comparison with the largest error relative to its bound (or scale)."""
        pool = [c for c in self.comparisons if reference is None or c.reference == reference]
        return max(pool, key=lambda c: c.max_abs_error / (c.bound or c.ref_max_abs or 1.0))

    def to_dict(self) -> dict:
        deploy_errors = [c.max_abs_error for c in self.comparisons if c.reference == "deploy"]
        return {
            "passed": self.passed,
            "format": self.format,
            "precision": self.precision,
            "tolerance": self.tolerance,
            "inputs": len({c.input_index for c in self.comparisons}),
            "max_abs_error": max((c.max_abs_error for c in self.comparisons), default=None),
            "max_abs_error_vs_deploy": max(deploy_errors, default=None),
            "top1_agreement": self.top1_agreement(),
            "min_cosine": min((c.cosine for c in self.comparisons), default=None),
            "comparisons": [asdict(c) for c in self.comparisons],
        }

    def summary_line(self) -> str:
        if not self.comparisons:
            return "no comparisons"
        worst = self.worst()
        verdict = "passed" if self.passed else "FAILED"
        if worst.bound is None:
            return (f"{verdict}: top-1 agreement {min(self.top1_agreement().values()):.0%}, "
                    f"min cosine {min(c.cosine for c in self.comparisons):.4f}")
        return (f"{verdict}: max abs error {worst.max_abs_error:.3g} (bound {worst.bound:.3g}) "
                f"over {len({c.input_index for c in self.comparisons})} inputs x "
                f"{len({c.reference for c in self.comparisons})} references")

    def format_text(self) -> str:
        """A table a person can read: one line per comparison, failures marked."""
        tol = self.tolerance
        lines = [f"parity {self.format} {self.precision}: {self.summary_line()}",
                 f"  tolerance: rtol={tol['rtol']} atol={tol['atol']} top1>={tol['min_top1_agreement']} "
                 f"cosine>={tol['min_cosine']} ({tol['reason']})",
                 "  reference input output      max_abs    mean_abs   bound      cosine   top1  where"]
        for c in self.comparisons:
            bound = f"{c.bound:.3g}" if c.bound is not None else "-"
            mark = "" if c.passed else "  <-- FAIL"
            lines.append(f"  {c.reference:<9} {c.input_index:>5} {c.output_name:<10} {c.max_abs_error:<10.3g} "
                         f"{c.mean_abs_error:<10.3g} {bound:<10} {c.cosine:<8.5f} {c.top1_agreement:<5.2f} "
                         f"{c.where}{mark}")
        return "\n".join(lines)


def compare(output: np.ndarray, reference: np.ndarray, tolerance: Tolerance, *, reference_name: str,
            input_index: int, output_name: str) -> Comparison:
    """Compare one output with one reference output (same shape, batch first)."""
    output = np.asarray(output, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if output.shape != reference.shape:
        raise ValueError(f"output {output_name!r} has shape {output.shape}, the reference {reference.shape}")
    error = np.abs(output - reference)
    flat_index = int(np.argmax(error)) if error.size else 0
    where = [int(i) for i in np.unravel_index(flat_index, error.shape)] if error.size else []
    max_error = float(error.max()) if error.size else 0.0
    ref_max_abs = float(np.abs(reference).max()) if reference.size else 0.0
    batch = output.reshape(output.shape[0], -1) if output.ndim > 1 else output.reshape(1, -1)
    ref_batch = reference.reshape(batch.shape)
    norms = np.linalg.norm(batch, axis=1) * np.linalg.norm(ref_batch, axis=1)
    cosines = np.where(norms > 0, np.sum(batch * ref_batch, axis=1) / np.maximum(norms, 1e-300), 1.0)
    top1 = float(np.mean(np.argmax(batch, axis=1) == np.argmax(ref_batch, axis=1)))
    finite = bool(np.all(np.isfinite(output)))
    if tolerance.rtol is not None:
        bound = tolerance.rtol * ref_max_abs + tolerance.atol
        passed = finite and max_error <= bound
    else:
        bound = None
        passed = finite
    if tolerance.min_cosine is not None:
        passed = passed and float(cosines.min()) >= tolerance.min_cosine
    return Comparison(reference=reference_name, input_index=input_index, output_name=output_name,
                      max_abs_error=max_error, mean_abs_error=float(error.mean()) if error.size else 0.0,
                      where=where, ref_max_abs=ref_max_abs, bound=bound, cosine=float(cosines.min()),
                      top1_agreement=top1, passed=passed)


def check_parity(outputs: list[np.ndarray], references: dict[str, list[np.ndarray]], tolerance: Tolerance, *,
                 format_name: str, precision: str, output_name: str = "logits") -> ParityReport:
    """Compare an artifact's outputs (one per input) with each reference's outputs on the same inputs."""
    report = ParityReport(format=format_name, precision=precision, tolerance=tolerance.to_dict())
    for reference_name, reference_outputs in references.items():
        if len(reference_outputs) != len(outputs):
            raise ValueError(f"{len(outputs)} artifact outputs but {len(reference_outputs)} from {reference_name}")
        for index, (output, reference) in enumerate(zip(outputs, reference_outputs)):
            report.comparisons.append(compare(output, reference, tolerance, reference_name=reference_name,
                                              input_index=index, output_name=output_name))
    return report
