"""Reports and run comparison on hand-made measurements with known answers."""
from __future__ import annotations

from pathlib import Path

import pytest

from profiling import compare, report
from profiling.__main__ import main as cli
from profiling.compare import bucket_of, compare_runs
from profiling.errors import UsageError
from profiling.report import build_report, pareto_front
from profiling.store import Store
from test_store import make_result

pytestmark = pytest.mark.fast

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# registry names with a published top-1, GMACs and latency; (macs, median ms) chosen so the
# latency ranking disagrees with the MAC ranking in exactly one swap
POINTS = {"repvit_m0_9": (0.82e9, 3.0), "repvit_m1_0": (1.11e9, 2.0), "repvit_m1_1": (1.34e9, 4.0),
          "repvit_m1_5": (2.28e9, 5.0)}


def fill(store: Store, run_id: str, scale: float = 1.0, runtime: str = "onnxruntime") -> None:
    store.insert_many([make_result(model=m, runtime=runtime, run_id=run_id, median=ms * scale, macs=macs,
                                   params=int(macs / 150))
                       for m, (macs, ms) in POINTS.items()])


@pytest.fixture
def two_runs(tmp_path) -> Path:
    """A database with run "base" and run "faster" (every model at half base's latency)."""
    db = tmp_path / "r.db"
    with Store(db) as store:
        fill(store, "base")
        fill(store, "faster", scale=0.5)
    return db


def test_pareto_front():
    points = [("a", 1.0, 70.0), ("b", 2.0, 69.0), ("c", 2.5, 75.0), ("d", 3.0, 74.0), ("e", 4.0, 80.0)]
    assert [p[0] for p in pareto_front(points)] == ["a", "c", "e"]


def test_report_writes_markdown_and_non_empty_pngs(tmp_path):
    db = tmp_path / "r.db"
    with Store(db) as store:
        fill(store, "run-1")
        fill(store, "run-1", scale=0.5, runtime="litert")
    out = tmp_path / "report"
    assert cli(["report", "--db", str(db), "--out", str(out)]) == 0
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["latency_by_model.png", "latency_vs_gmacs.png", "latency_vs_params.png",
                                      "top1_vs_latency.png"]
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, png
    markdown = (out / "report.md").read_text()
    # ranks by MACs 1 2 3 4, by latency 2 1 3 4: rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert "| onnxruntime 1t | 4 | +0.800 | +0.800 |" in markdown
    assert "| litert 1t | 4 | +0.800 | +0.800 |" in markdown
    # repvit_m1_0 is fastest and more accurate than m0_9: m0_9 is not on the front
    front_line = next(line for line in markdown.splitlines() if line.startswith("- onnxruntime 1t:"))
    assert "repvit_m1_0" in front_line and "repvit_m0_9" not in front_line
    # the paper's 1.0 ms beside ours (columns sorted: litert, then onnxruntime)
    row = next(line for line in markdown.splitlines() if line.startswith("| repvit_m1_0 | 1 | iPhone 12"))
    assert row.endswith("| 1.000 | 2.000 |")
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_report_refuses_an_empty_selection(two_runs, tmp_path):
    assert cli(["report", "--db", str(two_runs), "--out", str(tmp_path / "o"), "--model", "nothing"]) == 2
    with pytest.raises(UsageError, match="no measurements"):
        build_report([], tmp_path / "o")


def test_buckets():
    assert [bucket_of(s) for s in (2.5, 2.0, 1.6, 1.25, 1.1, 1.05, 0.95, 1 / 1.2)] == \
        [">=2x", ">=2x", ">=1.5x", ">=1.2x", ">=1.1x", "same", "same", "slower"]


def test_compare_matches_configurations_and_flags_regressions():
    run_a = [make_result(model="m1", median=4.0), make_result(model="m2", median=3.0),
             make_result(model="m3", median=2.0), make_result(model="only_a", median=1.0)]
    run_b = [make_result(model="m1", median=2.0), make_result(model="m2", median=3.1),
             make_result(model="m3", median=2.5), make_result(model="m3", threads=2, median=1.0)]
    comparisons, only_a, only_b = compare_runs(run_a, run_b, threshold=1.1)
    by_model = {c.key[0]: c for c in comparisons}
    assert set(by_model) == {"m1", "m2", "m3"}  # m3 with 2 threads has no partner in A
    assert by_model["m1"].speedup == pytest.approx(2.0) and by_model["m1"].bucket == ">=2x"
    assert by_model["m2"].bucket == "same" and not by_model["m2"].regression
    assert by_model["m3"].speedup == pytest.approx(0.8) and by_model["m3"].regression
    assert [k[0] for k in only_a] == ["only_a"] and [(k[0], k[5]) for k in only_b] == [("m3", 2)]
    assert not any(c.regression for c in compare_runs(run_a, run_b, threshold=1.3)[0])
    with pytest.raises(ValueError, match="threshold"):
        compare_runs(run_a, run_b, threshold=0.9)


def test_compare_cli_exit_codes(two_runs, capsys):
    db = two_runs
    with Store(db) as store:
        fill(store, "slower", scale=1.3)
        store.insert(make_result(model="elsewhere", run_id="disjoint"))
    assert cli(["compare", "base", "faster", "--db", str(db)]) == 0
    assert ">=2x: 4" in capsys.readouterr().out
    assert cli(["compare", "base", "slower", "--db", str(db)]) == 1
    assert "4 regression(s)" in capsys.readouterr().out
    assert cli(["compare", "base", "slower", "--db", str(db), "--threshold", "1.5"]) == 0
    assert cli(["compare", "base", "disjoint", "--db", str(db)]) == 3
    assert cli(["compare", "base", "nonexistent", "--db", str(db)]) == 2
    assert cli(["compare", "base", "latest", "--db", str(db)]) == 3  # latest = disjoint (inserted last)
    capsys.readouterr()
    assert cli(["compare", "base", "faster", "--db", str(db), "--threshold", "0.9"]) == 2
    assert "regression threshold is a slowdown ratio >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("module, helper, argv", [
    (report, "pareto_front", ["report", "--out", "{tmp}/o"]),
    (compare, "bucket_of", ["compare", "base", "faster"]),
])
def test_a_bug_inside_keeps_its_traceback(two_runs, tmp_path, monkeypatch, module, helper, argv):
    """Only the caller's mistakes exit 2; a ValueError from inside report or compare is a bug, not "usage"."""
    def broken(*_):
        raise ValueError("math domain error")

    monkeypatch.setattr(module, helper, broken)
    with pytest.raises(ValueError, match="math domain error"):
        cli([arg.format(tmp=tmp_path) for arg in argv] + ["--db", str(two_runs)])


def test_achieved_gflops_and_share_of_peak(tmp_path):
    result = make_result(model="repvit_m1_0", median=2.0, macs=int(1.11e9))
    assert result.stats.median_ms == 2.0
    assert result.achieved_gflops == pytest.approx(2 * 1.11e9 / 2e-3 / 1e9)  # 1110 GFLOP/s
    assert make_result(macs=None).achieved_gflops is None
    db = tmp_path / "r.db"
    with Store(db) as store:
        fill(store, "run-1")
    out = tmp_path / "report"
    assert cli(["report", "--db", str(db), "--out", str(out), "--peak-gflops", "2220"]) == 0
    markdown = (out / "report.md").read_text()
    row = next(line for line in markdown.splitlines() if line.startswith("| repvit_m1_0 | onnxruntime 1t |"))
    assert "| 1110.00 | 50.0 |" in row
    assert "peak 2220 GFLOP/s" in markdown
    assert cli(["report", "--db", str(db), "--out", str(tmp_path / "r2"), "--peak-gflops", "0"]) == 2
    assert not (tmp_path / "r2").exists()
    out3 = tmp_path / "r3"
    assert cli(["report", "--db", str(db), "--out", str(out3)]) == 0  # no peak: no share column
    assert "% of peak" not in (out3 / "report.md").read_text()
