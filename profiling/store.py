"""The results store: SQLite, one row per measurement, schema versioned with ordered migrations.

Default file ``results/latency.db`` (every CLI takes ``--db PATH``). The schema version is
``PRAGMA user_version``; :data:`MIGRATIONS` lists the steps in order, each a list of SQL
statements run once inside one transaction (executed one by one, never split from a script).

Reading never writes: ``Store(path, readonly=True)`` (what ``show``, ``report`` and ``compare``
use) opens the file read-only, changes neither its journal mode nor its schema, and reads an
older schema of ours through an in-memory copy upgraded there. Writing opens migrate, and only a
file that is empty or ours: a SQLite file holding other tables, or one from a NEWER mobilelat, is
refused before anything is changed (no tables created, no ``user_version`` set, no switch to WAL).

A sweep records its planned jobs (table ``jobs``: pending, done, failed, not_run), so a sweep cut
short can be finished later; a measurement and its job's "done" land in one transaction.
Imported measurements carry a content key (``measurements.import_key``, unique), so importing
the same records twice stores them once.

Damage: every open runs ``PRAGMA quick_check`` (milliseconds for a results file) and refuses a
damaged file with one line saying what to do, and a read that meets a damaged page raises
``StoreError`` too, so a corrupt file is never shown as an empty one, and a command that has
measured something keeps it elsewhere (``profiling.sidecar``) instead of losing it.

Concurrency: the database runs in WAL mode with a busy timeout; every write is one
``BEGIN IMMEDIATE`` transaction, retried with jittered back-off while another process holds the
write lock. A row appears whole or not at all, and two processes writing at once lose nothing.

The store records what it is given: provenance (the commit, the device a run measured on) comes
from the caller, never from probing git or the host here.

    with Store("results/latency.db") as store:
        run_id = store.start_run(label="nightly", command="python -m profiling run ...",
                                 git_commit=commit, device_name="AMD EPYC 7B13")
        result.run_id = run_id
        row_id = store.insert(result)               # LatencyResult -> one row
        rows = store.query(model="repvit_m1", runtime="onnxruntime")
"""
from __future__ import annotations

import json
import random
import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from mobilelat.errors import UsageError
from profiling.result import DeviceInfo, LatencyResult, new_run_id, utc_now
from profiling.stats import LatencyStats

DEFAULT_DB = Path("results/latency.db")
T = TypeVar("T")

_V1_MEASUREMENTS = [
    """
CREATE TABLE measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,            -- ISO-8601 UTC
    git_commit TEXT,
    run_id TEXT,
    model TEXT NOT NULL,
    reparameterized INTEGER,             -- 0/1, NULL when unknown
    format TEXT NOT NULL,                -- onnx / tflite / coreml / torch
    precision TEXT NOT NULL,
    artifact_sha256 TEXT,
    artifact_path TEXT,
    runtime TEXT NOT NULL,
    runtime_version TEXT,
    device_kind TEXT NOT NULL,           -- host / android / ios
    device_name TEXT NOT NULL,           -- host CPU model or phone model
    device_soc TEXT,
    device_cores INTEGER,
    device_os TEXT,
    device_abi TEXT,
    device_serial TEXT,
    device_json TEXT NOT NULL,           -- the whole DeviceInfo
    compute_unit TEXT,                   -- Core ML compute units or delegate
    threads INTEGER,
    input_shape TEXT NOT NULL,           -- JSON list
    warmup_runs INTEGER NOT NULL,
    runs INTEGER NOT NULL,               -- timed iterations over all rounds
    rounds INTEGER NOT NULL,
    samples_ms TEXT NOT NULL,            -- JSON: per round, per iteration, milliseconds
    median_ms REAL,
    mean_ms REAL,
    min_ms REAL,
    max_ms REAL,
    p90_ms REAL,
    p99_ms REAL,
    std_ms REAL,
    cv REAL,
    trimmed_mean_ms REAL,
    drift REAL,
    round_medians_ms TEXT NOT NULL,      -- JSON list
    unstable INTEGER NOT NULL,
    unstable_reasons TEXT NOT NULL,      -- JSON list
    params INTEGER,
    macs INTEGER,
    settings TEXT NOT NULL,              -- JSON: the MeasureSettings used
    extra TEXT NOT NULL                  -- JSON: op profile, load time, temperatures, ...
)
""",
    "CREATE INDEX measurements_model ON measurements (model, format, runtime)",
    "CREATE INDEX measurements_run ON measurements (run_id)",
]

_V2_RUNS = [
    """
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    command TEXT NOT NULL DEFAULT '',
    git_commit TEXT,
    device_name TEXT
)
""",
    """
INSERT INTO runs (run_id, started_at, git_commit, device_name)
    SELECT run_id, MIN(created_at), MIN(git_commit), MIN(device_name)
    FROM measurements WHERE run_id IS NOT NULL GROUP BY run_id
""",
]

_V3_JOBS_AND_IMPORT_KEYS = [
    """
CREATE TABLE jobs (
    run_id TEXT NOT NULL,
    job_key TEXT NOT NULL,               -- the job's name within its run: "model|format|threads|#repeat"
    spec TEXT NOT NULL,                  -- JSON: everything needed to run the job again
    status TEXT NOT NULL,                -- pending / done / failed / not_run
    detail TEXT NOT NULL DEFAULT '',     -- why it failed or did not run
    measurement_id INTEGER,              -- the row it produced, once done
    updated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, job_key)
)
""",
    "ALTER TABLE measurements ADD COLUMN import_key TEXT",  # content key of an imported record (sha256)
    "CREATE UNIQUE INDEX measurements_import_key ON measurements (import_key) WHERE import_key IS NOT NULL",
]

# One row per target `profiling accuracy` evaluated (see profiling.accuracy.AccuracyResult for each column):
# form is training (eval mode) / deploy / artifact; artifact_sha256 links it to the measurements of the same file;
# weights NULL means random initialisation; images (listed) is the denominator of top1/top5, in percent;
# skipped files count as misses; agreement, mean/max_abs_dev and top1_drop are against the training form;
# input_shape and extra are JSON. Written without SQL comments: the schema must stay on the first page.
_V4_ACCURACY = [
    "CREATE TABLE accuracy (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, git_commit TEXT, "
    "run_id TEXT, model TEXT NOT NULL, form TEXT NOT NULL, format TEXT NOT NULL, precision TEXT NOT NULL, "
    "runtime TEXT NOT NULL, artifact_sha256 TEXT, artifact_path TEXT, weights TEXT, dataset TEXT NOT NULL, "
    "dataset_sha256 TEXT NOT NULL, images INTEGER NOT NULL, evaluated INTEGER NOT NULL, skipped INTEGER NOT NULL, "
    "top1 REAL NOT NULL, top5 REAL NOT NULL, agreement REAL NOT NULL, mean_abs_dev REAL NOT NULL, "
    "max_abs_dev REAL NOT NULL, top1_drop REAL NOT NULL, images_per_s REAL NOT NULL, input_shape TEXT NOT NULL, "
    "crop_pct REAL NOT NULL, interpolation TEXT NOT NULL, extra TEXT NOT NULL)",
    "CREATE INDEX accuracy_artifact ON accuracy (artifact_sha256)",
]

# Ordered: MIGRATIONS[i] takes a database from version i to version i + 1, one statement per item,
# all in one transaction. Append, never edit.
MIGRATIONS: list[list[str]] = [_V1_MEASUREMENTS, _V2_RUNS, _V3_JOBS_AND_IMPORT_KEYS, _V4_ACCURACY]
JOB_STATUSES = ("pending", "done", "failed", "not_run")
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = (
    "created_at", "git_commit", "run_id", "model", "reparameterized", "format", "precision",
    "artifact_sha256", "artifact_path", "runtime", "runtime_version", "device_kind", "device_name",
    "device_soc", "device_cores", "device_os", "device_abi", "device_serial", "device_json",
    "compute_unit", "threads", "input_shape", "warmup_runs", "runs", "rounds", "samples_ms",
    "median_ms", "mean_ms", "min_ms", "max_ms", "p90_ms", "p99_ms", "std_ms", "cv", "trimmed_mean_ms",
    "drift", "round_medians_ms", "unstable", "unstable_reasons", "params", "macs", "settings", "extra",
)
_STAT_FIELDS = ("median_ms", "mean_ms", "min_ms", "max_ms", "p90_ms", "p99_ms", "std_ms", "cv",
                "trimmed_mean_ms", "drift")
_ACCURACY_COLUMNS = (
    "created_at", "git_commit", "run_id", "model", "form", "format", "precision", "runtime", "artifact_sha256",
    "artifact_path", "weights", "dataset", "dataset_sha256", "images", "evaluated", "skipped", "top1", "top5",
    "agreement", "mean_abs_dev", "max_abs_dev", "top1_drop", "images_per_s", "input_shape", "crop_pct",
    "interpolation", "extra",
)
_ACCURACY_FILTERS = ("id", "model", "format", "precision", "run_id", "artifact_sha256", "form")
# filters query() accepts -> column
_FILTERS = {"id": "id", "model": "model", "format": "format", "runtime": "runtime", "precision": "precision",
            "run_id": "run_id", "device": "device_name", "device_kind": "device_kind",
            "threads": "threads", "compute_unit": "compute_unit"}


def _ensure_runs(connection: sqlite3.Connection, results: list[LatencyResult]) -> None:
    """A run id nobody started (e.g. a script's own) still gets a runs row."""
    for run_id in {r.run_id for r in results if r.run_id}:
        first = next(r for r in results if r.run_id == run_id)
        connection.execute("INSERT OR IGNORE INTO runs (run_id, started_at, git_commit, device_name) "
                           "VALUES (?, ?, ?, ?)", (run_id, first.created_at or utc_now(), first.git_commit,
                                                   first.device.name))


class StoreError(UsageError, RuntimeError):
    """The database cannot be used as asked (newer schema, damaged, locked for too long, bad filter)."""


def _is_busy(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


def _result_to_row(result: LatencyResult) -> tuple:
    stats, device = result.stats, result.device
    values = {
        "created_at": result.created_at or utc_now(), "git_commit": result.git_commit,
        "run_id": result.run_id, "model": result.model,
        "reparameterized": None if result.reparameterized is None else int(result.reparameterized),
        "format": result.format, "precision": result.precision, "artifact_sha256": result.artifact_sha256,
        "artifact_path": result.artifact_path, "runtime": result.runtime,
        "runtime_version": result.runtime_version, "device_kind": device.kind, "device_name": device.name,
        "device_soc": device.soc, "device_cores": device.cores, "device_os": device.os,
        "device_abi": device.abi, "device_serial": device.serial, "device_json": json.dumps(device.to_dict()),
        "compute_unit": result.compute_unit, "threads": result.threads,
        "input_shape": json.dumps(list(result.input_shape)), "warmup_runs": result.warmup_runs,
        "runs": stats.count, "rounds": len(result.samples_ms) or len(stats.round_medians_ms) or 1,
        "samples_ms": json.dumps(result.samples_ms), "round_medians_ms": json.dumps(stats.round_medians_ms),
        "unstable": int(stats.unstable), "unstable_reasons": json.dumps(stats.unstable_reasons),
        "params": result.params, "macs": result.macs, "settings": json.dumps(result.settings),
        "extra": json.dumps(result.extra),
    }
    values.update({name: getattr(stats, name) for name in _STAT_FIELDS})
    return tuple(values[c] for c in _COLUMNS)


def _row_to_result(row: sqlite3.Row) -> LatencyResult:
    stats = LatencyStats(count=row["runs"], round_medians_ms=json.loads(row["round_medians_ms"]),
                         unstable=bool(row["unstable"]), unstable_reasons=json.loads(row["unstable_reasons"]),
                         **{name: row[name] for name in _STAT_FIELDS})
    return LatencyResult(
        model=row["model"], format=row["format"], precision=row["precision"], runtime=row["runtime"],
        runtime_version=row["runtime_version"], device=DeviceInfo.from_dict(json.loads(row["device_json"])),
        threads=row["threads"], input_shape=json.loads(row["input_shape"]), stats=stats,
        samples_ms=json.loads(row["samples_ms"]), warmup_runs=row["warmup_runs"],
        compute_unit=row["compute_unit"],
        reparameterized=None if row["reparameterized"] is None else bool(row["reparameterized"]),
        artifact_sha256=row["artifact_sha256"], artifact_path=row["artifact_path"], params=row["params"],
        macs=row["macs"], settings=json.loads(row["settings"]), extra=json.loads(row["extra"]),
        run_id=row["run_id"], git_commit=row["git_commit"], created_at=row["created_at"], id=row["id"])


def _contents(connection: sqlite3.Connection) -> tuple[int, set[str]]:
    """(user_version, the file's own tables): what tells an empty file, ours, and someone else's apart."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
              if not row[0].startswith("sqlite_")}
    return version, tables


def _refuse_unless_ours(path: Path | str, version: int, tables: set[str]) -> None:
    """Raise StoreError for a file this mobilelat must not touch: a newer schema, or another program's database."""
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path} has schema version {version}, newer than this mobilelat understands "
                         f"({SCHEMA_VERSION}); left untouched: update mobilelat or use another --db")
    if (version == 0 and tables) or (version > 0 and "measurements" not in tables):
        shown = ", ".join(sorted(tables)[:8]) or "none"
        raise StoreError(f"{path} is a SQLite database of something else (user_version {version}, tables: {shown}), "
                         f"not a mobilelat results database; left untouched: point --db at another file")


def migrate(connection: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to schema ``target`` (one transaction per step); returns the final version.

    Only an empty database or one of ours is migrated; anything else raises StoreError unchanged.
    """
    while True:
        connection.execute("BEGIN IMMEDIATE")  # re-read the version under the write lock
        try:
            version, tables = _contents(connection)
            _refuse_unless_ours("the database", version, tables)
            if version >= target:
                connection.execute("COMMIT")
                return version
            for statement in MIGRATIONS[version]:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {version + 1}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise


class Store:
    """A connection to the results database; use as a context manager or call ``close()``.

    ``readonly=True`` opens an existing file for reading only (nothing in it changes); otherwise the
    file is created if missing and upgraded to the current schema if it is ours.
    """

    def __init__(self, path: str | Path = DEFAULT_DB, busy_timeout_s: float = 30.0, retry_for_s: float = 120.0,
                 readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly  # reads only: writes raise StoreError
        if self.path.is_dir():
            raise StoreError(f"--db {self.path} is a directory; give a file path such as {self.path / 'latency.db'}")
        self.retry_for_s = retry_for_s  # give up on a write after this long blocked, seconds
        if readonly:
            self._connection = self._open_readonly(busy_timeout_s)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connection = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open results database {self.path}: {error}") from error
        self._connection.row_factory = sqlite3.Row
        try:
            self._check_integrity(self._connection)  # a damaged file is refused before anything else
            # look before touching: a foreign or newer file must leave here exactly as it came
            _refuse_unless_ours(self.path, *self._retry(lambda: _contents(self._connection)))
            self._retry(lambda: self._connection.execute("PRAGMA journal_mode=WAL").fetchone())
            self._connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            # In WAL mode NORMAL cannot corrupt the file; a power cut may drop the last commits only.
            self._connection.execute("PRAGMA synchronous = NORMAL")
            self.schema_version = self._retry(lambda: migrate(self._connection))
        except StoreError as error:
            self._connection.close()
            raise StoreError(str(error).replace("the database", str(self.path), 1)) from None
        except sqlite3.DatabaseError as error:
            self._connection.close()
            raise StoreError(f"{self.path} is not a mobilelat results database ({error}); "
                             f"point --db at another file") from error

    def _open_readonly(self, busy_timeout_s: float) -> sqlite3.Connection:
        """The file opened read-only; an older schema of ours is read through an upgraded in-memory copy."""
        if not self.path.is_file():
            raise StoreError(f"no results database at {self.path}")
        uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=busy_timeout_s, isolation_level=None)
            try:
                self._check_integrity(connection)  # a damaged file is never read as a short or empty one
            except BaseException:
                connection.close()
                raise
            version, tables = _contents(connection)
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path} is not a mobilelat results database ({error}); "
                             f"point --db at another file") from error
        try:
            _refuse_unless_ours(self.path, version, tables)
            if version == 0:
                raise StoreError(f"{self.path} holds no mobilelat results (an empty database)")
            if version < SCHEMA_VERSION:
                copy = sqlite3.connect(":memory:", isolation_level=None)
                connection.backup(copy)
                connection.close()
                connection = copy
                migrate(connection)
        except BaseException:
            connection.close()
            raise
        connection.row_factory = sqlite3.Row
        self.schema_version = SCHEMA_VERSION
        return connection

    # -- plumbing -------------------------------------------------------------------------------

    def _check_integrity(self, connection: sqlite3.Connection) -> None:
        """``PRAGMA quick_check``: a damaged file is refused before anything is read from or written to it."""
        rows = [row[0] for row in self._retry(lambda: connection.execute("PRAGMA quick_check").fetchall())]
        if rows != ["ok"]:  # each row may hold several lines, the first naming the database
            problems = [line for row in rows for line in str(row).splitlines() if not line.startswith("***")]
            more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
            raise StoreError(self._damaged(f"quick_check: {problems[0] if problems else rows[0]}{more}"))

    def _damaged(self, detail: str) -> str:
        return (f"results database {self.path} is damaged ({detail}); move it aside and measure into a new --db "
                f"(`sqlite3 {self.path} .recover` may rescue its rows)")

    def _read(self, sql: str, params: Iterable = ()) -> list[sqlite3.Row]:
        """Rows of a query; a damaged page is a ``StoreError``, never a silently short answer."""
        try:
            return self._connection.execute(sql, list(params)).fetchall()
        except sqlite3.DatabaseError as error:
            if isinstance(error, sqlite3.OperationalError) and _is_busy(error):
                raise
            raise StoreError(self._damaged(str(error))) from error

    def _retry(self, operation: Callable[[], T]) -> T:
        """Run ``operation``, retrying with jittered back-off while the database is busy."""
        deadline = time.monotonic() + self.retry_for_s
        delay_s = 0.01
        while True:
            try:
                return operation()
            except sqlite3.OperationalError as error:
                if not _is_busy(error) or time.monotonic() > deadline:
                    if _is_busy(error):
                        raise StoreError(f"{self.path} stayed locked for {self.retry_for_s:.0f} s "
                                         f"by another writer; retry later") from error
                    raise
                time.sleep(delay_s * (0.5 + random.random()))
                delay_s = min(delay_s * 2, 0.5)

    def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """One ``BEGIN IMMEDIATE`` transaction around ``body``: all of it lands or none."""
        if self.readonly:
            raise StoreError(f"{self.path} was opened read-only; nothing can be written through this connection")

        def attempt() -> T:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                value = body(self._connection)
                self._connection.execute("COMMIT")
                return value
            except BaseException:
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                raise
        try:
            return self._retry(attempt)
        except (sqlite3.DatabaseError, sqlite3.OperationalError) as error:
            if type(error) not in (sqlite3.DatabaseError, sqlite3.OperationalError):
                raise  # an IntegrityError or ProgrammingError is ours to fix
            raise StoreError(f"cannot write to results database {self.path}: {error}") from error

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writes ---------------------------------------------------------------------------------

    def start_run(self, run_id: str | None = None, label: str = "", command: str = "",
                  git_commit: str | None = None, device_name: str | None = None) -> str:
        """Record a run (a sweep of measurements) and return its id; an existing id is kept as is.

        ``git_commit`` and ``device_name`` are the caller's provenance for the run, stored as given.
        """
        run_id = run_id or new_run_id()
        values = (run_id, utc_now(), label, command, git_commit, device_name)
        self._write(lambda c: c.execute(
            "INSERT OR IGNORE INTO runs (run_id, started_at, label, command, git_commit, device_name) "
            "VALUES (?, ?, ?, ?, ?, ?)", values))
        return run_id

    def insert(self, result: LatencyResult, job_key: str | None = None) -> int:
        """Store one result (one transaction); sets and returns its row id. With ``job_key``, the job of
        ``result.run_id`` with that key is marked done in the same transaction."""
        return self.insert_many([result], job_keys=None if job_key is None else [job_key])[0]

    def insert_many(self, results: Iterable[LatencyResult], job_keys: list[str] | None = None) -> list[int]:
        """Store several results in ONE transaction: all land or none do (``job_keys``: as in ``insert``)."""
        results = list(results)
        rows = [_result_to_row(r) for r in results]  # serialise first: a bad result writes nothing
        sql = (f"INSERT INTO measurements ({', '.join(_COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(_COLUMNS))})")

        def body(connection: sqlite3.Connection) -> list[int]:
            ids = []
            for row in rows:
                ids.append(connection.execute(sql, row).lastrowid)
            for result, row_id, key in zip(results, ids, job_keys or []):
                updated = connection.execute(
                    "UPDATE jobs SET status = 'done', detail = '', measurement_id = ?, updated_at = ? "
                    "WHERE run_id = ? AND job_key = ?", (row_id, utc_now(), result.run_id, key)).rowcount
                if updated != 1:
                    raise StoreError(f"no job {key!r} in run {result.run_id!r}: plan it before storing its result")
            _ensure_runs(connection, results)
            return ids

        ids = self._write(body)
        for result, row_id in zip(results, ids):
            result.id = row_id
        return ids

    def import_results(self, items: Callable[[], Iterator[tuple[LatencyResult, str, int]]], *, run_id: str,
                       label: str = "", command: str = "", git_commit: str | None = None,
                       device_name: str | None = None) -> tuple[int, list[int]]:
        """Insert imported ``(result, content key, row number)`` items in ONE transaction, streaming.

        A key the store already holds is skipped (importing a file twice stores it once). ``items`` is
        called again should the transaction be retried. The run row is written only when something was
        inserted. Returns (rows inserted, row numbers skipped).
        """
        sql = (f"INSERT INTO measurements ({', '.join(_COLUMNS)}, import_key) "
               f"VALUES ({', '.join('?' * (len(_COLUMNS) + 1))}) "
               "ON CONFLICT (import_key) WHERE import_key IS NOT NULL DO NOTHING")

        def body(connection: sqlite3.Connection) -> tuple[int, list[int]]:
            inserted, skipped = 0, []
            for result, key, row in items():
                result.run_id = run_id
                if connection.execute(sql, (*_result_to_row(result), key)).rowcount == 1:
                    inserted += 1
                else:
                    skipped.append(row)
            if inserted:
                connection.execute("INSERT OR IGNORE INTO runs (run_id, started_at, label, command, git_commit, "
                                   "device_name) VALUES (?, ?, ?, ?, ?, ?)",
                                   (run_id, utc_now(), label, command, git_commit, device_name))
            return inserted, skipped

        return self._write(body)

    def insert_accuracy(self, results: list, *, label: str = "", command: str = "",
                        device_name: str | None = None) -> list[int]:
        """Store ``profiling.accuracy.AccuracyResult`` rows in ONE transaction (all or none), with the runs
        row of their ``run_id`` (``label``, ``command``, ``device_name``: the run's provenance); sets their ids."""
        rows = []
        for result in results:  # serialise first: a bad result writes nothing
            values = result.to_dict()
            values["created_at"] = values["created_at"] or utc_now()
            values["input_shape"] = json.dumps(list(values["input_shape"]))
            values["extra"] = json.dumps(values["extra"])
            rows.append(tuple(values[c] for c in _ACCURACY_COLUMNS))
        sql = (f"INSERT INTO accuracy ({', '.join(_ACCURACY_COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(_ACCURACY_COLUMNS))})")

        def body(connection: sqlite3.Connection) -> list[int]:
            ids = [connection.execute(sql, row).lastrowid for row in rows]
            for result in results:
                if result.run_id:
                    connection.execute("INSERT OR IGNORE INTO runs (run_id, started_at, label, command, git_commit, "
                                       "device_name) VALUES (?, ?, ?, ?, ?, ?)",
                                       (result.run_id, result.created_at or utc_now(), label, command,
                                        result.git_commit, device_name))
            return ids

        ids = self._write(body)
        for result, row_id in zip(results, ids):
            result.id = row_id
        return ids

    def query_accuracy(self, **filters) -> list[dict]:
        """Stored accuracy rows, oldest first, as dicts (``input_shape`` and ``extra`` decoded); filters:
        id, model, format, precision, run_id, artifact_sha256, form (a list matches any of its values)."""
        unknown = set(filters) - set(_ACCURACY_FILTERS)
        if unknown:
            raise StoreError(f"unknown filter(s) {sorted(unknown)}; known: {sorted(_ACCURACY_FILTERS)}")
        clauses, params = [], []
        for name, value in filters.items():
            if value is None:
                continue
            values = list(value) if isinstance(value, (list, tuple, set)) else [value]
            clauses.append(f"{name} IN ({', '.join('?' * len(values))})")
            params.extend(values)
        sql = "SELECT * FROM accuracy" + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY id"
        rows = []
        for row in self._read(sql, params):
            record = dict(row)
            record["input_shape"] = json.loads(record["input_shape"])
            record["extra"] = json.loads(record["extra"])
            rows.append(record)
        return rows

    def plan_jobs(self, run_id: str, jobs: list[tuple[str, dict]]) -> None:
        """Record the ``(job key, spec)`` jobs of ``run_id`` as pending (jobs already recorded are kept)."""
        now = utc_now()
        self._write(lambda c: c.executemany(
            "INSERT OR IGNORE INTO jobs (run_id, job_key, spec, status, updated_at) VALUES (?, ?, ?, 'pending', ?)",
            [(run_id, key, json.dumps(spec), now) for key, spec in jobs]))

    def set_job(self, run_id: str, job_key: str, status: str, detail: str = "") -> None:
        """Mark a job failed / not_run / pending, with the reason (use ``insert(result, job_key)`` for done)."""
        if status not in JOB_STATUSES or status == "done":
            raise StoreError(f"job status {status!r}: use one of pending, failed, not_run (done comes with insert)")

        def body(connection: sqlite3.Connection) -> None:
            if connection.execute("UPDATE jobs SET status = ?, detail = ?, updated_at = ? WHERE run_id = ? "
                                  "AND job_key = ? AND status != 'done'",
                                  (status, detail, utc_now(), run_id, job_key)).rowcount != 1:
                raise StoreError(f"no unfinished job {job_key!r} in run {run_id!r}")
        self._write(body)

    # -- reads ----------------------------------------------------------------------------------

    def query(self, limit: int | None = None, **filters) -> list[LatencyResult]:
        """Stored results, oldest first; filters: id, model, format, runtime, precision, run_id, device,
        device_kind, threads, compute_unit (a list or tuple matches any of its values)."""
        unknown = set(filters) - set(_FILTERS)
        if unknown:
            raise StoreError(f"unknown filter(s) {sorted(unknown)}; known: {sorted(_FILTERS)}")
        clauses, params = [], []
        for name, value in filters.items():
            if value is None:
                continue
            values = list(value) if isinstance(value, (list, tuple, set)) else [value]
            clauses.append(f"{_FILTERS[name]} IN ({', '.join('?' * len(values))})")
            params.extend(values)
        sql = "SELECT * FROM measurements"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_row_to_result(row) for row in self._read(sql, params)]

    def count(self) -> int:
        return self._read("SELECT COUNT(*) FROM measurements")[0][0]

    def distinct(self, column: str) -> list[str]:
        """The distinct values a ``query`` filter (``model``, ``runtime``, ``device``, ...) can match here."""
        if column not in _FILTERS:
            raise StoreError(f"unknown filter {column!r}; known: {sorted(_FILTERS)}")
        return [row[0] for row in self._read(f"SELECT DISTINCT {_FILTERS[column]} FROM measurements "
                                             f"WHERE {_FILTERS[column]} IS NOT NULL ORDER BY 1")]

    def runs(self) -> list[dict]:
        """Every run, oldest first, with how many measurements it holds."""
        rows = self._read(
            "SELECT r.*, (SELECT COUNT(*) FROM measurements m WHERE m.run_id = r.run_id) AS measurements "
            "FROM runs r ORDER BY r.started_at, r.rowid")
        return [dict(row) for row in rows]

    def discard_run_if_empty(self, run_id: str) -> bool:
        """Delete the run row of ``run_id`` if no measurement belongs to it (an interrupted or failed
        sweep leaves no empty run behind); returns whether it was deleted."""
        return self._write(lambda c: c.execute(
            "DELETE FROM runs WHERE run_id = ? AND NOT EXISTS (SELECT 1 FROM measurements m WHERE m.run_id = ?)",
            (run_id, run_id)).rowcount) > 0

    def jobs(self, run_id: str) -> list[dict]:
        """The planned jobs of a run in plan order: job_key, spec (dict), status, detail, measurement_id."""
        rows = self._read("SELECT job_key, spec, status, detail, measurement_id, updated_at FROM jobs "
                          "WHERE run_id = ? ORDER BY rowid", (run_id,))
        return [dict(row) | {"spec": json.loads(row["spec"])} for row in rows]

    def find_run(self, reference: str) -> dict:
        """Any run (measured or not) by id, unique prefix or ``latest``: its runs row."""
        runs = self.runs()
        if reference == "latest" and runs:
            return runs[-1]
        matches = [r for r in runs if r["run_id"] == reference] or [r for r in runs if r["run_id"].startswith(reference)]
        if len(matches) != 1:
            known = ", ".join(r["run_id"] for r in runs[-5:]) or "none"
            what = "no run" if not matches else f"{len(matches)} runs"
            raise StoreError(f"{what} matches {reference!r} in {self.path}; latest runs: {known}")
        return matches[0]

    def resolve_run(self, reference: str) -> str:
        """A run id from an id, a unique prefix, ``latest`` or ``latest~N`` (N runs before the latest)."""
        runs = [r["run_id"] for r in self.runs() if r["measurements"]]
        if reference.startswith("latest"):
            back = int(reference.partition("~")[2] or 0)
            if back >= len(runs):
                raise StoreError(f"{reference}: the database holds only {len(runs)} run(s) with measurements")
            return runs[-1 - back]
        matches = [r for r in runs if r == reference] or [r for r in runs if r.startswith(reference)]
        if len(matches) != 1:
            known = ", ".join(runs[-5:]) or "none"
            what = "no run" if not matches else f"{len(matches)} runs"
            raise StoreError(f"{what} matches {reference!r} in {self.path}; latest runs: {known} "
                             f"(`python -m profiling show --runs` lists them)")
        return matches[0]
