"""``python -m profiling sweep``: the plan, the local engine, the Ray engine on a local cluster, faults, resume.

One module-wide setup: the tiny network converted once (tests/sweep_helpers.py stands in for the
exporters), two simulated phones (SIM0001, SIM0002, synthetic timing: the figures are what the
simulator's benchmark_model printed, deterministic per model file and thread count), and, for the
Ray tests, one local Ray cluster with the two phones as ``device:<serial>`` resources. The
simulator holds each phone ``busy`` while a tool runs and logs every run's interval, so the tests
prove no phone ever ran two jobs at once.
"""
from __future__ import annotations

import fcntl
import json
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest

from profiling.__main__ import main as cli
from profiling.artifacts import ensure_artifact
from profiling.store import Store
from profiling.sweep import work
from profiling.sweep.plan import SpecError, SweepSpec, expand
from profiling.sweep import cli as sweep_cli
from sweep_helpers import CACHE_ENV, make_tiny_cache, tiny_export
from tests.device_sim import make_sandbox

ROOT = Path(__file__).resolve().parents[1]
MODELS = "repvit_m0_9,mobilenetv3_small_100"
SERIALS = ("SIM0001", "SIM0002")
HOST_QUICK = {"warmup_runs": 1, "warmup_min_s": 0.0, "min_runs": 3, "min_duration_s": 0.0, "rounds": 1}


def shared_tiny_cache(tmp_path_factory) -> Path:
    """The tiny network's files, converted once for the whole session: xdist workers share the folder
    above their own base temp, and the first to take the lock converts."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "sweep-tiny-cache"
    shared.mkdir(exist_ok=True)
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "parity.json").exists():
            make_tiny_cache(shared)
    return shared


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The tiny artifacts' cache and two simulated phones, in this process's environment (Ray workers
    started later inherit it); the spec file of the grid every test sweeps."""
    root = tmp_path_factory.mktemp("sweep")
    saved = dict(os.environ)
    os.environ[CACHE_ENV] = str(shared_tiny_cache(tmp_path_factory))
    os.environ.update(make_sandbox(root / "sim", devices={serial: {} for serial in SERIALS}))
    os.environ["ADB_SIM_TIMING"] = "synthetic"
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    for key in ("ADB_SIM_FAULT", "ADB_SIM_FAULT_SERIAL", "ANDROID_SERIAL", "ADB"):
        os.environ.pop(key, None)
    sweep_cli.EXPORTER = tiny_export  # the stand-in exporter; Ray ships it to workers by reference
    spec = root / "grid.toml"
    spec.write_text(f'''
models = {json.dumps(MODELS.split(","))}
formats = ["onnx", "tflite"]
threads = [1, 2]
targets = ["host", "android:SIM0001", "android:SIM0002"]
[host]
{chr(10).join(f"{k} = {json.dumps(v)}" for k, v in HOST_QUICK.items())}
[android]
binary = "{root / 'sim/bin/benchmark_model'}"
num_runs = 5
warmup_runs = 1
min_secs = 0.0
''')
    yield {"root": root, "sim": root / "sim", "spec": spec}
    sweep_cli.EXPORTER = ensure_artifact
    os.environ.clear()
    os.environ.update(saved)


def reset_phones(sim: Path, faults: dict | None = None) -> None:
    """Phones attached, logs cleared, ``faults`` (faults.json) in force; each tool run held 0.2 s."""
    for serial in SERIALS:
        for name in ("gone", "runs.jsonl", "tool_runs.jsonl", "overlaps.log", "counters.json"):
            (sim / serial / name).unlink(missing_ok=True)
    (sim / "faults.json").write_text(json.dumps({"hold_s": 0.2, **(faults or {})}))


def no_phone_ran_two_jobs(sim: Path, serials: tuple[str, ...] = SERIALS) -> None:
    for serial in serials:
        assert not (sim / serial / "overlaps.log").exists(), (sim / serial / "overlaps.log").read_text()
        runs = sorted((json.loads(line) for line in (sim / serial / "tool_runs.jsonl").read_text().splitlines()),
                      key=lambda run: run["start"])
        assert all(a["end"] <= b["start"] for a, b in zip(runs, runs[1:])), runs


@pytest.mark.fast
def test_the_simulator_catches_two_jobs_on_one_phone(tmp_path):
    """The proof has teeth: two tool runs started together on one phone are both logged as overlapping."""
    env = {**os.environ, **make_sandbox(tmp_path / "sim")}
    (tmp_path / "sim" / "faults.json").write_text(json.dumps({"hold_s": 0.5}))
    adb = str(tmp_path / "sim" / "bin" / "adb")
    runs = [subprocess.Popen([adb, "-s", "SIM0001", "shell", "benchmark_model --version"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    for run in runs:
        run.wait(timeout=60)
    assert "found SIM0001 busy" in (tmp_path / "sim" / "SIM0001" / "overlaps.log").read_text()
    with pytest.raises(AssertionError):
        no_phone_ran_two_jobs(tmp_path / "sim", ("SIM0001",))


def sim_means(sim: Path, serial: str) -> list[float]:
    path = sim / serial / "runs.jsonl"
    return sorted(statistics.fmean(run["timed_us"]) / 1e3 for run in map(json.loads, path.read_text().splitlines()))


def sweep(lab, db: Path, *extra: str) -> int:
    return cli(["sweep", str(lab["spec"]), "--db", str(db), "--artifacts", str(db.parent / "artifacts"), *extra])


def rows(db: Path) -> list[tuple]:
    """What a sweep stored, engine-independent: the configuration, where, the phone figures, the parity."""
    with Store(db) as store:
        results = store.query()
    return sorted((r.model, r.format, r.precision, r.threads, r.device.kind, r.device.serial, r.runtime,
                   r.stats.mean_ms if r.device.kind == "android" else None,
                   json.dumps(r.extra["sweep"]["parity"], sort_keys=True)) for r in results)


def statuses(db: Path) -> dict[str, str]:
    with Store(db) as store:
        (run,) = store.runs()
        return {job["job_key"]: job["status"] for job in store.jobs(run["run_id"])}


# ---- the plan -----------------------------------------------------------------------------------

@pytest.mark.fast
def test_plan_exports_each_key_once_and_measures_it_everywhere(lab):
    spec = SweepSpec(models=MODELS.split(","), formats=["onnx", "tflite"], precisions=["fp32", "int8_full"],
                     threads=[1, 4], targets=["host", "android:A", "android:B"], android={"binary": "bm"})
    plan = expand(spec)
    onnx_int8 = "int8_full" in __import__("export.capabilities", fromlist=["x"]).capability("onnx").precisions
    precisions = {"onnx": 2 if onnx_int8 else 1, "tflite": 2}
    assert len(plan.exports) == 2 * sum(precisions.values())
    assert len({export.key for export in plan.exports}) == len(plan.exports)
    # tflite: host + 2 phones; onnx: host only (no ort_binary for the phones), each at 2 thread counts
    assert len(plan.jobs) == 2 * (precisions["tflite"] * 3 * 2 + precisions["onnx"] * 1 * 2)
    assert "onnx on android:A: no [android] ort_binary" in " ".join(plan.skipped)
    for export in plan.exports:
        assert {job.target for job in plan.jobs_of(export)} == ({"host"} if export.format == "onnx"
                                                                 else {"host", "android:A", "android:B"})
    with pytest.raises(SpecError, match="target 'phone1'"):
        expand(SweepSpec(models=["repvit_m0_9"], targets=["phone1"]))
    with pytest.raises(SpecError, match="benchmark_model"):
        expand(SweepSpec(models=["repvit_m0_9"], formats=["tflite"], targets=["android:A"]))
    with pytest.raises(SpecError, match=r"\[host\]"):
        expand(SweepSpec(models=["repvit_m0_9"], host={"warmups": 3}))


@pytest.mark.fast
def test_an_artifact_that_arrives_changed_is_not_measured(lab, tmp_path):
    spec = SweepSpec(models=["repvit_m0_9"], artifacts=str(tmp_path / "a"))
    shipped = work.export(expand(spec).exports[0], spec, tiny_export, ship=True)
    artifact = work.receive(shipped, tmp_path / "node")
    assert artifact.sha256 == shipped.sha256 and artifact.path.read_bytes() == shipped.data
    shipped.data = shipped.data[:-1] + bytes([shipped.data[-1] ^ 1])
    with pytest.raises(work.ArtifactMismatch, match="arrived with sha256"):
        work.receive(shipped, tmp_path / "node2")


@pytest.mark.fast
def test_bad_grids_are_refused_before_a_database_is_made(tmp_path, capfd):
    db = tmp_path / "r.db"
    for args, message in ((["--models", "repvit_m0_9", "--targets", "phone1"], "target 'phone1': use `host`"),
                          (["--models", "repvit_m0_9", "--formats", "coreml"], "a sweep measures onnx, tflite"),
                          ([str(tmp_path / "missing.toml")], "missing.toml not found"),
                          (["--resume", "20261202"], "no results database"),
                          (["--models", "repvit_m0_9", "--resume", "x"], "give no SPEC.toml or --models")):
        assert cli(["sweep", *args, "--db", str(db)]) == 2
        assert message in capfd.readouterr().err
    assert not db.exists()


# ---- the local engine ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_sweep(lab, tmp_path_factory):
    """The grid swept once with ``--engine local``: its database, and each phone's figures as the simulator
    printed them (the Ray test compares with it)."""
    reset_phones(lab["sim"])
    db = tmp_path_factory.mktemp("local") / "r.db"
    assert sweep(lab, db, "--engine", "local") == 0
    no_phone_ran_two_jobs(lab["sim"])
    return {"db": db, "means": {serial: sim_means(lab["sim"], serial) for serial in SERIALS}}


def test_local_sweep_stores_every_job_with_the_simulators_figures(lab, local_sweep, tmp_path, capsys):
    db = local_sweep["db"]
    stored = rows(db)
    assert len(stored) == 2 * (1 * 2 + 3 * 2)  # models x (onnx: host x 2 threads + tflite: 3 targets x 2 threads)
    assert set(statuses(db).values()) == {"done"}
    for serial in SERIALS:
        phone = sorted(row[7] for row in stored if row[5] == serial)
        assert phone == pytest.approx(local_sweep["means"][serial], rel=1e-5)

    report = tmp_path / "report"
    assert cli(["sweep", "--report", "latest", "--db", str(db), "--out", str(report)]) == 0
    assert "sweep report written" in capsys.readouterr().out
    text = (report / "sweep.md").read_text()
    with Store(db) as store:
        results = store.query()
    for model in MODELS.split(","):
        best = min((r for r in results if r.model == model and r.device.serial == "SIM0002"),
                   key=lambda r: r.stats.median_ms)
        row = next(line for line in text.splitlines() if line.startswith(f"| {model} |"))
        assert f"{best.stats.median_ms:.3f} (tflite fp32 {best.threads}t)" in row.split("|")[4]
    assert "| android:SIM0001 (Pixel 7) | 2 |" in text and "Jobs not done" not in text
    assert all((report / name).stat().st_size > 10_000 for name in ("pareto_per_device.png",
                                                                   "latency_vs_gmacs_per_device.png"))


# ---- Ray ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster(lab):
    """Two local Ray nodes, one CPU each: the head with phone SIM0001 plugged in, a second with SIM0002."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"device:SIM0001": 1},
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=1, resources={"device:SIM0002": 1})
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_ray_sweep_equals_the_local_one_and_never_doubles_a_phone(lab, local_sweep, ray_cluster, tmp_path, capsys):
    local = local_sweep["db"]
    reset_phones(lab["sim"])
    on_ray = tmp_path / "ray" / "r.db"
    on_ray.parent.mkdir()
    assert sweep(lab, on_ray, "--engine", "ray") == 0, capsys.readouterr()
    assert rows(on_ray) == rows(local)
    with Store(on_ray) as store:
        shipped = {r.extra["sweep"]["shipped"] for r in store.query()}
        paths = {r.artifact_path for r in store.query()}
    assert shipped == {True} and all(str(on_ray.parent / "artifacts") in p for p in paths)
    no_phone_ran_two_jobs(lab["sim"])


def test_faults_on_ray_lose_nothing_and_resume_finishes(lab, ray_cluster, tmp_path, capsys):
    """One export fails, SIM0002 is unplugged during its 2nd run, and the worker running SIM0001's
    3rd run is killed: the sweep finishes, every failure is named, what was measured is stored,
    and --resume (faults cleared, phone back) runs exactly what is missing."""
    reset_phones(lab["sim"])
    (lab["sim"] / "faults.json").write_text(json.dumps(
        {"hold_s": 0.2, "faults": {"SIM0002": "disconnect@2", "SIM0001": "kill_caller@3"}}))
    db = tmp_path / "r.db"
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "FAIL_EXPORT").write_text("mobilenetv3_small_100|onnx\n")
    assert sweep(lab, db, "--engine", "ray", "--json") == 1
    document = json.loads(capsys.readouterr().out)
    reasons = {item["job"]: item["reason"] for item in document["failures"]}
    assert reasons["mobilenetv3_small_100|onnx|fp32|1t|host"].startswith("export failed: StandInParityError")
    assert any("PhoneLost" in r or "DeviceLost" in r for r in reasons.values()), reasons
    assert any("WorkerCrashedError" in r or "died" in r.lower() for r in reasons.values()), reasons
    before = statuses(db)
    done_before = {key for key, status in before.items() if status == "done"}
    assert document["done"] == len(done_before) == len(rows(db)) > 0
    assert set(before.values()) <= {"done", "failed", "not_run"}
    no_phone_ran_two_jobs(lab["sim"])

    assert cli(["sweep", "--report", run_id := document["run_id"], "--db", str(db), "--out",
                str(tmp_path / "report")]) == 0
    capsys.readouterr()
    text = (tmp_path / "report" / "sweep.md").read_text()
    assert "## Jobs not done" in text and "export failed: StandInParityError" in text

    reset_phones(lab["sim"])
    (tmp_path / "artifacts" / "FAIL_EXPORT").unlink()
    assert cli(["sweep", "--resume", run_id, "--db", str(db), "--engine", "ray", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["planned"] == len(before) - len(done_before) == again["done"]
    assert set(statuses(db).values()) == {"done"} and len(rows(db)) == len(before)
    assert cli(["sweep", "--resume", run_id, "--db", str(db)]) == 0
    assert "nothing to resume" in capsys.readouterr().out


@pytest.mark.fast
def test_android_prints_the_ray_resources_of_the_attached_phones(lab, capsys):
    reset_phones(lab["sim"])
    assert cli(["android", "--ray-resources"]) == 0
    assert json.loads(capsys.readouterr().out) == {f"device:{serial}": 1 for serial in SERIALS}


def test_a_lost_node_fails_its_jobs_and_resume_finishes_on_its_return(lab, ray_cluster, tmp_path):
    """The node SIM0002 is plugged into leaves the cluster during the phone's first run: its jobs are
    failed or not run with the reason, everything else is stored; the host rejoins and --resume
    completes the run. (Last in the module: it replaces the cluster's second node.)"""
    reset_phones(lab["sim"])
    db = tmp_path / "r.db"
    (second,) = [node for node in ray_cluster.list_all_nodes() if node is not ray_cluster.head_node]
    phone = lab["sim"] / "SIM0002"

    def pull_the_plug() -> None:  # the sweep runs in this test's thread (it handles SIGINT there)
        deadline = time.monotonic() + 120
        while not ((phone / "busy").exists() or (phone / "tool_runs.jsonl").exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        ray_cluster.remove_node(second)

    unplug = threading.Thread(target=pull_the_plug)
    unplug.start()
    assert sweep(lab, db, "--engine", "ray", "--quiet") == 1
    unplug.join()
    before = statuses(db)
    assert {status for key, status in before.items() if key.endswith("SIM0002")} <= {"failed", "not_run"}
    assert {status for key, status in before.items() if not key.endswith("SIM0002")} <= {"done", "failed"}
    with Store(db) as store:
        (run,) = store.runs()
        details = [job["detail"] for job in store.jobs(run["run_id"]) if job["status"] != "done"]
    assert all(details) and any("device:SIM0002" in d or "died" in d.lower() or "Lost" in d for d in details), details
    ray_cluster.add_node(num_cpus=1, resources={"device:SIM0002": 1})
    ray_cluster.wait_for_nodes()
    assert cli(["sweep", "--resume", run["run_id"], "--db", str(db), "--engine", "ray", "--quiet"]) == 0
    assert set(statuses(db).values()) == {"done"} and len(rows(db)) == len(before)
    no_phone_ran_two_jobs(lab["sim"])
