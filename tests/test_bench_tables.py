"""The benchmarks' generated tables: what a kept measurement renders to (bench/bench_litert_precisions.py).

The benchmarks time nothing here; these check that the figures a run keeps reach the docs' tables
as the numbers they are (medians, ratios to fp32, XNNPACK partitions, refusals), and that the kept
JSON is written whole.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def precisions():
    return load("bench_litert_precisions")


def test_cells_give_ms_ratio_to_fp32_and_partitions(precisions):
    record = {"fp32": {"ms": 10.0, "partitions": 1}, "fp16": {"ms": 9.5, "partitions": 1},
              "int8_dynamic": {"ms": 25.0, "partitions": 3}, "int8_full": {"refused": "max error 0.4 > 0.1"}}
    assert precisions.cells(record) == ["10.00", "9.50 (0.95)", "25.00 (2.50), 3 partitions", "refused"]


def test_nothing_delegated_is_said(precisions):
    record = {p: {"ms": 4.0, "partitions": 0 if p == "int8_full" else 1} for p in precisions.PRECISIONS}
    assert precisions.cells(record)[-1] == "4.00 (1.00), 0 partitions"


def test_markdown_table_has_a_row_per_model_and_the_settings(precisions):
    saved = {"date": "2026-12-03", "machine": "2 cores", "threads": 1, "rounds": 5, "calls": 20,
             "models": {"a": {p: {"ms": 2.0, "partitions": 1} for p in precisions.PRECISIONS},
                        "b": {"fp32": {"ms": 8.0, "partitions": 1}, "fp16": {"ms": 4.0, "partitions": 1},
                              "int8_dynamic": {"refused": "x"}, "int8_full": {"ms": 2.0, "partitions": 2}}}}
    text = precisions.markdown(saved)
    assert "1 thread(s), median of 5 alternating rounds x 20 calls" in text
    rows = [line for line in text.splitlines() if line.startswith("| a |") or line.startswith("| b |")]
    assert rows == ["| a | 2.00 | 2.00 (1.00) | 2.00 (1.00) | 2.00 (1.00) |",
                    "| b | 8.00 | 4.00 (0.50) | refused | 2.00 (0.25), 2 partitions |"]


def test_saved_json_is_whole_and_replaces_the_old(precisions, tmp_path):
    path = tmp_path / "deep" / "kept.json"
    precisions.save(path, {"models": {"a": 1}})
    precisions.save(path, {"models": {"a": 1, "b": 2}})
    assert json.loads(path.read_text()) == {"models": {"a": 1, "b": 2}}
    assert sorted(p.name for p in path.parent.iterdir()) == ["kept.json"]
