"""Benchmark of export: prints figures, asserts nothing.

1. Whole-process wall time of ``python -m export.<fmt> MODEL`` (Core ML is the one users quote;
   target under 15 s for repvit_m1), as a subprocess, cold start included.
2. Latency of the exported deploy model vs the training-form export (``--no-reparam``) on ONNX
   Runtime and on LiteRT (XNNPACK), same input, same thread count, measured side by side: the two
   sessions alternate over several rounds and each round's median is kept; the ratio is
   training / deploy (above 1: reparameterization made it faster).

The model's BatchNorm layers get random statistics and weights first: a fresh model
zero-initializes some of them and converters would fold those branches away, flattering the
training form.

    python bench/bench_export.py                               # repvit_m1, all of the above
    python bench/bench_export.py --model repvit_m0_6 --threads 1 --rounds 5 --skip-cli
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import models  # noqa: E402
from export import onnx as export_onnx  # noqa: E402
from export import tflite as export_tflite  # noqa: E402


def cli_wall_seconds(format_name: str, model: str, out_dir: Path, extra: list[str]) -> tuple[float, int, str]:
    """(wall seconds, exit status, last stderr line) of one ``python -m export.<fmt>`` process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", f"export.{format_name}", model, "--out", str(out_dir), "--quiet",
                             *extra], capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - started
    tail = (result.stderr.strip().splitlines() or [""])[-1][:160]
    return seconds, result.returncode, tail


def randomize_batchnorm(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                size = module.num_features
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator) * 0.1)
    return model


def time_interleaved(runs: dict[str, callable], rounds: int, calls: int, warmup: int) -> dict[str, float]:
    """Median over rounds of each callable's per-round median latency (ms); callables alternate per round."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    medians: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            samples = np.empty(calls)
            for index in range(calls):
                before = time.perf_counter_ns()
                run()
                samples[index] = (time.perf_counter_ns() - before) / 1e6
            medians[name].append(float(np.median(samples)))
    return {name: float(np.median(values)) for name, values in medians.items()}


def runtime_latency(model_name: str, threads: int, rounds: int, calls: int, work: Path) -> list[tuple]:
    """Rows (runtime, deploy ms, training ms, ratio, deploy MB, training MB)."""
    spec = models.model_spec(model_name)
    model = randomize_batchnorm(models.create_model(model_name))
    x = spec.sample_inputs(count=1, seed=0)[0].numpy()
    rows = []
    for runtime, exporter in (("onnxruntime", export_onnx), ("litert", export_tflite)):
        artifacts = {form: exporter.export(model, spec, work / form, reparameterize=(form == "deploy"), quiet=True)
                     for form in ("deploy", "training")}
        if runtime == "onnxruntime":
            sessions = {form: export_onnx.session(a.path, threads=threads) for form, a in artifacts.items()}
            runs = {form: (lambda s=s: s.run(["logits"], {"image": x})) for form, s in sessions.items()}
        else:
            runners = {form: export_tflite.interpreter(a.path, threads=threads).get_signature_runner()
                       for form, a in artifacts.items()}
            runs = {form: (lambda r=r: r(image=x)) for form, r in runners.items()}
        latency = time_interleaved(runs, rounds=rounds, calls=calls, warmup=10)
        rows.append((runtime, latency["deploy"], latency["training"], latency["training"] / latency["deploy"],
                     artifacts["deploy"].size_bytes / 1e6, artifacts["training"].size_bytes / 1e6))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="repvit_m1")
    parser.add_argument("--threads", type=int, default=1, help="runtime threads (default 1: a shared 2-core host)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=30, help="timed calls per round")
    parser.add_argument("--skip-cli", action="store_true", help="skip the whole-process wall times")
    parser.add_argument("--skip-latency", action="store_true", help="skip the deploy vs training latency")
    parser.add_argument("--cli-no-reparam", action="store_true",
                        help="time the CLIs with --no-reparam (the training form) instead of the default deploy form")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        work = Path(tmp)
        if not args.skip_cli:
            extra = ["--no-reparam"] if args.cli_no_reparam else []
            print(f"whole-process wall time, python -m export.<fmt> {args.model} {' '.join(extra)}"
                  f" (cold start, subprocess)")
            for format_name in ("coreml", "onnx", "tflite"):
                seconds, status, tail = cli_wall_seconds(format_name, args.model, work / f"cli_{format_name}", extra)
                note = "" if status == 0 else f"  (exit {status}: {tail})"
                target = "  target < 15 s" if format_name == "coreml" else ""
                print(f"  {format_name:<7} {seconds:6.1f} s{target}{note}")
        if not args.skip_latency:
            print(f"\nlatency of {args.model} deploy vs training-form export, batch 1, {args.threads} thread(s), "
                  f"median of {args.rounds} interleaved rounds x {args.calls} calls")
            print(f"  {'runtime':<12} {'deploy ms':>10} {'training ms':>12} {'training/deploy':>16} "
                  f"{'deploy MB':>10} {'training MB':>12}")
            for runtime, deploy_ms, training_ms, ratio, deploy_mb, training_mb in runtime_latency(
                    args.model, args.threads, args.rounds, args.calls, work / "latency"):
                print(f"  {runtime:<12} {deploy_ms:10.2f} {training_ms:12.2f} {ratio:16.2f}x "
                      f"{deploy_mb:10.2f} {training_mb:12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
