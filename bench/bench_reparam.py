"""Benchmark of reparameterization: prints figures, asserts nothing.

For each model (default: the RepViT family), training form (eval mode) vs deploy form
(``reparam.reparameterize``), measured side by side in one run:

* leaf modules and ONNX graph nodes (TorchScript exporter, opset 18, before any graph cleanup);
* latency at batch 1 in torch eager and in ONNX Runtime CPU, 1 thread by default. The two forms
  alternate over several rounds, each round's median is kept, and the figure is the median of
  those; the ratio is training / deploy (above 1: the deploy form is faster).

BatchNorm statistics are randomized first so no branch is all zeros (a fresh model's residual
BatchNorms are zero-initialized and a runtime could skip them, flattering the training form).
ONNX Runtime folds Conv+BatchNorm itself when it optimizes a session, so its ratio shows mostly
what the merged branches save; torch eager runs every BatchNorm.

    python bench/bench_reparam.py                        # RepViT family, 1 thread
    python bench/bench_reparam.py --models repvit_m1 --rounds 7 --calls 30
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import models  # noqa: E402
import reparam  # noqa: E402
from bench_export import randomize_batchnorm, time_interleaved  # noqa: E402


def onnx_file(model: torch.nn.Module, example: torch.Tensor, path: Path) -> int:
    """Export with the TorchScript exporter (as export.onnx does) and return the node count."""
    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), input_names=["image"], output_names=["logits"],
                          opset_version=18, dynamo=False)
    return len(onnx.load(str(path)).graph.node)


def leaf_modules(model: torch.nn.Module) -> int:
    return sum(1 for m in model.modules() if not list(m.children()) and not isinstance(m, torch.nn.Identity))


def bench_model(name: str, threads: int, rounds: int, calls: int, work: Path) -> dict:
    import onnxruntime as ort

    spec = models.model_spec(name)
    training = randomize_batchnorm(models.create_model(name)).eval()
    deploy = reparam.reparameterize(training)
    x = spec.sample_inputs(count=1, seed=0)[0]
    forms = {"training": training, "deploy": deploy}
    nodes, sessions = {}, {}
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    for form, model in forms.items():
        path = work / f"{name}_{form}.onnx"
        nodes[form] = onnx_file(model, x, path)
        sessions[form] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        eager = time_interleaved({form: (lambda m=m: m(x)) for form, m in forms.items()},
                                 rounds=rounds, calls=calls, warmup=5)
    feed = {"image": x.numpy()}
    onnxrt = time_interleaved({form: (lambda s=s: s.run(["logits"], feed)) for form, s in sessions.items()},
                              rounds=rounds, calls=calls, warmup=5)
    with torch.no_grad():
        error = float((deploy(x) - training(x)).abs().max() / training(x).abs().max())
    return {"name": name, "layers": (leaf_modules(training), leaf_modules(deploy)),
            "nodes": (nodes["training"], nodes["deploy"]), "eager": (eager["training"], eager["deploy"]),
            "ort": (onnxrt["training"], onnxrt["deploy"]), "error": error}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="repvit_*", help="registry pattern or comma-separated names "
                        "(default repvit_*)")
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads (default 1)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20, help="timed calls per round and form")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n for part in args.models.split(",") for n in models.list_models(part)]
    if not names:
        parser.error(f"no registered model matches {args.models!r} (python -m models list)")

    print(f"training form (eval) vs deploy form, batch 1, {args.threads} thread(s), {args.rounds} rounds x "
          f"{args.calls} calls, medians in ms; ratio = training / deploy")
    header = ("| model | layers | ONNX nodes | eager train | eager deploy | eager ratio | ORT train | ORT deploy "
              "| ORT ratio | max rel error |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    with tempfile.TemporaryDirectory(prefix="bench_reparam_") as tmp:
        for name in names:
            row = bench_model(name, args.threads, args.rounds, args.calls, Path(tmp))
            (layers_t, layers_d), (nodes_t, nodes_d) = row["layers"], row["nodes"]
            (eager_t, eager_d), (ort_t, ort_d) = row["eager"], row["ort"]
            print(f"| {name} | {layers_t} -> {layers_d} | {nodes_t} -> {nodes_d} | {eager_t:.2f} | {eager_d:.2f} "
                  f"| {eager_t / eager_d:.2f}x | {ort_t:.2f} | {ort_d:.2f} | {ort_t / ort_d:.2f}x "
                  f"| {row['error']:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=reparam.UntrainedBatchNormWarning)
    sys.exit(main())
