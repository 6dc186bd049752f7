"""The device simulator's ``executor_runner`` (ExecuTorch's ``examples/portable/executor_runner``).

Understands the gflags the profiler passes (``--model_path=PTE --num_executions=N --cpu_threads=T``,
also ``--flag value``) and refuses any other flag as gflags does (``ERROR: unknown command line flag
'x'`` on stderr, status 1); extra positional arguments are refused as the tool does (``Extra
commandline args: ...``, status 1). It logs through the ``ET_LOG`` format
``I 00:00:00.012345 executorch:executor_runner.cpp:LINE] MESSAGE`` on stderr: ``Resetting threadpool
with num threads = T``, ``Model file PTE is loaded.``, ``Using method forward``, ``Model loaded in t
ms.``, one ``Iteration i of N: t ms`` per execution and ``Model executed successfully N time(s) in
T ms.``; then ``OutputX 0: tensor(...)`` on stdout. The .pte runs on the ExecuTorch Python runtime
on this host (all-ones input, as the tool feeds), or with ``ADB_SIM_TIMING=synthetic`` a stand-in
is timed without loading anything.

Real failure modes: a missing model file (``FileDataLoader::from() failed: 0x22`` from an
``ET_CHECK_MSG``, then abort: status 134), a file that is no program (``Failed to parse model file
PTE``, status 1), a method that cannot load (``Loading of method forward failed with status 0x..``,
abort). Faults (``ADB_SIM_FAULT``): ``et_old_build`` (a build that prints no per-execution lines
and no load time), ``et_zero`` (``--num_executions=0``'s summary: 0 times in 0 ms),
``et_abort_mid`` (the process aborts after a few executions, before the summary).
"""
from __future__ import annotations

import os
import random
import sys
import time

FAULTS = {f.partition("@")[0] for f in os.environ.get("ADB_SIM_FAULT", "").split(",") if f}
SYNTHETIC = os.environ.get("ADB_SIM_TIMING") == "synthetic"
FLAGS = {"model_path": "model.pte", "num_executions": "1", "cpu_threads": "-1", "method_name": "",
         "inputs": "", "output_file": "", "data_path": "", "print_output": "summary"}
_STARTED = time.monotonic()


def log(level: str, line: int, message: str) -> None:
    elapsed = time.monotonic() - _STARTED
    hours, rest = divmod(elapsed, 3600)
    minutes, seconds = divmod(rest, 60)
    sys.stderr.write(f"{level} {int(hours):02d}:{int(minutes):02d}:{seconds:09.6f} "
                     f"executorch:executor_runner.cpp:{line}] {message}\n")
    sys.stderr.flush()


def parse_flags(argv: list[str]) -> tuple[dict[str, str], list[str]] | None:
    """gflags' parse: ``--name=value`` or ``--name value``; an unknown flag is an error (None)."""
    flags, positional = dict(FLAGS), []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg.startswith("-"):
            name, eq, value = arg.lstrip("-").partition("=")
            if name not in FLAGS:
                sys.stderr.write(f"ERROR: unknown command line flag '{name}'\n")
                return None
            if not eq:
                index += 1
                if index >= len(argv):
                    sys.stderr.write(f"ERROR: flag '{name}' is missing its argument\n")
                    return None
                value = argv[index]
            flags[name] = value
        else:
            positional.append(arg)
        index += 1
    return flags, positional


def executions(path: str, count: int, threads: int) -> tuple[float, list[float]]:
    """(load ms, per-execution ms) of ``count`` executions of the program at ``path``."""
    if SYNTHETIC:
        rng = random.Random(f"{path}:{count}:{threads}")
        return 12.5, [3.0 * rng.uniform(0.95, 1.2) / max(1, min(threads, 4)) ** 0.5 for _ in range(count)]
    import torch
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    if threads > 0:
        portable_lib._unsafe_reset_threadpool(threads)
    begin = time.perf_counter()
    method = Runtime.get().load_program(path).load_method(FLAGS_METHOD[0])
    load_ms = (time.perf_counter() - begin) * 1e3
    shape = method.metadata.input_tensor_meta(0).sizes()
    image = torch.ones(*shape)
    times = []
    for _ in range(count):
        begin = time.perf_counter()
        method.execute([image])
        times.append((time.perf_counter() - begin) * 1e3)
    return load_ms, times


FLAGS_METHOD = ["forward"]


def main(argv: list[str]) -> int:
    parsed = parse_flags(argv)
    if parsed is None:
        return 1
    flags, positional = parsed
    if positional:
        log("E", 470, "Extra commandline args: " + " ".join(positional))
        return 1
    path, threads = flags["model_path"], int(flags["cpu_threads"])
    count = 0 if "et_zero" in FAULTS else int(flags["num_executions"])
    FLAGS_METHOD[0] = flags["method_name"] or "forward"
    log("I", 499, f"Resetting threadpool with num threads = {threads if threads > 0 else 8}")
    if not os.path.isfile(path):
        log("E", 597, "FileDataLoader::from() failed: 0x22")
        sys.stderr.write("Aborted\n")
        return 134  # ET_CHECK_MSG aborts: the shell reports 128 + SIGABRT
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head[4:6] != b"ET":
        log("E", 606, f"Failed to parse model file {path}")
        return 1
    log("I", 608, f"Model file {path} is loaded.")
    log("I", 617, f"Using method {FLAGS_METHOD[0]}")
    try:
        load_ms, times = executions(path, count, threads)
    except RuntimeError as error:
        log("E", 745, f"Loading of method {FLAGS_METHOD[0]} failed with status 0x14 ({error})")
        sys.stderr.write("Aborted\n")
        return 134
    if "et_old_build" not in FAULTS:
        log("I", 752, f"Model loaded in {load_ms:f} ms.")
    for index, ms in enumerate(times, 1):
        if "et_abort_mid" in FAULTS and index == 3:
            sys.stderr.write("Aborted\n")
            return 134
        if "et_old_build" not in FAULTS:
            log("I", 930, f"Iteration {index} of {count}: {ms:f} ms")
    log("I", 940, f"Model executed successfully {count} time(s) in {sum(times):f} ms.")
    log("I", 945, "1 outputs: ")
    print("OutputX 0: tensor(sizes=[1, 1000], [0.1, 0.2, ...])")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
