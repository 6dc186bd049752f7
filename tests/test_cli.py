"""The command lines as a product (issue 16), each item through a CLI: exit status, what is printed,
what is (not) left on disk and in the store.

Real signals: a subprocess is started, its stderr read until it reaches a stage (the stage lines
``[onnx] convert ...`` and the progress lines ``[i/N] measure ...`` are the markers), then SIGINT is
sent. In-process tests send the signal to the test process itself (``os.kill``), through the real
handler. One subprocess per scenario; the rest call ``main(argv)``.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from export import cli as export_cli, onnx as export_onnx
from export.cli import EXIT_USAGE, run_format_cli, run_multi_cli
from export.formats import HANDLERS
from export.onnx import OnnxFormat
from mobilelat.errors import EXIT_INTERRUPTED
from models import __main__ as models_cli
from models.probe import name_seed
from profiling import report_plots
from profiling.__main__ import build_parser, main as profiling_cli
from profiling.plot_labels import label_boxes, outside, overlap, place_labels
from profiling.runners import RUNNERS
from profiling.store import Store
from profiling_helpers import tiny_onnx
from reparam import __main__ as reparam_cli
from test_store import make_result

ROOT = Path(__file__).resolve().parents[1]
MODEL = "repvit_m0_6"
QUICK = ["--runs", "5", "--min-secs", "0", "--warmup", "1", "--warmup-secs", "0", "--rounds", "1"]
CHATTER = ("Failed to load", "I0000", "WARNING: All log messages", "FutureWarning", "[START]", "[DONE]",
           "it/s]", "Traceback")


def _env(**extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


def _run(*args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=_env(**env),
                          timeout=timeout)


def _interrupt_at(args: list[str], marker: str, delay_s: float = 0.5, timeout: float = 300
                  ) -> tuple[int, str, list[str], float]:
    """Start ``python ARGS``, send SIGINT ``delay_s`` after a stderr line contains ``marker``.

    Returns (exit status, stdout, stderr lines, seconds from the signal to the exit).
    """
    process = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=ROOT, env=_env())
    lines: list[str] = []
    reached = threading.Event()

    def read() -> None:
        for line in process.stderr:
            lines.append(line)
            if marker in line:
                reached.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert reached.wait(timeout), f"never reached {marker!r}:\n{''.join(lines)}"
        time.sleep(delay_s)
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        stdout = process.stdout.read()
        status = process.wait(timeout)
        stopped_after = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(10)
    return status, stdout, lines, stopped_after


def _all_paths(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ----------------------------------------------------------------------------------------- signals
def test_ctrl_c_during_an_onnx_conversion(tmp_path):
    status, stdout, lines, stopped_after = _interrupt_at(
        ["-m", "export.onnx", MODEL, "--out", str(tmp_path / "out")], marker="[onnx] convert")
    assert status == EXIT_INTERRUPTED, "".join(lines)
    assert lines[-1] == "interrupted\n" and not any("Traceback" in line for line in lines)
    assert stdout == ""
    assert not (tmp_path / "out").exists()  # no temporary, and the folders made for it are gone
    assert stopped_after < 30


@pytest.mark.slow
def test_ctrl_c_during_a_tflite_conversion_stops_it(tmp_path):
    """litert-torch swallows KeyboardInterrupt in a converter callback; the export must stop anyway."""
    status, stdout, lines, _ = _interrupt_at(
        ["-m", "export.tflite", MODEL, "--out", str(tmp_path / "out"), "--input-size", "64"],
        marker="[tflite] convert", delay_s=2.0)
    assert status == EXIT_INTERRUPTED, "".join(lines)
    assert lines[-1] == "interrupted\n" and stdout == ""
    assert not (tmp_path / "out").exists()


class _SwallowingOnnx(OnnxFormat):
    """ONNX whose converter catches the KeyboardInterrupt of a real Ctrl-C, as litert-torch's callback does."""

    def __init__(self, wrap: bool):
        self.wrap = wrap  # raise a RuntimeError in its place (torch.export does) instead of swallowing it

    def convert(self, model, spec, tmp_path, options) -> None:
        super().convert(model, spec, tmp_path, options)
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt as error:
            if self.wrap:
                raise RuntimeError("conversion failed in a callback") from error


@pytest.mark.fast
@pytest.mark.parametrize("wrap", [False, True], ids=["swallowed", "wrapped"])
def test_ctrl_c_a_converter_swallows_or_wraps_still_stops_the_export(wrap, tmp_path, capsys):
    status = run_format_cli(_SwallowingOnnx(wrap), [MODEL, "--out", str(tmp_path), "--input-size", "64"])
    assert status == EXIT_INTERRUPTED
    assert capsys.readouterr().err.endswith("interrupted\n")
    assert list(tmp_path.iterdir()) == []  # nothing written, no folder left


def test_ctrl_c_during_a_sweep_keeps_what_finished_and_leaves_no_empty_run(tmp_path):
    db = tmp_path / "latency.db"
    with Store(db) as store:  # an earlier run, which must stay as it is
        store.start_run("earlier", label="before")
        store.insert(make_result(run_id="earlier"))
    status, stdout, lines, _ = _interrupt_at(
        ["-m", "profiling", "run", MODEL, "--formats", "torch", "--threads", "1,2", "--db", str(db),
         "--runs", "3", "--min-secs", "2", "--rounds", "1", "--warmup", "1", "--warmup-secs", "0",
         "--input-size", "64"], marker="[2/2] measure", delay_s=0.3)
    assert status == EXIT_INTERRUPTED, "".join(lines)
    assert lines[-1] == "interrupted\n" and stdout == ""
    with Store(db) as store:
        runs = {run["run_id"]: run["measurements"] for run in store.runs()}
    assert runs.pop("earlier") == 1
    assert list(runs.values()) == [1]  # the finished job is stored with its run; job 2 left nothing


@pytest.mark.fast
def test_ctrl_c_before_the_first_result_creates_nothing(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("the signal did not stop the measurement")

    monkeypatch.setitem(RUNNERS, "torch", RUNNERS["torch"].__class__(**{**RUNNERS["torch"].__dict__,
                                                                         "measure": interrupted}))
    db = tmp_path / "results" / "latency.db"
    assert profiling_cli(["run", MODEL, "--formats", "torch", "--db", str(db), *QUICK]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err.endswith("interrupted\n")
    assert list(tmp_path.iterdir()) == []  # no database, no results/ folder


# ------------------------------------------------------------------------------ pipes and output
@pytest.fixture(scope="module")
def big_db(tmp_path_factory) -> Path:
    """More rows than a pipe holds in either form: ~300 KB of CSV, ~2 MB of JSON (every sample is in the JSON).
    A pipe holds 64 KB, so a smaller table could be written whole before `head` exits, and exit 0."""
    db = tmp_path_factory.mktemp("db") / "big.db"
    samples = [[1.0 + i / 1000 for i in range(100)]]
    with Store(db) as store:
        store.insert_many([make_result(run_id="big", samples_ms=samples) for _ in range(1500)])
    return db


def test_show_into_head_stops_quietly(big_db):
    for show, head in ((["--as", "csv"], "head -3"), (["--as", "json"], "head -c 1500")):
        command = (f"set -o pipefail; {sys.executable} -m profiling show --db {big_db} {' '.join(show)} | {head}")
        result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=ROOT, env=_env(),
                                timeout=120)
        assert result.stderr == "", result.stderr  # no BrokenPipeError traceback
        assert result.returncode == 141  # as `yes | head` ends under pipefail
        assert len(result.stdout.splitlines()) == 3 if show[1] == "csv" else len(result.stdout) == 1500


def test_quiet_export_prints_only_the_artifact_path(tmp_path):
    result = _run("-m", "export.onnx", MODEL, "--out", str(tmp_path), "--input-size", "64", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{tmp_path / MODEL / f'{MODEL}_64x64.onnx'}\n"
    assert result.stderr == ""


@pytest.mark.slow
def test_tflite_json_export_keeps_stdout_for_json_and_chatter_in_the_log(tmp_path):
    logs = tmp_path / "logs"
    result = _run("-m", "export.tflite", MODEL, "--out", str(tmp_path), "--input-size", "64", "--json",
                  MOBILELAT_LOG_DIR=str(logs))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # stdout is one JSON document and nothing else
    (artifact,) = document["artifacts"]
    assert artifact["path"] == str(tmp_path / MODEL / f"{MODEL}_64x64.tflite") and Path(artifact["path"]).is_file()
    assert artifact["parity"]["passed"] and document["failures"] == [] and document["exit_status"] == 0
    assert artifact["weights"] == f"probe:{name_seed(MODEL)}"  # no --weights: the seeded probe weights, said so
    for noise in CHATTER:
        assert noise not in result.stderr, noise
    assert "[tflite] convert" in result.stderr  # our stages still show
    log = Path(document["log"])
    assert log.parent == logs and "Failed to load" in log.read_text() or "I0000" in log.read_text()


@pytest.mark.fast
def test_json_of_models_list_and_info(capsys):
    assert models_cli.main(["info", MODEL, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == MODEL and info["measured_params"] > 2e6 and info["input_size"] == [3, 224, 224]
    assert models_cli.main(["list", "repvit_m0_*", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listed] == ["repvit_m0_6", "repvit_m0_9"]
    assert all(m["measured_macs"] > 0 for m in listed)


@pytest.fixture(scope="module")
def artifacts_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("artifacts")
    (folder / MODEL).mkdir()
    tiny_onnx(folder / MODEL, model=MODEL)
    return folder


@pytest.mark.fast
def test_run_and_compare_json(artifacts_dir, tmp_path, capsys):
    db = tmp_path / "r.db"
    for _ in range(2):
        assert profiling_cli(["run", MODEL, "--formats", "onnx", "--input-size", "32", "--artifacts",
                              str(artifacts_dir), "--db", str(db), "--json", *QUICK]) == 0
    document = json.loads(capsys.readouterr().out.split("\n}\n")[-2] + "\n}")
    (stored,) = document["stored"]
    assert stored["median_ms"] > 0 and stored["run_id"] == document["run_id"] and document["failures"] == []
    assert set(stored["load_avg"]) == {"before", "after", "cores", "max_load"}
    assert profiling_cli(["compare", "latest~1", "latest", "--db", str(db), "--json", "--threshold", "100"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert compared["run_b"] == document["run_id"] and len(compared["comparisons"]) == 1
    assert compared["regressions"] == 0 and compared["exit_status"] == 0


@pytest.mark.fast
def test_run_header_comes_after_measuring_and_tells_the_truth(artifacts_dir, tmp_path, monkeypatch, capsys):
    db = tmp_path / "r.db"
    assert profiling_cli(["run", MODEL, "--formats", "onnx", "--input-size", "32", "--artifacts",
                          str(artifacts_dir), "--db", str(db), *QUICK]) == 0
    out = capsys.readouterr().out
    assert out.startswith("run ") and f"1 measurement(s) stored in {db}" in out.splitlines()[0]

    def broken(*args, **kwargs):
        raise RuntimeError("the runtime refused")

    monkeypatch.setitem(RUNNERS, "onnx", RUNNERS["onnx"].__class__(**{**RUNNERS["onnx"].__dict__, "measure": broken}))
    assert profiling_cli(["run", MODEL, "--formats", "onnx", "--input-size", "32", "--artifacts",
                          str(artifacts_dir), "--db", str(db), *QUICK]) == 1
    assert "nothing stored" in capsys.readouterr().out.splitlines()[0]
    with Store(db) as store:
        assert [run["measurements"] for run in store.runs()] == [1]  # no empty run row


@pytest.mark.fast
def test_piped_tables_are_neither_cut_nor_wrapped(tmp_path, capsys):
    long_name = "a phone with a very long marketing name " * 3
    db = tmp_path / "r.db"
    with Store(db) as store:
        store.insert(make_result(device=make_result().device.__class__(kind="android", name=long_name.strip())))
    assert profiling_cli(["show", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert long_name.strip() in out and "…" not in out
    assert max(len(line) for line in out.splitlines()) > 80


@pytest.mark.fast
def test_help_shows_the_defaults():
    run_help = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    for default in ("warm-up calls, at least (default: 10)", "timed calls per round, at least (default: 50)",
                    "(default: onnx,torch", "rounds (default: 3)"):
        assert default in " ".join(run_help.split()), default


# --------------------------------------------------------------- options refused, inputs checked once
@pytest.mark.fast
@pytest.mark.parametrize("argv, message", [
    (["run", MODEL, "--formats", "torch", "--precision", "int8_full"], "torch measures the eager model in fp32 only"),
    (["run", MODEL, "--formats", "onnx", "--precision", "fp16"], "onnx does not take --precision fp16"),
    (["show", "--format", "onxx"], "--format 'onxx' matches nothing"),
    (["show", "--model", "convnext_attto"], "did you mean convnext_atto"),
    (["show", "--runtime", "onnxruntim"], "did you mean onnxruntime"),
    (["show", "--limit", "-1"], "--limit takes a count >= 1"),
    (["show", "--limit", "0"], "--limit takes a count >= 1"),
    (["run", MODEL, "--retry-unstable", "-1"], "--retry-unstable takes a count >= 0"),
])
def test_options_are_never_silently_ignored(argv, message, tmp_path, capsys):
    db = tmp_path / "r.db"
    with Store(db) as store:
        store.insert(make_result())
    assert profiling_cli([*argv, "--db", str(db)]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1 and captured.out == ""


@pytest.mark.fast
@pytest.mark.parametrize("size", ["224x", "1", "7", "100000", "224x224x3"])
def test_one_size_rule_in_every_cli(size, tmp_path, capsys):
    assert run_format_cli(export_onnx.HANDLER, [MODEL, "--input-size", size, "--out", str(tmp_path)]) == EXIT_USAGE
    assert profiling_cli(["run", MODEL, "--input-size", size, "--db", str(tmp_path / "r.db")]) == EXIT_USAGE
    assert reparam_cli.main([MODEL, "--input-size", size]) == EXIT_USAGE
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(line.startswith("error: argument --input-size: ") for line in errors)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.fast
def test_reparam_takes_hxw(tmp_path, capsys):
    assert reparam_cli.main([MODEL, "--input-size", "96x128", "--check-inputs", "1"]) == 0
    assert "shape (1, 3, 96, 128)" in capsys.readouterr().out


@pytest.mark.fast
def test_memory_is_named_when_the_size_is_the_problem(monkeypatch, tmp_path, capsys):
    class Hungry(torch.nn.Module):
        """Fails above 1024 pixels as torch's allocator does when the activations do not fit."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            if x.shape[-1] > 1024:
                raise RuntimeError("[enforce fail at alloc_cpu.cpp:119] DefaultCPUAllocator: can't allocate memory: "
                                   "you tried to allocate 1152000000000 bytes")
            return self.model(x)

    real = export_cli.probe_model  # the model without --weights: its probe weights
    monkeypatch.setattr(export_cli, "probe_model", lambda *a, **k: Hungry(real(*a, **k)))
    assert run_format_cli(export_onnx.HANDLER, [MODEL, "--input-size", "4096", "--out", str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "needs more memory than this machine has" in err and "multiples of 32" not in err


@pytest.mark.fast
def test_unknown_names_suggest_the_same_family_first(capsys):
    # not a registered name nor one of timm's (swin_tiny_patch4_window7_224 is an alias now): plain spelling
    # alone ranks vit_tiny_patch16 first; the family puts the Swin names before it
    assert models_cli.main(["info", "swin_tiny_patch4_window8_256"]) == EXIT_USAGE
    suggested = capsys.readouterr().err.split("Did you mean: ")[1].split("?")[0].split(", ")
    assert suggested[:2] == ["swin_tiny_patch4_window7_224", "swin_tiny"] and "vit_tiny_patch16" in suggested


# ----------------------------------------------------------------------------------- output paths
@pytest.mark.fast
def test_out_is_checked_before_any_conversion(tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    started = time.perf_counter()
    assert run_format_cli(export_onnx.HANDLER, [MODEL, "--out", str(a_file)]) == EXIT_USAGE
    assert "is a file" in capsys.readouterr().err and time.perf_counter() - started < 10  # no conversion ran
    # several formats: each says so, on its own line
    assert run_multi_cli(HANDLERS, [MODEL, "--formats", "onnx,tflite", "--out", str(a_file / "sub")]) == EXIT_USAGE
    errors = capsys.readouterr().err.splitlines()
    assert [line.split("]")[0] for line in errors] == ["error: [onnx", "error: [tflite"]
    assert all("lies under the file" in line for line in errors)
    # reparam's --out and report's --out the same
    assert reparam_cli.main([MODEL, "--out", str(tmp_path)]) == EXIT_USAGE
    assert "is a folder" in capsys.readouterr().err
    db = tmp_path / "r.db"
    with Store(db) as store:
        store.insert(make_result())
    assert profiling_cli(["report", "--db", str(db), "--out", str(a_file)]) == EXIT_USAGE
    assert "is a file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "r.db"]


@pytest.mark.fast
def test_two_sizes_two_files(tmp_path):
    for size in ("64", "96"):
        assert run_format_cli(export_onnx.HANDLER, [MODEL, "--input-size", size, "--out", str(tmp_path),
                                                    "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / MODEL).glob("*.onnx")) == [f"{MODEL}_64x64.onnx",
                                                                         f"{MODEL}_96x96.onnx"]


# ---------------------------------------------------------------------------------- the store
def _damage(db: Path) -> None:
    """Garble every page after the schema page, as a disk or a crashed copy can."""
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    for start in range(4096, len(data), 4096):
        data[start + 8:start + 4000] = b"\xa5" * 3992
    db.write_bytes(bytes(data))


@pytest.mark.fast
def test_a_damaged_database_is_one_line_and_nothing_is_measured(tmp_path, monkeypatch, capsys):
    db = tmp_path / "r.db"
    with Store(db) as store:
        store.insert_many([make_result(run_id=f"run-{i}") for i in range(30)])
    _damage(db)
    before = db.read_bytes()
    measured = []
    monkeypatch.setitem(RUNNERS, "torch", RUNNERS["torch"].__class__(
        **{**RUNNERS["torch"].__dict__, "measure": lambda *a, **k: measured.append(a)}))
    for argv in (["show"], ["report", "--out", str(tmp_path / "report")], ["compare", "run-1", "run-2"],
                 ["run", MODEL, "--formats", "torch", *QUICK]):
        assert profiling_cli([*argv, "--db", str(db)]) == EXIT_USAGE, argv
        err = capsys.readouterr().err
        assert err.startswith(f"error: results database {db} is damaged (quick_check: ") and err.count("\n") == 1
    assert measured == [] and db.read_bytes() == before and not (tmp_path / "report").exists()


@pytest.mark.fast
def test_a_store_that_fails_mid_run_keeps_the_measurement_in_a_sidecar(artifacts_dir, tmp_path, monkeypatch,
                                                                       capsys):
    """Another writer holds the database's lock from the moment the measurement ends: the result goes to a
    sidecar in the import schema, the command says where, and `profiling import` stores it elsewhere."""
    db = tmp_path / "r.db"
    Store(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    real = RUNNERS["onnx"].measure

    def measure_then_lock(*args, **kwargs):
        result = real(*args, **kwargs)
        holder.execute("BEGIN IMMEDIATE")  # held until the test ends
        return result

    monkeypatch.setitem(RUNNERS, "onnx", RUNNERS["onnx"].__class__(**{**RUNNERS["onnx"].__dict__,
                                                                        "measure": measure_then_lock}))
    monkeypatch.setattr("profiling.cli.run.STORE_WAIT_S", 0.3)
    status = profiling_cli(["run", MODEL, "--formats", "onnx", "--input-size", "32", "--artifacts",
                            str(artifacts_dir), "--db", str(db), *QUICK])
    holder.execute("ROLLBACK")
    holder.close()
    out = capsys.readouterr().out
    assert status == EXIT_USAGE
    sidecars = list(tmp_path.glob("r.db.unsaved-*.json"))
    assert len(sidecars) == 1 and "stayed locked" in out and f"kept in {sidecars[0]}" in " ".join(out.split())
    with Store(db) as store:
        assert store.count() == 0 and store.runs() == []
    median = json.loads(sidecars[0].read_text())["results"][0]["samples_ms"]
    assert profiling_cli(["import", str(sidecars[0]), "--db", str(tmp_path / "new.db")]) == 0
    with Store(tmp_path / "new.db") as store:
        (imported,) = store.query()
    assert imported.samples_ms == median and imported.model == MODEL and imported.extra["load_avg"]["before"]


# ------------------------------------------------------------------------------- machine load
@pytest.mark.fast
def test_a_loaded_machine_is_flagged_and_measured_again(artifacts_dir, tmp_path, capsys):
    db = tmp_path / "r.db"
    base = ["run", MODEL, "--formats", "onnx", "--input-size", "32", "--artifacts", str(artifacts_dir),
            "--db", str(db), *QUICK, "--max-cv", "100", "--max-drift", "100"]
    assert profiling_cli([*base, "--max-load", "0", "--retry-unstable", "2"]) == 0
    assert profiling_cli([*base, "--max-load", "100000"]) == 0
    capsys.readouterr()
    with Store(db) as store:
        loaded, quiet = store.query()
    assert loaded.stats.unstable and loaded.stats.unstable_reasons[0].startswith("machine load ")
    assert [a["kept"] for a in loaded.extra["attempts"]].count(True) == 1 and len(loaded.extra["attempts"]) == 3
    assert not quiet.stats.unstable and "attempts" not in quiet.extra
    for result in (loaded, quiet):
        load = result.extra["load_avg"]
        assert len(load["before"]) == 3 and len(load["after"]) == 3 and load["cores"] == os.cpu_count()


# ------------------------------------------------------------------------------------- report
@pytest.mark.fast
def test_report_says_versions_input_weights_and_load(tmp_path, capsys):
    db = tmp_path / "r.db"
    load = {"before": [0.4, 0.3, 0.2], "after": [1.5, 0.5, 0.3], "cores": 2, "max_load": 2.0}
    with Store(db) as store:
        store.insert_many([make_result(model=m, median=ms, runtime_version="1.22.0", input_shape=[1, 3, 160, 160],
                                       extra={"weights": None, "load_avg": load}, params=int(p * 1e6))
                           for m, ms, p in (("repvit_m0_9", 3.0, 5.1), ("repvit_m1_0", 2.0, 6.8),
                                            ("swin_tiny", 150.0, 28.0))])
    assert profiling_cli(["report", "--db", str(db), "--out", str(tmp_path / "report")]) == 0
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| onnxruntime 1t | onnxruntime 1.22.0 | 1x3x160x160 | random | Test CPU | 0.40 to 1.50 | 0 of 3 |" \
        in markdown
    assert "| 0.40 -> 1.50 |" in markdown  # each measurement's load


@pytest.mark.fast
def test_figures_place_labels_apart_inside_with_device_runtime_and_log_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    crowded = [(1.0 + 0.01 * i, 10.0 + 0.05 * i, f"model_number_{i}") for i in range(12)] + [(40.0, 300.0, "swin")]
    figure = report_plots.scatter_panels(plt, {"onnxruntime 1t": crowded}, {}, "GMACs", "median latency (ms)",
                                         "Latency against GMACs\nonnxruntime 1.22.0 on Test CPU (host)")
    axis = figure.axes[0]
    boxes = label_boxes(axis.texts)
    renderer = figure.canvas.get_renderer()
    area = axis.get_window_extent(renderer)
    assert len(boxes) == len(crowded)
    assert all(overlap(a, b) == 0 for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert all(outside(box, (area.x0, area.y0, area.x1, area.y1)) == 0 for box in boxes)
    assert all(text.get_fontsize() >= 8 for text in axis.texts)
    assert axis.get_xscale() == "log" and axis.get_yscale() == "log"  # 40x and 30x spans
    assert "onnxruntime 1.22.0 on Test CPU" in figure._suptitle.get_text()
    plt.close(figure)
    # the placer itself on the same points with nothing else in the way
    figure, axis = plt.subplots()
    axis.scatter([p[0] for p in crowded], [p[1] for p in crowded])
    placed = label_boxes(place_labels(axis, crowded))
    assert all(overlap(a, b) == 0 for i, a in enumerate(placed) for b in placed[i + 1:])
    plt.close(figure)
    bars = report_plots.latency_bars(plt, {"torch 1t": {"a": (1, 2, 3), "b": (150, 160, 170)}}, ["a", "b"], "t")
    assert bars.axes[0].get_yscale() == "log"  # one bar 80x the other
    plt.close(bars)


@pytest.mark.fast
def test_a_checkpoint_that_cannot_be_read_stops_the_sweep_as_a_usage_error(artifacts_dir, tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("these are not weights\n" * 40)
    db = tmp_path / "r.db"
    status = profiling_cli(["run", MODEL, "--formats", "onnx,torch", "--input-size", "32", "--weights", str(text),
                            "--artifacts", str(tmp_path / "artifacts"), "--db", str(db), *QUICK])
    err = capsys.readouterr().err
    assert status == EXIT_USAGE and err.splitlines()[-1].startswith("error: ") and str(text) in err
    assert "Traceback" not in err and not db.exists()
