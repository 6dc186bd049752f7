"""Parsers of phone tool output, checked against verbatim samples from the tools' documentation.

The samples live in tests/fixtures/benchmark_outputs/ (SOURCES.md says where each comes from);
expected figures are read off the sample text by hand, converted from microseconds to ms.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from profiling.android.adb import (DeviceNoPermissions, DeviceOffline, DeviceUnauthorized, NoDeviceError,
                                   choose_device, parse_devices)
from profiling.android.parsers import (BenchmarkOutputError, parse_benchmark_model, parse_ort_perf_test,
                                       parse_stat_line, strip_log_prefixes)
from profiling.android.thermal import (CooldownRecord, ThermalReading, ThermalRecord, ThermalSettings,
                                       parse_battery_temperature, parse_zone_lines, thermal_record)

FIXTURES = Path(__file__).parent / "fixtures" / "benchmark_outputs"
pytestmark = pytest.mark.fast


def sample(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_current_format_with_percentiles():
    result = parse_benchmark_model(sample("current_with_percentiles.txt"))
    assert result.output_format == "current"
    assert result.init_ms == pytest.approx(87.639)
    assert result.first_inference_ms == pytest.approx(106.436)
    assert result.warmup_avg_ms == pytest.approx(106.065)
    assert result.inference_avg_ms == pytest.approx(105.784)
    timed = result.inference
    assert (timed.count, timed.first_ms, timed.curr_ms) == (50, pytest.approx(106.022), pytest.approx(105.780))
    assert (timed.min_ms, timed.max_ms, timed.avg_ms, timed.std_ms) == (
        pytest.approx(105.416), pytest.approx(106.528), pytest.approx(105.784), pytest.approx(0.260))
    assert timed.percentiles_ms == {"p5": pytest.approx(105.485), "median": pytest.approx(105.718),
                                    "p95": pytest.approx(106.281)}
    assert result.warmup.count == 5 and result.warmup.avg_ms == pytest.approx(106.065)
    assert (result.memory_init_mb, result.memory_overall_mb) == (pytest.approx(14.4414), pytest.approx(14.8164))
    assert result.model_size_mb == pytest.approx(4.2761)
    assert result.op_tables == {}


def test_current_format_single_warmup_and_exponent_notation():
    result = parse_benchmark_model(sample("current_single_warmup.txt"))
    assert result.warmup_avg_ms == pytest.approx(1041.76)  # printed as 1.04176e+06 us
    assert result.warmup.count == 1
    assert result.warmup.min_ms == result.warmup.max_ms == result.warmup.avg_ms == pytest.approx(1041.765)
    assert result.inference.count == 50 and result.inference.std_ms == pytest.approx(39.112)
    assert result.inference.percentiles_ms == {}
    assert result.memory_overall_mb == pytest.approx(109.848)


def test_old_format_and_op_profiling_tables():
    result = parse_benchmark_model(sample("old_format_op_profiling.txt"))
    assert result.output_format == "old"
    assert (result.warmup_avg_ms, result.init_ms, result.inference_avg_ms) == (
        pytest.approx(83.235), pytest.approx(38.467), pytest.approx(79.7609))
    # only the op profiler's "Timings (microseconds):" line is there; "Memory (bytes): count=0" is not a latency
    assert result.inference.count == 50 and result.inference.avg_ms == pytest.approx(79.732)
    run_order = result.op_tables["run_order"]
    assert [row.node_type for row in run_order] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"]
    assert run_order[1].name == "MobilenetV1/MobilenetV1/Conv2d_1_depthwise/Relu6"
    assert (run_order[1].start_ms, run_order[1].avg_ms, run_order[1].percent) == (
        pytest.approx(4.270), pytest.approx(2.150), pytest.approx(0.054))
    top = result.op_tables["top"]
    assert top[0].avg_ms == pytest.approx(6.652) and top[0].cdf_percent == pytest.approx(0.167)
    summary = result.op_tables["by_node_type"]
    assert [(row.node_type, row.count) for row in summary] == [
        ("CONV_2D", 15), ("DEPTHWISE_CONV_2D", 13), ("SOFTMAX", 1), ("RESHAPE", 1), ("AVERAGE_POOL_2D", 1)]
    assert summary[0].avg_ms == pytest.approx(1.406) and summary[0].percent == pytest.approx(89.270)
    assert summary[1].cdf_percent == pytest.approx(100.0)


def test_apk_logcat_time_prefix_is_stripped():
    result = parse_benchmark_model(sample("apk_logcat_brief.txt"))
    assert result.inference_avg_ms == pytest.approx(2719.85)
    assert result.inference.count == 10 and result.inference.percentiles_ms["median"] == pytest.approx(2709.263)
    assert result.warmup.count == 1 and result.warmup.avg_ms == pytest.approx(2732.148)
    assert result.memory_init_mb == pytest.approx(286.73)


def test_apk_readme_line():
    result = parse_benchmark_model(sample("apk_readme_logcat.txt"))
    assert (result.init_ms, result.first_inference_ms, result.warmup_avg_ms, result.inference_avg_ms) == (
        pytest.approx(1007.529), pytest.approx(4.098), pytest.approx(1.68659), pytest.approx(1.68792))
    assert result.inference is None  # the README shows only the summary line


def test_threadtime_logcat_prefix():
    line = "11-22 14:05:01.123  4321  4330 I tflite  : count=20 first=900 curr=800 min=700 max=900 avg=810 std=50"
    assert strip_log_prefixes(line).startswith("count=20 ")
    stat = parse_stat_line(strip_log_prefixes(line))
    assert (stat.count, stat.min_ms, stat.avg_ms) == (20, pytest.approx(0.7), pytest.approx(0.81))


def test_all_same_stat_line():
    stat = parse_stat_line("count=3 curr=1500(all same)")
    assert stat.count == 3 and stat.min_ms == stat.max_ms == stat.avg_ms == pytest.approx(1.5) and stat.std_ms == 0


@pytest.mark.parametrize("garbage", ["", "Segmentation fault\n", "INFO: STARTING!\nINFO: Loaded model x\n" * 30])
def test_unparseable_output_quotes_the_tail(garbage):
    with pytest.raises(BenchmarkOutputError) as caught:
        parse_benchmark_model(garbage)
    message = str(caught.value)
    assert "Inference timings in us" in message
    if garbage.strip():
        assert garbage.strip().splitlines()[-1] in message
        assert message.count("Loaded model x") <= 20  # the tail, not the whole output
    else:
        assert "no output at all" in message


def test_ort_perf_test_summary():
    result = parse_ort_perf_test(sample("ort_perf_test.txt"))
    assert result.average_ms == pytest.approx(62.2935) and result.runs == 100
    assert result.session_creation_ms == pytest.approx(2747.16) and result.first_inference_ms == 85
    assert (result.min_ms, result.max_ms) == (pytest.approx(52.9422), pytest.approx(91.2857))
    assert result.percentiles_ms == {"p50": pytest.approx(60.3562), "p90": pytest.approx(74.1593),
                                     "p95": pytest.approx(83.7052), "p99": pytest.approx(91.2857),
                                     "p999": pytest.approx(91.2857)}
    assert result.peak_working_set_bytes == 114634752


def test_ort_perf_test_newer_total_line():
    result = parse_ort_perf_test(sample("ort_perf_test_total.txt"))
    assert result.average_ms == pytest.approx(98.961997) and result.runs == 5
    assert result.percentiles_ms["p50"] == pytest.approx(99.5086)
    assert result.peak_working_set_bytes == 271122432


def test_ort_perf_test_garbage():
    with pytest.raises(BenchmarkOutputError, match="Average inference time cost"):
        parse_ort_perf_test("Error: failed to load model\n")


DEVICES_OUTPUT = """\
* daemon not running; starting now at tcp:5037
* daemon started successfully
List of devices attached
0a388e93               device usb:1-1 product:panther model:Pixel_7 device:panther transport_id:2
emulator-5554          offline transport_id:3
R58M123ABC             unauthorized usb:1-2 transport_id:4
ZY22BXYZ               no permissions (user in plugdev group; are your udev rules wrong?); see [http://developer.android.com/tools/device.html] usb:1-3 transport_id:5

"""


def test_parse_devices_states_and_details():
    devices = parse_devices(DEVICES_OUTPUT)
    assert [d.serial for d in devices] == ["0a388e93", "emulator-5554", "R58M123ABC", "ZY22BXYZ"]
    assert [d.state.split()[0] for d in devices] == ["device", "offline", "unauthorized", "no"]
    assert devices[0].details == {"usb": "1-1", "product": "panther", "model": "Pixel_7", "device": "panther",
                                  "transport_id": "2"}
    assert devices[3].state.startswith("no permissions (user in plugdev group")
    assert devices[3].details["transport_id"] == "5"


def test_choose_device_errors():
    devices = parse_devices(DEVICES_OUTPUT)
    with pytest.raises(NoDeviceError, match="4 devices attached.*0a388e93.*emulator-5554"):
        choose_device(devices, None)
    assert choose_device(devices, "0a388e93").serial == "0a388e93"
    with pytest.raises(DeviceOffline, match="emulator-5554"):
        choose_device(devices, "emulator-5554")
    with pytest.raises(DeviceUnauthorized, match="Allow USB debugging"):
        choose_device(devices, "R58M123ABC")
    with pytest.raises(DeviceNoPermissions, match="udev"):
        choose_device(devices, "ZY22BXYZ")
    with pytest.raises(NoDeviceError, match="'nope' is not attached"):
        choose_device(devices, "nope")
    with pytest.raises(NoDeviceError, match="no Android device attached"):
        choose_device([], None)


def test_thermal_units():
    assert parse_battery_temperature("Current Battery Service state:\n  level: 85\n  temperature: 312\n") == 31.2
    assert parse_battery_temperature("no battery here") is None
    zones = parse_zone_lines("/sys/class/thermal/thermal_zone0 cpu-0-0-usr 41200\n"
                             "/sys/class/thermal/thermal_zone1 skin 37\n"
                             "/sys/class/thermal/thermal_zone2 disabled -273000\n"
                             "/sys/class/thermal/thermal_zone3 off\n")
    assert zones == {"thermal_zone0 cpu-0-0-usr": 41.2, "thermal_zone1 skin": 37.0}


def test_thermal_record_flags_a_rise_past_the_limit():
    before = ThermalReading(battery_c=30.0, zones_c={"cpu": 40.0})
    after = ThermalReading(battery_c=31.0, zones_c={"cpu": 46.5})
    record = thermal_record(before, after, ThermalSettings(max_rise_c=5.0))
    assert record.rise_c == pytest.approx(6.5) and record.rose_past_limit is True and record.max_rise_c == 5.0
    calm = thermal_record(before, ThermalReading(battery_c=30.5, zones_c={"cpu": 43.0}), ThermalSettings(max_rise_c=5.0))
    assert calm.rise_c == pytest.approx(3.0) and calm.rose_past_limit is False
    unknown = thermal_record(ThermalReading(battery_c=None), after, ThermalSettings(max_rise_c=5.0))
    assert unknown.rise_c is None and unknown.rose_past_limit is False  # nothing read before: no verdict


# extra["thermal"] exactly as results stored before the record was a dataclass (a dict built by hand)
STORED_THERMAL = {
    "before": {"battery_c": 30.0, "zones_c": {"thermal_zone0 cpu": 40.0}, "taken_at_s": 1700000000.0,
               "hottest_c": 40.0},
    "after": {"battery_c": 31.0, "zones_c": {"thermal_zone0 cpu": 46.5}, "taken_at_s": 1700000030.0,
              "hottest_c": 46.5},
    "rise_c": 6.5, "max_rise_c": 5.0, "rose_past_limit": True,
    "cooldown": {"target_c": None, "start_c": 40.0, "waited_s": 0.0, "timed_out": False},
}


@pytest.mark.parametrize("cooldown", [STORED_THERMAL["cooldown"], None,
                                      {"target_c": 38.0, "start_c": 41.0, "waited_s": 20.5, "timed_out": False,
                                       "end_c": 37.9}])
def test_thermal_record_keeps_the_stored_shape(cooldown):
    stored = STORED_THERMAL | {"cooldown": cooldown}
    record = ThermalRecord.from_dict(stored)
    assert record.after.hottest_c == 46.5 and record.before.zones_c == {"thermal_zone0 cpu": 40.0}
    assert record.to_dict() == stored  # rows written before and after read and write alike
    assert (record.cooldown is None) == (cooldown is None)
    if cooldown and "end_c" not in cooldown:
        assert record.cooldown.end_c is None  # no wait happened, so no end reading was stored


def test_a_fresh_record_is_stored_in_that_shape():
    before = ThermalReading(battery_c=30.0, zones_c={"thermal_zone0 cpu": 40.0}, taken_at_s=1700000000.0)
    after = ThermalReading(battery_c=31.0, zones_c={"thermal_zone0 cpu": 46.5}, taken_at_s=1700000030.0)
    cooldown = CooldownRecord(target_c=None, start_c=40.0)
    assert thermal_record(before, after, ThermalSettings(max_rise_c=5.0), cooldown).to_dict() == STORED_THERMAL


# ---- issue 14: sections, names, spaces, delegation, no-measurement outputs --------------------------
# Written for these tests in the formats of stats_calculator.cc / benchmark_tflite_model.cc (tabs as \t).

HEADER = ("\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]"
          "\t[times called]\t[Name]")
SUMMARY_HEADER = "\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]"


def row(kind, start, first, avg, percent, cdf, name, called=1):
    return (f"\t{kind:>24}\t{start:17.3f}\t{first:9.3f}\t{avg:9.3f}\t{percent:7.3f}%\t{cdf:7.3f}%\t{0:10.3f}"
            f"\t{called:9d}\t{name}")


def summary_row(kind, count, avg, percent, cdf):
    return f"\t{kind:>24}\t{count:9d}\t{avg:10.3f}\t{percent:10.3f}%\t{cdf:10.3f}%\t{0:10.3f}\t{count:9d}"


SECTIONED = "\n".join([
    "INFO: STARTING!",
    "INFO: Explicitly applied GPU delegate, and the model graph will be partially executed by the delegate w/ 3 "
    "delegate kernels.",
    "INFO: count=10 first=3000 curr=2500 min=2400 max=3000 avg=2600 std=150",
    "",
    "INFO: count=50 first=2100 curr=2000 min=1900 max=2300 avg=2050.5 std=80 p5=1950 median=2040 p95=2200",
    "",
    "INFO: Inference timings in us: Init: 90000, First inference: 3000, Warmup (avg): 2600, Inference (avg): 2050.5",
    "INFO: Profiling Info for Benchmark Initialization:",
    "============================== Run Order ==============================", HEADER,
    row("ModifyGraphWithDelegate", 0, 80.0, 80.0, 95.0, 95.0, "ModifyGraphWithDelegate/0"),
    row("AllocateTensors", 80.0, 4.2, 4.2, 5.0, 100.0, "AllocateTensors/0"),
    "",
    "Number of nodes executed: 2",
    "============================== Summary by node type ==============================", SUMMARY_HEADER,
    summary_row("ModifyGraphWithDelegate", 1, 80.0, 95.0, 95.0), summary_row("AllocateTensors", 1, 4.2, 5.0, 100.0),
    "",
    "Timings (microseconds): count=1 curr=84200",
    "Memory (bytes): count=0",
    "2 nodes observed",
    "",
    "INFO: Operator-wise Profiling Info for Regular Benchmark Runs:",
    "============================== Run Order ==============================", HEADER,
    row("QUANTIZE", 0, 0.2, 0.1, 5.0, 5.0, "[tfl.quantize]:0"),
    row("TfLiteGpuDelegateV2", 0.1, 1.6, 1.5, 75.0, 80.0, "[model/conv0/Conv2D;model/conv0/Relu, aux]:7"),
    row("convolution_2d 0 -> relu 1", 1.6, 0.5, 0.4, 20.0, 100.0, "Delegate/convolution_2d 0 -> relu 1:3"),
    "",
    "Number of nodes executed: 3",
    "============================== Summary by node type ==============================", SUMMARY_HEADER,
    summary_row("TfLiteGpuDelegateV2", 1, 1.5, 75.0, 75.0), summary_row("convolution_2d 0 -> relu 1", 1, 0.4, 20.0, 95.0),
    summary_row("QUANTIZE", 1, 0.1, 5.0, 100.0),
    "",
    "Timings (microseconds): count=50 first=2100 curr=2000 min=1900 max=2300 avg=2050.5 std=80",
    "Memory (bytes): count=0",
    "3 nodes observed",
    "",
])


def test_regular_run_tables_are_the_op_profile_and_init_tables_are_kept_apart():
    result = parse_benchmark_model(SECTIONED)
    assert [r.node_type for r in result.op_tables["by_node_type"]] == [
        "TfLiteGpuDelegateV2", "convolution_2d 0 -> relu 1", "QUANTIZE"]
    assert [r.node_type for r in result.init_op_tables["by_node_type"]] == ["ModifyGraphWithDelegate", "AllocateTensors"]
    assert result.init_op_tables["run_order"][0].avg_ms == pytest.approx(80.0)
    assert result.inference.count == 50 and result.warmup.count == 10
    assert result.inference_avg_ms == pytest.approx(2.0505) and result.op_table_error is None


def test_node_names_split_into_tensors_and_node_index():
    names = [(r.name, r.node_index) for r in parse_benchmark_model(SECTIONED).op_tables["run_order"]]
    assert names == [("tfl.quantize", 0), ("model/conv0/Conv2D;model/conv0/Relu, aux", 7),
                     ("Delegate/convolution_2d 0 -> relu 1", 3)]


def test_tables_pasted_with_spaces_read_like_the_tab_ones():
    pasted = SECTIONED.expandtabs(8)
    assert "\t" not in pasted
    spaced, tabbed = parse_benchmark_model(pasted), parse_benchmark_model(SECTIONED)
    assert spaced.op_table_error is None
    assert spaced.op_tables == tabbed.op_tables and spaced.init_op_tables == tabbed.init_op_tables
    assert spaced.op_tables["run_order"][2].node_type == "convolution_2d 0 -> relu 1"  # digits inside a type
    assert spaced.op_tables["by_node_type"][1].count == 1 and spaced.op_tables["by_node_type"][1].avg_ms == 0.4


def test_an_unreadable_table_is_reported_not_stored_empty():
    broken = SECTIONED.replace(row("QUANTIZE", 0, 0.2, 0.1, 5.0, 5.0, "[tfl.quantize]:0"),
                               "\tQUANTIZE\t0.000\tgarbled line without the columns")
    result = parse_benchmark_model(broken)
    assert result.op_tables == {} and "cannot read row 1" in result.op_table_error
    assert result.inference_avg_ms == pytest.approx(2.0505)  # the latency itself is intact


def test_delegation_lines():
    result = parse_benchmark_model(SECTIONED + "\nVERBOSE: Replacing 50 out of 58 node(s) with delegate "
                                   "(TfLiteGpuDelegateV2) node, yielding 3 partitions for the whole graph.\n")
    summary = result.delegation.summary("GPU")
    assert {k: summary[k] for k in ("status", "kernels", "nodes_replaced", "nodes_total", "partitions")} == {
        "status": "partial", "kernels": 3, "nodes_replaced": 50, "nodes_total": 58, "partitions": 3}
    assert result.delegation.summary("NNAPI")["status"] == "unknown"
    assert result.delegation.summary(None)["status"] == "not_requested"
    none = parse_benchmark_model(SECTIONED.replace(
        "Explicitly applied GPU delegate, and the model graph will be partially executed by the delegate w/ 3 "
        "delegate kernels.", "Though GPU delegate is explicitly applied, the model graph will not be executed by "
                             "the delegate."))
    assert none.delegation.summary("GPU")["status"] == "none"
    full = parse_benchmark_model(sample("current_with_percentiles.txt") + "\nINFO: Explicitly applied XNNPACK "
                                 "delegate, and the model graph will be completely executed by the delegate.\n")
    assert full.delegation.summary("XNNPACK")["status"] == "full"
    only_replacing = parse_benchmark_model(sample("current_with_percentiles.txt") + "\nVERBOSE: Replacing 31 out of "
                                           "31 node(s) with delegate (TfLiteNnapiDelegate) node, yielding 1 partitions "
                                           "for subgraph 0.\n")
    assert only_replacing.delegation.summary("NNAPI")["status"] == "full"


ZERO_RUNS = ("INFO: count=0\n\nINFO: count=0\n\nINFO: Inference timings in us: Init: 12000, First inference: 0, "
             "Warmup (avg): 0, Inference (avg): 0\n")


@pytest.mark.parametrize("text, said", [
    (ZERO_RUNS, "ran 0 times"),
    (ZERO_RUNS.replace("(avg): 0\n", "(avg): -nan\n"), "NaN"),
    ("INFO: Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, Inference (avg): 0\n", "0 us"),
    ("INFO: count=5 first=900 curr=800 min=700 max=900 avg=812 std=50\n\nINFO: Inference timings in us: Init: 1, "
     "First inference: 2, Warmup (avg): 3, Inference (avg): 1600\n", "mixes more than one run"),
])
def test_outputs_that_measured_nothing_are_refused(text, said):
    with pytest.raises(BenchmarkOutputError, match=said):
        parse_benchmark_model(text)


def test_the_timed_line_of_the_last_summary_is_used():
    two = SECTIONED.replace("INFO: STARTING!", "INFO: count=3 first=1 curr=1 min=1 max=1 avg=9999 std=0\n\nINFO: "
                            "Inference timings in us: Init: 1, First inference: 1, Warmup (avg): 1, Inference (avg): "
                            "9999\nINFO: STARTING!")
    result = parse_benchmark_model(two)
    assert result.inference.count == 50 and result.inference_avg_ms == pytest.approx(2.0505)


ORT_BLOCK = ("Session creation time cost: {creation} s\nFirst inference time cost: {first} ms\nTotal inference time "
             "cost: {total} s\nTotal inference requests: {requests}\nAverage inference time cost: {average} ms\n"
             "Peak working set size: 1000 bytes\nRuns:{requests}\nMin Latency: 0.001 s\nMax Latency: 0.003 s\n"
             "P50 Latency: {p50} s\n")


def test_ort_two_summaries_take_every_figure_from_the_last():
    text = (ORT_BLOCK.format(creation=0.5, first=40, total=0.03, requests=3, average=10.0, p50=0.009)
            + ORT_BLOCK.format(creation=0.1, first=4, total=0.2, requests=100, average=2.0, p50=0.0019))
    result = parse_ort_perf_test(text)
    assert (result.runs, result.average_ms, result.first_inference_ms, result.session_creation_ms) == (
        100, 2.0, 4.0, pytest.approx(100.0))
    assert result.percentiles_ms["p50"] == pytest.approx(1.9) and result.summaries == 2


@pytest.mark.parametrize("requests, average, said", [(0, "-nan", "0 inference requests"), (5, "-nan", "NaN"),
                                                    (5, "-2.5", "-2.5 ms"), (5, "0", "0 ms")])
def test_ort_without_a_valid_average_is_refused(requests, average, said):
    with pytest.raises(BenchmarkOutputError, match=said):
        parse_ort_perf_test(ORT_BLOCK.format(creation=0.1, first=4, total=0.2, requests=requests, average=average,
                                             p50=0.002))


def test_logcat_records_keep_the_pid():
    from profiling.android.parsers import logcat_records
    text = ("--------- beginning of main\r\n"
            "11-22 14:05:01.123  4321  4330 I tflite  : INFO: STARTING!\r\n"
            "I/tflite  ( 2718): Initialized TensorFlow Lite runtime.\n"
            "07-08 15:33:58.992 E/tflite  ( 5395): Failed to mmap model x\n")
    records = logcat_records(text)
    assert [(r.pid, r.level, r.message) for r in records[:4]] == [
        (None, None, "--------- beginning of main"), (4321, "I", "INFO: STARTING!"),
        (2718, "I", "Initialized TensorFlow Lite runtime."), (5395, "E", "Failed to mmap model x")]
