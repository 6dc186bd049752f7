"""Benchmark of checkpoint loading: prints figures, asserts nothing.

How long ``models.create_model(name)`` takes without weights and with a mapped checkpoint (timm's
layout as the hub ships it, .safetensors and .pth; and our own layout written by
``python -m models convert-weights``), measured side by side in one run: the variants alternate
call by call over several rounds (garbage collected between calls, untimed), each round keeps its
median, and the figure is the median of those. The target is that loading a mapped checkpoint adds
under 10% to ``create_model``.

The checkpoint is float32 with random values in the source's keys and shapes, read from the
oracle fixtures (tests/fixtures/checkpoints/timm/NAME.json); the time does not depend on the values.

    python bench/bench_weights.py                         # repvit_m1
    python bench/bench_weights.py --models repvit_m1 convnext_tiny --rounds 9 --calls 5
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import models  # noqa: E402
from models import registry  # noqa: E402
from models.weights import read_checkpoint, save_safetensors, to_our_layout  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "checkpoints" / "timm"


def timm_checkpoint(name: str, work: Path) -> dict[str, Path]:
    """The model's timm-layout checkpoint as .safetensors and .pth, and our layout as .safetensors."""
    fixture = next(json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))
                   if json.loads(p.read_text())["ours"] == name)
    generator = torch.Generator().manual_seed(0)
    state = {key: (torch.randn(shape, generator=generator) if dtype.startswith("float")
                   else torch.zeros(shape, dtype=getattr(torch, dtype)))
             for key, shape, dtype in fixture["keys"]}
    from safetensors.torch import save_file

    paths = {"timm .safetensors": work / f"{name}_timm.safetensors", "timm .pth": work / f"{name}_timm.pth",
             "ours .safetensors": work / f"{name}_ours.safetensors"}
    save_file(state, str(paths["timm .safetensors"]))
    torch.save(state, paths["timm .pth"])
    ours, _ = to_our_layout(state, registry.family_module(name))
    save_safetensors(ours, paths["ours .safetensors"], {"format": "pt"})
    return paths


def time_alternating(runs: dict[str, callable], rounds: int, calls: int) -> dict[str, float]:
    """Median over rounds of each variant's per-round median (ms). Variants alternate call by call,
    and garbage from the previous call is collected outside the timed region, so one variant's
    leftovers are not charged to the next."""
    for run in runs.values():  # warm-up: imports, allocator, page cache
        run()
    per_round: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(rounds):
        samples: dict[str, list[float]] = {label: [] for label in runs}
        for _ in range(calls):
            for label, run in runs.items():
                gc.collect()
                start = time.perf_counter()
                run()
                samples[label].append((time.perf_counter() - start) * 1e3)
        for label, values in samples.items():
            per_round[label].append(statistics.median(values))
    return {label: statistics.median(values) for label, values in per_round.items()}


def bench_model(name: str, rounds: int, calls: int, work: Path) -> dict[str, float]:
    paths = timm_checkpoint(name, work)
    runs = {"no weights": lambda: models.create_model(name)}
    for label, path in paths.items():
        runs[label] = lambda path=path: models.create_model(name, weights=path)
    times = time_alternating(runs, rounds=rounds, calls=calls)
    # the parts a checkpoint adds, alone, for scale
    module = registry.family_module(name)
    checkpoint = read_checkpoint(paths["timm .safetensors"])
    parts = {"read timm .safetensors": lambda: read_checkpoint(paths["timm .safetensors"]),
             "read timm .pth": lambda: read_checkpoint(paths["timm .pth"]),
             "map timm -> ours": lambda: to_our_layout(checkpoint.state_dict, module)}
    for label, part in time_alternating(parts, rounds=rounds, calls=calls).items():
        times[f"  part: {label}"] = part
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["repvit_m1"])
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (default 7)")
    parser.add_argument("--calls", type=int, default=5, help="create_model calls per variant per round (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s); median of {args.rounds} alternating rounds x "
          f"{args.calls} calls")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            times = bench_model(name, args.rounds, args.calls, Path(tmp))
            base, ours = times["no weights"], times["ours .safetensors"]
            print(f"\ncreate_model({name!r}){'':20s} median    vs no weights   vs ours .safetensors")
            for label, ms in times.items():
                extra = ""
                if label != "no weights" and not label.startswith("  part"):
                    extra = f"  {100 * (ms / base - 1):+8.1f}%  {100 * (ms / ours - 1):+14.1f}%"
                print(f"  {label:36s} {ms:7.1f} ms{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
