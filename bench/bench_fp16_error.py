"""How far each format's fp16 artifact is from the eager model on probe weights: the figures the fp16
bounds in ``export/parity.py`` are set from. Prints figures, asserts nothing.

For each registered model, at its own input size, the deploy form on its probe weights
(``models.probe``) is converted by the format's handler at fp16 (the same converter call the gate
makes) and run on the gate's three inputs (``ModelSpec.sample_inputs``, seeds 0..2). Printed per
model and format: max |fp16 artifact - eager fp32 deploy| / spread (the quantity the gate bounds,
``export.parity``), whether every top-1 agreed, and that error over the model's own fp32 rounding
gap (max |eager fp32 - eager fp64| / spread, ``export.common.rounding_gap``): the ratio the fp16
entries' ``rounding_gain`` is set from (a net that amplifies fp32's rounding amplifies fp16's alike).
At the end, per format: the largest error and the largest ratio.

    python bench/bench_fp16_error.py                          # every model, coreml and tflite (~40 min here)
    python bench/bench_fp16_error.py --formats tflite repvit_m1_5 repvit_m2_3
    python bench/bench_fp16_error.py --json build/fp16_error.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, not an installed copy

import models  # noqa: E402
import reparam  # noqa: E402
from export.capabilities import CAPABILITIES  # noqa: E402
from export.common import rounding_gap  # noqa: E402
from export.formats import HANDLERS  # noqa: E402
from export.parity import reference_signal  # noqa: E402
from models.probe import probe_model  # noqa: E402

FP16_FORMATS = [name for name, cap in CAPABILITIES.items() if "fp16" in cap.precisions]


def fp16_error(name: str, formats: list[str]) -> dict[str, dict[str, float]]:
    """Per format: error / spread of ``name``'s fp16 artifact on its probe weights, top-1 agreement, seconds."""
    spec = models.model_spec(name)
    deploy = reparam.reparameterize(probe_model(name), warn_untrained=False).eval()
    inputs = [x.numpy() for x in spec.sample_inputs(count=3, seed=0)]
    with torch.no_grad():
        references = [deploy(torch.from_numpy(x)).numpy().astype(np.float64) for x in inputs]
    spread = reference_signal(references).spread
    gap = rounding_gap(deploy, inputs, references)
    rows = {}
    for format_name in formats:
        handler = HANDLERS[format_name]
        options = CAPABILITIES[format_name].options_class(precision="fp16", quiet=True)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{name}{CAPABILITIES[format_name].suffix}"
            with torch.no_grad():
                handler.convert(deploy, spec, path, options)
            outputs = [np.asarray(o, dtype=np.float64) for o in handler.run(path, inputs, spec, options)]
        error = max(float(np.abs(o - r).max()) for o, r in zip(outputs, references))
        top1 = float(np.mean([np.argmax(o) == np.argmax(r) for o, r in zip(outputs, references)]))
        rows[format_name] = {"error_over_spread": error / spread, "top1": top1, "gap": gap,
                             "ratio": error / spread / gap if gap else None, "seconds": time.perf_counter() - started}
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="registered names (default: all)")
    parser.add_argument("--formats", default="coreml,tflite",
                        help=f"comma-separated, of {', '.join(FP16_FORMATS)} (default coreml,tflite)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    unknown = [f for f in formats if f not in FP16_FORMATS]
    if unknown:
        parser.error(f"no fp16 in format(s) {', '.join(unknown)}; choose from {', '.join(FP16_FORMATS)}")
    torch.set_num_threads(args.threads)
    names = args.models or models.list_models()
    print(f"{'model':26s} {'fp32 gap':>9s} " + " ".join(f"{f + ' err/spread':>18s} {'ratio':>6s} {'top1':>5s}"
                                                   for f in formats), flush=True)
    results: dict[str, dict] = {}
    for name in names:
        results[name] = fp16_error(name, formats)
        row = results[name]
        print(f"{name:26s} {row[formats[0]]['gap'] or float('nan'):9.2e} "
              + " ".join(f"{row[f]['error_over_spread']:18.2e} {row[f]['ratio'] or float('nan'):6.0f} {row[f]['top1']:5.0%}"
                         for f in formats), flush=True)
    for f in formats:
        worst = max(results, key=lambda n: results[n][f]["error_over_spread"])
        ratios = {n: r[f]["ratio"] for n, r in results.items() if r[f]["ratio"] is not None}
        steep = max(ratios, key=ratios.get) if ratios else None
        print(f"{f} fp16: largest error {results[worst][f]['error_over_spread']:.2e} x spread ({worst}), "
              f"median {np.median([r[f]['error_over_spread'] for r in results.values()]):.2e}; largest error / "
              f"fp32 gap {ratios.get(steep, float('nan')):.0f} ({steep})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
