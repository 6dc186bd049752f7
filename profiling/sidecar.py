"""Measurements the store could not take, kept in a file ``python -m profiling import`` takes back.

A sweep that measured something and then found its database unusable (damaged, locked for too
long, a full disk) must not lose the minutes it measured. Its results go to a JSON file in the
import schema (``profiling.importer``, ``mobilelat-import/1``) beside the database, rewritten
whole after each result, and the command names it:

    python -m profiling import results/latency.db.unsaved-20261122T135012Z-3fa9c1.json --db new.db

What the schema has no field for (the settings, the commit, the artifact path, the run id and
the stability verdict under the run's own thresholds) travels in each record's ``extra``.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from profiling.importer import SCHEMA
from profiling.result import LatencyResult


def sidecar_path(db: Path, run_id: str) -> Path:
    """``results/latency.db`` -> ``results/latency.db.unsaved-<run_id>.json`` (in the temp folder if
    the database's folder cannot be written either)."""
    folder = db.parent if os.access(db.parent if db.parent.exists() else Path.cwd(), os.W_OK) else Path(
        tempfile.gettempdir())
    return folder / f"{db.name}.unsaved-{run_id}.json"


def import_record(result: LatencyResult) -> dict:
    """One result as an import record (fields the schema lacks go to ``extra``)."""
    device = result.device
    record = {
        "model": result.model, "format": result.format, "precision": result.precision, "runtime": result.runtime,
        "device_kind": device.kind, "device_name": device.name, "runtime_version": result.runtime_version,
        "device_os": device.os, "device_soc": device.soc, "device_abi": device.abi, "device_cores": device.cores,
        "compute_unit": result.compute_unit, "threads": result.threads, "input_shape": list(result.input_shape),
        "warmup_runs": result.warmup_runs, "created_at": result.created_at or None,
        "artifact_sha256": result.artifact_sha256, "params": result.params,
        "macs": result.macs if result.macs is not None and result.macs >= 0 else None,
        "reparameterized": result.reparameterized,
    }
    if result.samples_ms:
        record["samples_ms"] = result.samples_ms
    else:
        record.update(median_ms=result.stats.median_ms, mean_ms=result.stats.mean_ms, runs=result.stats.count)
    record["extra"] = {**result.extra, "sidecar": {
        "run_id": result.run_id, "git_commit": result.git_commit, "artifact_path": result.artifact_path,
        "settings": result.settings, "unstable": result.stats.unstable,
        "unstable_reasons": result.stats.unstable_reasons}}
    return {key: value for key, value in record.items() if value is not None}


def write_sidecar(path: Path, results: list[LatencyResult]) -> Path:
    """Write ``results`` to ``path`` in the import schema, atomically (a crash leaves the previous file)."""
    document = {"schema": SCHEMA, "results": [import_record(r) for r in results]}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=1)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
