"""The parity gate: an artifact is written only if its outputs match the eager model's.

Each artifact is run on seeded inputs (``spec.sample_inputs``) and compared, output by output,
with two references: the eager deploy model that was converted, and the training-form eval model
it came from. The gate's arithmetic is built so that a broken artifact cannot hide in it:

- **Bounds on the signal.** Errors are judged against the *spread* of the reference across the
  parity inputs: each output element is centred over the inputs (``ref_i - mean_i ref``) and the
  spread is the largest centred value. A float artifact passes when
  ``max|out - ref| <= rtol * spread + atol`` (``atol`` is 0 in the table), so a constant offset the
  logits share across inputs (a bias, a head that ignores the image) gives no slack.
- **Inputs must reach the output.** A reference whose spread is under ``MIN_INPUT_SHARE`` of its
  largest value is refused ("inputs do not reach the output"): a gate on such a model would pass
  an artifact that zeroes or swaps its input.
- **No free cosine.** Cosine similarity is taken on each sample's centred output (the mean over
  classes removed); a zero or non-finite vector gives 0.0, never 1.0.
- **Top-1 for every precision.** For float precisions an argmax that moved is a failure unless the
  reference's own margin between the two classes is within the bound (a tie the tolerance allows).
  int8 artifacts are judged by top-1 agreement and cosine, because quantization moves every logit
  a little and an absolute bound would only measure the quantizer. On probe weights int8 is judged
  by cosine only (``probe_tolerance``): the probe has no dominant class by design, so its top-1
  margins are a few percent of the spread and int8 flips them whatever the conversion did.
- **The path at fp32 too.** A reduced-precision artifact (fp16, int8) cannot resolve a change of
  the order of its own rounding (one BatchNorm scaled by 1.001, GELU's tanh form), so the export
  wrapper also gates the same conversion path at fp32 on probe weights, against the fp32 bound
  (``ParityReport.fp32_path``): a wrong fold or a converter that mangles the graph is caught at fp32
  resolution, and the precision's own bound is left to catch what the precision itself does.

The functions here take plain arrays (reference and candidate outputs), so any format, present or
future, is judged the same way.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

# A reference whose input-dependent share (spread / max|ref|) is below this is refused. fp32 rounding
# moves logits by ~1e-6 of their magnitude; with rtol 1e-4 x spread that noise stays 100x under the
# bound only when the spread is at least 1% of the magnitude.
MIN_INPUT_SHARE = 1e-2


@dataclass(frozen=True)
class Tolerance:
    """How close an artifact's outputs must be to a reference's."""

    rtol: float | None  # bound on the max abs error, times the reference's spread over inputs (None: not judged so)
    atol: float = 0.0  # absolute slack added to the bound (0 in the table: it must not dominate the signal)
    min_top1_agreement: float | None = 1.0  # fraction of samples whose argmax must agree (float: beyond ties)
    min_cosine: float | None = None  # lowest centred cosine similarity of any sample's output vs the reference
    # int8 (no rtol): a moved argmax still agrees when the reference prefers its own top-1 by at most
    # tie_rtol x spread (the reference itself cannot tell the two classes apart at int8's resolution)
    tie_rtol: float | None = None
    # reduced float precisions: rtol grows with the model's own sensitivity to rounding, to at least
    # rounding_gain x g (g = max |eager fp32 - eager fp64| / spread, ``scaled_to_model``): a net that
    # amplifies fp32's rounding amplifies fp16's by the same factor (measured: bench/bench_fp16_error.py)
    rounding_gain: float | None = None
    reason: str = ""  # why this entry is as loose as it is

    def to_dict(self) -> dict:
        return asdict(self)


_INT8_REASON = ("int8 rounds every weight (and with int8_full every activation) to 256 levels: logits "
                "move by a few percent, so the gate checks the decision (top-1, a class the reference prefers "
                "by under 5% of its spread counting as a tie) and the direction (cosine)")
_INT8_TIE = 0.05  # logits move by a few percent of the spread at int8: closer calls are ties

# (format, precision) -> tolerance, rtol relative to the reference's spread over the parity inputs.
# fp16 entries are the largest error measured on probe weights (docs/export.md, "Parity gate")
# times a stated margin.
TOLERANCES: dict[tuple[str, str], Tolerance] = {
    ("onnx", "fp32"): Tolerance(rtol=1e-4, reason="fp32 throughout; only summation order differs"),
    ("tflite", "fp32"): Tolerance(rtol=1e-4, reason="fp32 throughout; XNNPACK reorders sums"),
    ("coreml", "fp32"): Tolerance(rtol=1e-4, reason="fp32 throughout; only summation order differs"),
    ("coreml", "fp16"): Tolerance(
        rtol=2e-2, rounding_gain=17000.0,
        reason="fp16 compute (11-bit mantissa): on probe weights the error is at most 5.5e3 x the model's own fp32 "
               "rounding gap (edgevit_xxs; median 3.2e3, 20 models, bench/bench_fp16_error.py), so rtol is ~3x that, "
               "at least 2e-2 (~2x the median error, 1.1e-2)"),
    ("tflite", "fp16"): Tolerance(
        rtol=1e-2, rounding_gain=10000.0,
        reason="fp16 weights (11-bit mantissa), fp32 compute: on probe weights the error is at most 3.2e3 x the "
               "model's own fp32 rounding gap (swin_tiny; median 1.5e3, 20 models, bench/bench_fp16_error.py), so rtol "
               "is ~3x that, at least 1e-2 (~2x the median error, 5.2e-3)"),
    ("tflite", "int8_dynamic"): Tolerance(rtol=None, min_top1_agreement=0.6, min_cosine=0.95, tie_rtol=_INT8_TIE,
                                          reason=_INT8_REASON),
    ("tflite", "int8_full"): Tolerance(rtol=None, min_top1_agreement=0.6, min_cosine=0.9, tie_rtol=_INT8_TIE,
                                       reason=_INT8_REASON + "; activations too, so looser than dynamic"),
    ("executorch", "fp32"): Tolerance(rtol=1e-4, reason="fp32 throughout; XNNPACK reorders sums"),
    ("executorch", "fp16"): Tolerance(
        rtol=5e-2, rounding_gain=75000.0,
        reason="fp16 compute (XNNPACK half kernels): on probe weights the error is at most 2.4e4 x the model's own "
               "fp32 rounding gap (mobilenetv3_small_100; the 16 of 20 models it runs, bench/bench_fp16_error.py), so rtol is "
               "~3x that, at least 5e-2 (~1.7x the smallest error, 2.7e-2)"),
    ("executorch", "int8_dynamic"): Tolerance(rtol=None, atol=0.0, min_top1_agreement=0.6, min_cosine=0.95,
                                              tie_rtol=_INT8_TIE, reason=_INT8_REASON),
    ("executorch", "int8_full"): Tolerance(rtol=None, atol=0.0, min_top1_agreement=0.6, min_cosine=0.9,
                                           tie_rtol=_INT8_TIE,
                                           reason=_INT8_REASON + "; activations too, so looser than dynamic"),
}


_PROBE_INT8 = ("; on probe weights by cosine only: the probe has no dominant class, so int8 flips its "
               "top-1 margins (a few percent of the spread) whatever the conversion did")


def probe_tolerance(tolerance: Tolerance) -> Tolerance:
    """The tolerance a conversion on probe weights is judged by: int8 (no ``rtol``) without top-1, float unchanged."""
    if tolerance.rtol is not None or tolerance.min_top1_agreement is None:
        return tolerance
    return replace(tolerance, min_top1_agreement=None, reason=tolerance.reason + _PROBE_INT8)


def scaled_to_model(tolerance: Tolerance, rounding_gap: float | None) -> Tolerance:
    """``tolerance`` for one model whose eager fp32 output is ``rounding_gap`` x spread from fp64: rtol becomes
    max(rtol, rounding_gain x gap) (unchanged without a gain or a measured gap)."""
    if tolerance.rounding_gain is None or rounding_gap is None or tolerance.rtol is None:
        return tolerance
    scaled = tolerance.rounding_gain * rounding_gap
    if scaled <= tolerance.rtol:
        return tolerance
    return replace(tolerance, rtol=float(f"{scaled:.3g}"),
                   reason=f"{tolerance.reason}; this model's eager fp32 is {rounding_gap:.2e} x spread from fp64, "
                          f"so rtol = {tolerance.rounding_gain:g} x that")


def tolerance_for(format_name: str, precision: str) -> Tolerance:
    try:
        return TOLERANCES[(format_name, precision)]
    except KeyError:
        raise KeyError(f"no parity tolerance for {format_name} at {precision}; add one to "
                       f"export/parity.py TOLERANCES with the reason beside it") from None


@dataclass(frozen=True)
class Signal:
    """How much a reference's output moves with its input, over the parity inputs."""

    spread: float  # max over elements of |ref_i - mean over inputs of ref|
    max_abs: float  # max |ref| over all inputs and elements
    input_share: float  # spread / max_abs: the input-dependent share of the output (0 when max_abs is 0)

    @property
    def reaches_output(self) -> bool:
        return bool(np.isfinite(self.spread) and self.spread > 0 and self.input_share >= MIN_INPUT_SHARE)


def reference_signal(reference_outputs: list[np.ndarray]) -> Signal:
    """The spread of a reference's outputs across the parity inputs (each element centred over the inputs)."""
    stack = np.stack([np.asarray(r, dtype=np.float64) for r in reference_outputs])
    if stack.size == 0:
        return Signal(0.0, 0.0, 0.0)
    centred = stack - stack.mean(axis=0, keepdims=True)
    spread = float(np.abs(centred).max())
    max_abs = float(np.abs(stack).max())
    return Signal(spread=spread, max_abs=max_abs, input_share=spread / max_abs if max_abs > 0 else 0.0)


@dataclass
class Comparison:
    """One artifact output against one reference output."""

    reference: str  # "deploy" or "training" (or "probe:deploy", ...)
    input_index: int  # which seeded input
    output_name: str  # which output
    max_abs_error: float  # max |out - ref|
    mean_abs_error: float  # mean |out - ref|
    where: list[int]  # index of the max error in the output tensor
    ref_max_abs: float  # max |ref| of this sample
    spread: float  # the reference's spread over the parity inputs: the scale the bound is taken against
    bound: float | None  # the max abs error allowed (None for int8: judged by top-1 and cosine)
    cosine: float  # lowest centred cosine similarity over the batch (0.0 for a zero or non-finite vector)
    top1_agreement: float  # fraction of the batch whose argmax agrees
    top1_beyond_ties: float  # same, counting a moved argmax as agreeing when the reference's margin is within the bound
    passed: bool


def _centred_cosines(batch: np.ndarray, ref_batch: np.ndarray) -> np.ndarray:
    """Per-sample cosine of the outputs with their mean over classes removed; 0.0 where a norm is 0 or not finite."""
    with np.errstate(all="ignore"):
        a = batch - batch.mean(axis=1, keepdims=True)
        b = ref_batch - ref_batch.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        cosines = np.sum(a * b, axis=1) / np.where(norms > 0, norms, 1.0)
    ok = np.isfinite(cosines) & np.isfinite(norms) & (norms > 0)
    return np.where(ok, cosines, 0.0)


def compare(output: np.ndarray, reference: np.ndarray, tolerance: Tolerance, *, reference_name: str,
            input_index: int, output_name: str, spread: float | None = None) -> Comparison:
    """Compare one output with one reference output (same shape, batch first).

    ``spread``: the reference's spread over all parity inputs (``reference_signal``); None takes the
    spread of this one sample's output around its mean (only for a caller with a single sample).
    """
    output = np.asarray(output, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if output.shape != reference.shape:
        raise ValueError(f"output {output_name!r} has shape {output.shape}, the reference {reference.shape}")
    with np.errstate(invalid="ignore"):
        error = np.abs(output - reference)
    error = np.where(np.isfinite(error), error, np.inf)
    flat_index = int(np.argmax(error)) if error.size else 0
    where = [int(i) for i in np.unravel_index(flat_index, error.shape)] if error.size else []
    max_error = float(error.max()) if error.size else 0.0
    ref_max_abs = float(np.abs(reference).max()) if reference.size else 0.0
    if spread is None:
        spread = float(np.abs(reference - reference.mean()).max()) if reference.size else 0.0
    batch = output.reshape(output.shape[0], -1) if output.ndim > 1 else output.reshape(1, -1)
    ref_batch = reference.reshape(batch.shape)
    cosines = _centred_cosines(batch, ref_batch)
    finite = bool(np.all(np.isfinite(output)))
    out_top = np.argmax(np.where(np.isfinite(batch), batch, -np.inf), axis=1)
    ref_top = np.argmax(ref_batch, axis=1)
    agree = out_top == ref_top
    bound = tolerance.rtol * spread + tolerance.atol if tolerance.rtol is not None else None
    rows = np.arange(len(ref_top))
    margin = ref_batch[rows, ref_top] - ref_batch[rows, out_top]  # how much the reference prefers its own top-1
    tie_bound = bound if bound is not None else (tolerance.tie_rtol or 0.0) * spread
    tie = margin <= tie_bound
    passed = finite and (bound is None or max_error <= bound)
    if tolerance.min_cosine is not None:
        passed = passed and float(cosines.min()) >= tolerance.min_cosine
    return Comparison(reference=reference_name, input_index=input_index, output_name=output_name,
                      max_abs_error=max_error, mean_abs_error=float(error.mean()) if error.size else 0.0,
                      where=where, ref_max_abs=ref_max_abs, spread=float(spread), bound=bound,
                      cosine=float(cosines.min()), top1_agreement=float(np.mean(agree)),
                      top1_beyond_ties=float(np.mean(agree | (finite & tie))), passed=passed)


@dataclass
class ParityReport:
    """All comparisons of one artifact; ``passed`` only if every one passed and every reference varies."""

    format: str  # format judged
    precision: str  # precision judged
    tolerance: dict  # the Tolerance applied, with its reason
    comparisons: list[Comparison] = field(default_factory=list)
    signals: dict[str, dict] = field(default_factory=dict)  # reference -> Signal as a dict (spread, input_share)
    probe: "ParityReport | None" = None  # the same conversion on probe weights (export.probe), when run
    probe_seed: int | None = None  # seed of the probe weights (set also when the model's weights are the probe's)
    # the same conversion path at fp32 on probe weights, against the fp32 bound (reduced precisions only)
    fp32_path: "ParityReport | None" = None

    @property
    def refused(self) -> list[str]:
        """References whose outputs do not vary with the input (the gate refuses them)."""
        return [name for name, signal in self.signals.items()
                if not Signal(**signal).reaches_output]

    @property
    def passed(self) -> bool:
        own = (bool(self.comparisons) and all(c.passed for c in self.comparisons) and not self.refused
               and self._aggregate_passed())
        return (own and (self.probe is None or self.probe.passed)
                and (self.fp32_path is None or self.fp32_path.passed))

    def _aggregate_passed(self) -> bool:
        min_top1 = self.tolerance.get("min_top1_agreement")
        if min_top1 is None:
            return True
        # float precisions: a moved argmax counts only beyond a tie the bound allows
        agreement = self.top1_agreement(beyond_ties=self._counts_ties())
        return all(value >= min_top1 for value in agreement.values())

    def _counts_ties(self) -> bool:
        """Whether the judged top-1 agreement excuses ties: float precisions (the bound) and int8 (tie_rtol)."""
        return self.tolerance.get("rtol") is not None or bool(self.tolerance.get("tie_rtol"))

    def top1_agreement(self, beyond_ties: bool = False) -> dict[str, float]:
        """Per reference: fraction of all inputs whose argmax agrees."""
        by_reference: dict[str, list[float]] = {}
        for c in self.comparisons:
            by_reference.setdefault(c.reference, []).append(c.top1_beyond_ties if beyond_ties else c.top1_agreement)
        return {ref: float(np.mean(values)) for ref, values in by_reference.items()}

    def input_share(self) -> dict[str, float]:
        """Per reference: the input-dependent share of its outputs (spread / max|ref|)."""
        return {name: signal["input_share"] for name, signal in self.signals.items()}

    def worst(self, reference: str | None = None) -> Comparison:
        """The comparison with the largest error relative to its bound (or scale)."""
        pool = [c for c in self.comparisons if reference is None or c.reference == reference]
        return max(pool, key=lambda c: c.max_abs_error / (c.bound or c.spread or c.ref_max_abs or 1.0))

    def to_dict(self) -> dict:
        deploy_errors = [c.max_abs_error for c in self.comparisons if c.reference == "deploy"]
        data = {
            "passed": self.passed,
            "format": self.format,
            "precision": self.precision,
            "tolerance": self.tolerance,
            "inputs": len({c.input_index for c in self.comparisons}),
            "max_abs_error": max((c.max_abs_error for c in self.comparisons), default=None),
            "max_abs_error_vs_deploy": max(deploy_errors, default=None),
            "max_error_over_spread": max((c.max_abs_error / c.spread for c in self.comparisons if c.spread > 0),
                                         default=None),
            "top1_agreement": self.top1_agreement(),
            "min_cosine": min((c.cosine for c in self.comparisons), default=None),
            "signals": self.signals,
            "input_share": self.input_share(),
            "refused": self.refused,
            "min_input_share": MIN_INPUT_SHARE,
            "comparisons": [asdict(c) for c in self.comparisons],
        }
        if self.probe is not None:
            data["probe"] = {"seed": self.probe_seed, "same_as_model": False, **self.probe.to_dict()}
        elif self.probe_seed is not None:  # the model's own weights are the probe weights: judged above
            data["probe"] = {"seed": self.probe_seed, "same_as_model": True, "passed": self.passed,
                             "input_share": self.input_share()}
        if self.fp32_path is not None:
            data["fp32_path"] = self.fp32_path.to_dict()
        return data

    def _own_line(self) -> str:
        if self.refused:
            shares = ", ".join(f"{name} {self.signals[name]['input_share']:.2g}" for name in self.refused)
            return (f"FAILED: inputs do not reach the output (input-dependent share of the logits {shares} < "
                    f"{MIN_INPUT_SHARE:g}): the gate cannot tell a broken artifact from a good one on these "
                    f"weights; pass trained --weights, or export without --weights (probe weights)")
        if not self.comparisons:
            return "no comparisons"
        worst = self.worst()
        own_passed = all(c.passed for c in self.comparisons) and self._aggregate_passed()
        verdict = "passed" if own_passed else "FAILED"
        top1 = min(self.top1_agreement(beyond_ties=self._counts_ties()).values())
        if worst.bound is None:
            return (f"{verdict}: top-1 agreement {top1:.0%}, "
                    f"min cosine {min(c.cosine for c in self.comparisons):.4f}")
        return (f"{verdict}: max abs error {worst.max_abs_error:.3g} (bound {worst.bound:.3g} = rtol x spread "
                f"{worst.spread:.3g}), top-1 {top1:.0%} over {len({c.input_index for c in self.comparisons})} "
                f"inputs x {len({c.reference for c in self.comparisons})} references")

    def summary_line(self) -> str:
        line = self._own_line()
        if self.probe is not None:
            line += f"; probe weights: {self.probe._own_line()}"
        if self.fp32_path is not None:
            line += f"; the same path at fp32: {self.fp32_path._own_line()}"
        return line

    def format_text(self) -> str:
        """A table a person can read: one line per comparison, failures marked."""
        tol = self.tolerance
        lines = [f"parity {self.format} {self.precision}: {self.summary_line()}",
                 f"  tolerance: rtol={tol['rtol']} x spread, atol={tol['atol']} top1>={tol['min_top1_agreement']}"
                 f"{'' if not tol.get('tie_rtol') else ' (ties within ' + format(tol['tie_rtol'], 'g') + ' x spread)'} "
                 f"cosine>={tol['min_cosine']} ({tol['reason']})",
                 "  input-dependent share: " + ", ".join(f"{k} {v:.3g}" for k, v in self.input_share().items()),
                 "  reference input output      max_abs    mean_abs   bound      cosine   top1  where"]
        for c in self.comparisons:
            bound = f"{c.bound:.3g}" if c.bound is not None else "-"
            mark = "" if c.passed else "  <-- FAIL"
            lines.append(f"  {c.reference:<9} {c.input_index:>5} {c.output_name:<10} {c.max_abs_error:<10.3g} "
                         f"{c.mean_abs_error:<10.3g} {bound:<10} {c.cosine:<8.5f} {c.top1_agreement:<5.2f} "
                         f"{c.where}{mark}")
        if self.probe is not None:
            lines.append(f"  -- on probe weights (seed {self.probe_seed}) --")
            lines.extend("  " + line for line in self.probe.format_text().splitlines())
        if self.fp32_path is not None:
            weights = "the model's weights" if self.probe_seed is None else f"probe weights (seed {self.probe_seed})"
            lines.append(f"  -- the same conversion path at fp32, on {weights} --")
            lines.extend("  " + line for line in self.fp32_path.format_text().splitlines())
        return "\n".join(lines)


def check_parity(outputs: list[np.ndarray], references: dict[str, list[np.ndarray]], tolerance: Tolerance, *,
                 format_name: str, precision: str, output_name: str = "logits") -> ParityReport:
    """Compare an artifact's outputs (one per input) with each reference's outputs on the same inputs.

    Format-generic: ``outputs`` are the candidate's arrays, ``references`` name -> the eager arrays.
    """
    report = ParityReport(format=format_name, precision=precision, tolerance=tolerance.to_dict())
    for reference_name, reference_outputs in references.items():
        if len(reference_outputs) != len(outputs):
            raise ValueError(f"{len(outputs)} artifact outputs but {len(reference_outputs)} from {reference_name}")
        signal = reference_signal(reference_outputs)
        report.signals[reference_name] = asdict(signal)
        for index, (output, reference) in enumerate(zip(outputs, reference_outputs)):
            report.comparisons.append(compare(output, reference, tolerance, reference_name=reference_name,
                                              input_index=index, output_name=output_name, spread=signal.spread))
    return report
