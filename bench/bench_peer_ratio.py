"""Benchmark of our exports against the standard path (timm + reparameterize_model + torch.onnx / litert_torch).

Runs ``../shared/peer/zoo_ratio.sh`` (it builds the peer virtualenv once, ~10 min and ~7 GB, exports both
sides at the same input size and times them alternating in one process) for each thread count, then
re-measures every entry first measured above 1.00 (``--recheck`` times, each with the peer's ``ratio.py`` on
the same two artifacts: a real regression stays above, noise does not),
and prints one table: ours/peer latency per model and runtime (the median of every measurement of that
entry, with the count), and the geometric mean per runtime. Asserts nothing.

Peer weights (``--peer``): ``fair`` (default) exports the peer's artifacts with ``bench/peer_export_fair.py``
into their own folder (the peer's virtualenv, linked), with every normalization layer given trained-like
parameters: on timm's init as it is (``timm-init``: the peer's own artifacts) converters remove work that
trained weights keep (the peer's ``mobilevit_xxs.tflite`` lacks 3 of its 7 inverted-residual blocks, zero
by timm's ``zero_init_last``; its LayerNorms at weight 1, bias 0 lose their affine ops), so its latency is
not the model's.

    python bench/bench_peer_ratio.py                            # 1 and 2 threads, every model both zoos have
    python bench/bench_peer_ratio.py --threads 1 --models mobilevit_xxs=mobilevit_xxs
    python bench/bench_peer_ratio.py --json bench/measured/peer-ratio.json --readme README.md   # keep the figures, write the table

The JSON keeps every measurement; ``--readme`` rewrites the table between ``<!-- peer-ratio:begin -->``
and ``<!-- peer-ratio:end -->`` with the date, the machine and its load.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
from gen_zoo import write_table  # noqa: E402

SCRIPT = ROOT.parent / "shared" / "peer" / "zoo_ratio.sh"
TMP = Path(os.environ.get("TMPDIR", "/tmp"))
RUNTIMES = {"ort": "ONNX Runtime", "litert": "LiteRT"}
BEGIN, END = "<!-- peer-ratio:begin -->", "<!-- peer-ratio:end -->"


def default_pairs(script: Path) -> list[str]:
    """The ``ours=timm`` pairs zoo_ratio.sh measures when given none (its ``PAIRS`` default)."""
    found = re.search(r'PAIRS=\$\{\*:-"(.*?)"\}', script.read_text(), re.DOTALL)
    if not found:
        raise SystemExit(f"{script}: no PAIRS default found; pass --models OURS=TIMM ...")
    return found.group(1).split()


def fair_peer(script: Path, pairs: list[str]) -> Path:
    """A peer folder whose artifacts are exported on non-degenerate weights (peer_export_fair.py), sharing
    the peer's virtualenv (built first by the peer's setup.sh if missing)."""
    peer = Path(os.environ.get("PEER", TMP / "mobilelat-peer"))
    fair = TMP / "mobilelat-peer-fair"
    python = peer / "venv" / "bin" / "python"
    if not python.exists():
        print(f"building the peer virtualenv in {peer} (once: ~10 min, ~7 GB)", flush=True)
        subprocess.run(["bash", str(script.parent / "setup.sh"), "repvit_m1"], check=True,
                       env=dict(os.environ, PEER=str(peer)))
    fair.mkdir(parents=True, exist_ok=True)
    if not (fair / "venv").exists():
        (fair / "venv").symlink_to(peer / "venv")
    names = [pair.split("=", 1)[1] for pair in pairs]
    print(f"exporting {len(names)} peer model(s) on non-degenerate weights into {fair / 'artifacts'}", flush=True)
    log = fair / "export.log"
    with log.open("w") as errors:  # the converters' chatter goes to the log, one line per model here
        process = subprocess.Popen([str(python), str(ROOT / "bench" / "peer_export_fair.py"), str(fair / "artifacts"),
                                    *names], stdout=subprocess.PIPE, stderr=errors, text=True)
        for line in process.stdout:
            if " ok " in line:
                print(f"  {line.rstrip()}", flush=True)
    if process.wait() != 0:
        raise SystemExit(f"the fair peer export failed (exit {process.returncode}); its output is in {log}")
    return fair


def run_script(script: Path, threads: int, pairs: list[str], peer: Path | None = None) -> list[dict]:
    """One run of zoo_ratio.sh: its JSON lines (printed as they come: the run takes minutes per model)."""
    env = dict(os.environ, THREADS=str(threads), **({"PEER": str(peer)} if peer else {}))
    process = subprocess.Popen(["bash", str(script), *pairs], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    rows = []
    for line in process.stdout:
        print(f"  [{threads} thread(s)] {line.rstrip()}", flush=True)
        if line.startswith("{"):
            rows.append(json.loads(line))
    if process.wait() != 0:
        raise SystemExit(f"{script} failed (exit {process.returncode}); see its output above")
    return rows


def remeasure(script: Path, model: str, peer_name: str, key: str, threads: int, peer: Path | None) -> float:
    """One more ratio for an entry, by the peer's ``ratio.py`` on the two artifacts zoo_ratio.sh left (the exports
    are deterministic: measuring them again is what a re-run of the script would do, without converting)."""
    suffix = {"ort": "onnx", "litert": "tflite"}[key]
    ours = Path(os.environ.get("OUT", TMP / "mobilelat-zoo-ratio")) / model / f"{model}.{suffix}"
    theirs = (peer or Path(os.environ.get("PEER", TMP / "mobilelat-peer"))) / "artifacts" / f"{peer_name}.{suffix}"
    for path in (ours, theirs):
        if not path.exists():
            raise SystemExit(f"{path} is gone: re-measuring needs the artifacts zoo_ratio.sh wrote; run without --resume")
    done = subprocess.run([sys.executable, str(script.parent / "ratio.py"), str(ours), str(theirs), str(threads)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def measure(script: Path, threads: list[int], pairs: list[str], recheck: int, peer: Path | None,
            results: dict, first_pass: bool, save) -> dict:
    """Every measurement: {threads: {model: {"peer": name, "size": n, "ort": [..], "litert": [..]}}}, added to
    ``results`` (an earlier run's, or empty). ``first_pass=False`` skips the pass over ``pairs`` for a thread
    count ``results`` already holds (only its re-measurements run); ``save(results)`` after each script run."""
    for count in threads:
        table = results.setdefault(count, {})
        if first_pass or not table:
            for row in run_script(script, count, pairs, peer):
                table[row["model"]] = {"peer": row["peer"], "size": row["size"],
                                       **{key: [row[key]] if row[key] else [] for key in RUNTIMES}}
            save(results)
        above = [(model, key) for model, entry in table.items() for key in RUNTIMES
                 if entry[key] and entry[key][0] > 1.0 and len(entry[key]) < 1 + recheck]
        if above:
            print(f"re-measuring {len(above)} entr{'y' if len(above) == 1 else 'ies'} above 1.00 {recheck} times "
                  f"each ({count} thread(s)), on the artifacts just measured", flush=True)
        for model, key in above:
            entry = table[model]
            while len(entry[key]) < 1 + recheck:
                entry[key].append(remeasure(script, model, entry["peer"], key, count, peer))
                print(f"  [{count} thread(s)] {model} {RUNTIMES[key]}: {entry[key]}", flush=True)
            save(results)
    return results


def geomean(values: list[float]) -> float:
    return math.exp(sum(map(math.log, values)) / len(values))


def summary(results: dict) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, one row per model (median ratio and, past one, the number of measurements), geomean row."""
    columns = [(threads, key) for threads in sorted(results) for key in RUNTIMES]
    header = ["model", "size", *[f"{RUNTIMES[key]}, {threads} thread{'s' * (threads > 1)}" for threads, key in columns]]
    models = list(dict.fromkeys(model for table in results.values() for model in table))
    rows, medians = [], {column: [] for column in columns}
    for model in models:
        cells = []
        for threads, key in columns:
            values = results[threads].get(model, {}).get(key, [])
            if not values:
                cells.append("n/a")
                continue
            value = statistics.median(values)
            medians[(threads, key)].append(value)
            marked = f"**{value:.3f}**" if value > 1.0 else f"{value:.3f}"
            cells.append(marked + (f" ({len(values)})" if len(values) > 1 else ""))
        size = next(table[model]["size"] for table in results.values() if model in table)
        rows.append([model, str(size), *cells])
    footer = ["geometric mean", "", *[f"{geomean(medians[c]):.3f}" if medians[c] else "n/a" for c in columns]]
    return header, rows, footer


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def markdown(results: dict, when: str, where: str, load: float, peer: str) -> str:
    header, rows, footer = summary(results)
    weights = {"fair": "peer with trained-like normalization parameters (bench/peer_export_fair.py)",
               "timm-init": "peer on timm's init as is"}[peer]
    lines = [f"ours/peer latency, fp32, median of alternating rounds ({when}, {where}, load {load:.1f}; {weights}; "
             "in parentheses: measurements of an entry re-measured because it was above 1.00; bold: above 1.00)", "",
             "| " + " | ".join(header) + " |", "|---|---:|" + "---:|" * (len(header) - 2)]
    lines += ["| " + " | ".join(row) + " |" for row in [*rows, [f"**{footer[0]}**", *footer[1:]]]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default: 1 2)")
    parser.add_argument("--models", nargs="*", default=[], metavar="OURS=TIMM",
                        help="pairs to measure (default: zoo_ratio.sh's list, every model both zoos have)")
    parser.add_argument("--peer", choices=["fair", "timm-init"], default="fair",
                        help="the peer's weights: fair (trained-like normalization parameters, default) or timm's init as is")
    parser.add_argument("--recheck", type=int, default=3, help="re-measurements of an entry above 1.00 (default 3)")
    parser.add_argument("--script", type=Path, default=SCRIPT, help=f"the ratio script (default {SCRIPT})")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument("--resume", type=Path, help="add to an earlier --json: thread counts it holds get only "
                        "their re-measurements, unless --models names pairs to measure again")
    parser.add_argument("--from-json", type=Path, help="print (and --readme) a table from an earlier --json, measure nothing")
    parser.add_argument("--readme", type=Path, help="rewrite the table between the peer-ratio markers of this file")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        results = {int(k): v for k, v in saved["results"].items()}
        when, where, load, peer_weights = saved["date"], saved["machine"], saved["load"], saved["peer"]
    else:
        if not args.script.is_file():
            raise SystemExit(f"{args.script} not found: the peer scripts live in ../shared/peer (pass --script)")
        load, peer_weights = os.getloadavg()[0], args.peer
        when, where = datetime.date.today().isoformat(), machine()
        print(f"ours/peer, threads {args.threads}, {where}, load {load:.1f} (1 min)", flush=True)
        pairs = args.models or default_pairs(args.script)
        peer = fair_peer(args.script, pairs) if args.peer == "fair" else None
        earlier = {}
        if args.resume:
            saved = json.loads(args.resume.read_text())
            if saved["peer"] != args.peer:
                raise SystemExit(f"{args.resume} was measured with --peer {saved['peer']}, not {args.peer}")
            earlier = {int(k): v for k, v in saved["results"].items()}

        def save(results: dict) -> None:
            if args.json:  # whole or not at all: a temporary file renamed over the old one
                args.json.parent.mkdir(parents=True, exist_ok=True)
                partial = args.json.with_suffix(".partial")
                partial.write_text(json.dumps({"date": when, "machine": where, "load": load, "peer": args.peer,
                                               "results": results}, indent=1))
                partial.replace(args.json)

        results = measure(args.script, args.threads, pairs, args.recheck, peer, earlier, bool(args.models), save)
    header, rows, footer = summary(results)
    widths = [max(len(str(row[i])) for row in [header, *rows, footer]) for i in range(len(header))]
    for row in [header, *rows, footer]:
        print("  ".join(str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
                        for i, (cell, width) in enumerate(zip(row, widths))))
    if args.readme:
        status = write_table(args.readme, lambda: markdown(results, when, where, load, peer_weights), check=False,
                             begin=BEGIN, end=END, what="the peer ratio table")
        if status:
            raise SystemExit(status)


if __name__ == "__main__":
    main()
