"""ExecuTorch's ``executor_runner`` on Android: its log parsed, and the runner against the device simulator.

The simulator's ``executor_runner`` (tests/device_sim/executor_runner.py) really runs the pushed
.pte on the ExecuTorch Python runtime, so the figures of the end-to-end cases were measured. The
.pte is the tiny net of ``export_helpers`` (exported once per module, ~5 s of CPU).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from export import executorch as export_executorch
from export_helpers import TINY_SPEC, tiny_net  # tests/ is on sys.path
from profiling.__main__ import main as cli
from profiling.android.adb import Adb, RemoteCommandError
from profiling.android.parsers import BenchmarkOutputError, executor_runner_errors, parse_executor_runner
from profiling.android.runner import BenchmarkOptions, run_executor_runner, to_latency_result
from profiling.android.thermal import ThermalSettings
from profiling.store import Store
from tests.device_sim import make_sandbox

LOG = """\
I 00:00:00.000241 executorch:executor_runner.cpp:182] Resetting threadpool with num threads = 4
I 00:00:00.003120 executorch:executor_runner.cpp:290] Model file /data/local/tmp/mobilelat/m.pte is loaded.
I 00:00:00.003131 executorch:executor_runner.cpp:299] Using method forward
I 00:00:00.003140 executorch:executor_runner.cpp:346] Setting up planned buffer 0, size 1204224.
I 00:00:00.031002 executorch:executor_runner.cpp:378] Model loaded in 27.851000 ms.
I 00:00:00.052000 executorch:executor_runner.cpp:470] Iteration 1 of 4: 20.500000 ms
I 00:00:00.061000 executorch:executor_runner.cpp:470] Iteration 2 of 4: 9.000000 ms
I 00:00:00.071000 executorch:executor_runner.cpp:470] Iteration 3 of 4: 10.000000 ms
I 00:00:00.082000 executorch:executor_runner.cpp:470] Iteration 4 of 4: 11.000000 ms
I 00:00:00.082100 executorch:executor_runner.cpp:480] Model executed successfully 4 time(s) in 50.500000 ms.
I 00:00:00.082110 executorch:executor_runner.cpp:484] 1 outputs: \r
OutputX 0: tensor(sizes=[1, 1000], [-0.5, 0.25, ...])
"""


@pytest.mark.fast
def test_parse_executor_runner_log():
    parsed = parse_executor_runner(LOG.replace("\n", "\r\n"))  # old adb's CRLF
    assert (parsed.count, parsed.total_ms, parsed.threads, parsed.method) == (4, 50.5, 4, "forward")
    assert parsed.iterations_ms == [20.5, 9.0, 10.0, 11.0] and parsed.load_ms == pytest.approx(27.851)
    assert parsed.mean_ms == pytest.approx(12.625)
    # an older build: the summary line only
    old = parse_executor_runner("I 00:00:00.1 executorch:executor_runner.cpp:9] x\n"
                                "Model executed successfully 10 time(s) in 123.4 ms.\n")
    assert (old.count, old.total_ms, old.iterations_ms, old.load_ms) == (10, 123.4, [], None)


@pytest.mark.fast
def test_executor_runner_failures_are_quoted():
    failing = ("I 00:00:00.000100 executorch:executor_runner.cpp:182] Resetting threadpool with num threads = 1\n"
               "E 00:00:00.000200 executorch:executor_runner.cpp:270] Failed to parse model file /x.pte\n")
    with pytest.raises(BenchmarkOutputError, match="it logged an error: 'Failed to parse model file /x.pte'"):
        parse_executor_runner(failing)
    assert executor_runner_errors("ERROR: unknown command line flag 'num_runs'\n") == [
        "ERROR: unknown command line flag 'num_runs'"]
    with pytest.raises(BenchmarkOutputError, match="0 times"):
        parse_executor_runner("I 00:00:00.000001 executorch:executor_runner.cpp:480] "
                              "Model executed successfully 0 time(s) in 0.000000 ms.\n")
    with pytest.raises(BenchmarkOutputError, match="no 'Model executed successfully' line"):
        parse_executor_runner(LOG.split("Model executed")[0].rsplit("\n", 1)[0])  # cut before the summary


@pytest.mark.fast
def test_latency_from_per_execution_lines():
    """The first execution is the warm-up; the rest are the samples' summary."""
    from profiling.android.runner import _executor_runner_stats

    stats, warmup = _executor_runner_stats(parse_executor_runner(LOG))
    assert warmup == 1 and stats.count == 3
    assert (stats.min_ms, stats.median_ms, stats.max_ms, stats.mean_ms) == (9.0, 10.0, 11.0, 10.0)


@pytest.fixture(scope="module")
def tiny_pte(tmp_path_factory) -> Path:
    return export_executorch.export(tiny_net(), TINY_SPEC, tmp_path_factory.mktemp("pte"), quiet=True).path


@pytest.fixture
def phone(tmp_path, monkeypatch):
    root = tmp_path / "sim"
    for key, value in make_sandbox(root).items():
        monkeypatch.setenv(key, value)
    for key in ("ADB_SIM_FAULT", "ADB_SIM_FAULT_SERIAL", "ADB_SIM_TIMING", "ANDROID_SERIAL", "ADB"):
        monkeypatch.delenv(key, raising=False)
    return root


@pytest.mark.fast
def test_executor_runner_end_to_end(phone, tiny_pte):
    adb = Adb.connect()
    options = BenchmarkOptions(num_threads=2, num_runs=6)
    run = run_executor_runner(adb, tiny_pte, phone / "bin" / "executor_runner", options, ThermalSettings())
    assert "--num_executions=6 --cpu_threads=2" in run.command and "--model_path=/data/local/tmp/" in run.command
    assert run.parsed.count == 6 and len(run.parsed.iterations_ms) == 6 and run.parsed.threads == 2
    result = to_latency_result(run, device=adb.device_info(), model="tiny_et", format="executorch",
                               precision="fp32", options=options)
    assert result.stats.count == 5 and result.warmup_runs == 1 and result.runtime == "executor_runner"
    assert 0 < result.stats.min_ms <= result.stats.median_ms <= result.stats.max_ms
    assert result.runtime_version.startswith("executor_runner sha256:")


@pytest.mark.fast
@pytest.mark.parametrize("case,match", [
    ("missing", "FileDataLoader::from\\(\\) failed"),
    ("not_a_program", "Failed to parse model file"),
    ("wrong_args", "unknown command line flag 'num_runs'"),
])
def test_executor_runner_failure_modes(phone, tiny_pte, tmp_path, case, match):
    adb = Adb.connect()
    binary = phone / "bin" / "executor_runner"
    options = BenchmarkOptions(num_runs=3, extra_args=["--num_runs=3"] if case == "wrong_args" else [])
    model = tiny_pte
    if case == "not_a_program":
        model = tmp_path / "bad.pte"
        model.write_bytes(b"\x00" * 64)
    if case == "missing":  # pushed, then gone from the phone before the tool opens it
        adb.shell("mkdir -p /data/local/tmp/mobilelat")
        adb.push(binary, "/data/local/tmp/mobilelat/executor_runner")
        adb.shell("chmod +x /data/local/tmp/mobilelat/executor_runner")
        with pytest.raises(RemoteCommandError, match=match) as caught:
            adb.shell("/data/local/tmp/mobilelat/executor_runner --model_path=/data/local/tmp/absent.pte")
        assert caught.value.exit_code == 134  # ET_CHECK_MSG aborts
        return
    with pytest.raises(RemoteCommandError, match=match) as caught:
        run_executor_runner(adb, model, binary, options, ThermalSettings())
    assert caught.value.exit_code == 1


@pytest.mark.fast
def test_executor_runner_faults(phone, tiny_pte, monkeypatch):
    adb = Adb.connect()
    binary = phone / "bin" / "executor_runner"
    monkeypatch.setenv("ADB_SIM_TIMING", "synthetic")
    monkeypatch.setenv("ADB_SIM_FAULT", "et_old_build")
    options = BenchmarkOptions(num_runs=4)
    run = run_executor_runner(adb, tiny_pte, binary, options, ThermalSettings())
    result = to_latency_result(run, device=adb.device_info(), model="tiny_et", format="executorch",
                               precision="fp32", options=options)
    assert run.parsed.iterations_ms == [] and result.stats.count == 4 and result.warmup_runs == 0
    assert "runs_from" in result.extra
    monkeypatch.setenv("ADB_SIM_FAULT", "et_zero")
    with pytest.raises(BenchmarkOutputError, match="0 times"):
        run_executor_runner(adb, tiny_pte, binary, options, ThermalSettings())
    monkeypatch.setenv("ADB_SIM_FAULT", "et_abort_mid")
    with pytest.raises(RemoteCommandError) as caught:
        run_executor_runner(adb, tiny_pte, binary, options, ThermalSettings())
    assert caught.value.exit_code == 134


@pytest.mark.slow
def test_cli_android_executorch(phone, tiny_pte, capsys):
    db = phone / "et.db"
    runner = str(phone / "bin" / "executor_runner")
    status = cli(["android", str(tiny_pte), "--serial", "SIM0001", "--et-binary", runner,
                  "--runs", "4", "--threads", "1,2", "--db", str(db)])
    output = capsys.readouterr().out
    assert status == 0, output
    with Store(db) as store:
        rows = store.query()
    assert [(r.format, r.runtime, r.threads) for r in rows] == [("executorch", "executor_runner", 1),
                                                               ("executorch", "executor_runner", 2)]
    assert cli(["android", str(tiny_pte), "--db", str(db)]) == 2
    assert "--et-binary" in capsys.readouterr().err
    assert cli(["android", str(tiny_pte), "--et-binary", "x", "--gpu", "--db", str(db)]) == 2
