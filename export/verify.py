"""Re-run the parity gate on an artifact that is already on disk: ``python -m export verify ARTIFACT``.

The manifest says what the artifact is (model, format, precision, input size, options, reparam)
and which weights it came from: a checkpoint path, or ``probe:<seed>`` for an export without
``--weights`` (``models.probe``: the same seed gives the same weights, so nothing else is needed).
``--weights`` names the checkpoint when the manifest's path no longer holds it. The artifact is
run on the gate's seeded inputs and judged by today's tolerance table against the eager model,
deploy and training form (the tolerance as the export took it: ``export.common.gate_tolerance``).
What is verified is the artifact itself; the fp32 check of a reduced-precision artifact's conversion
path (``ParityReport.fp32_path``) needs the converter and is not repeated. A file or folder whose
sha256 differs from the manifest's is reported as changed; it fails verification even if its
outputs still pass.

Exit status: 0 verified, 1 changed or failed the gate, 2 bad usage (no manifest, no weights).
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import reparam
from rich.markup import escape

from export.artifact import Artifact, load_artifact, sha256_of
from export.capabilities import capability
from export.common import gate_tolerance
from export.errors import InputPathError, UsageError
from export.formats import handler as format_handler
from export.parity import ParityReport, check_parity
from mobilelat.cli import ArgumentParser, run_cli
from mobilelat.console import Console, add_output_flags
from mobilelat.errors import EXIT_CHECK_FAILED, EXIT_OK
from models import create_model, model_spec
from models.probe import PROBE_PREFIX, probe_model


@dataclass
class Verification:
    """What re-checking one artifact found."""

    artifact: Artifact  # as its manifest describes it
    sha256_now: str  # of the file or folder on disk now
    report: ParityReport  # the gate, re-run

    @property
    def unchanged(self) -> bool:
        return self.sha256_now == self.artifact.sha256

    @property
    def passed(self) -> bool:
        return self.unchanged and self.report.passed

    def to_dict(self) -> dict:
        return {"artifact": str(self.artifact.path), "model": self.artifact.model, "format": self.artifact.format,
                "precision": self.artifact.precision, "sha256_manifest": self.artifact.sha256,
                "sha256_now": self.sha256_now, "unchanged": self.unchanged, "passed": self.passed,
                "parity": self.report.to_dict()}


def _weights_source(artifact: Artifact, weights: str | None) -> str | None:
    """Where the weights come from: ``--weights``, else the manifest's (a path, or ``probe:<seed>``)."""
    return weights if weights is not None else artifact.options.get("weights")


def _model_for(artifact: Artifact, weights: str | None) -> torch.nn.Module:
    source = _weights_source(artifact, weights)
    if source is None:
        raise UsageError(f"the manifest of {artifact.path} names no weights (a library export of a model in "
                         f"memory); pass --weights PATH")
    if str(source).startswith(PROBE_PREFIX):
        seed = int(str(source)[len(PROBE_PREFIX):])
        return probe_model(artifact.model, seed)
    if not Path(source).exists():
        raise InputPathError(f"weights {source} (from {'--weights' if weights else 'the manifest'}) do not exist; "
                             f"pass --weights PATH")
    return create_model(artifact.model, weights=source)


def _options(artifact: Artifact):
    options_class = capability(artifact.format).options_class
    names = {f.name for f in dataclasses.fields(options_class)} - {"tolerance"}
    values = {k: v for k, v in artifact.options.items() if k in names}
    if values.get("input_size") is not None:
        values["input_size"] = tuple(values["input_size"])
    return options_class(**values)


def verify_artifact(path: str | Path, weights: str | None = None) -> Verification:
    """Re-run the gate on the artifact at ``path`` (its manifest beside it) with the weights it was exported from."""
    path = Path(path)
    try:
        artifact = load_artifact(path)
    except FileNotFoundError as error:
        raise InputPathError(str(error)) from error
    if not path.exists():
        raise InputPathError(f"{path} does not exist (its manifest does)")
    options = _options(artifact)
    spec = model_spec(artifact.model)
    if options.input_size is not None:
        spec = spec.with_input_size(*options.input_size)
    training = _model_for(artifact, weights).eval()
    deploy = reparam.reparameterize(training, warn_untrained=False).eval() if artifact.reparameterized else training
    inputs = [x.numpy() for x in spec.sample_inputs(count=options.parity_inputs, seed=options.parity_seed)]
    with torch.no_grad():
        references = {"deploy": [deploy(torch.from_numpy(x)).numpy() for x in inputs]}
        if artifact.reparameterized:
            references["training"] = [training(torch.from_numpy(x)).numpy() for x in inputs]
    outputs = [np.asarray(o, dtype=np.float32) for o in format_handler(artifact.format).run(path, inputs, spec, options)]
    on_probe = str(_weights_source(artifact, weights)).startswith(PROBE_PREFIX)  # judged as the export judged it
    tolerance = gate_tolerance(artifact.format, options, deploy, inputs, references["deploy"], probe=on_probe)
    report = check_parity(outputs, references, tolerance,
                          format_name=artifact.format, precision=artifact.precision, output_name=spec.output_name)
    return Verification(artifact=artifact, sha256_now=sha256_of(path), report=report)


def _main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="python -m export verify",
                            description="Re-run the parity gate on an exported artifact, from its manifest.")
    parser.add_argument("artifact", type=Path, help="the .onnx / .tflite file or .mlpackage folder")
    parser.add_argument("--weights", metavar="PATH",
                        help="checkpoint to load (default: the manifest's: its path, or probe:<seed>)")
    add_output_flags(parser, quiet_flag=False)
    args = parser.parse_args(argv)
    console = Console(verbose=args.verbose, json_mode=args.json, command="export-verify")
    with console.capture():
        result = verify_artifact(args.artifact, args.weights)
    if console.json_mode:
        console.emit_json(result.to_dict())
    else:
        if not result.unchanged:
            console.print(f"CHANGED: {args.artifact} has sha256 {result.sha256_now[:16]}..., its manifest "
                          f"{result.artifact.sha256[:16]}...")
        console.print(escape(result.report.format_text() if args.verbose or not result.report.passed
                             else f"parity {result.artifact.format} {result.artifact.precision}: "
                                  f"{result.report.summary_line()}"))
        console.print("verified" if result.passed else "NOT verified")
    return EXIT_OK if result.passed else EXIT_CHECK_FAILED


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
