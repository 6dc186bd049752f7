"""``python -m profiling`` end to end: run (reusing or exporting artifacts), show, report, errors."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from export.artifact import git_commit
from profiling.__main__ import build_parser, main as cli
from profiling.artifacts import ChangedArtifactError, find_artifact
from profiling.cli.common import CliError
from profiling.cli.run import CONFIGURATIONS, plan_jobs
from profiling.result import host_device
from profiling.runners import RUNNERS
from profiling.store import Store
from profiling_helpers import tiny_onnx, write_manifest

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--runs", "5", "--min-secs", "0", "--warmup", "1", "--warmup-secs", "0", "--rounds", "2"]


@pytest.fixture(scope="module")
def artifacts_dir(tmp_path_factory) -> Path:
    """A tiny 32x32 ONNX artifact whose manifest says repvit_m0_6 (stands in for a finished export)."""
    folder = tmp_path_factory.mktemp("artifacts")
    (folder / "repvit_m0_6").mkdir()
    tiny_onnx(folder / "repvit_m0_6", model="repvit_m0_6")
    return folder


@pytest.mark.fast
def test_run_reuses_a_matching_artifact_and_show_reads_it_back(artifacts_dir, tmp_path, capsys):
    db = tmp_path / "latency.db"
    code = cli(["run", "repvit_m0_6", "--formats", "onnx", "--threads", "1,2", "--input-size", "32",
                "--artifacts", str(artifacts_dir), "--db", str(db), "--label", "cli test", "--op-profile",
                "--graph-opt", "basic", *QUICK])
    assert code == 0, capsys.readouterr().out
    with Store(db) as store:
        results = store.query()
        (run,) = store.runs()
    assert [r.threads for r in results] == [1, 2]
    sha = json.loads((artifacts_dir / "repvit_m0_6" / "repvit_m0_6.onnx.manifest.json").read_text())["sha256"]
    assert all(r.artifact_sha256 == sha and r.extra["exported_now"] is False for r in results)
    assert all(r.stats.count == 10 and r.input_shape == [1, 3, 32, 32] for r in results)
    assert run["label"] == "cli test" and run["measurements"] == 2 and "--threads 1,2" in run["command"]
    # the CLI hands the store its provenance: the same full commit as each result, and this host
    assert run["git_commit"] == git_commit() == results[0].git_commit
    assert run["device_name"] == host_device().name == results[0].device.name
    capsys.readouterr()

    assert cli(["show", "--db", str(db), "--as", "json", "--run", "latest"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [row["threads"] for row in shown] == [1, 2]
    assert sum(map(len, shown[0]["samples_ms"])) == 10 and shown[0]["stats"]["median_ms"] > 0

    assert cli(["show", "--db", str(db), "--as", "csv", "--model", "repvit_m0_6"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 2 and float(rows[0]["median_ms"]) == pytest.approx(results[0].stats.median_ms)

    assert cli(["show", "--db", str(db), "--runtime", "litert"]) == 0
    assert "0 result(s)" in capsys.readouterr().out

    assert cli(["show", "--db", str(db), "--ops", str(results[1].id), "--as", "json"]) == 0
    by_type = {row["op_type"]: row for row in json.loads(capsys.readouterr().out)["by_op_type"]}
    assert by_type["Conv"]["nodes"] == 2 and by_type["Conv"]["ms_per_run"] > 0  # the tiny model's two convs
    assert cli(["show", "--db", str(db), "--ops", "999"]) == 2


@pytest.mark.fast
def test_a_tampered_artifact_is_not_reused(artifacts_dir, tmp_path):
    assert find_artifact(artifacts_dir, "repvit_m0_6", "onnx", "fp32", (32, 32)) is not None
    assert find_artifact(artifacts_dir, "repvit_m0_6", "onnx", "fp32", (64, 64)) is None  # other size
    assert find_artifact(artifacts_dir, "repvit_m0_6", "onnx", "fp16", (32, 32)) is None  # other precision
    copy = tmp_path / "copy"
    shutil.copytree(artifacts_dir, copy)
    tampered = copy / "repvit_m0_6" / "repvit_m0_6.onnx"
    with open(tampered, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ChangedArtifactError, match="changed since it was exported") as refused:
        find_artifact(copy, "repvit_m0_6", "onnx", "fp32", (32, 32))
    assert refused.value.path == tampered and "export verify" in str(refused.value)
    # the command refuses it too (exit 2, one line), and neither measures nor overwrites it
    before = tampered.read_bytes()
    db = tmp_path / "r.db"
    assert cli(["run", "repvit_m0_6", "--formats", "onnx", "--input-size", "32", "--artifacts", str(copy),
                "--db", str(db), "--rounds", "1"]) == 2
    assert tampered.read_bytes() == before and not db.exists()


@pytest.mark.fast
def test_a_changed_mlpackage_folder_is_refused(tmp_path):
    """A Core ML package is a folder: its sha256 covers every file in it, so an edited weight file is seen."""
    package = tmp_path / "tiny" / "tiny.mlpackage"
    (package / "Data" / "weights").mkdir(parents=True)
    (package / "Manifest.json").write_text("{}")
    weights = package / "Data" / "weights" / "weight.bin"
    weights.write_bytes(bytes(range(256)) * 4)
    write_manifest(package, "coreml", model="tiny")
    assert find_artifact(tmp_path, "tiny", "coreml", "fp32", (32, 32)).path == package
    edited = bytearray(weights.read_bytes())
    edited[100] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(edited))
    with pytest.raises(ChangedArtifactError):
        find_artifact(tmp_path, "tiny", "coreml", "fp32", (32, 32))


@pytest.mark.fast
@pytest.mark.parametrize("argv, message", [
    (["run", "repvit_m0_66"], "repvit_m0_6"),  # unknown model: closest names listed
    (["run", "repvit_m0_6", "--formats", "onnx,paddle"], "unknown format 'paddle'"),
    (["run", "repvit_m0_6", "--threads", "0"], "--threads must be >= 1"),
    (["run", "repvit_m0_6", "--rounds", "0"], "rounds=0"),
    (["run"], "name at least one MODEL"),
    (["show"], "no results database"),
    (["compare", "a", "b"], "no results database"),
])
def test_user_errors_exit_2_with_a_message(argv, message, tmp_path, capsys):
    assert cli([*argv, "--db", str(tmp_path / "missing.db")]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and message in captured.err and captured.out == ""


@pytest.mark.fast
@pytest.mark.skipif(sys.platform == "darwin", reason="checks the non-macOS refusal")
def test_coreml_on_linux_is_refused_before_any_work(tmp_path, capsys):
    assert cli(["run", "repvit_m0_6", "--formats", "coreml", "--db", str(tmp_path / "r.db")]) == 2
    assert "needs macOS" in capsys.readouterr().err
    assert not (tmp_path / "r.db").exists()


@pytest.mark.slow
def test_end_to_end_export_measure_report(tmp_path):
    """The real thing on the smallest model: export through the parity gate, measure, report."""
    db, artifacts, out = tmp_path / "latency.db", tmp_path / "artifacts", tmp_path / "report"
    command = [sys.executable, "-m", "profiling", "run", "repvit_m0_6", "--formats", "onnx,torch",
               "--db", str(db), "--artifacts", str(artifacts), *QUICK]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    with Store(db) as store:
        results = {r.format: r for r in store.query()}
    assert set(results) == {"onnx", "torch"}
    onnx = results["onnx"]
    assert onnx.extra["exported_now"] is True and Path(onnx.artifact_path).is_file()
    assert onnx.reparameterized and onnx.input_shape == [1, 3, 224, 224] and onnx.stats.median_ms > 0
    assert results["torch"].params == onnx.params  # both measured the deploy form
    # a second run reuses the artifact instead of exporting again
    again = subprocess.run([*command, "--formats", "onnx"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    with Store(db) as store:
        latest = store.query(run_id=store.resolve_run("latest"))
    assert [r.extra["exported_now"] for r in latest] == [False]
    assert latest[0].artifact_sha256 == onnx.artifact_sha256
    report = subprocess.run([sys.executable, "-m", "profiling", "report", "--db", str(db), "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stdout + report.stderr
    assert all((out / name).stat().st_size > 5000 for name in ("latency_by_model.png", "top1_vs_latency.png"))
    assert "repvit_m0_6" in (out / "report.md").read_text()


@pytest.mark.fast
@pytest.mark.parametrize("text,expected", [("256", (256, 256)), ("256x320", (256, 320)), ("256X320", (256, 320))])
def test_input_size_takes_the_export_clis_forms(text, expected):
    assert _run_args("repvit_m0_6", "--input-size", text).input_size == expected


@pytest.mark.fast
@pytest.mark.parametrize("text", ["abc", "4", "x", "256x320x3", "224x", "100000"])
def test_bad_input_size_is_one_line_exit_2(text, capsys):
    assert cli(["run", "repvit_m0_6", "--input-size", text]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument --input-size: ") and "N or HxW" in err or "32 to 4096" in err
    assert len(err.strip().splitlines()) == 1


def _run_args(*argv: str):
    args = build_parser().parse_args(["run", *argv])
    args.argv = ["run", *argv]
    return args


@pytest.mark.fast
def test_jobs_are_planned_through_the_runner_table():
    assert set(CONFIGURATIONS) == set(RUNNERS)  # every --formats value has its options and its runner
    jobs = plan_jobs(_run_args("repvit_m0_6", "--formats", "onnx,tflite,torch", "--threads", "1,2",
                               "--xnnpack", "both", "--graph-opt", "basic", "--input-size", "64"))
    assert [job.label for job in jobs] == [
        "repvit_m0_6 onnx 1t", "repvit_m0_6 onnx 2t",
        "repvit_m0_6 tflite xnnpack 1t", "repvit_m0_6 tflite builtin 1t",
        "repvit_m0_6 tflite xnnpack 2t", "repvit_m0_6 tflite builtin 2t",
        "repvit_m0_6 torch 1t", "repvit_m0_6 torch 2t"]
    assert jobs[0].options.graph_optimization == "basic"
    assert [job.options.xnnpack for job in jobs[2:6]] == [True, False, True, False]
    assert jobs[-1].options.input_size == (64, 64)


@pytest.mark.fast
def test_a_bug_inside_a_runner_is_a_failed_job_not_a_usage_error(artifacts_dir, tmp_path, monkeypatch, capsys):
    def broken_measure(artifact, settings, options, progress=None):
        raise ValueError("index out of range in the runtime binding")

    monkeypatch.setitem(RUNNERS, "onnx", dataclasses.replace(RUNNERS["onnx"], measure=broken_measure))
    code = cli(["run", "repvit_m0_6", "--formats", "onnx", "--input-size", "32", "--artifacts", str(artifacts_dir),
                "--db", str(tmp_path / "r.db"), *QUICK])
    captured = capsys.readouterr()
    assert code == 1, captured  # the sweep reports the job as failed (2 would blame the user's command)
    assert "failed repvit_m0_6 onnx 1t: ValueError: index out of range" in captured.err
    assert "1 of 1 job(s) failed: repvit_m0_6 onnx 1t (ValueError)" in captured.out
