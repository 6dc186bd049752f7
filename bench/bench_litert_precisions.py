"""Benchmark of what each TFLite precision buys on LiteRT (XNNPACK): fp32, fp16, int8_dynamic and int8_full
latency per model, measured alternating in one process so machine noise hits every precision alike.

Each precision is exported by ``export.tflite`` behind its parity gate (the model's probe weights, as
``python -m export.tflite MODEL`` without ``--weights``; the default size; synthetic calibration for int8_full), then the four interpreters run in turn: ``--rounds`` rounds of
``--calls`` calls each, the median per round, the median of those. Prints ms per model and precision and the
ratio to fp32. Asserts nothing.

    python bench/bench_litert_precisions.py                          # a few models, 1 thread
    python bench/bench_litert_precisions.py repvit_m1 mobilevit_xs --threads 2
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from export.tflite import export, interpreter
from models import model_spec
from models.probe import probe_model

PRECISIONS = ("fp32", "fp16", "int8_dynamic", "int8_full")
DEFAULT_MODELS = ("repvit_m1", "mobilenetv3_large_100", "efficientnet_b0", "convnext_atto", "mobilevit_xs",
                  "edgenext_x_small")


def runner(path: str, threads: int):
    """A callable running the artifact once on a fixed random input in its own input type."""
    it = interpreter(path, threads=threads)
    detail = it.get_input_details()[0]
    if np.issubdtype(detail["dtype"], np.integer):
        value = np.random.default_rng(0).integers(-128, 127, size=detail["shape"]).astype(detail["dtype"])
    else:
        value = np.random.default_rng(0).random(detail["shape"], dtype=np.float32)
    it.set_tensor(detail["index"], value)
    return it.invoke


def median_ms(fn, calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(DEFAULT_MODELS), help="registry names")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--calls", type=int, default=20, help="calls per round and precision (default 20)")
    args = parser.parse_args()
    print(f"LiteRT (XNNPACK), {args.threads} thread(s), median of {args.rounds} rounds x {args.calls} calls", flush=True)
    print(f"{'model':24s}" + "".join(f"{p:>14s}" for p in PRECISIONS) + "   ratio to fp32", flush=True)
    with tempfile.TemporaryDirectory() as out:
        for name in args.models:
            spec = model_spec(name)
            paths = {}
            for precision in PRECISIONS:
                artifact = export(probe_model(name), spec, out, precision=precision, quiet=True)
                paths[precision] = str(artifact.path)
            runners = {p: runner(paths[p], args.threads) for p in PRECISIONS}
            for fn in runners.values():
                for _ in range(5):
                    fn()
            rounds = {p: [] for p in PRECISIONS}
            for _ in range(args.rounds):
                for precision, fn in runners.items():
                    rounds[precision].append(median_ms(fn, args.calls))
            ms = {p: statistics.median(v) for p, v in rounds.items()}
            ratios = " ".join(f"{ms[p] / ms['fp32']:.2f}" for p in PRECISIONS[1:])
            print(f"{name:24s}" + "".join(f"{ms[p]:>11.2f} ms" for p in PRECISIONS) + f"   {ratios}", flush=True)


if __name__ == "__main__":
    main()
