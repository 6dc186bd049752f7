"""The report of one sweep run: a grid (model x target), per-device Pareto plots, FLOPs-vs-latency per device.

Built from the store only (the run's measurements and its ``jobs`` rows), with the pieces of
:mod:`profiling.report`: ``pareto_front``, ``correlations`` (Spearman of latency against GMACs and
parameters), ``model_facts`` (published top-1), the scatter panels and the atomic writes.

- ``sweep.md``: the grid, one row per model, one column per target; a cell is the fastest stored
  median over the formats, precisions and thread counts measured there, with that configuration,
  or the jobs' state when none is done (``failed``, ``not run``, ``pending``); then the Spearman
  correlation of latency with GMACs (and parameters) per device, and the failures with their reasons.
- ``pareto_per_device.png``: published top-1 against the fastest median per model, one panel per
  device, Pareto front dashed.
- ``latency_vs_gmacs_per_device.png``: the fastest median against GMACs, one panel per device.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from mobilelat.paths import output_dir
from profiling.errors import UsageError
from profiling.report import (_write_atomic, correlations, fmt, macs_of, model_facts, pareto_front)
from profiling.report_plots import scatter_panels
from profiling.result import LatencyResult
from profiling.store import Store


def target_of(result: LatencyResult) -> str:
    """The sweep target a result was measured on (the last field of its job key)."""
    return result.extra.get("sweep", {}).get("job", "|host").rsplit("|", 1)[-1]


def device_label(target: str, results: list[LatencyResult]) -> str:
    names = sorted({r.device.name for r in results})
    return f"{target} ({', '.join(names)})" if names else target


def configuration(result: LatencyResult) -> str:
    return f"{result.format} {result.precision} {result.threads}t"


def fastest(results: list[LatencyResult]) -> dict[str, dict[str, LatencyResult]]:
    """target -> model -> the result with the lowest median there."""
    grid: dict[str, dict[str, LatencyResult]] = defaultdict(dict)
    for result in results:
        if result.stats.median_ms is None:
            continue
        cell = grid[target_of(result)]
        best = cell.get(result.model)
        if best is None or result.stats.median_ms < best.stats.median_ms:
            cell[result.model] = result
    return dict(grid)


def build_sweep_report(store: Store, run_id: str, out_dir: str | Path) -> Path:
    """Write ``sweep.md`` and its plots for ``run_id`` into ``out_dir``; returns the markdown path."""
    jobs = store.jobs(run_id)
    if not jobs or "sweep" not in jobs[0]["spec"]:
        raise UsageError(f"run {run_id} is not a `profiling sweep` run; `python -m profiling report` reports any run")
    results = store.query(run_id=run_id)
    spec = jobs[0]["spec"]["sweep"]
    models = list(dict.fromkeys(spec["models"]))
    targets = list(dict.fromkeys(spec["targets"]))
    grid = fastest(results)
    by_target = defaultdict(list)
    for result in results:
        by_target[target_of(result)].append(result)
    labels = {target: device_label(target, by_target[target]) for target in targets}
    facts = {m: model_facts(m) for m in models}
    states: dict[tuple[str, str], list[str]] = defaultdict(list)
    for job in jobs:
        model, target = job["spec"]["job"]["export"]["model"], job["spec"]["job"]["target"]
        states[(model, target)].append(job["status"])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with output_dir(out_dir) as out_dir:
        def save(figure, name: str) -> None:
            _write_atomic(out_dir / name, lambda tmp: figure.savefig(tmp, dpi=110, format="png", bbox_inches="tight"))
            plt.close(figure)

        rho = {row[0]: row for row in correlations({labels[t]: grid.get(t, {}) for t in targets}, facts)}
        panels = {labels[t]: [(macs_of(r, facts[m]), r.stats.median_ms, m) for m, r in grid.get(t, {}).items()
                              if macs_of(r, facts[m]) is not None] for t in targets}
        titles = {label: (f"{label}: Spearman {rho[label][2]:+.2f}" if rho[label][2] is not None
                          else f"{label}: too few models to rank") for label in panels}
        save(scatter_panels(plt, panels, titles, "GMACs", "fastest median latency (ms)",
                            f"Sweep {run_id}: latency against GMACs per device"), "latency_vs_gmacs_per_device.png")
        pareto, fronts = {}, {}
        for target in targets:
            points = [(m, r.stats.median_ms, facts[m].top1) for m, r in grid.get(target, {}).items() if facts[m].top1]
            if points:
                pareto[labels[target]] = [(latency, top1, m) for m, latency, top1 in points]
                fronts[labels[target]] = [(latency, top1) for _, latency, top1 in pareto_front(points)]
        save(scatter_panels(plt, pareto, {label: label for label in pareto}, "fastest median latency (ms)",
                            "published ImageNet-1k top-1 (%)", f"Sweep {run_id}: Pareto front per device (dashed)",
                            fronts=fronts), "pareto_per_device.png")

        lines = [f"# Sweep {run_id}", "",
                 f"{len(results)} measurement(s) of {len(jobs)} job(s); grid: {', '.join(spec['formats'])} x "
                 f"{', '.join(spec['precisions'])} x threads {', '.join(map(str, spec['threads']))}. "
                 "A cell is the fastest median (ms) over the configurations measured there.", "",
                 "| model | " + " | ".join(labels[t] for t in targets) + " |",
                 "|---|" + "---:|" * len(targets)]
        for model in models:
            cells = []
            for target in targets:
                best = grid.get(target, {}).get(model)
                if best is not None:
                    cells.append(f"{fmt(best.stats.median_ms)} ({configuration(best)})")
                else:
                    cells.append(", ".join(sorted(set(states.get((model, target), ["not planned"])))).replace("_", " "))
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines += ["", "## FLOPs against latency per device", "",
                  "Spearman rank correlation of the fastest median with GMACs (and parameters) over the models.", "",
                  "| device | models | Spearman latency~GMACs | Spearman latency~params |", "|---|---:|---:|---:|"]
        for target in targets:
            label = labels[target]
            _, count, rho_macs, rho_params = rho[label]
            lines.append(f"| {label} | {count} | {fmt(rho_macs, '{:+.2f}')} | {fmt(rho_params, '{:+.2f}')} |")
        lines += ["", "![latency against GMACs per device](latency_vs_gmacs_per_device.png)", "",
                  "![Pareto front per device](pareto_per_device.png)", ""]
        failed = [job for job in jobs if job["status"] != "done"]
        if failed:
            lines += ["## Jobs not done", "", "| job | status | reason |", "|---|---|---|"]
            lines += [f"| {job['job_key']} | {job['status']} | {job['detail'].splitlines()[0] if job['detail'] else ''} |"
                      .replace("\n", " ") for job in failed]
            lines.append("")
        path = out_dir / "sweep.md"
        _write_atomic(path, lambda tmp: tmp.write_text("\n".join(lines)))
        return path
