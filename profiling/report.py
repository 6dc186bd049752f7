"""Markdown + PNG reports from stored measurements: where FLOPs mislead, and what the papers said.

Reports know measurements only through the store (``LatencyResult`` rows). For each runtime
configuration (runtime, format, precision, threads, compute unit, device) the latest measurement
of each model is kept, and the report shows:

- ``latency_by_model.png``  median latency per model and configuration (whiskers: min to p90);
- ``latency_vs_gmacs.png``, ``latency_vs_params.png``  with the Spearman rank correlation per
  configuration (how well MACs or parameters order the models by real latency here);
- ``top1_vs_latency.png``  published ImageNet top-1 against measured latency, Pareto front drawn;
- ``measured_top1_vs_latency.png`` and a table: the measured top-1 of the very artifacts measured
  (``profiling accuracy`` rows joined by sha256; see ``profiling.report_accuracy``), int8 drops flagged;
- a table of the papers' device latencies (``ModelSpec.published_latency_ms``) beside ours.

A phone measurement whose delegate (GPU, NNAPI, XNNPACK) took only part of the graph, or none of
it, ran partly on the CPU: its row says so in the ``delegation`` column, with the node counts the
tool printed, and a note under the table counts such rows.

Every file is written under a temporary name and renamed, so a report folder never holds a
half-written file.
"""
from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import models
from mobilelat.paths import output_dir
from profiling import report_accuracy
from profiling.errors import UsageError
from profiling.report_plots import latency_bars, scatter_panels, wrap_title
from profiling.result import LatencyResult
from profiling.stats import spearman

MIN_MODELS_FOR_SPEARMAN = 3  # fewer points give a meaningless +-1


@dataclass
class ModelFacts:
    """What the registry knows about a model, beside what was measured."""

    top1: float | None  # published ImageNet-1k top-1, percent
    published_latency_ms: float | None  # the paper's device latency
    published_latency_device: str | None  # where the paper measured it ("iPhone 12")
    gmacs: float | None  # reference GMACs, used when a measurement carries no MAC count
    params_m: float | None  # reference parameters, millions


def model_facts(name: str) -> ModelFacts:
    """Published figures from the registry; all ``None`` for a name the registry does not know."""
    try:
        spec = models.model_spec(name)
    except models.UnknownModelError:
        return ModelFacts(None, None, None, None, None)
    return ModelFacts(spec.top1, spec.published_latency_ms, spec.published_latency_device, spec.gmacs,
                      spec.params_m)


def configuration_label(result: LatencyResult) -> str:
    unit = f" {result.compute_unit}" if result.compute_unit and result.compute_unit != "cpu" else ""
    threads = f" {result.threads}t" if result.threads else ""
    precision = "" if result.precision == "fp32" else f" {result.precision}"
    device = "" if result.device.kind == "host" else f" @ {result.device.name}"
    return f"{result.runtime}{precision}{unit}{threads}{device}"


def latest_per_configuration(results: list[LatencyResult]) -> dict[str, dict[str, LatencyResult]]:
    """configuration label -> model -> its latest result with a median (results come oldest first)."""
    table: dict[str, dict[str, LatencyResult]] = defaultdict(dict)
    for result in results:
        if result.stats.median_ms is not None:
            table[configuration_label(result)][result.model] = result
    return dict(table)


def macs_of(result: LatencyResult, facts: ModelFacts) -> float | None:
    """GMACs: the measured artifact's own count, else the registry's reference figure."""
    return result.macs / 1e9 if result.macs else facts.gmacs


def params_of(result: LatencyResult, facts: ModelFacts) -> float | None:
    """Millions of parameters: the measured model's count, else the registry's reference figure."""
    return result.params / 1e6 if result.params else facts.params_m


def pareto_front(points: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """``(name, latency, accuracy)`` points no other point beats on both (lower latency, higher top-1)."""
    front, best_accuracy = [], float("-inf")
    for name, latency, accuracy in sorted(points, key=lambda p: (p[1], -p[2])):
        if accuracy > best_accuracy:
            front.append((name, latency, accuracy))
            best_accuracy = accuracy
    return front


def correlations(grouped: dict[str, dict[str, LatencyResult]], facts: dict[str, ModelFacts]
                 ) -> list[tuple[str, int, float | None, float | None]]:
    """Per configuration: (label, models, Spearman latency~GMACs, Spearman latency~params)."""
    rows = []
    for label, by_model in grouped.items():
        triples = [(r.stats.median_ms, macs_of(r, facts[m]), params_of(r, facts[m])) for m, r in by_model.items()]
        with_macs = [(lat, macs) for lat, macs, _ in triples if macs is not None]
        with_params = [(lat, params) for lat, _, params in triples if params is not None]
        rho_macs = (spearman(*zip(*with_macs)) if len(with_macs) >= MIN_MODELS_FOR_SPEARMAN else None)
        rho_params = (spearman(*zip(*with_params)) if len(with_params) >= MIN_MODELS_FOR_SPEARMAN else None)
        rows.append((label, len(by_model), rho_macs, rho_params))
    return rows


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(temp_path)``, then rename the temp file onto ``path``."""
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        write(Path(temp_name))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp_name, 0o666 & ~umask)  # mkstemp creates 0600; a report is for reading
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def delegation_note(result: LatencyResult) -> str:
    """The delegation cell of a result: what ``extra["delegation"]`` (phone runs) says, "-" when nothing was asked."""
    record = result.extra.get("delegation") or {}
    requested, status = record.get("requested"), record.get("status")
    if status == "partial":
        nodes = (f": {record['nodes_replaced']}/{record['nodes_total']} nodes"
                 if record.get("nodes_total") is not None else "")
        kernels = f", {record['kernels']} kernels" if record.get("kernels") is not None else ""
        return f"PARTIAL {requested} delegation{nodes}{kernels}"
    if status == "none":
        return f"NO {requested} delegation (ran on the CPU)"
    if status == "full":
        return f"full {requested}"
    if status == "unknown":
        return f"{requested}: not reported"
    return "-"


def fmt(value: float | int | None, pattern: str = "{:.3f}") -> str:
    """A table cell: ``value`` formatted with ``pattern``, ``-`` when it is missing or NaN."""
    return "-" if value is None or value != value else pattern.format(value)


def setting_of(results: list[LatencyResult]) -> str:
    """Runtimes with their versions and the devices, for a title: ``onnxruntime 1.22.0, torch 2.13.0 on AMD EPYC (host)``."""
    runtimes = ", ".join(sorted({f"{r.runtime} {r.runtime_version or ''}".strip() for r in results}))
    devices = ", ".join(sorted({f"{r.device.name} ({r.device.kind})" for r in results}))
    return f"{runtimes} on {devices}"


def parameter_form(grouped: dict[str, dict[str, LatencyResult]], facts: dict[str, ModelFacts]) -> str:
    """Which form the parameter counts on the plot are of: the measured model's (deploy or training
    form), or the paper's reference figure (training form) where the measurement carries none."""
    forms = set()
    for by_model in grouped.values():
        for model, result in by_model.items():
            if result.params:
                forms.add({True: "deploy form", False: "training form"}.get(result.reparameterized, "form unknown"))
            elif facts[model].params_m is not None:
                forms.add("paper's figure, training form")
    return ", ".join(sorted(forms)) or "none"


def build_report(results: list[LatencyResult], out_dir: str | Path, title: str = "mobilelat latency report",
                 source: str = "", accuracy: list[dict] | None = None, peak_gflops: float | None = None) -> Path:
    """Write ``report.md`` and its PNG plots into ``out_dir``; returns the markdown path.

    ``peak_gflops``: the machine's peak (``bench/bench_peak.py``); each row then shows its
    achieved GFLOP/s as a share of it.

    ``out_dir`` is created if missing, and removed again if the report fails or is interrupted
    before anything lands in it. ``accuracy``: the store's accuracy rows (``Store.query_accuracy``),
    joined to the measured artifacts by sha256 (``profiling.report_accuracy``).
    """
    if peak_gflops is not None and not peak_gflops > 0:
        raise UsageError(f"the peak must be a positive GFLOP/s figure, got {peak_gflops}; bench/bench_peak.py measures it")
    if not results:
        raise UsageError("no measurements to report; run `python -m profiling run MODEL` first or widen the filters")
    grouped = latest_per_configuration(results)
    if not grouped:
        raise UsageError("none of the selected measurements has a median latency to report")
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    with output_dir(out_dir) as out_dir:
        return _write_report(plt, results, grouped, out_dir, title, source, accuracy or [], peak_gflops)


def _write_report(plt, results: list[LatencyResult], grouped: dict[str, dict[str, LatencyResult]], out_dir: Path,
                  title: str, source: str, accuracy: list[dict], peak_gflops: float | None = None) -> Path:
    model_order = list(dict.fromkeys(r.model for r in results))
    facts = {m: model_facts(m) for m in model_order}
    labels = sorted(grouped)
    setting = setting_of([r for by_model in grouped.values() for r in by_model.values()])
    plots = {}

    def save(figure, name: str) -> None:
        _write_atomic(out_dir / name, lambda tmp: figure.savefig(tmp, dpi=110, format="png", bbox_inches="tight"))
        plt.close(figure)
        plots[name] = out_dir / name

    # 1. latency per model and configuration
    series = {label: {m: (r.stats.min_ms if r.stats.min_ms is not None else r.stats.median_ms, r.stats.median_ms,
                          r.stats.p90_ms if r.stats.p90_ms is not None else r.stats.median_ms)
                      for m, r in grouped[label].items()} for label in labels}
    save(latency_bars(plt, series, model_order, wrap_title("Median latency per model", setting)),
         "latency_by_model.png")

    # 2-3. latency against GMACs and against parameters
    rho_rows = correlations(grouped, facts)
    rho_by_label = {row[0]: row for row in rho_rows}
    form = parameter_form(grouped, facts)
    for name, getter, xlabel, rho_index in (("latency_vs_gmacs.png", macs_of, "GMACs", 2),
                                            ("latency_vs_params.png", params_of, f"parameters (M; {form})", 3)):
        panels = {label: [(getter(r, facts[m]), r.stats.median_ms, m) for m, r in grouped[label].items()
                          if getter(r, facts[m]) is not None] for label in labels}
        titles = {label: f"{label}: Spearman {rho_by_label[label][rho_index]:+.2f}"
                  if rho_by_label[label][rho_index] is not None
                  else f"{label}: {len(grouped[label])} model(s), too few to rank" for label in labels}
        save(scatter_panels(plt, panels, titles, xlabel, "median latency (ms)",
                            wrap_title(f"Median latency against {xlabel}", setting)), name)

    # 4. published accuracy against measured latency, with the Pareto front
    fronts = {}
    panels = {}
    for label in labels:
        points = [(m, r.stats.median_ms, facts[m].top1) for m, r in grouped[label].items() if facts[m].top1]
        if points:
            fronts[label] = pareto_front(points)
            panels[label] = [(latency, top1, m) for m, latency, top1 in points]
    save(scatter_panels(plt, panels, {label: label for label in panels}, "median latency (ms)",
                        "published ImageNet-1k top-1 (%)",
                        wrap_title("Published top-1 against measured latency (dashed: Pareto front)", setting),
                        fronts={label: [(lat, acc) for _, lat, acc in front] for label, front in fronts.items()}),
         "top1_vs_latency.png")

    # 5. measured accuracy of the same artifacts against their latency
    measured = report_accuracy.write_section(plt, grouped, accuracy, lambda m: model_facts(m).top1, save, setting,
                                             pareto_front)
    markdown = _markdown(title, source, results, grouped, labels, model_order, facts, rho_rows, fronts, plots,
                         measured, peak_gflops)
    report_path = out_dir / "report.md"
    _write_atomic(report_path, lambda tmp: tmp.write_text(markdown))
    return report_path


def weights_of(result: LatencyResult) -> str:
    """``random`` (random initialization), the checkpoint's file name, or ``unknown`` (recorded before
    mobilelat kept it, or imported without it)."""
    if "weights" not in result.extra or result.extra["weights"] == "unknown":
        return "unknown"
    weights = result.extra["weights"]
    return "random" if weights is None else Path(str(weights)).name


def load_of(result: LatencyResult) -> str:
    """The 1-minute load average before and after the measurement, ``0.52 -> 1.10``, or ``-``."""
    load = result.extra.get("load_avg") or {}
    before, after = load.get("before"), load.get("after")
    if not before or not after:
        return "-"
    return f"{before[0]:.2f} -> {after[0]:.2f}"


def _values(results: list[LatencyResult], describe: Callable[[LatencyResult], str]) -> str:
    return ", ".join(sorted({describe(r) for r in results}))


def setup_section(grouped: dict[str, dict[str, LatencyResult]], labels: list[str]) -> list[str]:
    """Per configuration: runtime and version, input resolution, weights, device, machine load."""
    lines = ["## Setup", "",
             "What each configuration ran: runtime version, input resolution, whether the weights were random "
             "(latency does not depend on them, accuracy does), and the 1-minute load average before -> after each "
             "measurement (above the core count the result is flagged unstable).", "",
             "| configuration | runtime | input | weights | device | load (1 min), lowest to highest | flagged by load |",
             "|---|---|---|---|---|---|---:|"]
    for label in labels:
        rows = list(grouped[label].values())
        loaded = sum(any(reason.startswith("machine load") for reason in r.stats.unstable_reasons) for r in rows)
        readings = [reading[0] for r in rows for reading in ((r.extra.get("load_avg") or {}).get("before"),
                                                              (r.extra.get("load_avg") or {}).get("after")) if reading]
        load = f"{min(readings):.2f} to {max(readings):.2f}" if readings else "-"
        lines.append(
            f"| {label} | {_values(rows, lambda r: f'{r.runtime} {r.runtime_version or chr(63)}')} "
            f"| {_values(rows, lambda r: 'x'.join(map(str, r.input_shape)))} | {_values(rows, weights_of)} "
            f"| {_values(rows, lambda r: r.device.name)} | {load} | {loaded} of {len(rows)} |")
    return lines + [""]


def _markdown(title: str, source: str, results: list[LatencyResult], grouped: dict[str, dict[str, LatencyResult]],
              labels: list[str], model_order: list[str], facts: dict[str, ModelFacts],
              rho_rows: list[tuple[str, int, float | None, float | None]],
              fronts: dict[str, list[tuple[str, float, float]]], plots: dict[str, Path],
              measured: list[str] | None = None, peak_gflops: float | None = None) -> str:
    lines = [f"# {title}", ""]
    if source:
        lines += [source, ""]
    devices = sorted({f"{r.device.name} ({r.device.kind}, {r.device.cores or '?'} cores, {r.device.os or '?'})"
                      for r in results})
    runs = sorted({r.run_id for r in results if r.run_id})
    commits = sorted({r.git_commit for r in results if r.git_commit})
    lines += [f"{len(results)} measurement(s); latest per model and configuration shown.", "",
              f"- devices: {'; '.join(devices)}", f"- runs: {', '.join(runs) or '-'}",
              f"- commits: {', '.join(commits) or '-'}",
              "- headline figure: median of every timed iteration; trimmed = mean of per-round 10%-trimmed means",
              "- GFLOP/s: 2 x MACs of one forward pass over the median latency"
              + (f"; peak {peak_gflops:g} GFLOP/s (bench/bench_peak.py)" if peak_gflops else ""), ""]
    lines += setup_section(grouped, labels)

    lines += ["## Latency per model and runtime", "", "![latency per model](latency_by_model.png)", "",
              "| model | configuration | median ms | trimmed ms | p90 ms | cv | GFLOP/s | "
              + ("% of peak | " if peak_gflops else "") + "runs | load (1 min) | stable | delegation |",
              "|---|---|---:|---:|---:|---:|---:|" + ("---:|" if peak_gflops else "") + "---:|---|---|---|"]
    partial = 0
    for model in model_order:
        for label in labels:
            result = grouped[label].get(model)
            if result is None:
                continue
            s = result.stats
            stable = "UNSTABLE: " + "; ".join(s.unstable_reasons) if s.unstable else "yes"
            delegation = delegation_note(result)
            partial += delegation.startswith(("PARTIAL", "NO "))
            gflops = result.achieved_gflops
            share = (f"{fmt(100 * gflops / peak_gflops if gflops else None, '{:.1f}')} | " if peak_gflops else "")
            lines.append(f"| {model} | {label} | {fmt(s.median_ms)} | {fmt(s.trimmed_mean_ms)} | "
                         f"{fmt(s.p90_ms)} | {fmt(s.cv)} | {fmt(gflops, '{:.2f}')} | {share}{s.count} | {load_of(result)} "
                         f"| {stable} | {delegation} |")
    if partial:
        lines += ["", f"**{partial} row(s) were not fully delegated**: the delegate named in the configuration took "
                      "only part of the graph (or none of it) and the rest ran on the CPU, so those figures are not "
                      "that delegate's latency."]

    lines += ["", "## Do MACs or parameters predict latency here?", "",
              "Spearman rank correlation between median latency and GMACs / parameters, per configuration "
              "(1 = the FLOP ranking is the latency ranking; needs at least "
              f"{MIN_MODELS_FOR_SPEARMAN} models).", "",
              "| configuration | models | Spearman vs GMACs | Spearman vs params |", "|---|---:|---:|---:|"]
    for label, count, rho_macs, rho_params in rho_rows:
        lines.append(f"| {label} | {count} | {fmt(rho_macs, '{:+.3f}')} | {fmt(rho_params, '{:+.3f}')} |")
    lines += ["", "![latency vs GMACs](latency_vs_gmacs.png) ![latency vs params](latency_vs_params.png)", ""]

    lines += ["## Published accuracy against latency", "", "![top-1 vs latency](top1_vs_latency.png)", "",
              "The papers' top-1 (published, full ImageNet-1k validation set), not measured here.", ""]
    if fronts:
        lines += ["Pareto-optimal models on published top-1 (no other model is both faster and more accurate):", ""]
        for label, front in fronts.items():
            lines.append(f"- {label}: " + ", ".join(f"{m} ({lat:.3f} ms, {acc:.1f}%)" for m, lat, acc in front))
    else:
        lines.append("No measured model has a published top-1 in the registry.")

    lines += [""] + (measured or [])
    lines += ["## Published device latencies beside measured ones", "",
              "The papers measured on their own devices (named in the table: phones, or a Jetson Nano); host figures are not expected to "
              "match, but the ORDER of the models should.", "",
              "| model | published ms | published on | " + " | ".join(labels) + " |",
              "|---|---:|---|" + "---:|" * len(labels)]
    for model in model_order:
        f = facts[model]
        cells = [fmt(grouped[label][model].stats.median_ms) if model in grouped[label] else "-" for label in labels]
        lines.append(f"| {model} | {fmt(f.published_latency_ms, '{:g}')} | {f.published_latency_device or '-'} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Plots: " + ", ".join(sorted(plots)), ""]
    return "\n".join(lines)
