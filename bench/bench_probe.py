"""How well conditioned each model is on its probe weights: prints figures, asserts nothing.

The fp32 parity gate bounds an artifact's error by 1e-4 x the spread of the eager reference over
the parity inputs. That is only fair if eager fp32 itself is that close to exact arithmetic on the
probe weights (``models.probe``): a probe under which fp32 rounding compounds through a deep net
fails every format. For each registered model this runs its probe in fp32 and in fp64 on the
gate's own inputs (``ModelSpec.sample_inputs``, seeds 0..2) and prints

- ``gap``: max |fp32 - fp64| over the logits / spread (must stay well under 1e-4),
- ``spread`` and ``share`` (spread / max |logit|, the input-dependent share the gate requires > 1%),
- the seconds the probe took to build.

    python bench/bench_probe.py                      # every registered model (~3 min here)
    python bench/bench_probe.py repvit_m2_3 efficientnetv2_s
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, not an installed copy

import models  # noqa: E402
from models.probe import probe_model  # noqa: E402


def conditioning(name: str) -> dict[str, float]:
    """fp32-vs-fp64 gap, spread and input share of ``name``'s probe on the gate's three inputs."""
    spec = models.model_spec(name)
    started = time.perf_counter()
    probe = probe_model(name)
    built = time.perf_counter() - started
    inputs = torch.cat(spec.sample_inputs(count=3, seed=0))
    with torch.no_grad():
        fp32 = probe.float()(inputs).double().numpy()
        fp64 = probe.double()(inputs.double()).numpy()
    spread = float(np.abs(fp64 - fp64.mean(axis=0)).max())
    return {"gap": float(np.abs(fp32 - fp64).max()) / spread, "spread": spread,
            "share": spread / float(np.abs(fp64).max()), "build_s": built}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="registered names (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.models or models.list_models()
    print(f"{'model':26s} {'gap/spread':>10s} {'spread':>8s} {'share':>6s} {'build s':>8s}")
    worst = ("", 0.0)
    for name in names:
        row = conditioning(name)
        worst = max(worst, (name, row["gap"]), key=lambda item: item[1])
        print(f"{name:26s} {row['gap']:10.2e} {row['spread']:8.3g} {row['share']:6.2f} {row['build_s']:8.1f}",
              flush=True)
    print(f"largest gap: {worst[0]} {worst[1]:.2e} x spread (the fp32 gate's bound is 1e-4)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
