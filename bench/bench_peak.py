"""Benchmark of this machine's fp32 compute peak: prints figures, asserts nothing.

A dense fp32 matrix product (torch.mm, which runs on the CPU's tuned BLAS kernels) at a few square
sizes, 1 thread and every core, best of several rounds. 2 x n^3 FLOPs per product over the time
is the achieved GFLOP/s; the largest single-thread figure is the practical peak that
``python -m profiling report --peak-gflops G`` sets each model's achieved GFLOP/s against (a
convolutional backbone at batch 1 reaches a fraction of it: the report shows how large).

    python bench/bench_peak.py                   # sizes 256 512 1024, 1 thread and all cores
    python bench/bench_peak.py --sizes 2048 --rounds 5
"""
from __future__ import annotations

import argparse
import os
import time

import torch


def gflops(size: int, threads: int, rounds: int) -> float:
    """Best-of-``rounds`` GFLOP/s of an fp32 ``size`` x ``size`` matrix product on ``threads`` threads."""
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    out = torch.empty(size, size)
    calls = max(1, int(2e9 // (2 * size ** 3)))  # about 2 GFLOP of work per round
    torch.mm(a, b, out=out)  # warm-up: page in, pick kernels
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            torch.mm(a, b, out=out)
        best = min(best, (time.perf_counter() - start) / calls)
    return 2 * size ** 3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], help="square matrix sizes")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per size; the best is kept")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    print(f"fp32 matrix product peak, torch {torch.__version__}, {cores} core(s), load {load:.1f} (1 min)")
    print(f"{'size':>6} {'1 thread GFLOP/s':>18} {f'{cores} threads GFLOP/s':>20}")
    single = []
    for size in args.sizes:
        one = gflops(size, 1, args.rounds)
        single.append(one)
        print(f"{size:>6} {one:>18.1f} {gflops(size, cores, args.rounds):>20.1f}")
    print(f"single-thread peak: {max(single):.1f} GFLOP/s  (python -m profiling report --peak-gflops {max(single):.0f})")


if __name__ == "__main__":
    main()
