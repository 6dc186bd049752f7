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
    assert result.extra["imported"] == {"row": 1, "source": "Xcode performance report", "file": "iphone.json",
                                        "key": result.extra["imported"]["key"]}
    assert len(result.extra["imported"]["key"]) == 64


def test_csv_summaries_into_the_store(tmp_path):
    path = tmp_path / "pixel.csv"
    path.write_text(CSV_TEXT)
    with Store(tmp_path / "db.sqlite") as store:
        assert import_file(path, store, run_id="imp-1") == ("imp-1", 2, [])
        rows = store.query(run_id="imp-1")
    assert len(rows) == 2
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
    with pytest.raises(ImportValidationError, match=r"row 3, field mean_ms: Input should be a valid number, got 'five'"):
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
    assert "row 1, field format" in capsys.readouterr().err  # usage errors: stderr
    assert main(["import", str(good), "--db", str(db)]) == 0
    with Store(db) as store:
        assert store.count() == 2
        assert {r.device.name for r in store.query()} == {"Pixel 8"}


# ---- issue 14 item 12: strict types, bounds, consistency, encodings, duplicates, idempotence, streaming ----

@pytest.mark.parametrize("changes, field", [
    ({"samples_ms": None, "median_ms": 3.0, "runs": True}, "runs"),  # a boolean is no count
    ({"samples_ms": None, "median_ms": 3.0, "runs": "1_000"}, "runs"),
    ({"samples_ms": None, "median_ms": 3.0, "runs": 1e20}, "runs"),
    ({"samples_ms": None, "median_ms": 3.0, "runs": 10**20}, "runs"),
    ({"input_shape": [1, 3.0, 224, 224]}, "input_shape"),
    ({"input_shape": [1, True, 224, 224]}, "input_shape"),
    ({"samples_ms": [1.0, True]}, "samples_ms"),
    ({"samples_ms": None, "runs": 5, "median_ms": 2.0, "mean_ms": 9.0, "min_ms": 1.0, "max_ms": 3.0}, "mean_ms"),
    ({"samples_ms": None, "runs": 5, "median_ms": 1e300}, "median_ms"),
    ({"device_cores": 1_000_000}, "device_cores"),
    ({"created_at": "2999-01-01T00:00:00Z"}, "created_at"),
    ({"created_at": "2026-11-20T10:00:00"}, "created_at"),  # no zone: which clock?
    ({"model": "repvit\nm0_9"}, "model"),
    ({"device_name": "  "}, "device_name"),
    ({"reparameterized": 1}, "reparameterized"),
])
def test_values_a_lax_schema_let_through_are_rejected(tmp_path, changes, field):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([iphone_record(**changes)]))
    with pytest.raises(ImportValidationError) as caught:
        load_results(path)
    assert (1, field) in [(r, f) for r, f, _ in caught.value.errors], caught.value


def test_duplicate_records_and_csv_headers_are_rejected(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text(json.dumps([iphone_record(), iphone_record(device_name="iPhone 14"), iphone_record()]))
    with pytest.raises(ImportValidationError, match="row 3, field record: duplicates row 1"):
        load_results(path)
    csv_path = tmp_path / "dup.csv"
    csv_path.write_text(CSV_TEXT.replace("runs,threads", "median_ms,threads", 1))
    with pytest.raises(ImportValidationError, match=r"row 1, field header: duplicate column\(s\) \['median_ms'\]"):
        load_results(csv_path)
    csv_path.write_text(CSV_TEXT.replace(",200,4,", ",1_000,4,", 1))
    with pytest.raises(ImportValidationError, match="row 2, field runs: Input should be a valid integer, got '1_000'"):
        load_results(csv_path)


@pytest.mark.parametrize("suffix", ["json", "csv"])
def test_a_file_that_is_not_utf8_is_a_clear_error(tmp_path, suffix):
    path = tmp_path / f"latin1.{suffix}"
    text = json.dumps([iphone_record(device_name="Télé")], ensure_ascii=False) if suffix == "json" else CSV_TEXT.replace("Pixel", "Pixél")
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ImportValidationError, match="not UTF-8 text .*save it as UTF-8"):
        load_results(path)


def test_a_refused_file_leaves_no_empty_run(tmp_path, capsys):
    """``runs: 1e20`` used to pass validation, crash at insert and leave a run row with no measurements."""
    path, db = tmp_path / "huge.json", tmp_path / "db.sqlite"
    path.write_text(json.dumps([iphone_record(samples_ms=None, median_ms=2.0, runs=10**20)]))
    assert main(["import", str(path), "--db", str(db)]) == 2
    assert "field runs" in capsys.readouterr().err  # a usage error: stderr
    if db.exists():
        with Store(db) as store:
            assert store.runs() == [] and store.count() == 0


def test_importing_twice_stores_once_and_says_what_was_skipped(tmp_path, capsys):
    good, more, db = tmp_path / "good.csv", tmp_path / "more.json", tmp_path / "db.sqlite"
    good.write_text(CSV_TEXT)
    assert main(["import", str(good), "--db", str(db)]) == 0
    assert main(["import", str(good), "--db", str(db)]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "0 record(s) imported; 2 skipped, already in" in said and "(rows 2, 3)" in said
    # the same two records as JSON, plus one new: only the new one lands
    rows = [dict(model=m, format="tflite", precision="fp32", runtime="benchmark_model", device_kind="android",
                 device_name="Pixel 8", device_soc="Tensor G3", mean_ms=mean, min_ms=lo, max_ms=hi, runs=200,
                 threads=4, input_shape=[1, 224, 224, 3], **({"median_ms": median} if median else {}))
            for m, median, mean, lo, hi in (("repvit_m0_9", 4.1, 4.3, 3.9, 6.2), ("repvit_m1_0", None, 5.5, 5.1, 7.0),
                                            ("repvit_m1_1", 6.0, 6.1, 5.9, 7.5))]
    more.write_text(json.dumps(rows))
    assert main(["import", str(more), "--db", str(db)]) == 0
    assert "1 record(s) imported" in " ".join(capsys.readouterr().out.split())
    with Store(db) as store:
        assert store.count() == 3 and len(store.runs()) == 2  # the import that added nothing left no run
        assert sorted(r.model for r in store.query()) == ["repvit_m0_9", "repvit_m1_0", "repvit_m1_1"]


def test_json_is_read_as_a_stream_across_chunk_boundaries(tmp_path, monkeypatch):
    """Records, strings and numbers cut at every place a chunk can end are read the same."""
    import profiling.importer as importer
    records = [iphone_record(samples_ms=[1.5 + i, 12345.25, 0.125], device_name=f"iPhone {i} «Pro»") for i in range(7)]
    path = tmp_path / "stream.json"
    path.write_text(json.dumps({"results": records, "schema": "mobilelat-import/1"}, indent=1, ensure_ascii=False))
    expected = [(r.device.name, r.samples_ms) for r in load_results(path)]
    for chunk in (1, 2, 3, 7, 64):
        monkeypatch.setattr(importer, "CHUNK_CHARS", chunk)
        assert [(r.device.name, r.samples_ms) for r in load_results(path)] == expected
    assert expected[6] == ("iPhone 6 «Pro»", [[7.5, 12345.25, 0.125]])
    path.write_text(json.dumps(records)[:-30])
    monkeypatch.setattr(importer, "CHUNK_CHARS", 16)
    with pytest.raises(ImportValidationError, match="not valid JSON"):
        load_results(path)
    path.write_text('{"results": [], "extra_key": 1}')
    with pytest.raises(ImportValidationError, match="unknown top-level key 'extra_key'"):
        load_results(path)
