"""Markdown + PNG reports from stored measurements: where FLOPs mislead, and what the papers said.

Reports know measurements only through the store (``LatencyResult`` rows). For each runtime
configuration (runtime, format, precision, threads, compute unit, device) the latest measurement
of each model is kept, and the report shows:

- ``latency_by_model.png``  median latency per model and configuration (whiskers: min to p90);
- ``latency_vs_gmacs.png``, ``latency_vs_params.png``  with the Spearman rank correlation per
  configuration (how well MACs or parameters order the models by real latency here);
- ``top1_vs_latency.png``  published ImageNet top-1 against measured latency, Pareto front drawn;
- a table of the papers' device latencies (``ModelSpec.published_latency_ms``) beside ours.

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
from profiling.errors import UsageError
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


def fmt(value: float | int | None, pattern: str = "{:.3f}") -> str:
    """A table cell: ``value`` formatted with ``pattern``, ``-`` when it is missing or NaN."""
    return "-" if value is None or value != value else pattern.format(value)


def build_report(results: list[LatencyResult], out_dir: str | Path, title: str = "mobilelat latency report",
                 source: str = "") -> Path:
    """Write ``report.md`` and its PNG plots into ``out_dir``; returns the markdown path."""
    if not results:
        raise UsageError("no measurements to report; run `python -m profiling run MODEL` first or widen the filters")
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    grouped = latest_per_configuration(results)
    if not grouped:
        raise UsageError("none of the selected measurements has a median latency to report")
    model_order = list(dict.fromkeys(r.model for r in results))
    facts = {m: model_facts(m) for m in model_order}
    labels = sorted(grouped)
    plots = {}

    def save(figure, name: str) -> None:
        figure.tight_layout()
        _write_atomic(out_dir / name, lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
        plt.close(figure)
        plots[name] = out_dir / name

    # 1. latency per model and configuration
    figure, axis = plt.subplots(figsize=(max(6, 1.0 + 0.9 * len(model_order) * max(1, len(labels)) ** 0.5), 4.5))
    width = 0.8 / len(labels)
    for index, label in enumerate(labels):
        xs, medians, low, high = [], [], [], []
        for position, model in enumerate(model_order):
            result = grouped[label].get(model)
            if result is None:
                continue
            stats = result.stats
            xs.append(position - 0.4 + width * (index + 0.5))
            medians.append(stats.median_ms)
            low.append(stats.median_ms - (stats.min_ms if stats.min_ms is not None else stats.median_ms))
            high.append((stats.p90_ms if stats.p90_ms is not None else stats.median_ms) - stats.median_ms)
        axis.bar(xs, medians, width=width, label=label, yerr=[low, high], capsize=2)
    axis.set_xticks(range(len(model_order)), model_order, rotation=30, ha="right")
    axis.set_ylabel("median latency (ms); whiskers min..p90")
    axis.set_title("Latency per model and runtime")
    axis.legend(fontsize="small")
    save(figure, "latency_by_model.png")

    # 2-3. latency against GMACs and against parameters
    rho_rows = correlations(grouped, facts)
    rho_by_label = {row[0]: row for row in rho_rows}
    for name, getter, xlabel, rho_index in (("latency_vs_gmacs.png", macs_of, "GMACs", 2),
                                            ("latency_vs_params.png", params_of, "parameters (M)", 3)):
        figure, axis = plt.subplots(figsize=(6.5, 4.5))
        for label in labels:
            points = [(getter(r, facts[m]), r.stats.median_ms, m) for m, r in grouped[label].items()]
            points = [p for p in points if p[0] is not None]
            if not points:
                continue
            rho = rho_by_label[label][rho_index]
            axis.scatter([p[0] for p in points], [p[1] for p in points],
                         label=f"{label} (Spearman {fmt(rho, '{:+.2f}')})")
            for x, y, model in points:
                axis.annotate(model, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
        axis.set_xlabel(xlabel)
        axis.set_ylabel("median latency (ms)")
        axis.set_title(f"Latency against {xlabel}")
        axis.legend(fontsize="small")
        save(figure, name)

    # 4. published accuracy against measured latency, with the Pareto front
    fronts = {}
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for label in labels:
        points = [(m, r.stats.median_ms, facts[m].top1) for m, r in grouped[label].items() if facts[m].top1]
        if not points:
            continue
        front = pareto_front(points)
        fronts[label] = front
        scatter = axis.scatter([p[1] for p in points], [p[2] for p in points], label=label)
        axis.plot([p[1] for p in front], [p[2] for p in front], linestyle="--", color=scatter.get_facecolor()[0])
        for model, x, y in points:
            axis.annotate(model, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    axis.set_xlabel("median latency (ms)")
    axis.set_ylabel("published ImageNet-1k top-1 (%)")
    axis.set_title("Accuracy against latency (dashed: Pareto front)")
    if fronts:
        axis.legend(fontsize="small")
    else:
        axis.text(0.5, 0.5, "no model with a published top-1", ha="center", transform=axis.transAxes)
    save(figure, "top1_vs_latency.png")

    markdown = _markdown(title, source, results, grouped, labels, model_order, facts, rho_rows, fronts, plots)
    report_path = out_dir / "report.md"
    _write_atomic(report_path, lambda tmp: tmp.write_text(markdown))
    return report_path


def _markdown(title: str, source: str, results: list[LatencyResult], grouped: dict[str, dict[str, LatencyResult]],
              labels: list[str], model_order: list[str], facts: dict[str, ModelFacts],
              rho_rows: list[tuple[str, int, float | None, float | None]],
              fronts: dict[str, list[tuple[str, float, float]]], plots: dict[str, Path]) -> str:
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
              "- headline figure: median of every timed iteration; trimmed = mean of per-round 10%-trimmed means", ""]

    lines += ["## Latency per model and runtime", "", "![latency per model](latency_by_model.png)", "",
              "| model | configuration | median ms | trimmed ms | p90 ms | cv | runs | stable |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    for model in model_order:
        for label in labels:
            result = grouped[label].get(model)
            if result is None:
                continue
            s = result.stats
            stable = "UNSTABLE: " + "; ".join(s.unstable_reasons) if s.unstable else "yes"
            lines.append(f"| {model} | {label} | {fmt(s.median_ms)} | {fmt(s.trimmed_mean_ms)} | "
                         f"{fmt(s.p90_ms)} | {fmt(s.cv)} | {s.count} | {stable} |")

    lines += ["", "## Do MACs or parameters predict latency here?", "",
              "Spearman rank correlation between median latency and GMACs / parameters, per configuration "
              "(1 = the FLOP ranking is the latency ranking; needs at least "
              f"{MIN_MODELS_FOR_SPEARMAN} models).", "",
              "| configuration | models | Spearman vs GMACs | Spearman vs params |", "|---|---:|---:|---:|"]
    for label, count, rho_macs, rho_params in rho_rows:
        lines.append(f"| {label} | {count} | {fmt(rho_macs, '{:+.3f}')} | {fmt(rho_params, '{:+.3f}')} |")
    lines += ["", "![latency vs GMACs](latency_vs_gmacs.png) ![latency vs params](latency_vs_params.png)", ""]

    lines += ["## Accuracy against latency", "", "![top-1 vs latency](top1_vs_latency.png)", ""]
    if fronts:
        lines += ["Pareto-optimal models (no other model is both faster and more accurate):", ""]
        for label, front in fronts.items():
            lines.append(f"- {label}: " + ", ".join(f"{m} ({lat:.3f} ms, {acc:.1f}%)" for m, lat, acc in front))
    else:
        lines.append("No measured model has a published top-1 in the registry.")

    lines += ["", "## Published device latencies beside measured ones", "",
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
