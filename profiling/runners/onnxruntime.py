"""ONNX Runtime (CPU execution provider) runner, with an optional per-op-type profile.

Threads: ``settings.threads`` is ORT's intra-op pool size; ``inter_op_threads`` only matters with
the parallel execution mode. The timed ``step()`` is one ``session.run`` with the input already
in a numpy array (ORT wraps it without a copy), which is what an application pays per call.

The op profile (``op_profile=True``) runs in a SEPARATE session with ORT's profiler on, after the
timed rounds, so profiling overhead never touches the latency samples. ORT writes a Chrome-trace
JSON; its ``"cat": "Node"`` events named ``<node>_kernel_time`` carry the kernel's duration (us)
and ``args.op_name``; they are summed by op type and divided by the profiled iterations.
"""
from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from export.artifact import Artifact
from profiling.errors import UsageError
from profiling.protocol import MeasureSettings, ProgressCallback, run_protocol
from profiling.result import LatencyResult, result_from_samples
from profiling.runners.common import artifact_input, missing_backend

GRAPH_OPTIMIZATION_LEVELS = {  # CLI name -> onnxruntime.GraphOptimizationLevel member
    "disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL",
}


@dataclass
class OrtOptions:
    """ONNX Runtime session options this runner exposes."""

    graph_optimization: str = "all"  # one of GRAPH_OPTIMIZATION_LEVELS
    inter_op_threads: int = 1  # threads across independent nodes (parallel execution mode only)
    parallel_execution: bool = False  # ORT_PARALLEL instead of ORT_SEQUENTIAL
    op_profile: bool = False  # also collect a per-op-type profile (separate session)
    op_profile_runs: int = 20  # iterations profiled for the op profile

    def __post_init__(self) -> None:
        if self.graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise UsageError(f"graph_optimization must be one of {', '.join(GRAPH_OPTIMIZATION_LEVELS)}, "
                             f"got {self.graph_optimization!r}")


def _ort():
    try:
        import onnxruntime
    except ImportError as error:
        raise missing_backend("onnxruntime") from error
    return onnxruntime


def make_session(path: str | Path, threads: int, options: OrtOptions, profile_prefix: str | None = None):
    """An ORT CPU session configured as the options say (the benchmark uses this too)."""
    ort = _ort()
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = threads
    session_options.inter_op_num_threads = options.inter_op_threads
    session_options.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION_LEVELS[options.graph_optimization])
    session_options.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if options.parallel_execution
                                      else ort.ExecutionMode.ORT_SEQUENTIAL)
    if profile_prefix is not None:
        session_options.enable_profiling = True
        session_options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), sess_options=session_options, providers=["CPUExecutionProvider"])


def measure(artifact: Artifact, settings: MeasureSettings, options: OrtOptions | None = None,
            progress: ProgressCallback | None = None) -> LatencyResult:
    """Measure an ONNX artifact with the protocol."""
    if artifact.format != "onnx":
        raise UsageError(f"the onnxruntime runner measures .onnx artifacts, got {artifact.format} ({artifact.path})")
    options = options or OrtOptions()
    ort = _ort()
    session = make_session(artifact.path, settings.threads, options)
    image = artifact_input(artifact)
    feed = {session.get_inputs()[0].name: image}
    outputs = [session.get_outputs()[0].name]
    samples = run_protocol(lambda: session.run(outputs, feed), settings, progress)
    extra = {"ort_options": asdict(options), "timed": "session.run"}
    if options.op_profile:
        extra["op_profile"] = op_profile(artifact.path, feed, settings.threads, options)
    return result_from_samples(
        samples=samples, settings=settings, model=artifact.model, format="onnx", precision=artifact.precision,
        runtime="onnxruntime", runtime_version=ort.__version__, input_shape=list(image.shape),
        artifact=artifact, compute_unit="cpu", extra=extra)


def op_profile(path: str | Path, feed: dict, threads: int, options: OrtOptions) -> dict:
    """Per-op-type kernel time from ORT's profiler, per iteration, largest first."""
    with tempfile.TemporaryDirectory(prefix="ort-profile-") as folder:
        session = make_session(path, threads, options, profile_prefix=str(Path(folder) / "ort"))
        outputs = [session.get_outputs()[0].name]
        for _ in range(3 + options.op_profile_runs):  # summarize_trace skips the 3 warm-up runs
            session.run(outputs, feed)
        trace_path = session.end_profiling()
        events = json.loads(Path(trace_path).read_text())
    return summarize_trace(events, runs=options.op_profile_runs, skip_runs=3)


def summarize_trace(events: list[dict], runs: int, skip_runs: int = 0) -> dict:
    """Sum ``Node`` kernel times by op type over the last ``runs`` ``model_run`` events."""
    run_events = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                        key=lambda e: e["ts"])
    kept = run_events[skip_runs:skip_runs + runs]
    if not kept:
        raise ValueError("the ORT trace holds no model_run events; was profiling enabled?")
    start_us, end_us = kept[0]["ts"], kept[-1]["ts"] + kept[-1]["dur"]
    total_us: dict[str, float] = defaultdict(float)
    nodes: dict[str, set] = defaultdict(set)
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        if not start_us <= event["ts"] <= end_us:
            continue
        op_type = event.get("args", {}).get("op_name", "?")
        total_us[op_type] += event["dur"]
        nodes[op_type].add(event["name"])
    kernel_total_us = sum(total_us.values()) or 1.0
    rows = [{"op_type": op, "ms_per_run": us / len(kept) / 1000, "share": us / kernel_total_us,
             "nodes": len(nodes[op])} for op, us in sorted(total_us.items(), key=lambda kv: -kv[1])]
    model_run_ms = sum(e["dur"] for e in kept) / len(kept) / 1000
    return {"runs": len(kept), "model_run_ms": model_run_ms, "kernel_ms": kernel_total_us / len(kept) / 1000,
            "by_op_type": rows}
