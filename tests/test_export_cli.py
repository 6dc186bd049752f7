"""The export command lines end to end: files and manifest written, errors with non-zero exits."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from export import onnx as export_onnx
from export import parity
from export.cli import (EXIT_CONVERTER, EXIT_PARITY, EXIT_USAGE, build_multi_parser, build_parser, run_format_cli,
                        run_multi_cli)
from export.formats import HANDLERS

ROOT = Path(__file__).resolve().parents[1]
MODEL = "repvit_m0_6"


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


@pytest.mark.fast
def test_onnx_cli_writes_artifact_and_manifest(tmp_path):
    result = _cli("-m", "export.onnx", MODEL, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    artifact = tmp_path / MODEL / f"{MODEL}.onnx"
    manifest = json.loads((tmp_path / MODEL / f"{MODEL}.onnx.manifest.json").read_text())
    assert artifact.is_file() and manifest["size_bytes"] == artifact.stat().st_size
    assert manifest["model"] == MODEL and manifest["format"] == "onnx" and manifest["precision"] == "fp32"
    assert manifest["input_shape"] == [1, 3, 224, 224] and manifest["reparameterized"] is True
    assert manifest["parity"]["passed"] and manifest["parity"]["inputs"] >= 3
    assert sorted(p.name for p in (tmp_path / MODEL).iterdir()) == [f"{MODEL}.onnx", f"{MODEL}.onnx.manifest.json"]
    assert "parity" in result.stdout and "passed" in result.stdout  # the summary, on stdout
    assert "convert repvit_m0_6 (fp32, 224x224)" in result.stderr  # the stages, on stderr


@pytest.mark.fast
def test_help_lists_only_what_the_format_takes():
    onnx_help = build_parser("onnx").format_help()
    tflite_help = build_parser("tflite").format_help()
    assert "--dynamic-batch" in onnx_help and "--nhwc" not in onnx_help
    assert "--nhwc" in tflite_help and "--calibration-dir" in tflite_help and "--dynamic-batch" not in tflite_help
    assert "int8_full" in tflite_help and "int8_full" not in onnx_help
    for flag in ("--out", "--precision", "--input-size", "--no-reparam", "--weights"):
        assert flag in onnx_help and flag in tflite_help
    # each format's flags are exactly its options class's fields, defaults shown
    flags = {name: {a.option_strings[0] for a in build_parser(name)._actions if a.option_strings}
             for name in ("onnx", "coreml", "tflite", "executorch")}
    common = {"-h", "--out", "--weights", "--precision", "--input-size", "--no-reparam", "--quiet", "--verbose",
              "--json"}
    assert flags == {"onnx": common | {"--dynamic-batch", "--opset"},
                     "coreml": common | {"--image-input", "--coreml-target"},
                     "tflite": common | {"--nhwc", "--calibration-dir", "--calibration-count"},
                     "executorch": common | {"--backend", "--calibration-dir", "--calibration-count"}}
    assert "(default: 18)" in onnx_help and "(default: 32)" in tflite_help
    assert "(default: fp16)" in build_parser("coreml").format_help()
    assert "tflite: channel-last" in build_multi_parser().format_help()
    assert "tflite, executorch: int8_full: folder" in build_multi_parser().format_help()


@pytest.mark.fast
def test_unsupported_flag_is_refused(capsys, tmp_path):
    assert run_format_cli(export_onnx.HANDLER, [MODEL, "--out", str(tmp_path), "--nhwc"]) == EXIT_USAGE
    assert "--nhwc" in capsys.readouterr().err
    # several formats: a flag none of the requested formats takes is an error too
    status = run_multi_cli(HANDLERS, [MODEL, "--formats", "onnx", "--nhwc", "--out", str(tmp_path), "--quiet"])
    assert status == EXIT_USAGE
    assert "taken by none" in capsys.readouterr().err
    # ... also when its value is the default: --opset 18 means nothing to TFLite
    status = run_multi_cli(HANDLERS, [MODEL, "--formats", "tflite", "--opset", "18", "--out", str(tmp_path), "--quiet"])
    assert status == EXIT_USAGE
    assert "--opset is taken by none of the formats tflite" in capsys.readouterr().err
    assert not (tmp_path / MODEL).exists()


@pytest.mark.fast
def test_an_internal_error_is_not_a_usage_error(monkeypatch, tmp_path):
    """A ValueError from inside an export is a bug: it propagates, it is not reported as bad usage (exit 2)."""
    def broken_run(path, inputs, spec, options):
        raise ValueError("an internal inconsistency")

    monkeypatch.setattr(export_onnx.HANDLER, "run", broken_run)
    with pytest.raises(ValueError, match="an internal inconsistency"):
        run_format_cli(export_onnx.HANDLER, [MODEL, "--out", str(tmp_path), "--input-size", "64", "--quiet"])
    with pytest.raises(ValueError, match="an internal inconsistency"):
        run_multi_cli(HANDLERS, [MODEL, "--formats", "onnx", "--out", str(tmp_path), "--input-size", "64", "--quiet"])
    assert not (tmp_path / MODEL).exists()  # nothing landed: the folder made for it is gone too


@pytest.mark.fast
def test_unknown_model_suggests_names(capsys, tmp_path):
    assert run_format_cli(export_onnx.HANDLER, ["repvit_m0_7", "--out", str(tmp_path)]) == EXIT_USAGE
    assert "Did you mean" in capsys.readouterr().err


@pytest.mark.fast
def test_bad_input_size_is_an_error(capsys, tmp_path):
    status = run_format_cli(export_onnx.HANDLER, ["mobilevit_xxs", "--out", str(tmp_path), "--input-size", "100"])
    assert status == EXIT_USAGE
    err = capsys.readouterr().err
    assert "cannot take a 100x100 input" in err and "multiples of 32" in err
    assert run_format_cli(export_onnx.HANDLER, [MODEL, "--input-size", "0x64"]) == EXIT_USAGE
    assert "each side must be 32 to 4096" in capsys.readouterr().err


@pytest.mark.fast
def test_forced_parity_failure_exits_non_zero_and_leaves_nothing(monkeypatch, capsys, tmp_path):
    # a zero tolerance: the deploy graph's rounding differs from the training form's, so the gate must fail
    monkeypatch.setitem(parity.TOLERANCES, ("onnx", "fp32"), parity.Tolerance(rtol=0.0, atol=0.0, reason="test"))
    status = run_format_cli(export_onnx.HANDLER, [MODEL, "--out", str(tmp_path), "--input-size", "64", "--quiet"])
    assert status == EXIT_PARITY
    err = capsys.readouterr().err
    assert "parity gate failed" in err and "max_abs" in err
    assert list(tmp_path.iterdir()) == []  # no file, and no empty folder made for it


@pytest.mark.fast
def test_multi_format_cli_runs_each_format(tmp_path):
    assert run_multi_cli(HANDLERS, [MODEL, "--formats", "onnx", "--input-size", "64", "--dynamic-batch",
                          "--out", str(tmp_path), "--quiet"]) == 0
    manifest = json.loads((tmp_path / MODEL / f"{MODEL}_64x64.onnx.manifest.json").read_text())
    assert manifest["options"]["dynamic_batch"] is True and manifest["input_shape"] == [1, 3, 64, 64]


@pytest.mark.fast
def test_a_missing_backend_fails_its_format_only(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "coremltools", None)  # import of a None entry raises ImportError
    status = run_multi_cli(HANDLERS, [MODEL, "--formats", "coreml,onnx", "--input-size", "64", "--out", str(tmp_path),
                                      "--quiet"])
    assert status == EXIT_CONVERTER
    assert "coreml export needs 'coremltools', which is not installed: pip install 'coremltools==9.0'" in \
        capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / MODEL).iterdir()) == [f"{MODEL}_64x64.onnx",
                                                                    f"{MODEL}_64x64.onnx.manifest.json"]


@pytest.mark.slow
def test_multi_format_cli_onnx_and_tflite(tmp_path):
    result = _cli("-m", "export", MODEL, "--formats", "onnx,tflite", "--out", str(tmp_path), "--input-size", "64",
                  "--nhwc", "--quiet")
    assert result.returncode == 0, result.stderr
    onnx_manifest = json.loads((tmp_path / MODEL / f"{MODEL}_64x64.onnx.manifest.json").read_text())
    tflite_manifest = json.loads((tmp_path / MODEL / f"{MODEL}_64x64.tflite.manifest.json").read_text())
    assert onnx_manifest["input_layout"] == "NCHW"  # --nhwc went only to the format that takes it
    assert tflite_manifest["input_layout"] == "NHWC" and tflite_manifest["input_shape"] == [1, 64, 64, 3]


@pytest.mark.fast
def test_weights_that_do_not_fit_are_a_usage_error(capsys, tmp_path):
    # a checkpoint that fits neither form is retried as a deploy checkpoint, then refused
    checkpoint = tmp_path / "other.pt"
    torch.save({"not_a_layer.weight": torch.zeros(3)}, checkpoint)
    status = run_format_cli(export_onnx.HANDLER, [MODEL, "--weights", str(checkpoint), "--out", str(tmp_path)])
    assert status == EXIT_USAGE
    assert "not_a_layer" in capsys.readouterr().err
    status = run_format_cli(export_onnx.HANDLER, [MODEL, "--weights", str(tmp_path / "missing.pt"),
                                                  "--out", str(tmp_path)])
    assert status == EXIT_USAGE
    assert "checkpoint not found" in capsys.readouterr().err
