"""The ExecuTorch host runner: what it timed, the threadpool size it set, its refusals, and the run command.

One tiny .pte (``export_helpers.TinyNet``, 3x32x32) is exported once per module (~5 s of CPU).
"""
from __future__ import annotations

import dataclasses

import pytest

from export import executorch as export_executorch
from export_helpers import TINY_SPEC, tiny_net  # tests/ is on sys.path
from profiling.errors import UsageError
from profiling.protocol import MeasureSettings
from profiling.runners import RUNNERS
from profiling.runners import executorch as et_runner

QUICK = MeasureSettings.quick(min_runs=20, rounds=2)


@pytest.fixture(scope="module")
def pte(tmp_path_factory):
    return export_executorch.export(tiny_net(), TINY_SPEC, tmp_path_factory.mktemp("pte"), quiet=True)


@pytest.mark.fast
def test_runner_row():
    row = RUNNERS["executorch"]
    assert (row.runtime, row.takes_artifact, row.takes_threads) == ("executorch", True, True)


@pytest.mark.fast
def test_measure_reports_what_it_timed_and_sizes_the_threadpool(pte):
    one = et_runner.measure(pte, dataclasses.replace(QUICK, threads=1))
    two = et_runner.measure(pte, dataclasses.replace(QUICK, threads=2))
    assert (one.extra["threadpool_threads"], two.extra["threadpool_threads"]) == (1, 2)
    assert (one.threads, two.threads) == (1, 2)
    assert one.stats.count == 40 and [len(r) for r in one.samples_ms] == [20, 20]
    assert one.runtime == "executorch" and one.runtime_version == "1.5.1" and one.compute_unit == "xnnpack"
    assert one.format == "executorch" and one.artifact_sha256 == pte.sha256 and one.input_shape == [1, 3, 32, 32]
    assert one.extra["timed"] == "method.execute" and one.extra["delegation"]["delegated_subgraphs"] >= 1
    assert 0 < one.stats.min_ms <= one.stats.median_ms < 1000


@pytest.mark.fast
def test_refusals(pte):
    with pytest.raises(UsageError, match="measures .pte artifacts"):
        et_runner.measure(dataclasses.replace(pte, format="onnx"), QUICK)
    coreml = dataclasses.replace(pte, options={**pte.options, "backend": "coreml"})
    with pytest.raises(UsageError, match="Core ML delegate, which this ExecuTorch runtime cannot run"):
        et_runner.measure(coreml, QUICK)


@pytest.mark.fast
def test_the_ios_benchmark_app_example_imports(tmp_path):
    """docs/phones.md's ExecuTorch iOS record imports as it is shown."""
    import re
    from pathlib import Path

    from profiling.importer import load_results

    text = (Path(__file__).resolve().parents[1] / "docs" / "phones.md").read_text()
    block = re.search(r'```json\n(\{"schema": "mobilelat-import/1".*?)```', text, re.S).group(1)
    (tmp_path / "ios.json").write_text(block)
    (result,) = load_results(tmp_path / "ios.json")
    assert (result.format, result.runtime, result.device.kind) == ("executorch", "executorch-ios-benchmark", "ios")
    assert result.stats.count == 5
