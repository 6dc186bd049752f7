"""The Android runners against the device simulator (tests/device_sim): every error path, real runs.

The simulator's ``benchmark_model`` really runs the pushed .tflite with ai-edge-litert (and its
``onnxruntime_perf_test`` the .onnx with onnxruntime), so the figures checked here were measured.
One tiny model (tests/profiling_helpers.py: conv, relu, conv, pool, linear on 3x32x32) is converted
once per module, without manifests (files as a user would hand them over).
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from profiling.__main__ import main as cli
from profiling.android.adb import (Adb, AdbNotFound, AdbTimeout, DeviceLost, DeviceNoPermissions, DeviceOffline,
                                   DeviceUnauthorized, NoDeviceError, RemoteCommandError, AdbError)
from profiling.android.parsers import BenchmarkOutputError
from profiling.android.runner import (BenchmarkOptions, big_core_mask, find_binary, run_benchmark_apk,
                                      run_benchmark_model, run_ort_perf_test, to_latency_result)
from profiling.android.thermal import ThermalSettings, read_temperatures, wait_for_cooldown
from profiling.store import Store
from profiling_helpers import save_onnx, save_tflite
from tests.device_sim import make_sandbox

QUICK = dict(num_runs=5, warmup_runs=1, min_secs=0.0)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiny")
    return {"tflite": save_tflite(folder / "tiny.tflite"), "onnx": save_onnx(folder / "tiny.onnx")}


@pytest.fixture
def phone(tmp_path, monkeypatch):
    """One simulated Pixel 7 (serial SIM0001); returns the sandbox root."""
    root = tmp_path / "sim"
    for key, value in make_sandbox(root).items():
        monkeypatch.setenv(key, value)
    for key in ("ADB_SIM_FAULT", "ADB_SIM_FAULT_SERIAL", "ADB_SIM_BM_FORMAT", "ANDROID_SERIAL", "ADB"):
        monkeypatch.delenv(key, raising=False)
    return root


@pytest.mark.fast
def test_device_info_from_getprop(phone):
    adb = Adb.connect()
    info = adb.device_info()
    assert (info.kind, info.name, info.soc, info.abi, info.os, info.cores, info.serial) == (
        "android", "Pixel 7", "Google Tensor G2", "arm64-v8a", "Android 14 (SDK 34)", 8, "SIM0001")
    assert info.extra["ro.build.fingerprint"].startswith("google/panther/panther:14/")


@pytest.mark.fast
def test_adb_not_installed(phone, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(AdbNotFound, match="platform-tools"):
        Adb.connect()


@pytest.mark.fast
def test_no_device_and_several_devices(tmp_path, monkeypatch):
    for key, value in make_sandbox(tmp_path / "none", devices={}).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(NoDeviceError, match="no Android device attached"):
        Adb.connect()
    for key, value in make_sandbox(tmp_path / "two", devices={"AAA111": {}, "BBB222": {}}).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(NoDeviceError, match="2 devices attached.*AAA111.*BBB222"):
        Adb.connect()
    assert Adb.connect("BBB222").serial == "BBB222"
    with pytest.raises(NoDeviceError, match="'CCC333' is not attached"):
        Adb.connect("CCC333")


@pytest.mark.fast
@pytest.mark.parametrize("fault, error", [("offline", DeviceOffline), ("unauthorized", DeviceUnauthorized),
                                          ("noperm", DeviceNoPermissions)])
def test_unusable_device_states(phone, monkeypatch, fault, error):
    monkeypatch.setenv("ADB_SIM_FAULT", fault)
    with pytest.raises(error, match="SIM0001"):
        Adb.connect()


@pytest.mark.fast
def test_device_goes_offline_after_connect(phone, monkeypatch):
    adb = Adb.connect()
    monkeypatch.setenv("ADB_SIM_FAULT", "offline")
    with pytest.raises(DeviceOffline):
        adb.shell("echo hi")


@pytest.mark.fast
@pytest.mark.parametrize("old_adb", [False, True])
def test_remote_exit_status(phone, monkeypatch, old_adb):
    if old_adb:  # adb that always exits 0: the status comes from the appended `echo __rc=$?`
        monkeypatch.setenv("ADB_SIM_FAULT", "old_adb")
    adb = Adb.connect()
    assert adb.shell("echo hello") == (0, "hello")
    assert adb.shell("echo oops >&2; exit 3", check=False)[0] == 3
    with pytest.raises(RemoteCommandError) as caught:
        adb.shell("cat /data/local/tmp/missing")
    assert caught.value.exit_code == 1 and "missing" in str(caught.value)


@pytest.mark.fast
def test_push_pull_roundtrip(phone, tmp_path):
    adb = Adb.connect()
    source = tmp_path / "blob.bin"
    source.write_bytes(bytes(range(256)) * 4)
    adb.push(source, "/data/local/tmp/blob.bin")
    assert adb.shell("ls -l /data/local/tmp/blob.bin")[1].split()[4] == "1024"
    back = adb.pull("/data/local/tmp/blob.bin", tmp_path / "back.bin")
    assert back.read_bytes() == source.read_bytes()
    assert not (tmp_path / "back.bin.partial").exists()
    with pytest.raises(AdbError, match="no such file on the device"):
        adb.pull("/data/local/tmp/nothing", tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


@pytest.mark.fast
def test_big_core_mask_from_max_frequencies(phone):
    mask, freqs = big_core_mask(Adb.connect())
    assert freqs[0] == 1803000 and freqs[7] == 2850000
    assert mask == "f0"  # cores 4-7: everything above the little cluster


@pytest.mark.fast
def test_find_binary_by_abi(tmp_path):
    (tmp_path / "arm64-v8a").mkdir()
    (tmp_path / "arm64-v8a" / "benchmark_model").write_text("x")
    (tmp_path / "android_x86_64_benchmark_model").write_text("y")
    assert find_binary(None, tmp_path, "arm64-v8a") == tmp_path / "arm64-v8a" / "benchmark_model"
    assert find_binary(None, tmp_path, "x86_64") == tmp_path / "android_x86_64_benchmark_model"
    with pytest.raises(FileNotFoundError, match="armeabi-v7a"):
        find_binary(None, tmp_path, "armeabi-v7a")
    with pytest.raises(FileNotFoundError, match="--binary"):
        find_binary(None, None, "arm64-v8a")


def test_benchmark_model_end_to_end(phone, tiny_models):
    adb = Adb.connect()
    # builtin kernels (no XNNPACK), so the op profile shows the model's own ops rather than one delegate kernel
    options = BenchmarkOptions(num_threads=2, pin_big_cores=True, enable_op_profiling=True, use_xnnpack=False,
                               report_peak_memory_footprint=True, **QUICK)
    run = run_benchmark_model(adb, tiny_models["tflite"], phone / "bin" / "benchmark_model", options, ThermalSettings())
    assert run.command.startswith("taskset f0 /data/local/tmp/mobilelat/benchmark_model --graph=")
    assert "--num_threads=2" in run.command and "--enable_op_profiling=true" in run.command
    assert (phone / "SIM0001" / "taskset.log").read_text().split() == ["f0"]
    parsed = run.parsed
    assert parsed.output_format == "current" and parsed.inference.count >= 5
    assert 0 < parsed.inference.min_ms <= parsed.inference.percentiles_ms["median"] <= parsed.inference.max_ms
    assert parsed.inference_avg_ms == pytest.approx(parsed.inference.avg_ms, rel=1e-5)
    assert parsed.peak_memory_mb > 0
    op_types = {row.node_type for row in parsed.op_tables["by_node_type"]}
    assert "CONV_2D" in op_types and len(parsed.op_tables["run_order"]) >= 3
    assert run.thermal.rise_c == 0 and not run.thermal.rose_past_limit

    result = to_latency_result(run, device=adb.device_info(), model="tiny", format="tflite", precision="fp32",
                               options=options, model_path=tiny_models["tflite"])
    assert result.stats.count == parsed.inference.count
    assert result.stats.mean_ms == pytest.approx(parsed.inference_avg_ms)
    assert result.stats.median_ms == pytest.approx(parsed.inference.percentiles_ms["median"])
    assert result.threads == 2 and result.compute_unit == "cpu" and result.runtime == "benchmark_model"
    assert result.extra["delegation"]["status"] == "not_requested"
    assert result.extra["thermal"]["before"]["battery_c"] == pytest.approx(31.2)

    with Store(phone / "latency.db") as store:
        row_id = store.insert(result)
        stored = store.query(id=row_id)[0]
    assert (stored.device.kind, stored.device.name, stored.device.soc, stored.device.abi) == (
        "android", "Pixel 7", "Google Tensor G2", "arm64-v8a")
    assert stored.stats.mean_ms == pytest.approx(result.stats.mean_ms)
    assert stored.extra["parsed"]["op_tables"]["by_node_type"]
    profile = stored.extra["op_profile"]  # what `python -m profiling show --ops ID` prints
    assert {row["op_type"] for row in profile["by_op_type"]} == op_types
    assert sum(row["nodes"] for row in profile["by_op_type"]) == len(parsed.op_tables["run_order"])
    assert sum(row["share"] for row in profile["by_op_type"]) == pytest.approx(1.0, abs=1e-3)


def test_benchmark_model_old_output_format(phone, tiny_models, monkeypatch):
    monkeypatch.setenv("ADB_SIM_BM_FORMAT", "old")
    run = run_benchmark_model(Adb.connect(), tiny_models["tflite"], phone / "bin" / "benchmark_model",
                              BenchmarkOptions(**QUICK), ThermalSettings())
    assert run.parsed.output_format == "old" and run.parsed.inference.count >= 5
    assert run.parsed.memory_overall_mb is not None  # "Peak memory footprint (MB): init= overall="


def test_garbage_output_is_an_error_quoting_it(phone, tiny_models, monkeypatch):
    monkeypatch.setenv("ADB_SIM_FAULT", "garbage")
    with pytest.raises(BenchmarkOutputError, match="segfault-ish noise"):
        run_benchmark_model(Adb.connect(), tiny_models["tflite"], phone / "bin" / "benchmark_model",
                            BenchmarkOptions(**QUICK), ThermalSettings())


@pytest.mark.fast
def test_binary_for_another_abi(phone, tmp_path):
    wrong, model = tmp_path / "benchmark_model_x86", tmp_path / "never_read.tflite"
    wrong.write_bytes(b"\x7fELF\x01\x01\x01\x00 built for some other CPU")
    model.write_bytes(b"TFL3")
    with pytest.raises(RemoteCommandError, match="built for this phone's ABI") as caught:
        run_benchmark_model(Adb.connect(), model, wrong, BenchmarkOptions(**QUICK), ThermalSettings())
    assert caught.value.exit_code == 126


@pytest.mark.fast
def test_tool_failure_is_a_remote_exit(phone):
    adb = Adb.connect()
    adb.push(phone / "bin" / "benchmark_model", "/data/local/tmp/benchmark_model")
    adb.shell("chmod +x /data/local/tmp/benchmark_model")
    with pytest.raises(RemoteCommandError, match="Could not open") as caught:
        adb.shell("/data/local/tmp/benchmark_model --graph=/data/local/tmp/absent.tflite")
    assert caught.value.exit_code == 1


def test_disconnect_mid_run(phone, tiny_models, monkeypatch):
    adb = Adb.connect()
    monkeypatch.setenv("ADB_SIM_FAULT", "disconnect")
    with pytest.raises(DeviceLost, match="SIM0001 disconnected"):
        run_benchmark_model(adb, tiny_models["tflite"], phone / "bin" / "benchmark_model",
                            BenchmarkOptions(**QUICK), ThermalSettings())


def test_hung_run_times_out_and_is_killed(phone, tiny_models, monkeypatch):
    monkeypatch.setenv("ADB_SIM_FAULT", "slow")
    monkeypatch.setenv("ADB_SIM_SLOW_S", "30")
    started = time.monotonic()
    with pytest.raises(AdbTimeout, match="timed out after 1 s"):
        run_benchmark_model(Adb.connect(), tiny_models["tflite"], phone / "bin" / "benchmark_model",
                            BenchmarkOptions(timeout_s=1, **QUICK), ThermalSettings())
    assert time.monotonic() - started < 15  # the process group was killed, not waited for


def test_rising_temperature_is_flagged_and_cooldown_gives_up(phone, tiny_models, monkeypatch):
    monkeypatch.setenv("ADB_SIM_FAULT", "hot")
    monkeypatch.setenv("ADB_SIM_HEAT_C", "8")
    adb = Adb.connect()
    options = BenchmarkOptions(**QUICK)
    run = run_benchmark_model(adb, tiny_models["tflite"], phone / "bin" / "benchmark_model", options,
                              ThermalSettings(max_rise_c=5.0))
    assert run.thermal.rise_c == pytest.approx(8.0) and run.thermal.rose_past_limit
    assert run.thermal.after.battery_c == pytest.approx(31.2 + 8.0)
    result = to_latency_result(run, device=adb.device_info(), model="tiny", format="tflite", precision="fp32",
                               options=options)
    assert result.stats.unstable and any("thermal rise 8.0" in r for r in result.stats.unstable_reasons)
    # now at 46.5 C (hottest zone 38.5 + 8): waiting for 40 C never succeeds, so the wait stops at its limit
    sleeps = []
    record = wait_for_cooldown(adb, ThermalSettings(cooldown_target_c=40.0, cooldown_max_wait_s=0.3,
                                                    poll_interval_s=0.1), sleep=lambda s: (sleeps.append(s), time.sleep(s)))
    assert record.timed_out and record.start_c == pytest.approx(46.5) and sleeps
    assert record.end_c == pytest.approx(46.5) and 0.3 <= record.waited_s < 5
    cool = wait_for_cooldown(adb, ThermalSettings(cooldown_target_c=50.0, cooldown_max_wait_s=5))
    assert not cool.timed_out and cool.waited_s == 0 and cool.end_c == pytest.approx(46.5)
    assert read_temperatures(adb).zones_c["thermal_zone0 cpu-0-0-usr"] == pytest.approx(46.5)


def test_apk_mode(phone, tiny_models, tmp_path):
    adb = Adb.connect()
    options = BenchmarkOptions(num_threads=4, **QUICK)
    with pytest.raises(AdbError, match="could not start the benchmark APK"):
        run_benchmark_apk(adb, tiny_models["tflite"], options, ThermalSettings(), poll_s=0.2)
    apk = tmp_path / "android_aarch64_benchmark_model.apk"
    apk.write_bytes(b"PK\x03\x04 stand-in")
    run = run_benchmark_apk(adb, tiny_models["tflite"], options, ThermalSettings(), apk=apk, poll_s=0.2)
    assert run.command.startswith("am start -S -n org.tensorflow.lite.benchmark/.BenchmarkModelActivity --es args ")
    assert run.parsed.output_format == "current" and run.parsed.inference.count >= 5
    assert run.parsed.inference_avg_ms > 0


def test_apk_result_timeout(phone, tiny_models, tmp_path):
    adb = Adb.connect()
    apk = tmp_path / "benchmark.apk"
    apk.write_bytes(b"PK")
    adb.install(apk)
    with pytest.raises(AdbTimeout, match="no result within 0.3 s"):
        run_benchmark_apk(adb, tiny_models["tflite"], BenchmarkOptions(timeout_s=0.3, num_runs=5, min_secs=3.0),
                          ThermalSettings(), poll_s=0.1)


def test_onnxruntime_perf_test(phone, tiny_models):
    adb = Adb.connect()
    options = BenchmarkOptions(num_threads=1, num_runs=20)
    run = run_ort_perf_test(adb, tiny_models["onnx"], phone / "bin" / "onnxruntime_perf_test", options,
                            ThermalSettings())
    assert " -m times -r 20 -x 1 -e cpu -I " in run.command
    parsed = run.parsed
    assert parsed.runs == 20 and parsed.average_ms > 0
    assert parsed.min_ms <= parsed.percentiles_ms["p50"] <= parsed.percentiles_ms["p99"] <= parsed.max_ms
    result = to_latency_result(run, device=adb.device_info(), model="tiny", format="onnx", precision="fp32",
                               options=options)
    assert result.stats.median_ms == pytest.approx(parsed.percentiles_ms["p50"]) and result.stats.count == 20


def test_cli_android_end_to_end(phone, tiny_models, capsys):
    db = phone / "cli.db"
    status = cli(["android", str(tiny_models["tflite"]), "--serial", "SIM0001", "--binary",
                  str(phone / "bin" / "benchmark_model"), "--runs", "5", "--min-secs", "0", "--gpu",
                  "--threads", "1,2", "--db", str(db)])
    output = capsys.readouterr().out
    assert status == 0, output
    assert "Pixel 7" in output
    with Store(db) as store:
        rows = store.query()
    assert [(r.threads, r.compute_unit, r.device.kind, r.device.soc) for r in rows] == [
        (1, "gpu", "android", "Google Tensor G2"), (2, "gpu", "android", "Google Tensor G2")]
    assert all("--use_gpu=true" in r.extra["command"] for r in rows)


def test_cli_android_errors(phone, tiny_models, monkeypatch, capsys):
    base = ["android", str(tiny_models["tflite"]), "--db", str(phone / "e.db")]
    assert cli(base) == 2
    assert "--binary PATH" in capsys.readouterr().err  # usage errors: one line on stderr
    assert cli(base + ["--apk", "--pin-big-cores"]) == 2
    assert "taskset" in capsys.readouterr().err
    assert cli(["android", "repvit_m0_9", "--formats", "onnx", "--db", str(phone / "e.db")]) == 2
    assert "--ort-binary" in capsys.readouterr().err
    assert cli(["android", str(tiny_models["onnx"]), "--db", str(phone / "e.db")]) == 2  # an .onnx file is an onnx job
    assert "--ort-binary" in capsys.readouterr().err
    monkeypatch.setenv("ADB_SIM_FAULT", "unauthorized")
    assert cli(base + ["--binary", str(phone / "bin" / "benchmark_model")]) == 2
    assert "unauthorized" in capsys.readouterr().err
    monkeypatch.setenv("ADB_SIM_FAULT", "garbage")
    assert cli(base + ["--binary", str(phone / "bin" / "benchmark_model")]) == 1  # the job failed, reported
    assert "could not read benchmark_model's result" in capsys.readouterr().out
