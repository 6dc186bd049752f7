"""The results store: SQLite, one row per measurement, schema versioned with ordered migrations.

Default file ``results/latency.db`` (every CLI takes ``--db PATH``). The schema version is
``PRAGMA user_version``; :data:`MIGRATIONS` lists the steps in order, each a list of SQL
statements run once inside one transaction (executed one by one, never split from a script), so an old file is upgraded in place the first time a newer mobilelat opens it (and a
file from a NEWER mobilelat is refused rather than misread).

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
from pathlib import Path
from typing import Callable, Iterable, TypeVar

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

# Ordered: MIGRATIONS[i] takes a database from version i to version i + 1, one statement per item,
# all in one transaction. Append, never edit.
MIGRATIONS: list[list[str]] = [_V1_MEASUREMENTS, _V2_RUNS]
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
# filters query() accepts -> column
_FILTERS = {"id": "id", "model": "model", "format": "format", "runtime": "runtime", "precision": "precision",
            "run_id": "run_id", "device": "device_name", "device_kind": "device_kind",
            "threads": "threads", "compute_unit": "compute_unit"}


class StoreError(RuntimeError):
    """The database cannot be used as asked (newer schema, locked for too long, bad filter)."""


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


def migrate(connection: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to schema ``target`` (one transaction per step); returns the final version."""
    while True:
        connection.execute("BEGIN IMMEDIATE")  # re-read the version under the write lock
        try:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"database schema version {version} is newer than this mobilelat "
                                 f"understands ({SCHEMA_VERSION}); update mobilelat or use another --db")
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
    """A connection to the results database; use as a context manager or call ``close()``."""

    def __init__(self, path: str | Path = DEFAULT_DB, busy_timeout_s: float = 30.0, retry_for_s: float = 120.0):
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"--db {self.path} is a directory; give a file path such as {self.path / 'latency.db'}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retry_for_s = retry_for_s  # give up on a write after this long blocked, seconds
        try:
            self._connection = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open results database {self.path}: {error}") from error
        self._connection.row_factory = sqlite3.Row
        try:
            self._retry(lambda: self._connection.execute("PRAGMA journal_mode=WAL").fetchone())
            self._connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            # In WAL mode NORMAL cannot corrupt the file; a power cut may drop the last commits only.
            self._connection.execute("PRAGMA synchronous = NORMAL")
            self.schema_version = self._retry(lambda: migrate(self._connection))
        except StoreError:
            self._connection.close()
            raise
        except sqlite3.DatabaseError as error:
            self._connection.close()
            raise StoreError(f"{self.path} is not a mobilelat results database ({error}); "
                             f"point --db at another file") from error

    # -- plumbing -------------------------------------------------------------------------------

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
        return self._retry(attempt)

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

    def insert(self, result: LatencyResult) -> int:
        """Store one result (one transaction); sets and returns its row id."""
        return self.insert_many([result])[0]

    def insert_many(self, results: Iterable[LatencyResult]) -> list[int]:
        """Store several results in ONE transaction: all land or none do."""
        results = list(results)
        rows = [_result_to_row(r) for r in results]  # serialise first: a bad result writes nothing
        sql = (f"INSERT INTO measurements ({', '.join(_COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(_COLUMNS))})")

        def body(connection: sqlite3.Connection) -> list[int]:
            ids = []
            for row in rows:
                ids.append(connection.execute(sql, row).lastrowid)
            run_ids = {r.run_id for r in results if r.run_id}
            for run_id in run_ids:  # a run id nobody started (e.g. an import) still gets a runs row
                first = next(r for r in results if r.run_id == run_id)
                connection.execute("INSERT OR IGNORE INTO runs (run_id, started_at, git_commit, device_name) "
                                   "VALUES (?, ?, ?, ?)",
                                   (run_id, first.created_at or utc_now(), first.git_commit, first.device.name))
            return ids

        ids = self._write(body)
        for result, row_id in zip(results, ids):
            result.id = row_id
        return ids

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
        return [_row_to_result(row) for row in self._connection.execute(sql, params).fetchall()]

    def count(self) -> int:
        return self._connection.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]

    def runs(self) -> list[dict]:
        """Every run, oldest first, with how many measurements it holds."""
        rows = self._connection.execute(
            "SELECT r.*, (SELECT COUNT(*) FROM measurements m WHERE m.run_id = r.run_id) AS measurements "
            "FROM runs r ORDER BY r.started_at, r.rowid").fetchall()
        return [dict(row) for row in rows]

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
