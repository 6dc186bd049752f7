"""Benchmark of ``profiling accuracy`` on an ONNX artifact against a bare ONNX Runtime loop; asserts nothing.

Writes N synthetic JPEGs (500x375, 10 classes) to a temporary folder, exports the model to ONNX
once, then per round times:

- *bare*: one ``session.run`` per image over tensors decoded beforehand (the floor: inference only);
- *evaluate*: the accuracy path itself (``profiling.dataset.iter_batches`` decoding on a thread
  pool one batch ahead, ``profiling.accuracy.evaluate`` with the ONNX target and its metrics),
  decoding included;
- *decode*: decoding and preprocessing alone, on the same pool.

Both inference paths use the same thread count. Prints the median of each and the ratio
evaluate / bare (the target is 1.3 or less).

    python bench/bench_accuracy.py                          # repvit_m0_9, 128 images, 3 rounds
    python bench/bench_accuracy.py --model repvit_m1 --images 256 --threads 1
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import models  # noqa: E402
from export import onnx as onnx_export  # noqa: E402
from models.imagenet import classes  # noqa: E402
from models.preprocess import preprocess_file  # noqa: E402
from profiling.accuracy import Target, evaluate, onnx_forward  # noqa: E402
from profiling.dataset import iter_batches, load_dataset  # noqa: E402


def write_images(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    synsets = [c.synset for c in classes()[:10]]
    for index in range(count):
        target = folder / synsets[index % 10]
        target.mkdir(parents=True, exist_ok=True)
        # smooth random content (JPEG of white noise decodes slower than photographs)
        small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        Image.fromarray(small).resize((500, 375), Image.Resampling.BILINEAR).save(target / f"{index}.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="repvit_m0_9")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads, both paths")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_images(tmp / "data", args.images)
        spec = models.model_spec(args.model)
        network = models.create_model(args.model).eval()
        started = time.perf_counter()
        artifact = onnx_export.export(network, spec, tmp / "artifacts", quiet=True)
        print(f"{args.model}: exported {artifact.path.name} in {time.perf_counter() - started:.1f} s; "
              f"{args.images} images 500x375 -> {spec.input_size[1]}x{spec.input_size[2]}, "
              f"crop_pct {spec.crop_pct}, {spec.interpolation}; {os.cpu_count()} CPU(s), ORT threads {args.threads}")
        dataset = load_dataset(tmp / "data")
        shape = tuple(spec.input_size)

        def transform(path: Path) -> np.ndarray:
            return preprocess_file(path, spec)

        decoded = [preprocess_file(path, spec)[None] for path, _ in dataset.items]
        forward = onnx_forward(artifact, threads=args.threads)
        forward(decoded[0])  # session warm-up, outside every timing
        bare, full, decode = [], [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            for tensor in decoded:
                forward(tensor)
            bare.append(time.perf_counter() - started)

            started = time.perf_counter()
            target = Target("artifact", "onnx", "fp32", "onnxruntime", forward, artifact=artifact)
            (result,) = evaluate(args.model, [target], iter_batches(dataset, transform, shape, args.batch_size),
                                 len(dataset), dataset="bench", dataset_sha256="", input_shape=[1, *shape],
                                 crop_pct=spec.crop_pct, interpolation=spec.interpolation)
            full.append(time.perf_counter() - started)

            started = time.perf_counter()
            for _batch in iter_batches(dataset, transform, shape, args.batch_size):
                pass
            decode.append(time.perf_counter() - started)
        bare_s, full_s, decode_s = (statistics.median(v) for v in (bare, full, decode))
        print(f"bare onnxruntime loop over pre-decoded tensors: {bare_s:.2f} s ({args.images / bare_s:.1f} images/s)")
        print(f"profiling accuracy path (decode + run + metrics): {full_s:.2f} s ({args.images / full_s:.1f} images/s)")
        print(f"decoding alone (thread pool):                    {decode_s:.2f} s ({args.images / decode_s:.1f} images/s)")
        print(f"ratio evaluate / bare: {full_s / bare_s:.2f} (target <= 1.3); medians of {args.rounds} rounds; "
              f"evaluated {result.evaluated}, skipped {result.skipped}")


if __name__ == "__main__":
    main()
