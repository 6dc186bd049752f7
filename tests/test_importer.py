"""``python -m profiling import FILE``: valid files land whole, malformed ones are refused whole."""
from __future__ import annotations

import json

import numpy as np
import pytest

from profiling.__main__ import main
from profiling.errors import UsageError
from profiling.importer import ImportValidationError, import_file, load_results
from profiling.store import Store

pytestmark = pytest.mark.fast

IPHONE_SAMPLES = [1.21, 1.19, 1.25, 1.18, 1.30, 1.22, 1.20]


def iphone_record(**changes) -> dict:
    record = {"model": "repvit_m0_9", "format": "coreml", "precision": "fp16", "runtime": "xcode",
              "device_kind": "ios", "device_name": "iPhone 15 Pro", "device_os": "iOS 17.5",
              "compute_unit": "ALL", "samples_ms": IPHONE_SAMPLES, "input_shape": [1, 3, 224, 224],
              "created_at": "2026-11-20T10:00:00Z", "source": "Xcode performance report"}
    record.update(changes)
    return {key: value for key, value in record.items() if value is not None}


CSV_TEXT = """model,format,precision,runtime,device_kind,device_name,device_soc,median_ms,mean_ms,min_ms,max_ms,runs,threads,input_shape
repvit_m0_9,tflite,fp32,benchmark_model,android,Pixel 8,Tensor G3,4.1,4.3,3.9,6.2,200,4,1x224x224x3
repvit_m1_0,tflite,fp32,benchmark_model,android,Pixel 8,Tensor G3,,5.5,5.1,7.0,200,4,1x224x224x3
"""


def test_json_with_samples(tmp_path):
    path = tmp_path / "iphone.json"
    path.write_text(json.dumps({"schema": "mobilelat-import/1", "results": [iphone_record()]}))
    (result,) = load_results(path)
    assert result.stats.median_ms == pytest.approx(float(np.median(IPHONE_SAMPLES)))
    assert result.stats.std_ms == pytest.approx(float(np.std(IPHONE_SAMPLES, ddof=1)))
    assert result.samples_ms == [IPHONE_SAMPLES] and result.stats.count == 7
    assert (result.device.kind, result.device.name, result.device.os) == ("ios", "iPhone 15 Pro", "iOS 17.5")
    assert result.extra["imported"] == {"row": 1, "source": "Xcode performance report", "file": "iphone.json"}


def test_csv_summaries_into_the_store(tmp_path):
    path = tmp_path / "pixel.csv"
    path.write_text(CSV_TEXT)
    with Store(tmp_path / "db.sqlite") as store:
        ids = import_file(path, store, run_id="imp-1")
        rows = store.query(run_id="imp-1")
    assert len(ids) == 2 and [r.id for r in rows] == ids
    first, second = rows
    assert (first.stats.median_ms, first.stats.mean_ms, first.stats.count) == (4.1, 4.3, 200)
    assert first.input_shape == [1, 224, 224, 3] and first.threads == 4 and first.device.soc == "Tensor G3"
    assert second.stats.median_ms is None and second.stats.mean_ms == 5.5  # an empty cell is "not given"


@pytest.mark.parametrize("changes, row, field", [
    ({"modle": "x"}, 2, "modle"),  # a typo must not vanish silently
    ({"format": "caffe"}, 2, "format"),
    ({"device_kind": None}, 2, "device_kind"),
    ({"samples_ms": [1.0, "fast", 2.0]}, 2, "samples_ms"),
    ({"samples_ms": [1.0, -2.0]}, 2, "samples_ms"),
    ({"samples_ms": None, "median_ms": 3.0}, 2, "runs"),
    ({"samples_ms": None, "runs": 10}, 2, "median_ms"),
    ({"samples_ms": None, "runs": 10, "median_ms": 3.0, "min_ms": 4.0}, 2, "min_ms"),
    ({"created_at": "yesterday"}, 2, "created_at"),
    ({"input_shape": "1xAx224"}, 2, "input_shape"),
    ({"threads": 2.5}, 2, "threads"),
    ({"artifact_sha256": "abc"}, 2, "artifact_sha256"),
    ({"runs": 8}, 2, "runs"),  # 7 samples given
])
def test_malformed_json_rejected_whole(tmp_path, changes, row, field):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([iphone_record(), iphone_record(**changes), iphone_record()]))
    with Store(tmp_path / "db.sqlite") as store:
        with pytest.raises(ImportValidationError) as caught:
            import_file(path, store)
        assert store.count() == 0  # the valid rows 1 and 3 were not written either
    assert (row, field) in [(r, f) for r, f, _ in caught.value.errors]
    assert f"row {row}, field {field}:" in str(caught.value)


def test_csv_error_names_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(CSV_TEXT.replace("Pixel 8,Tensor G3,,5.5", "Pixel 8,Tensor G3,,five"))
    with pytest.raises(ImportValidationError, match=r"row 3, field mean_ms: must be a number, got 'five'"):
        load_results(path)
    path.write_text(CSV_TEXT + "repvit_m0_9,tflite,fp32,x,android,P,S,1,1,1,1,1,1,1x1x1x1,EXTRA\n")
    with pytest.raises(ImportValidationError, match="row 4, field row: more cells than header"):
        load_results(path)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"schema": "other/2", "results": []}', "is not 'mobilelat-import/1'"),
    ('{"results": 5}', "expected a list of objects"),
    ("[]", "no records"),
])
def test_malformed_files(tmp_path, content, message):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(ImportValidationError, match=message):
        load_results(path)


def test_unknown_suffix_and_missing_file(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("a,b\n")
    with pytest.raises(ImportValidationError, match="use .json or .csv"):
        load_results(path)
    with pytest.raises(ImportValidationError, match="no such file"):
        load_results(tmp_path / "absent.json")


def test_cli_import_and_dry_run(tmp_path, capsys):
    assert issubclass(ImportValidationError, UsageError)  # a bad file is the caller's mistake: exit 2
    good, bad, db = tmp_path / "good.csv", tmp_path / "bad.json", tmp_path / "db.sqlite"
    good.write_text(CSV_TEXT)
    bad.write_text(json.dumps([iphone_record(format="caffe")]))
    assert main(["import", str(good), "--db", str(db), "--dry-run"]) == 0
    assert "2 valid record(s); nothing written" in capsys.readouterr().out
    assert not db.exists()  # validation only: the store was never opened
    assert main(["import", str(bad), "--db", str(db)]) == 2
    assert "row 1, field format" in capsys.readouterr().out
    assert main(["import", str(good), "--db", str(db)]) == 0
    with Store(db) as store:
        assert store.count() == 2
        assert {r.device.name for r in store.query()} == {"Pixel 8"}
