"""Benchmark of what each TFLite precision buys on LiteRT (XNNPACK): fp32, fp16, int8_dynamic and int8_full
latency per model, measured alternating in one process so machine noise hits every precision alike.

Each precision is exported by ``export.tflite`` behind its parity gate (the model's probe weights, as
``python -m export.tflite MODEL`` without ``--weights``; the default size; synthetic calibration for
int8_full), then the four interpreters run in turn: ``--rounds`` rounds of ``--calls`` calls each, the
median per round, the median of those. Prints ms per model and precision, the ratio to fp32 and how many
XNNPACK partitions each artifact became (1: the delegate took the whole graph; more: ops between them ran
on LiteRT's own CPU kernels; 0: nothing was delegated). A precision whose export the gate refuses is
recorded as refused with the reason, and the run goes on. Asserts nothing.

Every model of the registry by default (about an hour on 2 cores); ``--json`` keeps every measurement,
saved whole after each model, ``--resume`` skips the models an earlier ``--json`` holds, and ``--markdown``
writes the table between the ``litert-precisions`` markers of a file (docs/benchmarks.md).

    python bench/bench_litert_precisions.py repvit_m1 mobilevit_xs --threads 2
    python bench/bench_litert_precisions.py --json bench/measured/litert-precisions.json --markdown docs/benchmarks.md
    python bench/bench_litert_precisions.py --from-json bench/measured/litert-precisions.json --markdown docs/benchmarks.md
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from export.errors import ExportError, ParityError
from export.tflite import export, interpreter
from models import list_models, model_spec
from models.probe import probe_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
from gen_zoo import write_table  # noqa: E402

PRECISIONS = ("fp32", "fp16", "int8_dynamic", "int8_full")
BEGIN, END = "<!-- litert-precisions:begin -->", "<!-- litert-precisions:end -->"


def runner(path: str, threads: int):
    """A callable running the artifact once on a fixed random input in its own input type, and the number
    of XNNPACK partitions (``DELEGATE`` nodes) the interpreter made of it."""
    it = interpreter(path, threads=threads)
    detail = it.get_input_details()[0]
    if np.issubdtype(detail["dtype"], np.integer):
        value = np.random.default_rng(0).integers(-128, 127, size=detail["shape"]).astype(detail["dtype"])
    else:
        value = np.random.default_rng(0).random(detail["shape"], dtype=np.float32)
    it.set_tensor(detail["index"], value)
    partitions = sum(op["op_name"] == "DELEGATE" for op in it._get_ops_details())
    return it.invoke, partitions


def median_ms(fn, calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def measure_model(name: str, out: str, threads: int, rounds: int, calls: int) -> dict:
    """{precision: {"ms": median, "rounds": [...], "partitions": n} or {"refused": reason}} for one model."""
    spec = model_spec(name)
    record, runners = {}, {}
    for precision in PRECISIONS:
        try:
            artifact = export(probe_model(name), spec, out, precision=precision, quiet=True)
        except (ExportError, ParityError) as error:
            record[precision] = {"refused": " ".join(str(error).split())[:300]}
            continue
        runners[precision], partitions = runner(str(artifact.path), threads)
        record[precision] = {"partitions": partitions}
    for fn in runners.values():
        for _ in range(5):
            fn()
    for _ in range(rounds):
        for precision, fn in runners.items():
            record[precision].setdefault("rounds", []).append(median_ms(fn, calls))
    for precision in runners:
        record[precision]["ms"] = statistics.median(record[precision]["rounds"])
    return record


def cells(record: dict) -> list[str]:
    """The table cells of one model: fp32 ms, then each precision's ms with its ratio to fp32, partitions
    marked where the delegate did not take the whole graph."""
    fp32 = record.get("fp32", {}).get("ms")
    out = []
    for precision in PRECISIONS:
        entry = record.get(precision, {})
        if "ms" not in entry:
            out.append("refused" if "refused" in entry else "n/a")
            continue
        text = f"{entry['ms']:.2f}"
        if precision != "fp32" and fp32:
            text += f" ({entry['ms'] / fp32:.2f})"
        if entry.get("partitions") != 1:
            text += f", {entry['partitions']} partitions"
        out.append(text)
    return out


def markdown(saved: dict) -> str:
    lines = [f"LiteRT (XNNPACK) latency in ms, fp32 and (ratio to fp32), {saved['threads']} thread(s), median of "
             f"{saved['rounds']} alternating rounds x {saved['calls']} calls, probe weights ({saved['date']}, "
             f"{saved['machine']}; `partitions`: the XNNPACK delegate took the graph in that many pieces, "
             "the ops between them ran on LiteRT's own kernels; `refused`: the export's parity gate refused it)", "",
             "| model | " + " | ".join(PRECISIONS) + " |", "|---|" + "---:|" * len(PRECISIONS)]
    order = {name: index for index, name in enumerate(list_models())}  # the registry's order, others last
    names = sorted(saved["models"], key=lambda name: order.get(name, len(order)))
    lines += [f"| {name} | " + " | ".join(cells(saved["models"][name])) + " |" for name in names]
    return "\n".join(lines)


def save(path: Path | None, saved: dict) -> None:
    """Whole or not at all: a temporary file renamed over the old one."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(saved, indent=1))
    partial.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="registry names (default: every model of the registry)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--calls", type=int, default=20, help="calls per round and precision (default 20)")
    parser.add_argument("--json", type=Path, help="write every measurement here, after each model")
    parser.add_argument("--resume", action="store_true", help="skip the models --json already holds")
    parser.add_argument("--from-json", type=Path, help="print (and --markdown) a table from an earlier --json, measure nothing")
    parser.add_argument("--markdown", type=Path, help="rewrite the table between the litert-precisions markers of this file")
    args = parser.parse_args()
    unknown = sorted(set(args.models) - set(list_models()))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; `python -m models list` shows the registry")
    if args.resume and not (args.json and args.json.exists()):
        parser.error("--resume needs --json naming an earlier run's file")
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
    else:
        saved = {"date": datetime.date.today().isoformat(), "machine": f"{os.cpu_count()} cores",
                 "threads": args.threads, "rounds": args.rounds, "calls": args.calls, "models": {}}
        if args.resume:
            saved = json.loads(args.json.read_text())
            if (saved["threads"], saved["rounds"], saved["calls"]) != (args.threads, args.rounds, args.calls):
                raise SystemExit(f"{args.json} was measured with --threads {saved['threads']} --rounds {saved['rounds']}"
                                 f" --calls {saved['calls']}: resume with the same settings")
        names = [n for n in (args.models or list_models()) if n not in saved["models"]]
        print(f"LiteRT (XNNPACK), {args.threads} thread(s), median of {args.rounds} rounds x {args.calls} calls, "
              f"{len(names)} model(s)", flush=True)
        print(f"{'model':24s}" + "".join(f"{p:>14s}" for p in PRECISIONS) + "   ratio to fp32, partitions", flush=True)
        with tempfile.TemporaryDirectory() as out:
            for index, name in enumerate(names, 1):
                started = time.monotonic()
                record = measure_model(name, out, args.threads, args.rounds, args.calls)
                saved["models"][name] = record
                save(args.json, saved)
                ms = [f"{record[p]['ms']:>11.2f} ms" if "ms" in record[p] else f"{'refused':>14s}" for p in PRECISIONS]
                fp32 = record["fp32"].get("ms")
                ratios = " ".join(f"{record[p]['ms'] / fp32:.2f}" if fp32 and "ms" in record[p] else "-"
                                  for p in PRECISIONS[1:])
                parts = "/".join(str(record[p].get("partitions", "-")) for p in PRECISIONS)
                print(f"{name:24s}" + "".join(ms) + f"   {ratios}, {parts}   [{index}/{len(names)}, "
                      f"{time.monotonic() - started:.0f} s]", flush=True)
                for precision in PRECISIONS:
                    if "refused" in record[precision]:
                        print(f"  {precision} refused: {record[precision]['refused']}", flush=True)
    if args.from_json or not args.models:
        print(markdown(saved))
    if args.markdown:
        status = write_table(args.markdown, lambda: markdown(saved), check=False, begin=BEGIN, end=END,
                             what="the LiteRT precision table")
        if status:
            raise SystemExit(status)


if __name__ == "__main__":
    main()
