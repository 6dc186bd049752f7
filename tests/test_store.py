"""The results store: round trips, atomic batches, migrations, and two concurrent writer processes."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from profiling.result import DeviceInfo, LatencyResult
from profiling.stats import compute_stats
from profiling import store as store_module
from profiling.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError, migrate

ROOT = Path(__file__).resolve().parents[1]


def make_result(model="repvit_m0_6", runtime="onnxruntime", run_id="run-a", median=2.0, **fields) -> LatencyResult:
    rounds = [[median, median + 0.5, median - 0.5], [median, median + 0.1, median - 0.1]]
    values = dict(model=model, format="onnx", precision="fp32", runtime=runtime, runtime_version="1.0",
                  device=DeviceInfo(kind="host", name="Test CPU", cores=2, os="Linux", abi="x86_64"),
                  threads=1, input_shape=[1, 3, 224, 224], stats=compute_stats(rounds), samples_ms=rounds,
                  warmup_runs=5, reparameterized=True, artifact_sha256="ab" * 32, params=123, macs=456,
                  settings={"rounds": 2}, extra={"op_profile": {"Conv": 1.5}}, run_id=run_id,
                  git_commit="abc123", created_at="2026-11-22T12:00:00+00:00")
    values.update(fields)
    return LatencyResult(**values)


@pytest.mark.fast
def test_round_trip_keeps_every_field(tmp_path):
    with Store(tmp_path / "r.db") as store:
        result = make_result(compute_unit="xnnpack")
        row_id = store.insert(result)
        assert result.id == row_id
        (back,) = store.query()
    assert back == result
    assert back.samples_ms[0] == [2.0, 2.5, 1.5] and back.extra["op_profile"]["Conv"] == 1.5


@pytest.mark.fast
def test_query_filters_and_runs(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.start_run("run-a", label="first")
        store.insert_many([make_result(), make_result(runtime="litert"), make_result(model="repvit_m1")])
        store.insert(make_result(run_id="run-b", median=3.0, created_at="2030-01-01T00:00:00+00:00"))
        assert len(store.query(model="repvit_m0_6")) == 3
        assert [r.runtime for r in store.query(model="repvit_m0_6", run_id="run-a")] == ["onnxruntime", "litert"]
        assert len(store.query(runtime=["litert", "onnxruntime"], run_id="run-a")) == 3
        runs = {r["run_id"]: r for r in store.runs()}
        assert runs["run-a"]["measurements"] == 3 and runs["run-a"]["label"] == "first"
        assert runs["run-b"]["measurements"] == 1  # created by insert, never started
        assert store.resolve_run("latest") == "run-b" and store.resolve_run("latest~1") == "run-a"
        with pytest.raises(StoreError, match="no run matches"):
            store.resolve_run("zzz")
        with pytest.raises(StoreError, match="unknown filter"):
            store.query(colour="red")


@pytest.mark.fast
def test_a_failing_batch_writes_nothing(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.insert(make_result())
        with pytest.raises(sqlite3.IntegrityError):  # second row breaks NOT NULL inside the transaction
            store.insert_many([make_result(), make_result(model=None)])
        with pytest.raises(TypeError):  # not JSON-serialisable: fails before the transaction opens
            store.insert_many([make_result(), make_result(extra={"bad": object()})])
        assert store.count() == 1


@pytest.mark.fast
def test_old_schema_is_migrated_in_place(tmp_path):
    path = tmp_path / "old.db"
    connection = sqlite3.connect(path, isolation_level=None)
    assert migrate(connection, target=1) == 1  # a database written by schema version 1
    connection.execute("INSERT INTO measurements (created_at, run_id, model, format, precision, runtime, "
                       "device_kind, device_name, device_json, input_shape, warmup_runs, runs, rounds, "
                       "samples_ms, median_ms, round_medians_ms, unstable, unstable_reasons, settings, extra) "
                       "VALUES ('2026-01-01T00:00:00+00:00', 'old-run', 'repvit_m1', 'onnx', 'fp32', "
                       "'onnxruntime', 'host', 'Old CPU', ?, '[1,3,224,224]', 1, 2, 1, '[[1.0,3.0]]', 2.0, "
                       "'[2.0]', 0, '[]', '{}', '{}')",
                       (json.dumps({"kind": "host", "name": "Old CPU"}),))
    connection.close()
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
        (old,) = store.query()
        assert old.model == "repvit_m1" and old.stats.median_ms == 2.0 and old.samples_ms == [[1.0, 3.0]]
        (run,) = store.runs()  # migration 2 backfilled the runs table
        assert run["run_id"] == "old-run" and run["device_name"] == "Old CPU" and run["measurements"] == 1
    with Store(path) as store:  # reopening is a no-op
        assert store.count() == 1


def _user_version(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("PRAGMA user_version").fetchone()[0]
    finally:
        connection.close()


def _with_one_more_step(monkeypatch, step: list[str]) -> int:
    """Append ``step`` to the migrations for this test; returns the schema version it leads to."""
    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, step])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", len(MIGRATIONS) + 1)
    return len(MIGRATIONS) + 1


@pytest.mark.fast
def test_a_migration_step_runs_statement_by_statement(tmp_path, monkeypatch):
    """A ';' inside a literal is part of the statement: steps are lists, never a script split on ';'."""
    version = _with_one_more_step(monkeypatch, ["CREATE TABLE notes (note TEXT NOT NULL DEFAULT 'a;b')",
                                                "INSERT INTO notes (note) VALUES ('first; second')",
                                                "INSERT INTO notes DEFAULT VALUES"])
    connection = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    assert migrate(connection, target=version) == version
    assert connection.execute("SELECT note FROM notes ORDER BY rowid").fetchall() == [("first; second",), ("a;b",)]
    connection.close()


@pytest.mark.fast
def test_a_failing_migration_step_leaves_the_database_as_it_was(tmp_path, monkeypatch):
    version = _with_one_more_step(monkeypatch, ["CREATE TABLE half (x INTEGER)",
                                                "INSERT INTO no_such_table VALUES (1)"])
    path = tmp_path / "r.db"
    connection = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        migrate(connection, target=version)
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    connection.close()
    assert _user_version(path) == len(MIGRATIONS) and "half" not in tables and "runs" in tables


@pytest.mark.fast
def test_a_run_records_the_provenance_it_is_given_and_probes_nothing(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.start_run("given", label="x", command="cmd", git_commit="f" * 40, device_name="Pixel 7")
        store.start_run("bare")
        runs = {r["run_id"]: r for r in store.runs()}
    assert (runs["given"]["git_commit"], runs["given"]["device_name"]) == ("f" * 40, "Pixel 7")
    assert (runs["bare"]["git_commit"], runs["bare"]["device_name"]) == (None, None)  # not this checkout's


@pytest.mark.fast
def test_newer_schema_and_foreign_files_are_refused(tmp_path):
    newer = tmp_path / "newer.db"
    connection = sqlite3.connect(newer)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(StoreError, match="newer than this mobilelat"):
        Store(newer)
    garbage = tmp_path / "notes.txt"
    garbage.write_text("this is not a database\n" * 100)
    with pytest.raises(StoreError, match="not a mobilelat results database"):
        Store(garbage)
    with pytest.raises(StoreError, match="is a directory"):
        Store(tmp_path)


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    from test_store import make_result
    from profiling.store import Store
    import time
    from pathlib import Path
    writer, count = sys.argv[1], int(sys.argv[2])
    Path(sys.argv[3] + "." + writer + ".ready").touch()  # barrier: start writing together
    while len(list(Path(sys.argv[3]).parent.glob("*.ready"))) < 2:
        time.sleep(0.01)
    with Store(sys.argv[3]) as store:
        for index in range(count):
            store.insert(make_result(model=f"{{writer}}-{{index}}", run_id=writer))
            if index % 50 == 0:  # batches too, interleaved with single rows
                store.insert_many([make_result(model=f"{{writer}}-batch{{index}}-{{k}}", run_id=writer)
                                   for k in range(3)])
""")


def test_two_concurrent_writers_lose_nothing(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT), tests=str(ROOT / "tests")))
    db = tmp_path / "shared.db"
    rows_each = 300
    writers = [subprocess.Popen([sys.executable, str(script), name, str(rows_each), str(db)],
                                stderr=subprocess.PIPE, text=True) for name in ("w1", "w2")]
    for writer in writers:
        _, stderr = writer.communicate(timeout=300)
        assert writer.returncode == 0, stderr
    with Store(db) as store:
        models = [r.model for r in store.query()]
        batches = rows_each // 50
        assert len(models) == 2 * (rows_each + 3 * batches)
        assert len(set(models)) == len(models)
        for name in ("w1", "w2"):
            mine = [m for m in models if m.startswith(name + "-")]
            assert sorted(m for m in mine if "batch" not in m) == sorted(f"{name}-{i}" for i in range(rows_each))
        assert {r["run_id"]: r["measurements"] for r in store.runs()} == {"w1": 318, "w2": 318}
        ids_in_order = [r.model.split("-")[0] for r in store.query()]
        switches = sum(a != b for a, b in zip(ids_in_order, ids_in_order[1:]))
        assert switches > 2, "the writers did not overlap; the test proved nothing"


# ---- issue 14 item 11: reading never writes; only empty files or ours are migrated -------------------

def _snapshot(path: Path) -> tuple[bytes, int, str, list[str]]:
    """The file's bytes, user_version, journal mode and tables, read without changing anything."""
    data = path.read_bytes()
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        journal = connection.execute("PRAGMA journal_mode").fetchone()[0]
        tables = sorted(row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    finally:
        connection.close()
    return data, version, journal, tables


def _foreign(path: Path) -> Path:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    connection.execute("INSERT INTO notes (text) VALUES ('my own data')")
    connection.commit()
    connection.close()
    return path


def _newer(path: Path) -> Path:
    with Store(path) as store:
        store.insert(make_result())
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=DELETE")  # as a newer mobilelat might leave it
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    return path


@pytest.mark.fast
@pytest.mark.parametrize("kind, said", [("foreign", "SQLite database of something else"),
                                        ("newer", "newer than this mobilelat")])
@pytest.mark.parametrize("command", [["show"], ["show", "--runs"], ["report", "--out", "OUT"], ["compare", "a", "b"]])
def test_reading_commands_leave_foreign_and_newer_files_untouched(tmp_path, capsys, kind, said, command):
    from profiling.__main__ import main as cli
    path = (_foreign if kind == "foreign" else _newer)(tmp_path / "other.db")
    before = _snapshot(path)
    argv = [str(tmp_path / "out") if part == "OUT" else part for part in command]
    assert cli([*argv, "--db", str(path)]) == 2
    assert said in " ".join(capsys.readouterr().err.split())  # a usage error: one line on stderr
    assert _snapshot(path) == before
    assert not Path(str(path) + "-wal").exists()


@pytest.mark.fast
@pytest.mark.parametrize("kind", ["foreign", "newer"])
def test_a_write_refuses_them_before_changing_anything(tmp_path, kind):
    path = (_foreign if kind == "foreign" else _newer)(tmp_path / "other.db")
    before = _snapshot(path)
    with pytest.raises(StoreError, match=str(path)):
        Store(path)
    assert _snapshot(path) == before
    connection = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(StoreError, match="something else" if kind == "foreign" else "newer"):
        migrate(connection)  # the library entry point refuses too
    connection.close()
    assert _snapshot(path) == before


@pytest.mark.fast
def test_reading_an_older_schema_of_ours_does_not_upgrade_the_file(tmp_path, capsys):
    from profiling.__main__ import main as cli
    path = tmp_path / "v1.db"
    connection = sqlite3.connect(path, isolation_level=None)
    migrate(connection, target=1)
    connection.execute("INSERT INTO measurements (created_at, run_id, model, format, precision, runtime, "
                       "device_kind, device_name, device_json, input_shape, warmup_runs, runs, rounds, "
                       "samples_ms, median_ms, round_medians_ms, unstable, unstable_reasons, settings, extra) "
                       "VALUES ('2026-01-01T00:00:00+00:00', 'old-run', 'repvit_m1', 'onnx', 'fp32', "
                       "'onnxruntime', 'host', 'Old CPU', ?, '[1,3,224,224]', 1, 2, 1, '[[1.0,3.0]]', 2.0, "
                       "'[2.0]', 0, '[]', '{}', '{}')", (json.dumps({"kind": "host", "name": "Old CPU"}),))
    connection.close()
    before = _snapshot(path)
    assert cli(["show", "--as", "json", "--db", str(path)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["model"], row["stats"]["median_ms"], row["run_id"]) == ("repvit_m1", 2.0, "old-run")
    assert _snapshot(path) == before and before[1] == 1  # still schema 1, still not WAL
    with Store(path, readonly=True) as store:
        assert store.runs()[0]["run_id"] == "old-run"  # read through the upgraded in-memory copy
        with pytest.raises(StoreError, match="read-only"):
            store.insert(make_result())
    with Store(path) as store:  # a write upgrades it
        assert store.schema_version == SCHEMA_VERSION
    assert _snapshot(path)[1] == SCHEMA_VERSION


@pytest.mark.fast
def test_an_empty_file_is_ours_to_create(tmp_path):
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with pytest.raises(StoreError, match="no mobilelat results"):
        Store(path, readonly=True)
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION and store.count() == 0


@pytest.mark.fast
def test_jobs_and_results_land_together(tmp_path):
    with Store(tmp_path / "r.db") as store:
        store.start_run("run-a")
        store.plan_jobs("run-a", [("m|tflite|1t|#1", {"job": 1}), ("m|tflite|2t|#1", {"job": 2})])
        store.plan_jobs("run-a", [("m|tflite|1t|#1", {"job": "again"})])  # planned once
        row_id = store.insert(make_result(), job_key="m|tflite|1t|#1")
        store.set_job("run-a", "m|tflite|2t|#1", "not_run", "phone lost")
        with pytest.raises(StoreError, match="no job 'x'"):
            store.insert(make_result(), job_key="x")  # rolled back: no orphan row
        with pytest.raises(StoreError, match="no unfinished job"):
            store.set_job("run-a", "m|tflite|1t|#1", "failed")  # done stays done
        assert store.count() == 1
        assert [(j["job_key"], j["status"], j["measurement_id"], j["spec"]) for j in store.jobs("run-a")] == [
            ("m|tflite|1t|#1", "done", row_id, {"job": 1}), ("m|tflite|2t|#1", "not_run", None, {"job": 2})]
