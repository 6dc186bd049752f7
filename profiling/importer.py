"""``python -m profiling import FILE``: bring latencies measured elsewhere into the results store.

For numbers no runner here can take: Xcode's Core ML performance report, a benchmark app's JSON
export, a colleague's spreadsheet. The file is validated WHOLE before anything is written; any
error rejects the file and names the row and the field. Valid rows land in one transaction.

Schema ``mobilelat-import/1``. JSON: a list of records, or ``{"schema": "mobilelat-import/1",
"results": [...]}``. CSV: a header row with the same field names, one record per line (empty cell =
not given; ``samples_ms`` as ``;``-separated numbers; ``input_shape`` as ``1x3x224x224``).

Required fields:
  model          registry name or any model label              "repvit_m0_9"
  format         tflite | onnx | coreml | torch | other
  precision      fp32 | fp16 | int8_dynamic | int8_full | int8 | mixed | unknown
  runtime        what ran it                                   "coreml", "benchmark_model", "xcode"
  device_kind    android | ios | host
  device_name    phone or machine model                        "iPhone 15 Pro"
  and the latency, one of:
  samples_ms     every measured latency, ms (JSON: a list, or a list of lists = rounds)
  median_ms / mean_ms (at least one) with runs (timed iterations, >= 1)

Optional fields: runtime_version, device_os, device_soc, device_abi, device_cores (int), compute_unit,
threads (int), input_shape, warmup_runs (int), min_ms, max_ms, p90_ms, p99_ms, std_ms (ms, >= 0),
created_at (ISO-8601; default now), source (free text: app, tool), artifact_sha256 (64 hex),
params (int), macs (int), reparameterized (true/false), extra (JSON object; JSON files only).
Unknown fields are errors (a misspelt ``median_ms`` must not vanish silently).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import re
from datetime import datetime
from pathlib import Path

from rich.console import Console

from profiling.cli.common import results_table, start_run
from profiling.errors import UsageError
from profiling.result import DeviceInfo, LatencyResult, utc_now
from profiling.stats import LatencyStats, compute_stats
from profiling.store import Store

SCHEMA = "mobilelat-import/1"
HELP = f"import latencies measured elsewhere from a JSON or CSV file (schema {SCHEMA}, see profiling/importer.py)"
FORMATS = ("tflite", "onnx", "coreml", "torch", "other")
PRECISIONS = ("fp32", "fp16", "int8_dynamic", "int8_full", "int8", "mixed", "unknown")
DEVICE_KINDS = ("android", "ios", "host")
REQUIRED = ("model", "format", "precision", "runtime", "device_kind", "device_name")
TEXT_FIELDS = ("runtime_version", "device_os", "device_soc", "device_abi", "compute_unit", "source", "created_at",
               "artifact_sha256")
INT_FIELDS = {"runs": 1, "device_cores": 1, "threads": 1, "warmup_runs": 0, "params": 0, "macs": 0}  # minimum
MS_FIELDS = ("median_ms", "mean_ms", "min_ms", "max_ms", "p90_ms", "p99_ms", "std_ms")
OTHER_FIELDS = ("samples_ms", "input_shape", "reparameterized", "extra")
KNOWN = set(REQUIRED) | set(TEXT_FIELDS) | set(INT_FIELDS) | set(MS_FIELDS) | set(OTHER_FIELDS)
MAX_REPORTED_ERRORS = 20


class ImportValidationError(UsageError):
    """The file was rejected; ``errors`` lists (row, field, message)."""

    def __init__(self, path: Path, errors: list[tuple[int | None, str, str]]):
        self.errors = errors
        shown = [f"  row {row}, field {field}: {message}" if row is not None else f"  {field}: {message}"
                 for row, field, message in errors[:MAX_REPORTED_ERRORS]]
        more = f"\n  ... and {len(errors) - MAX_REPORTED_ERRORS} more" if len(errors) > MAX_REPORTED_ERRORS else ""
        super().__init__(f"{path}: rejected, nothing imported ({len(errors)} problem(s); schema {SCHEMA}, "
                         f"documented in profiling/importer.py):\n" + "\n".join(shown) + more)


def read_records(path: Path, file_format: str = "auto") -> list[dict]:
    """The raw records of a JSON or CSV file (row numbers are list positions + 1, or CSV line numbers)."""
    path = Path(path)
    if not path.is_file():
        raise ImportValidationError(path, [(None, "file", "no such file")])
    kind = file_format if file_format != "auto" else path.suffix.lower().lstrip(".")
    text = path.read_text(encoding="utf-8-sig")
    if kind == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ImportValidationError(path, [(None, "file", f"not valid JSON: {error}")]) from None
        if isinstance(data, dict):
            if data.get("schema") not in (None, SCHEMA):
                raise ImportValidationError(path, [(None, "schema", f"{data.get('schema')!r} is not {SCHEMA!r}")])
            data = data.get("results")
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise ImportValidationError(path, [(None, "file", "expected a list of objects, or "
                                                              '{"schema": ..., "results": [objects]}')])
        return data
    if kind == "csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames:
            raise ImportValidationError(path, [(None, "file", "empty CSV: expected a header row")])
        records = []
        for row in reader:
            if None in row:
                records.append({"__extra_cells__": row.pop(None), **row})
            else:
                records.append({key: value for key, value in row.items() if value not in ("", None)})
        return records
    raise ImportValidationError(path, [(None, "file", f"unknown file type {path.suffix!r}: use .json or .csv, "
                                                      "or pass --input-format")])


def _number(value, field: str, errors: list, row: int, minimum: float = 0.0, strict: bool = False) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        errors.append((row, field, f"must be a number, got {value!r}"))
        return None
    if not math.isfinite(number) or number < minimum or (strict and number <= minimum):
        errors.append((row, field, f"must be {'>' if strict else '>='} {minimum:g} and finite, got {value!r}"))
        return None
    return number


def _integer(value, field: str, errors: list, row: int, minimum: int) -> int | None:
    try:
        number = float(value)
        if not number.is_integer():
            raise ValueError
    except (TypeError, ValueError):
        errors.append((row, field, f"must be a whole number, got {value!r}"))
        return None
    if number < minimum:
        errors.append((row, field, f"must be >= {minimum}, got {value!r}"))
        return None
    return int(number)


def _samples(value, errors: list, row: int) -> list[list[float]] | None:
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(";") if part.strip()]
        rounds = [parts]
    elif isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        rounds = value
    elif isinstance(value, list):
        rounds = [value]
    else:
        errors.append((row, "samples_ms", f"must be a list of numbers (CSV: 1.2;1.3;...), got {value!r}"))
        return None
    parsed = []
    for samples in rounds:
        if not samples:
            errors.append((row, "samples_ms", "a round with no samples"))
            return None
        numbers = [_number(v, "samples_ms", errors, row, strict=True) for v in samples]
        if any(n is None for n in numbers):
            return None
        parsed.append(numbers)
    return parsed


def _shape(value, errors: list, row: int) -> list[int] | None:
    parts = value.lower().split("x") if isinstance(value, str) else value
    if not isinstance(parts, list):
        errors.append((row, "input_shape", f"must be a list or '1x3x224x224', got {value!r}"))
        return None
    try:
        shape = [int(p) for p in parts]
    except (TypeError, ValueError):
        shape = []
    if not shape or any(d < 1 for d in shape):
        errors.append((row, "input_shape", f"must be positive whole dimensions, got {value!r}"))
        return None
    return shape


def validate_record(record: dict, row: int, errors: list) -> LatencyResult | None:
    """One record -> LatencyResult, or None with its problems appended to ``errors``."""
    before = len(errors)
    if "__extra_cells__" in record:
        errors.append((row, "row", f"more cells than header fields: {record['__extra_cells__']!r}"))
        return None
    for field in sorted(set(record) - KNOWN):
        errors.append((row, field, "unknown field (typo?); the schema is documented in profiling/importer.py"))
    for field in REQUIRED:
        if not isinstance(record.get(field), str) or not record[field].strip():
            errors.append((row, field, "required text field is missing or empty"))
    for field, choices in (("format", FORMATS), ("precision", PRECISIONS), ("device_kind", DEVICE_KINDS)):
        if isinstance(record.get(field), str) and record[field] not in choices:
            errors.append((row, field, f"{record[field]!r} is not one of {', '.join(choices)}"))
    for field in TEXT_FIELDS:
        if field in record and not isinstance(record[field], str):
            errors.append((row, field, f"must be text, got {record[field]!r}"))
    ints = {field: _integer(record[field], field, errors, row, minimum)
            for field, minimum in INT_FIELDS.items() if field in record}
    ms = {field: _number(record[field], field, errors, row, strict=field != "std_ms")
          for field in MS_FIELDS if field in record}
    created_at = record.get("created_at")
    if isinstance(created_at, str):
        try:
            datetime.fromisoformat(created_at.replace("Z", "+00:00"))
        except ValueError:
            errors.append((row, "created_at", f"must be ISO-8601 (2026-11-22T14:05:00Z), got {created_at!r}"))
    sha = record.get("artifact_sha256")
    if isinstance(sha, str) and not re.fullmatch(r"[0-9a-f]{64}", sha):
        errors.append((row, "artifact_sha256", "must be 64 lowercase hex digits"))
    reparameterized = record.get("reparameterized")
    if isinstance(reparameterized, str):
        reparameterized = {"true": True, "false": False, "1": True, "0": False}.get(reparameterized.lower(), "bad")
    if reparameterized not in (None, True, False):
        errors.append((row, "reparameterized", f"must be true or false, got {record.get('reparameterized')!r}"))
    extra = record.get("extra", {})
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError:
            extra = None
    if not isinstance(extra, dict):
        errors.append((row, "extra", "must be a JSON object"))
    shape = _shape(record["input_shape"], errors, row) if "input_shape" in record else []
    samples = _samples(record["samples_ms"], errors, row) if "samples_ms" in record else None
    if "samples_ms" not in record:
        if "median_ms" not in record and "mean_ms" not in record:
            errors.append((row, "median_ms", "give samples_ms, or median_ms and/or mean_ms with runs"))
        if "runs" not in record:
            errors.append((row, "runs", "required with a summary (median_ms / mean_ms): timed iterations"))
    if samples is not None and "runs" in ints and ints["runs"] is not None and ints["runs"] != sum(map(len, samples)):
        errors.append((row, "runs", f"{ints['runs']} but samples_ms holds {sum(map(len, samples))} samples"))
    lows = [ms.get("min_ms")] + [ms.get(f) for f in ("median_ms", "p90_ms", "p99_ms")] + [ms.get("max_ms")]
    present = [v for v in lows if v is not None]
    if present != sorted(present):
        errors.append((row, "min_ms", f"min <= median <= p90 <= p99 <= max does not hold: {present}"))
    if len(errors) > before:
        return None
    if samples is not None:
        stats = compute_stats(samples)
    else:
        stats = LatencyStats.from_summary(count=ints["runs"], mean_ms=ms.get("mean_ms"), min_ms=ms.get("min_ms"),
                                          max_ms=ms.get("max_ms"), std_ms=ms.get("std_ms"),
                                          median_ms=ms.get("median_ms"), p90_ms=ms.get("p90_ms"),
                                          p99_ms=ms.get("p99_ms"))
    device = DeviceInfo(kind=record["device_kind"], name=record["device_name"], cores=ints.get("device_cores"),
                        os=record.get("device_os"), soc=record.get("device_soc"), abi=record.get("device_abi"))
    return LatencyResult(
        model=record["model"], format=record["format"], precision=record["precision"], runtime=record["runtime"],
        runtime_version=record.get("runtime_version", "unknown"), device=device, threads=ints.get("threads"),
        input_shape=shape, stats=stats, samples_ms=samples or [], warmup_runs=ints.get("warmup_runs", 0),
        compute_unit=record.get("compute_unit"), reparameterized=reparameterized,
        artifact_sha256=record.get("artifact_sha256"), params=ints.get("params"), macs=ints.get("macs"),
        extra=dict(extra) | {"imported": {"row": row, "source": record.get("source")}},
        created_at=created_at or utc_now())


def load_results(path: str | Path, file_format: str = "auto") -> list[LatencyResult]:
    """Every record of the file as a LatencyResult; raises ImportValidationError listing all problems."""
    path = Path(path)
    records = read_records(path, file_format)
    if not records:
        raise ImportValidationError(path, [(None, "file", "no records")])
    csv_offset = 1 if (file_format == "csv" or path.suffix.lower() == ".csv") else 0  # header is line 1
    errors: list = []
    results = [validate_record(record, index + 1 + csv_offset, errors) for index, record in enumerate(records)]
    if errors:
        raise ImportValidationError(path, errors)
    for result in results:
        result.extra["imported"]["file"] = path.name
    return results


def import_file(path: str | Path, store: Store, run_id: str | None = None, file_format: str = "auto") -> list[int]:
    """Validate the whole file, then insert every row in one transaction; returns the row ids."""
    results = load_results(path, file_format)
    for result in results:
        result.run_id = run_id
    return store.insert_many(results)


# ---- the subcommand ---------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help=".json or .csv in the schema of profiling/importer.py")
    parser.add_argument("--input-format", default="auto", choices=("auto", "json", "csv"),
                        help="file type (default: from the suffix)")
    parser.add_argument("--label", default="", help="a note stored with the import's run")
    parser.add_argument("--dry-run", action="store_true", help="validate only; write nothing")


def main(args: argparse.Namespace, console: Console) -> int:
    results = load_results(args.file, args.input_format)  # an ImportValidationError is a UsageError: exit 2
    if args.dry_run:
        console.print(f"{args.file}: {len(results)} valid record(s); nothing written (--dry-run)")
        return 0
    with Store(args.db) as store:
        run_id = start_run(store, args, args.label or f"import {args.file.name}")
        for result in results:
            result.run_id = run_id
        store.insert_many(results)
    console.print(results_table(results, f"imported from {args.file.name} (run {run_id})"))
    return 0
