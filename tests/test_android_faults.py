"""``python -m profiling android`` against an unkind simulated phone: what is STORED when the tools misbehave.

Each test drives the CLI (``profiling.__main__.main``, as ``python -m profiling`` does) against
tests/device_sim with one fault of issue 14, then reads the database: the figures stored must be the
ones the tool printed (the simulator records them in ``runs.jsonl``), and a result that is no
measurement must not be stored at all. The simulator times a stand-in here (``ADB_SIM_TIMING=
synthetic``): no model is loaded, so each CLI run takes about a second.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from profiling.__main__ import main as cli
from profiling.android.adb import Adb
from profiling.report import build_report
from profiling.store import Store
from tests.device_sim import make_sandbox

SIM_ENV = ("ADB_SIM_FAULT", "ADB_SIM_FAULT_SERIAL", "ADB_SIM_BM_FORMAT", "ADB_SIM_DELEGATE", "ADB_SIM_CRASH_THREADS",
           "ANDROID_SERIAL", "ADB")
QUICK = ["--runs", "5", "--min-secs", "0", "--warmup", "1"]


def make_phone(root: Path, monkeypatch, **spec) -> Path:
    for key, value in make_sandbox(root, devices={"SIM0001": spec}).items():
        monkeypatch.setenv(key, value)
    for key in SIM_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ADB_SIM_TIMING", "synthetic")
    return root


@pytest.fixture
def phone(tmp_path, monkeypatch) -> Path:
    """One simulated Pixel 7 (SIM0001) timing a stand-in; returns the sandbox root."""
    return make_phone(tmp_path / "sim", monkeypatch)


@pytest.fixture
def models(tmp_path) -> dict[str, Path]:
    """Model files as a user hands them over (no manifest); synthetic timing never reads their contents."""
    folder = tmp_path / "models"
    folder.mkdir()
    paths = {"tflite": folder / "tiny.tflite", "onnx": folder / "tiny.onnx", "other": folder / "other.tflite"}
    for path in paths.values():
        path.write_bytes(b"TFL3" + bytes(range(64)) * 8)
    return paths


def android(phone: Path, *args: str, db: Path | None = None, binary: bool = True) -> int:
    tool = ["--binary", str(phone / "bin" / "benchmark_model")] if binary else []
    return cli(["android", *args, *tool, "--db", str(db or phone / "r.db")])


def printed(capsys) -> str:
    """What the CLI printed on stdout and stderr (errors go to stderr), whitespace collapsed (the console
    wraps long lines at its width)."""
    captured = capsys.readouterr()
    return " ".join((captured.out + "\n" + captured.err).split())


def truth(phone: Path) -> list[dict]:
    """What the simulated tools printed, run by run."""
    path = phone / "SIM0001" / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def stored(db: Path) -> list:
    with Store(db) as store:
        return store.query()


def jobs(db: Path) -> dict[str, tuple[str, str]]:
    with Store(db) as store:
        (run,) = store.runs()
        return {row["job_key"]: (row["status"], row["detail"]) for row in store.jobs(run["run_id"])}


# ---- 1-3: op profiles ------------------------------------------------------------------------------

def test_op_profile_is_the_regular_runs_not_the_initialization(phone, models, capsys):
    """Item 1: current builds print the initialisation tables first; they must not become the op profile."""
    assert android(phone, str(models["tflite"]), "--op-profiling", "--no-xnnpack", *QUICK) == 0, printed(capsys)
    (result,) = stored(phone / "r.db")
    (run,) = truth(phone)
    profile = result.extra["op_profile"]
    assert {row["op_type"] for row in profile["by_op_type"]} == {"QUANTIZE", "CONV_2D", "MEAN", "FULLY_CONNECTED"}
    assert sum(row["nodes"] for row in profile["by_op_type"]) == 5
    assert profile["model_run_ms"] == pytest.approx(statistics.fmean(run["timed_us"]) / 1e3, rel=1e-5)
    assert profile["kernel_ms"] == pytest.approx(profile["model_run_ms"], rel=0.01)  # the simulator splits the run
    init = result.extra["parsed"]["init_op_tables"]["by_node_type"]
    assert [row["node_type"] for row in init] == ["AllocateTensors"]  # kept, labelled, apart


def test_node_names_keep_their_tensors_and_index(phone, models, capsys):
    """Item 2: ``[tfl.quantize]:0`` is tensor ``tfl.quantize`` of node 0, not ``tfl.quantize]:0``."""
    assert android(phone, str(models["tflite"]), "--op-profiling", "--no-xnnpack", *QUICK) == 0, printed(capsys)
    (result,) = stored(phone / "r.db")
    run_order = result.extra["parsed"]["op_tables"]["run_order"]
    assert [(row["name"], row["node_index"]) for row in run_order] == [
        ("tfl.quantize", 0), ("model/conv0/Conv2D;model/conv0/Relu", 1), ("model/conv1/Conv2D", 2),
        ("model/pool/Mean", 3), ("logits, logits_aux", 4)]


def test_tables_whose_tabs_became_spaces_give_the_same_profile(phone, models, monkeypatch, capsys):
    """Item 3: the same tables with spaces instead of tabs are read, not stored as an empty profile."""
    assert android(phone, str(models["tflite"]), "--op-profiling", "--gpu", "--threads", "2", *QUICK) == 0
    monkeypatch.setenv("ADB_SIM_FAULT", "expand_tabs")
    assert android(phone, str(models["tflite"]), "--op-profiling", "--gpu", "--threads", "2", *QUICK) == 0, \
        printed(capsys)
    tabs, spaces = stored(phone / "r.db")
    assert "op_profile_error" not in spaces.extra
    assert spaces.extra["parsed"]["op_tables"] == tabs.extra["parsed"]["op_tables"]  # same synthetic times
    assert [row["op_type"] for row in spaces.extra["op_profile"]["by_op_type"]] == ["TfLiteGpuDelegateV2"]


# ---- 4: delegation -----------------------------------------------------------------------------------

def test_partial_gpu_delegation_is_stored_marked_and_reported(phone, models, monkeypatch, capsys, tmp_path):
    """Item 4: a GPU run whose graph the delegate only partly took is marked so, in the store and the report."""
    monkeypatch.setenv("ADB_SIM_DELEGATE", "partial")
    assert android(phone, str(models["tflite"]), "--gpu", *QUICK) == 0
    assert "took only part of the graph, 3/5 nodes" in printed(capsys)
    (result,) = stored(phone / "r.db")
    delegation = result.extra["delegation"]
    assert {key: delegation[key] for key in ("requested", "status", "kernels", "nodes_replaced", "nodes_total",
                                             "partitions")} == {
        "requested": "GPU", "status": "partial", "kernels": 2, "nodes_replaced": 3, "nodes_total": 5, "partitions": 2}
    assert result.compute_unit == "gpu"
    report = build_report([result], tmp_path / "report").read_text()
    assert "PARTIAL GPU delegation: 3/5 nodes, 2 kernels" in report


def test_require_full_delegation_fails_a_partial_run(phone, models, monkeypatch, capsys):
    monkeypatch.setenv("ADB_SIM_DELEGATE", "partial")
    assert android(phone, str(models["tflite"]), "--gpu", "--require-full-delegation", *QUICK) == 1
    assert "partially delegated (2 delegate kernels); 3 of 5 nodes" in printed(capsys)
    assert stored(phone / "r.db") == []
    (status,) = jobs(phone / "r.db").values()
    assert status[0] == "failed" and "DelegationError" in status[1]
    monkeypatch.setenv("ADB_SIM_DELEGATE", "full")
    assert android(phone, str(models["tflite"]), "--gpu", "--require-full-delegation", *QUICK) == 0
    (result,) = stored(phone / "r.db")
    assert result.extra["delegation"]["status"] == "full"


def test_a_delegate_that_took_nothing_is_marked_none(phone, models, monkeypatch):
    monkeypatch.setenv("ADB_SIM_DELEGATE", "none")
    assert android(phone, str(models["tflite"]), "--nnapi", *QUICK) == 0
    (result,) = stored(phone / "r.db")
    assert (result.extra["delegation"]["requested"], result.extra["delegation"]["status"]) == ("NNAPI", "none")


# ---- 5-6: results that are no measurement ----------------------------------------------------------

@pytest.mark.parametrize("fault, said", [("zero_runs", "ran 0 times"), ("nan", "NaN")])
def test_zero_runs_and_nan_are_refused(phone, models, monkeypatch, capsys, fault, said):
    """Item 5: ``count=0`` with ``Inference (avg): 0`` (or ``-nan``) is no measurement: nothing stored."""
    monkeypatch.setenv("ADB_SIM_FAULT", fault)
    assert android(phone, str(models["tflite"]), *QUICK) == 1
    assert said in printed(capsys)
    assert stored(phone / "r.db") == []
    (status,) = jobs(phone / "r.db").values()
    assert status[0] == "failed" and said in status[1]


def ort(phone: Path, models: dict, *args: str) -> int:
    return android(phone, str(models["onnx"]), "--formats", "onnx", "--ort-binary",
                   str(phone / "bin" / "onnxruntime_perf_test"), "--runs", "20", *args, binary=False)


@pytest.mark.parametrize("fault, said", [("ort_zero", "0 inference requests"), ("ort_negative", "which is no measurement")])
def test_ort_perf_test_without_a_valid_average_is_refused(phone, models, monkeypatch, capsys, fault, said):
    """Item 6: zero requests or a negative average are refused, not stored."""
    monkeypatch.setenv("ADB_SIM_FAULT", fault)
    assert ort(phone, models) == 1
    assert said in printed(capsys)
    assert stored(phone / "r.db") == []


def test_ort_two_summaries_figures_come_from_one(phone, models, monkeypatch):
    """Item 6: with two summary blocks every stored figure comes from the last (the real run)."""
    monkeypatch.setenv("ADB_SIM_FAULT", "ort_two_summaries")
    assert ort(phone, models) == 0
    (result,) = stored(phone / "r.db")
    (run,) = truth(phone)
    costs_ms = sorted(cost * 1e3 for cost in run["costs_s"])
    assert result.stats.count == 20 == len(costs_ms)
    assert result.stats.mean_ms == pytest.approx(statistics.fmean(costs_ms), rel=1e-4)
    assert result.stats.median_ms == pytest.approx(costs_ms[10], rel=1e-4)
    assert result.extra["parsed"]["first_inference_ms"] == run["first_ms"]
    assert result.extra["parsed"]["summaries"] == 2


# ---- 7: output without a final newline -----------------------------------------------------------

@pytest.mark.parametrize("old_adb", [False, True])
def test_shell_output_without_a_final_newline(phone, old_adb, monkeypatch):
    """Item 7: the exit marker is never glued onto the last line."""
    if old_adb:
        monkeypatch.setenv("ADB_SIM_FAULT", "old_adb")
    adb = Adb.connect()
    assert adb.shell("printf abc") == (0, "abc")
    assert adb.shell("printf 'x\\ny'; exit 4", check=False) == (4, "x\ny")
    assert adb.shell("printf ''") == (0, "")


@pytest.mark.parametrize("old_adb", [False, True])
def test_a_crash_without_newline_fails_its_job_only(phone, models, monkeypatch, capsys, old_adb):
    """Item 7: a tool that dies mid-line fails that job; the sweep goes on and stores the next."""
    monkeypatch.setenv("ADB_SIM_FAULT", "crash,old_adb" if old_adb else "crash")
    monkeypatch.setenv("ADB_SIM_CRASH_THREADS", "1")
    assert android(phone, str(models["tflite"]), "--threads", "1,2", *QUICK) == 1
    output = printed(capsys)
    assert "exited with status 139" in output and "Initialized TensorFlow Lite runt" in output
    (result,) = stored(phone / "r.db")
    assert result.threads == 2
    assert result.stats.mean_ms == pytest.approx(statistics.fmean(truth(phone)[0]["timed_us"]) / 1e3, rel=1e-5)
    assert [status for status, _ in jobs(phone / "r.db").values()] == ["failed", "done"]


def test_a_result_without_a_final_newline_is_stored(phone, models, monkeypatch):
    monkeypatch.setenv("ADB_SIM_FAULT", "no_final_newline")
    assert android(phone, str(models["tflite"]), "--op-profiling", *QUICK) == 0
    (result,) = stored(phone / "r.db")
    assert result.stats.count == 5 and "op_profile" in result.extra


# ---- 8: lost phones keep finished work; --resume finishes --------------------------------------

def test_lost_during_a_push_keeps_what_was_measured_and_resume_finishes(phone, models, monkeypatch, capsys):
    """Item 8: job 2's first push (the 3rd push) loses the phone: job 1 stays stored, 2 and 3 are marked
    not run, and --resume runs exactly those into the same run."""
    monkeypatch.setenv("ADB_SIM_FAULT", "disconnect_push@3")
    assert android(phone, str(models["tflite"]), str(models["other"]), "--threads", "1,2", *QUICK) == 1
    output = printed(capsys)
    assert "disconnected during `adb push" in output and "3 job(s) not run" in output
    assert "--resume" in output
    db = phone / "r.db"
    assert [r.model for r in stored(db)] == ["tiny"]
    statuses = jobs(db)
    assert [status for status, _ in statuses.values()] == ["done", "not_run", "not_run", "not_run"]
    (run_id,) = {r.run_id for r in stored(db)}
    (phone / "SIM0001" / "gone").unlink()  # reconnected
    monkeypatch.delenv("ADB_SIM_FAULT")
    assert cli(["android", "--resume", run_id[:10], "--db", str(db)]) == 0, printed(capsys)
    results = stored(db)
    assert [(r.model, r.threads) for r in results] == [("tiny", 1), ("tiny", 2), ("other", 1), ("other", 2)]
    assert {r.run_id for r in results} == {run_id}
    assert [status for status, _ in jobs(db).values()] == ["done"] * 4
    means = [statistics.fmean(run["timed_us"]) / 1e3 for run in truth(phone)]
    assert [r.stats.mean_ms for r in results] == pytest.approx(means, rel=1e-5)
    assert cli(["android", "--resume", run_id, "--db", str(db)]) == 0
    assert "nothing to resume" in printed(capsys)


def test_a_thermal_read_that_fails_after_the_run_keeps_the_run(phone, models, monkeypatch, capsys):
    """Item 8: the 3rd zone read is job 1's reading AFTER its run (cool-down and before are 1 and 2)."""
    monkeypatch.setenv("ADB_SIM_FAULT", "disconnect_thermal@3")
    assert android(phone, str(models["tflite"]), "--threads", "1,2", *QUICK) == 1
    (result,) = stored(phone / "r.db")
    assert result.threads == 1
    assert result.stats.mean_ms == pytest.approx(statistics.fmean(truth(phone)[0]["timed_us"]) / 1e3, rel=1e-5)
    thermal = result.extra["thermal"]
    assert "DeviceLost" in thermal["after_error"] and thermal["rise_c"] is None
    assert thermal["before"]["battery_c"] == pytest.approx(31.2)
    assert [status for status, _ in jobs(phone / "r.db").values()] == ["done", "not_run"]
    assert "temperature reading after it failed" in printed(capsys)


def test_lost_during_getprop_stores_nothing(phone, models, monkeypatch, capsys):
    monkeypatch.setenv("ADB_SIM_FAULT", "disconnect_getprop@1")
    assert android(phone, str(models["tflite"]), *QUICK) == 2
    assert "SIM0001 disconnected during `adb shell getprop`" in printed(capsys)
    with Store(phone / "r.db") as store:
        assert store.runs() == [] and store.count() == 0


def test_resume_refuses_another_phone(phone, models, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ADB_SIM_FAULT", "disconnect_push@1")
    assert android(phone, str(models["tflite"]), *QUICK) == 1
    with Store(phone / "r.db") as store:
        run_id = store.runs()[0]["run_id"]
    other = make_phone(tmp_path / "other", monkeypatch)
    (other / "devices.json").write_text((other / "devices.json").read_text().replace("SIM0001", "SIM0002"))
    (other / "SIM0001").rename(other / "SIM0002")
    assert cli(["android", "--resume", run_id, "--db", str(phone / "r.db")]) == 2
    assert "measures phone SIM0001, which is not attached (attached: SIM0002" in printed(capsys)


def test_a_push_that_fails_under_old_adb_is_caught(phone, models, monkeypatch, capsys):
    """Old adb exits 0 even when a push fails: the error text and the size read back catch it."""
    monkeypatch.setenv("ADB_SIM_FAULT", "old_adb,push_nospace@1")
    assert android(phone, str(models["tflite"]), *QUICK) == 1
    assert "No space left on device" in printed(capsys)
    assert stored(phone / "r.db") == []


# ---- 9: the APK's logcat ----------------------------------------------------------------------------

def test_apk_ignores_other_apps_and_harmless_failed_to_lines(phone, models, monkeypatch, tmp_path, capsys):
    """Item 9: the tool's harmless ``Failed to get the input model file size.`` and other apps' lines
    under the tflite tag (a GPU delegate, a summary of their own model) do not touch the result."""
    monkeypatch.setenv("ADB_SIM_FAULT", "no_model_size")
    apk = tmp_path / "benchmark_model.apk"
    apk.write_bytes(b"PK\x03\x04 stand-in")
    assert android(phone, str(models["tflite"]), "--apk", str(apk), *QUICK, binary=False) == 0, printed(capsys)
    (result,) = stored(phone / "r.db")
    (run,) = truth(phone)
    assert result.stats.count == len(run["timed_us"]) == 5
    assert result.stats.mean_ms == pytest.approx(statistics.fmean(run["timed_us"]) / 1e3, rel=1e-5)
    assert result.extra["delegation"]["status"] == "full"
    assert [a["delegate"] for a in result.extra["delegation"]["applied"]] == ["XNNPACK"]  # not the neighbour's GPU
    assert "Failed to load delegate" not in result.extra["output_tail"]


def test_apk_real_failure_line_fails_the_job(phone, models, monkeypatch, tmp_path, capsys):
    """The tool's real failure line (the APK prints no "Benchmarking failed.") fails the job, nothing stored."""
    monkeypatch.setenv("ADB_SIM_FAULT", "open_fail")
    apk = tmp_path / "benchmark_model.apk"
    apk.write_bytes(b"PK")
    assert android(phone, str(models["tflite"]), "--apk", str(apk), *QUICK, binary=False) == 1
    output = printed(capsys)
    assert "it logged a failure: \"Could not open '" in output and "Failed to mmap model" in output
    assert stored(phone / "r.db") == []


# ---- the phone's own untidiness: thermal zones, offline cores -----------------------------------

def test_unreadable_thermal_zones_are_left_out(phone, models):
    assert android(phone, str(models["tflite"]), *QUICK) == 0
    (result,) = stored(phone / "r.db")
    zones = result.extra["thermal"]["before"]["zones_c"]
    assert zones == {"thermal_zone0 cpu-0-0-usr": 38.5, "thermal_zone1 gpu-usr": 36.0, "thermal_zone2 battery": 31.0}


def test_offline_cores_refuse_pinning_and_flag_the_run(tmp_path, monkeypatch, models, capsys):
    """Cores 6-7 hot-plugged off: pinning to "the big cores" would land on the mid cluster; refuse it,
    and flag an unpinned run measured with cores missing."""
    phone = make_phone(tmp_path / "sim", monkeypatch, offline_cores=[6, 7])
    assert android(phone, str(models["tflite"]), "--pin-big-cores", *QUICK) == 1
    assert "cores 6-7 are offline" in printed(capsys)
    assert stored(phone / "r.db") == []
    assert not (phone / "SIM0001" / "taskset.log").exists()
    assert android(phone, str(models["tflite"]), *QUICK) == 0
    (result,) = stored(phone / "r.db")
    assert result.extra["cpus"] == {"present": list(range(8)), "online_before": list(range(6)),
                                    "online_after": list(range(6))}
    assert result.stats.unstable and "cores 6-7 offline during the run (hot-plugged)" in result.stats.unstable_reasons
