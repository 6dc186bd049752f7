"""Benchmark of ``python -m profiling import`` on a large file: peak memory and wall time; asserts nothing.

Writes a JSON import file of N records (summary records: median, mean, min, max, p90, std, runs,
as a benchmark app exports them; every tenth with 20 samples), imports it into a fresh database in
a child process, and prints the child's peak resident memory (``wait4``'s ``ru_maxrss``), the wall
time, and what the store holds afterwards. Then imports the same file again (every record skipped).

    python bench/bench_import.py                 # 300000 records
    python bench/bench_import.py --records 20000
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_file(path: Path, records: int) -> None:
    """A ``mobilelat-import/1`` JSON file, written record by record."""
    with open(path, "w") as out:
        out.write('{"schema": "mobilelat-import/1", "results": [\n')
        for index in range(records):
            median = 2.0 + (index % 997) / 100
            record = {"model": f"model_{index % 50}", "format": "tflite", "precision": "fp32",
                      "runtime": "benchmark_model", "device_kind": "android", "device_name": f"Phone {index % 7}",
                      "device_soc": "Tensor G3", "threads": 1 + index % 4, "input_shape": [1, 224, 224, 3],
                      "created_at": "2026-11-20T10:00:00Z", "source": f"farm export row {index}"}
            if index % 10 == 0:
                record["samples_ms"] = [round(median * (0.95 + k / 200), 4) for k in range(20)]
            else:
                record |= {"median_ms": median, "mean_ms": round(median * 1.02, 4), "min_ms": round(median * 0.9, 4),
                           "max_ms": round(median * 1.4, 4), "p90_ms": round(median * 1.2, 4), "std_ms": 0.05,
                           "runs": 200}
            out.write(("  " if index == 0 else ", ") + json.dumps(record) + "\n")
        out.write("]}\n")


def run_import(path: Path, db: Path) -> tuple[int, float, float, str]:
    """(exit status, seconds, peak RSS of the child in MiB, its output)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "profiling", "import", str(path), "--db", str(db)], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, seconds, usage.ru_maxrss / 1024, output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300_000, help="records in the file (default 300000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path, db = Path(folder) / "export.json", Path(folder) / "latency.db"
        started = time.perf_counter()
        write_file(path, args.records)
        print(f"file: {args.records} records, {path.stat().st_size / 2**20:.1f} MiB "
              f"(written in {time.perf_counter() - started:.1f} s)")
        for attempt in ("first import", "same file again"):
            status, seconds, peak_mib, output = run_import(path, db)
            last = output.strip().splitlines()[-1] if output.strip() else ""
            print(f"{attempt}: exit {status}, {seconds:.1f} s, peak RSS {peak_mib:.0f} MiB; {last[:160]}")
            if status != 0:
                print(output[-2000:])
                return 1
        connection = sqlite3.connect(db)
        rows = connection.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
        runs = connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        connection.close()
        print(f"store: {rows} measurements, {runs} run(s), {db.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
