"""``python -m profiling import FILE``: bring latencies measured elsewhere into the results store.

For numbers no runner here can take: Xcode's Core ML performance report, a benchmark app's JSON
export, a colleague's spreadsheet. The file is validated WHOLE before anything is written; any
error rejects the file and names the row and the field. Valid rows land in one transaction.
Each record gets a content key (sha256 of its validated fields): a record the store already holds
is skipped and the command says so, so importing a file twice stores it once; the same record
twice in one file is an error. Files are read as a stream, twice (validate, then insert), so a
file of any length needs the memory of one record plus the keys.

Schema ``mobilelat-import/1``, checked by the pydantic model :class:`ImportRecord` in strict mode
(no coercion: ``true`` is not a number, ``"1_000"`` is not an integer, ``2.0`` is not a shape
entry). JSON: a list of records, or ``{"schema": "mobilelat-import/1", "results": [...]}``. CSV
(UTF-8): a header row with the same field names (each once), one record per line (empty cell =
not given; numbers as plain decimals; ``samples_ms`` as ``;``-separated numbers; ``input_shape``
as ``1x3x224x224``; ``reparameterized`` as true/false; ``extra`` as a JSON object).

Required fields:
  model          registry name or any model label              "repvit_m0_9"
  format         tflite | onnx | coreml | executorch | torch | other
  precision      fp32 | fp16 | int8_dynamic | int8_full | int8 | mixed | unknown
  runtime        what ran it                                   "coreml", "benchmark_model", "xcode"
  device_kind    android | ios | host
  device_name    phone or machine model                        "iPhone 15 Pro"
  and the latency, one of:
  samples_ms     every measured latency, ms (JSON: a list, or a list of lists = rounds)
  median_ms / mean_ms (at least one) with runs (timed iterations, >= 1)

Optional fields: runtime_version, device_os, device_soc, device_abi, device_cores (1-1024),
compute_unit, threads (1-1024), input_shape, warmup_runs, min_ms, max_ms, p90_ms, p99_ms, std_ms
(ms), created_at (ISO-8601 WITH a zone, not in the future; default now), source (free text: app,
tool), artifact_sha256 (64 lowercase hex), params, macs, reparameterized (true/false), extra (JSON
object). Text fields are one line without control characters, at most 200 characters. Latencies
are finite, above 0 (std_ms >= 0) and at most one hour; ``min <= median <= p90 <= p99 <= max`` and
``min <= mean <= max`` must hold. Unknown fields are errors (a misspelt ``median_ms`` must not
vanish silently).
"""
from __future__ import annotations

import argparse
import codecs
import shlex
import csv
import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from rich.console import Console
from rich.markup import escape

from export.artifact import git_commit
from profiling.cli.common import results_table
from profiling.errors import UsageError
from profiling.result import DeviceInfo, LatencyResult, host_device, new_run_id, utc_now
from profiling.stats import LatencyStats, compute_stats
from profiling.store import Store

SCHEMA = "mobilelat-import/1"
HELP = f"import latencies measured elsewhere from a JSON or CSV file (schema {SCHEMA}, see profiling/importer.py)"
MAX_REPORTED_ERRORS = 20
MAX_MS = 3_600_000.0  # one inference taking more than an hour is a unit mix-up, not a latency
MAX_SAMPLES = 1_000_000  # per record
FUTURE_SLACK = timedelta(minutes=5)  # clocks disagree a little; a timestamp beyond this is wrong
CHUNK_CHARS = 1 << 20  # how much of a JSON file is decoded at a time
SHOWN_ROWS = 20  # an import this small is printed as a table


Label = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^\S(?:[^\x00-\x1f\x7f]*\S)?$")]
Ms = Annotated[float, Field(gt=0, le=MAX_MS, allow_inf_nan=False)]


class ImportRecord(BaseModel):
    """One record of an import file, validated strictly (no type coercion, unknown fields forbidden)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    model: Label  # registry name or any model label
    format: Literal["tflite", "onnx", "coreml", "executorch", "torch", "other"]  # artifact format measured
    precision: Literal["fp32", "fp16", "int8_dynamic", "int8_full", "int8", "mixed", "unknown"]  # its precision
    runtime: Label  # what ran it
    device_kind: Literal["android", "ios", "host"]  # kind of device
    device_name: Label  # phone or machine model
    runtime_version: Label | None = None  # version of that runtime
    device_os: Label | None = None  # "iOS 17.5", "Android 14"
    device_soc: Label | None = None  # "Tensor G3"
    device_abi: Label | None = None  # "arm64-v8a"
    device_cores: Annotated[int, Field(ge=1, le=1024)] | None = None  # logical cores
    compute_unit: Label | None = None  # delegate or Core ML compute units
    threads: Annotated[int, Field(ge=1, le=1024)] | None = None  # runtime threads
    input_shape: Annotated[list[Annotated[int, Field(ge=1, le=1_000_000)]],
                           Field(min_length=1, max_length=8)] | None = None  # fed shape
    warmup_runs: Annotated[int, Field(ge=0, le=100_000_000)] | None = None  # untimed runs first
    runs: Annotated[int, Field(ge=1, le=100_000_000)] | None = None  # timed runs
    samples_ms: Annotated[list[Annotated[list[Ms], Field(min_length=1)]],
                          Field(min_length=1)] | None = None  # per round, per run, ms
    median_ms: Ms | None = None
    mean_ms: Ms | None = None
    min_ms: Ms | None = None
    max_ms: Ms | None = None
    p90_ms: Ms | None = None
    p99_ms: Ms | None = None
    std_ms: Annotated[float, Field(ge=0, le=MAX_MS, allow_inf_nan=False)] | None = None
    created_at: str | None = None  # ISO-8601 with a zone
    source: Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")] | None = None
    artifact_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    params: Annotated[int, Field(ge=0, le=10**12)] | None = None  # parameters
    macs: Annotated[int, Field(ge=0, le=10**15)] | None = None  # multiply-accumulates per inference
    reparameterized: bool | None = None  # deploy form measured
    extra: dict[str, Any] | None = None  # anything else, kept with the result

    @field_validator("samples_ms", mode="before")
    @classmethod
    def _rounds(cls, value: Any) -> Any:
        """A flat list is one round."""
        if isinstance(value, list) and value and not any(isinstance(item, list) for item in value):
            return [value]
        return value

    @field_validator("samples_ms")
    @classmethod
    def _not_too_many(cls, value: list[list[float]] | None) -> list[list[float]] | None:
        if value is not None and sum(map(len, value)) > MAX_SAMPLES:
            raise ValueError(f"more than {MAX_SAMPLES} samples in one record")
        return value

    @field_validator("created_at")
    @classmethod
    def _timestamp(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"must be ISO-8601 with a zone (2026-11-22T14:05:00Z), got {value!r}") from None
        if moment.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone: add Z or +HH:MM (which clock was it?)")
        if moment > datetime.now(timezone.utc) + FUTURE_SLACK:
            raise ValueError(f"{value!r} is in the future")
        return moment.astimezone(timezone.utc).isoformat()


FIELDS = tuple(ImportRecord.model_fields)
# how a CSV cell becomes the JSON value it stands for; other fields are text
CSV_KINDS = {"device_cores": "int", "threads": "int", "warmup_runs": "int", "runs": "int", "params": "int",
             "macs": "int", "median_ms": "float", "mean_ms": "float", "min_ms": "float", "max_ms": "float",
             "p90_ms": "float", "p99_ms": "float", "std_ms": "float", "samples_ms": "samples", "input_shape": "shape",
             "reparameterized": "bool", "extra": "json"}
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class ImportValidationError(UsageError):
    """The file was rejected; ``errors`` lists (row, field, message) (at most a few hundred are kept)."""

    def __init__(self, path: Path, errors: list[tuple[int | None, str, str]], total: int | None = None):
        self.errors = errors
        total = len(errors) if total is None else total
        shown = [f"  row {row}, field {field}: {message}" if row is not None else f"  {field}: {message}"
                 for row, field, message in errors[:MAX_REPORTED_ERRORS]]
        more = f"\n  ... and {total - len(shown)} more" if total > len(shown) else ""
        super().__init__(f"{path}: rejected, nothing imported ({total} problem(s); schema {SCHEMA}, "
                         f"documented in profiling/importer.py):\n" + "\n".join(shown) + more)


# ---- reading: a stream of (row number, raw record) --------------------------------------------------

def _csv_value(field: str, text: str) -> Any:
    """A CSV cell as the value the same record would hold in JSON; text the schema then rejects when malformed."""
    kind = CSV_KINDS.get(field)
    if kind == "int":
        return int(text) if _INT.fullmatch(text) else text
    if kind == "float":
        return float(text) if _FLOAT.fullmatch(text) else text
    if kind == "bool":
        return {"true": True, "false": False}.get(text.lower(), text)
    if kind == "samples":
        parts = [part.strip() for part in text.split(";") if part.strip()]
        return [float(part) if _FLOAT.fullmatch(part) else part for part in parts]
    if kind == "shape":
        parts = text.lower().split("x")
        return [int(part) if _INT.fullmatch(part) else part for part in parts]
    if kind == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def _csv_records(path: Path) -> Iterator[tuple[int, dict]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or not any(cell.strip() for cell in header):
            raise ImportValidationError(path, [(None, "file", "empty CSV: expected a header row")])
        names = [cell.strip() for cell in header]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates or "" in names:
            problem = f"duplicate column(s) {duplicates}" if duplicates else "an empty column name"
            raise ImportValidationError(path, [(1, "header", f"{problem}: each field once (the last would "
                                                              "silently win)")])
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            line = reader.line_num
            if len(cells) > len(names):
                yield line, {"__extra_cells__": cells[len(names):]}
                continue
            yield line, {name: _csv_value(name, cell.strip()) for name, cell in zip(names, cells) if cell.strip()}


class _JsonStream:
    """Top-level JSON values of a file, decoded chunk by chunk so that one value at a time is in memory."""

    def __init__(self, handle, path: Path):
        self.handle, self.path = handle, path
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.buffer, self.position, self.eof, self.consumed = "", 0, False, 0
        self.json = json.JSONDecoder()

    def _more(self, at_least: int | None = None) -> bool:
        if self.eof:
            return False
        data = self.handle.read(at_least or CHUNK_CHARS)
        final = not data
        try:
            text = self.decoder.decode(data, final=final)
        except UnicodeDecodeError as error:
            offset = self.handle.tell() - len(data) + error.start
            raise ImportValidationError(self.path, [(None, "file", f"not UTF-8 text (byte 0x{data[error.start]:02x} "
                                                                   f"at offset {offset}): save it as UTF-8")]) from None
        self.consumed += self.position
        self.buffer = self.buffer[self.position:] + text
        self.position = 0
        self.eof = final
        return True

    def skip_space(self) -> str:
        """The next non-blank character ("" at the end of the file), not consumed."""
        while True:
            while self.position < len(self.buffer) and self.buffer[self.position] in " \t\r\n":
                self.position += 1
            if self.position < len(self.buffer) or not self._more():
                return self.buffer[self.position:self.position + 1]

    def expect(self, characters: str) -> str:
        found = self.skip_space()
        if found == "" or found not in characters:
            self.fail(f"expected {' or '.join(repr(c) for c in characters)}, found {found or 'the end of the file'!r}")
        self.position += 1
        return found

    def value(self) -> Any:
        """The next JSON value; numbers and literals only when followed by a delimiter or the end."""
        self.skip_space()
        grow = CHUNK_CHARS
        while True:
            try:
                value, end = self.json.raw_decode(self.buffer, self.position)
                if end < len(self.buffer) or self.eof:
                    self.position = end
                    return value
            except json.JSONDecodeError as error:
                if self.eof:
                    self.fail(f"not valid JSON: {error.msg}", error.pos)
            self._more(grow)
            grow *= 2  # a value longer than a chunk: read in growing steps, not byte by byte

    def fail(self, message: str, position: int | None = None) -> None:
        offset = self.consumed + (self.position if position is None else position)
        raise ImportValidationError(self.path, [(None, "file", f"{message} (at character {offset})")])


def _json_records(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, "rb") as handle:
        stream = _JsonStream(handle, path)
        opening = stream.expect("[{")
        if opening == "[":
            yield from _json_array(stream)
        else:
            seen = set()
            if stream.skip_space() == "}":
                stream.position += 1
            else:
                while True:
                    key = stream.value()
                    if not isinstance(key, str) or key in seen:
                        stream.fail(f"bad or repeated key {key!r} at the top level")
                    seen.add(key)
                    stream.expect(":")
                    if key == "results":
                        if stream.skip_space() != "[":
                            raise ImportValidationError(path, [(None, "file", 'expected a list of objects, or '
                                                                              '{"schema": ..., "results": [objects]}')])
                        stream.position += 1
                        yield from _json_array(stream)
                    elif key == "schema":
                        schema = stream.value()
                        if schema != SCHEMA:
                            raise ImportValidationError(path, [(None, "schema", f"{schema!r} is not {SCHEMA!r}")])
                    else:
                        raise ImportValidationError(path, [(None, "file", f"unknown top-level key {key!r}: expected "
                                                                          '{"schema": ..., "results": [...]}')])
                    if stream.expect(",}") == "}":
                        break
            if "results" not in seen:
                raise ImportValidationError(path, [(None, "file", 'expected a list of objects, or {"schema": ..., '
                                                                  '"results": [objects]}')])
        if stream.skip_space() != "":
            stream.fail("unexpected data after the JSON value")


def _json_array(stream: _JsonStream) -> Iterator[tuple[int, Any]]:
    """The elements of an array whose "[" was just consumed, numbered from 1."""
    if stream.skip_space() == "]":
        stream.position += 1
        return
    row = 0
    while True:
        row += 1
        yield row, stream.value()
        if stream.expect(",]") == "]":
            return


def iter_records(path: Path, file_format: str = "auto") -> Iterator[tuple[int, Any]]:
    """The raw records of a JSON or CSV file as (row, record); rows are list positions from 1, or CSV lines."""
    path = Path(path)
    if not path.is_file():
        raise ImportValidationError(path, [(None, "file", "no such file")])
    kind = file_format if file_format != "auto" else path.suffix.lower().lstrip(".")
    if kind == "json":
        return _json_records(path)
    if kind == "csv":
        return _csv_stream(path)
    raise ImportValidationError(path, [(None, "file", f"unknown file type {path.suffix!r}: use .json or .csv, "
                                                      "or pass --input-format")])


def _csv_stream(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        yield from _csv_records(path)
    except UnicodeDecodeError as error:
        raise ImportValidationError(path, [(None, "file", f"not UTF-8 text (byte 0x{error.object[error.start]:02x} "
                                                          f"near offset {error.start} of a block): save it as UTF-8")]) \
            from None
    except csv.Error as error:
        raise ImportValidationError(path, [(None, "file", f"not valid CSV: {error}")]) from None


# ---- validation --------------------------------------------------------------------------------------

def _consistency(record: ImportRecord) -> list[tuple[str, str]]:
    """Checks across fields, as (field, message)."""
    problems = []
    if record.samples_ms is None:
        if record.median_ms is None and record.mean_ms is None:
            problems.append(("median_ms", "give samples_ms, or median_ms and/or mean_ms with runs"))
        if record.runs is None:
            problems.append(("runs", "required with a summary (median_ms / mean_ms): timed iterations"))
    elif record.runs is not None and record.runs != sum(map(len, record.samples_ms)):
        problems.append(("runs", f"{record.runs} but samples_ms holds {sum(map(len, record.samples_ms))} samples"))
    ordered = [v for v in (record.min_ms, record.median_ms, record.p90_ms, record.p99_ms, record.max_ms) if v is not None]
    if ordered != sorted(ordered):
        problems.append(("min_ms", f"min <= median <= p90 <= p99 <= max does not hold: {ordered}"))
    if record.mean_ms is not None and not (record.min_ms or 0) <= record.mean_ms <= (record.max_ms or float("inf")):
        problems.append(("mean_ms", f"{record.mean_ms} lies outside [min_ms, max_ms] = [{record.min_ms}, {record.max_ms}]"))
    return problems


def validate_record(raw: Any, row: int, errors: list) -> tuple[ImportRecord, str] | None:
    """One raw record -> (ImportRecord, content key), or None with its problems appended to ``errors``."""
    if not isinstance(raw, dict):
        errors.append((row, "record", f"must be an object, got {type(raw).__name__}"))
        return None
    if "__extra_cells__" in raw:
        errors.append((row, "row", f"more cells than header fields: {raw['__extra_cells__']!r}"))
        return None
    try:
        record = ImportRecord.model_validate(raw)
    except ValidationError as error:
        for item in error.errors(include_url=False):
            field = str(item["loc"][0]) if item["loc"] else "record"
            if item["type"] == "extra_forbidden":
                message = "unknown field (typo?); the schema is documented in profiling/importer.py"
            else:
                message = f"{item['msg']}, got {item['input']!r}" if "input" in item else item["msg"]
            errors.append((row, field, message[:300]))
        return None
    problems = _consistency(record)
    errors.extend((row, field, message) for field, message in problems)
    if problems:
        return None
    canonical = json.dumps(record.model_dump(exclude_unset=True), sort_keys=True, separators=(",", ":"))
    return record, hashlib.sha256(canonical.encode()).hexdigest()


def to_result(record: ImportRecord, row: int, key: str, file_name: str) -> LatencyResult:
    """A validated record as the LatencyResult to store."""
    if record.samples_ms is not None:
        stats = compute_stats(record.samples_ms)
    else:
        stats = LatencyStats.from_summary(count=record.runs, mean_ms=record.mean_ms, min_ms=record.min_ms,
                                          max_ms=record.max_ms, std_ms=record.std_ms, median_ms=record.median_ms,
                                          p90_ms=record.p90_ms, p99_ms=record.p99_ms)
    device = DeviceInfo(kind=record.device_kind, name=record.device_name, cores=record.device_cores,
                        os=record.device_os, soc=record.device_soc, abi=record.device_abi)
    return LatencyResult(
        model=record.model, format=record.format, precision=record.precision, runtime=record.runtime,
        runtime_version=record.runtime_version or "unknown", device=device, threads=record.threads,
        input_shape=list(record.input_shape or []), stats=stats, samples_ms=[list(r) for r in record.samples_ms or []],
        warmup_runs=record.warmup_runs or 0, compute_unit=record.compute_unit, reparameterized=record.reparameterized,
        artifact_sha256=record.artifact_sha256, params=record.params, macs=record.macs,
        extra=dict(record.extra or {}) | {"imported": {"row": row, "source": record.source, "file": file_name,
                                                       "key": key}},
        created_at=record.created_at or utc_now())


def validate_file(path: str | Path, file_format: str = "auto") -> int:
    """Read the whole file once; raises ImportValidationError listing its problems; returns the record count."""
    path = Path(path)
    errors: list = []
    total_errors = 0
    first_row_of: dict[bytes, int] = {}
    count = 0
    for row, raw in iter_records(path, file_format):
        count += 1
        found: list = []
        validated = validate_record(raw, row, found)
        if validated is not None:
            digest = bytes.fromhex(validated[1])[:16]
            if digest in first_row_of:
                found.append((row, "record", f"duplicates row {first_row_of[digest]} (every field equal)"))
            else:
                first_row_of[digest] = row
        total_errors += len(found)
        if len(errors) < 500:
            errors.extend(found)
    if count == 0:
        raise ImportValidationError(path, [(None, "file", "no records")])
    if total_errors:
        raise ImportValidationError(path, errors, total_errors)
    return count


def valid_results(path: str | Path, file_format: str = "auto") -> Iterator[tuple[LatencyResult, str, int]]:
    """(result, content key, row) for every record of a file that ``validate_file`` accepted."""
    path = Path(path)
    for row, raw in iter_records(path, file_format):
        errors: list = []
        validated = validate_record(raw, row, errors)
        if validated is None:  # the file changed since it was validated
            raise ImportValidationError(path, errors or [(row, "record", "changed while importing")])
        yield to_result(validated[0], row, validated[1], path.name), validated[1], row


def load_results(path: str | Path, file_format: str = "auto") -> list[LatencyResult]:
    """Every record of a (small) file as a LatencyResult; raises ImportValidationError listing all problems."""
    validate_file(path, file_format)
    return [result for result, _, _ in valid_results(path, file_format)]


def import_file(path: str | Path, store: Store, run_id: str | None = None, file_format: str = "auto", *,
                label: str = "", command: str = "") -> tuple[str, int, list[int]]:
    """Validate the whole file, then insert its new records in one transaction.

    Returns (run id, rows inserted, row numbers skipped because the store already held them).
    """
    validate_file(path, file_format)
    run_id = run_id or new_run_id()
    inserted, skipped = store.import_results(lambda: valid_results(path, file_format), run_id=run_id, label=label,
                                             command=command, git_commit=git_commit(),
                                             device_name=host_device().name)
    return run_id, inserted, skipped


# ---- the subcommand ---------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help=".json or .csv in the schema of profiling/importer.py")
    parser.add_argument("--input-format", default="auto", choices=("auto", "json", "csv"),
                        help="file type (default: from the suffix)")
    parser.add_argument("--label", default="", help="a note stored with the import's run")
    parser.add_argument("--dry-run", action="store_true", help="validate only; write nothing")


def main(args: argparse.Namespace, console: Console) -> int:
    count = validate_file(args.file, args.input_format)  # an ImportValidationError is a UsageError: exit 2
    if args.dry_run:
        console.print(escape(f"{args.file}: {count} valid record(s); nothing written (--dry-run)"))
        return 0
    with Store(args.db) as store:
        run_id, inserted, skipped = import_file(args.file, store, file_format=args.input_format,
                                                label=args.label or f"import {args.file.name}",
                                                command="python -m profiling " + shlex.join(args.argv))
        shown = store.query(run_id=run_id, limit=SHOWN_ROWS + 1) if inserted else []
    if 0 < inserted <= SHOWN_ROWS:
        console.print(results_table(shown, f"imported from {escape(args.file.name)} (run {run_id})"))
    said = f"{args.file}: {inserted} record(s) imported" + (f" into run {run_id}" if inserted else "")
    if skipped:
        rows = ", ".join(map(str, skipped[:10])) + (" ..." if len(skipped) > 10 else "")
        said += f"; {len(skipped)} skipped, already in {args.db} (rows {rows})"
    console.print(escape(said))
    return 0
