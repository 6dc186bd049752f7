"""Whether the ExecuTorch runtime's thread count reaches the work: wall and CPU time per call at 1 and N threads.

For a registry model's XNNPACK ``.pte`` (reused from ``--artifacts`` or exported, parity gate
included), interleaved rounds at each thread count: the threadpool is resized
(``export.executorch.set_threads``) and the program loaded again, a few untimed calls, then
``--calls`` timed calls. Printed per thread count: the pool size read back, wall ms per call,
process CPU ms per call (``getrusage``) and their ratio; a ratio near N means N threads ran at once,
near 1 that the extra threads found no free core. Asserts nothing.
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch

from export import executorch as export_executorch
from profiling.artifacts import ensure_artifact


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="repvit_m1")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    args = parser.parse_args()
    artifact, exported = ensure_artifact(args.model, "executorch", artifacts_dir=args.artifacts)
    print(f"artifact: {artifact.path} ({'exported now' if exported else 'reused'})")
    image = torch.randn(*artifact.input_shape)
    counts = [int(t) for t in args.threads.split(",")]
    rows: dict[int, list[tuple[float, float, int]]] = {t: [] for t in counts}
    for _ in range(args.rounds):
        for threads in counts:
            export_executorch.set_threads(threads)
            method = export_executorch.load_method(artifact.path)
            for _ in range(5):
                method.execute([image])
            cpu, wall = _cpu_seconds(), time.perf_counter()
            for _ in range(args.calls):
                method.execute([image])
            wall = (time.perf_counter() - wall) / args.calls
            cpu = (_cpu_seconds() - cpu) / args.calls
            rows[threads].append((wall * 1e3, cpu * 1e3, export_executorch.thread_count()))
    for threads, values in rows.items():
        print(f"{threads} thread(s): pool {values[0][2]}; wall ms/call {[round(v[0], 1) for v in values]}; "
              f"CPU ms/call {[round(v[1], 1) for v in values]}; CPU/wall {[round(v[1] / v[0], 2) for v in values]}")


if __name__ == "__main__":
    main()
