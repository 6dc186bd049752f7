"""profiling/ios: import-safe everywhere, clear refusals off macOS, and the conversion of coremltools'
measurements into a stored result. The real benchmark runs only on a Mac (skipped elsewhere)."""
from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from profiling.__main__ import main
from profiling.errors import UsageError
from profiling.ios.coreml_device import (AppleBenchSettings, AppleToolsUnavailable, benchmark, choose_device,
                                         parse_devicectl_hardware, phone_device_info, require_macos,
                                         result_from_measurements)
from profiling.store import Store

ROOT = Path(__file__).resolve().parents[1]
ON_MAC = platform.system() == "Darwin"


def fake_phone(name="Jane's iPhone", udid="00008110-000A1B2C3D4E", kind="iphone"):
    return SimpleNamespace(name=name, udid=udid, identifier="ABCD-1234", os_version="17.5", os_build_number="21F79",
                           developer_mode_state="enabled", type=SimpleNamespace(value=kind))


@pytest.mark.fast
def test_import_does_not_load_coremltools():
    code = ("import sys, profiling.ios, profiling.ios.coreml_device, profiling.ios.cli; "
            "print('coremltools' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.fast
@pytest.mark.skipif(ON_MAC, reason="checks the refusal on hosts that are not macOS")
def test_refuses_off_macos(tmp_path, capsys):
    with pytest.raises(AppleToolsUnavailable, match="needs macOS with Xcode"):
        require_macos(for_phone=True)
    with pytest.raises(AppleToolsUnavailable, match="Core ML runs only on macOS"):
        require_macos(for_phone=False)
    assert main(["ios", "repvit_m0_9", "--mac", "--db", str(tmp_path / "db")]) == 2
    assert "Core ML runs only on macOS" in capsys.readouterr().out
    assert main(["ios", "--list", "--db", str(tmp_path / "db")]) == 2
    assert "needs macOS with Xcode" in capsys.readouterr().out


@pytest.mark.fast
def test_choose_device():
    phones = [fake_phone(), fake_phone("Lab iPad", "00008027-0011", "ipad")]
    assert choose_device(phones, "Lab iPad").udid == "00008027-0011"
    assert choose_device(phones, "00008110-000A1B2C3D4E").name == "Jane's iPhone"
    with pytest.raises(AppleToolsUnavailable, match="2 iPhones/iPads connected.*Lab iPad"):
        choose_device(phones, None)
    with pytest.raises(AppleToolsUnavailable, match="no iPhone/iPad connected.*Developer Mode"):
        choose_device([], None)
    with pytest.raises(AppleToolsUnavailable, match="no connected device named 'Bob'"):
        choose_device(phones, "Bob")


@pytest.mark.fast
def test_result_from_measurements_keeps_every_sample(tmp_path):
    predict = [2.1, 2.0, 2.3, 2.2, 5.0, 2.1]
    info = phone_device_info(fake_phone())
    assert (info.kind, info.name, info.os, info.serial) == ("ios", "Jane's iPhone", "iOS 17.5", "00008110-000A1B2C3D4E")
    assert phone_device_info(fake_phone(kind="ipad")).os == "iPadOS 17.5"
    result = result_from_measurements(load_ms=[120.0, 35.0, 34.0], predict_ms=predict, device=info,
                                      compute_units="CPU_AND_NE", settings=AppleBenchSettings(iterations=6),
                                      model="repvit_m0_9", precision="fp16", input_shape=[1, 3, 224, 224],
                                      runtime="coreml_remote")
    assert result.samples_ms == [predict]
    assert result.stats.median_ms == pytest.approx(float(np.median(predict)))
    assert result.stats.max_ms == 5.0 and result.extra["first_load_ms"] == 120.0
    with Store(tmp_path / "db.sqlite") as store:
        stored = store.query(id=store.insert(result))[0]
    assert (stored.device.kind, stored.device.os, stored.compute_unit) == ("ios", "iOS 17.5", "CPU_AND_NE")
    assert stored.samples_ms == [predict]


@pytest.mark.fast
def test_settings_are_checked():
    with pytest.raises(UsageError, match="iterations >= 1"):
        AppleBenchSettings(iterations=0)


@pytest.mark.slow
@pytest.mark.skipif(not ON_MAC, reason="Core ML predictions run only on macOS")
def test_benchmark_on_this_mac(tmp_path):
    import coremltools as ct  # only imported where Core ML runs: on the Mac

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).eval()
    example = (torch.randn(1, 3, 32, 32),)
    program = torch.export.export(model, example).run_decompositions({})
    mlmodel = ct.convert(program, convert_to="mlprogram")
    path = tmp_path / "tiny.mlpackage"
    mlmodel.save(str(path))
    artifact = SimpleNamespace(path=path, model="tiny", precision="fp16", input_shape=[1, 3, 32, 32], sha256=None,
                               params=None, macs=None, reparameterized=None)
    result = benchmark(artifact, compute_units="CPU_ONLY", settings=AppleBenchSettings(iterations=5, warmup_runs=1,
                                                                                       load_iterations=1))
    assert result.stats.count == 5 and result.stats.median_ms > 0 and result.device.kind == "host"


@pytest.mark.fast
def test_hardware_name_from_devicectl():
    listing = {"info": {"outcome": "success"}, "result": {"devices": [
        {"identifier": "ABCD-1234", "deviceProperties": {"name": "Jane's iPhone", "osVersionNumber": "17.5"},
         "hardwareProperties": {"udid": "00008110-000A1B2C3D4E", "deviceType": "iPhone", "marketingName": "iPhone 15 Pro",
                                "productType": "iPhone16,1", "cpuType": {"name": "arm64e", "subType": 2, "type": 16777228}},
         "connectionProperties": {"tunnelState": "connected"}},
        {"identifier": "no-udid", "hardwareProperties": {}}]}}
    hardware = parse_devicectl_hardware(listing)
    assert hardware == {"00008110-000A1B2C3D4E": {"model": "iPhone 15 Pro", "product_type": "iPhone16,1", "cpu": "arm64e"}}
    info = phone_device_info(fake_phone(), hardware["00008110-000A1B2C3D4E"])
    assert (info.name, info.abi, info.extra["device_name"]) == ("iPhone 15 Pro", "arm64e", "Jane's iPhone")
