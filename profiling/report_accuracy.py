"""The report's measured-accuracy part: measured top-1 of the very artifacts measured, beside their latency.

A latency row and an accuracy row (``profiling accuracy``) describe the same artifact when their
``artifact_sha256`` is the same; the ``torch`` runtime measures the eager deploy form, which is
matched to the latest deploy-form accuracy row of the model. For each configuration the section
gives a table (median latency, measured top-1/top-5, agreement with the training form, the top-1
drop against it, and the paper's top-1 in its own column, labelled as published) and a plot of
measured top-1 against latency with the Pareto front. An int8 artifact that loses more than
:data:`INT8_DROP_FLAG` points of top-1 against the fp32 training form is flagged.
"""
from __future__ import annotations

from typing import Any, Callable

from profiling.report_plots import scatter_panels, wrap_title
from profiling.result import LatencyResult

INT8_DROP_FLAG = 1.0  # points of top-1 an int8 artifact may lose against fp32 before the report flags it


def match_accuracy(result: LatencyResult, rows: list[dict]) -> dict | None:
    """The latest accuracy row of the artifact ``result`` measured (or of the model's deploy form, for torch)."""
    if result.artifact_sha256:
        found = [r for r in rows if r["artifact_sha256"] == result.artifact_sha256]
    elif result.format == "torch":
        found = [r for r in rows if r["model"] == result.model and r["format"] == "torch" and r["form"] == "deploy"]
    else:
        found = []
    return max(found, key=lambda r: r["id"]) if found else None


def flagged(row: dict) -> bool:
    """An int8 artifact whose top-1 fell more than INT8_DROP_FLAG points below the fp32 training form's."""
    return row["precision"].startswith("int8") and row["top1_drop"] > INT8_DROP_FLAG


def joined(grouped: dict[str, dict[str, LatencyResult]], rows: list[dict]) -> dict[str, dict[str, tuple]]:
    """configuration -> model -> (latency result, accuracy row), where both exist."""
    table: dict[str, dict[str, tuple]] = {}
    for label, by_model in grouped.items():
        for model, result in by_model.items():
            row = match_accuracy(result, rows)
            if row is not None and result.stats.median_ms is not None:
                table.setdefault(label, {})[model] = (result, row)
    return table


def write_section(plt: Any, grouped: dict[str, dict[str, LatencyResult]], rows: list[dict],
                  published: Callable[[str], float | None], save: Callable[[Any, str], None], setting: str,
                  pareto: Callable[[list[tuple[str, float, float]]], list[tuple[str, float, float]]]) -> list[str]:
    """The markdown lines of the section; saves ``measured_top1_vs_latency.png`` through ``save``; ``pareto``
    is the report's front of ``(name, latency, accuracy)`` points."""
    lines = ["## Measured accuracy beside latency", ""]
    pairs = joined(grouped, rows)
    if not pairs:
        return lines + ["No measured artifact has an accuracy row (`python -m profiling accuracy MODEL --data DIR` "
                        "writes them into the same database).", ""]
    fronts, panels = {}, {}
    for label, by_model in pairs.items():
        points = [(m, result.stats.median_ms, row["top1"]) for m, (result, row) in by_model.items()]
        fronts[label] = pareto(points)
        panels[label] = [(latency, top1, m) for m, latency, top1 in points]
    save(scatter_panels(plt, panels, {label: label for label in panels}, "median latency (ms)",
                        "measured top-1 (%)",
                        wrap_title("Measured top-1 of the artifacts against their latency (dashed: Pareto front)",
                                   setting),
                        fronts={label: [(lat, acc) for _, lat, acc in front] for label, front in fronts.items()}),
         "measured_top1_vs_latency.png")
    lines += ["![measured top-1 vs latency](measured_top1_vs_latency.png)", "",
              "Measured on the images of `profiling accuracy` (dataset and count per row); *published top-1* is the "
              "paper's figure on the full ImageNet-1k validation set, not measured here. "
              f"**FLAG**: an int8 artifact more than {INT8_DROP_FLAG:g} point(s) of top-1 below the fp32 training form.",
              "", "| model | configuration | median ms | measured top-1 % | top-5 % | agreement % | top-1 drop | "
                  "images | dataset | weights | published top-1 % |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|"]
    flags = 0
    for label, by_model in pairs.items():
        for model, (result, row) in by_model.items():
            drop = f"{row['top1_drop']:+.2f}"
            if flagged(row):
                drop += " **FLAG**"
                flags += 1
            paper = published(model)
            weights = "random" if row["weights"] is None else str(row["weights"]).rsplit("/", 1)[-1]
            lines.append(f"| {model} | {label} | {result.stats.median_ms:.3f} | {row['top1']:.2f} | {row['top5']:.2f} "
                         f"| {row['agreement']:.2f} | {drop} | {row['images']} | {row['dataset']} | {weights} "
                         f"| {'-' if paper is None else f'{paper:g}'} |")
    lines += ["", "Pareto-optimal artifacts on measured top-1 (no other is both faster and more accurate):", ""]
    for label, front in fronts.items():
        lines.append(f"- {label}: " + ", ".join(f"{m} ({lat:.3f} ms, {acc:.2f}%)" for m, lat, acc in front))
    if flags:
        lines += ["", f"**{flags} int8 artifact(s) lose more than {INT8_DROP_FLAG:g} point(s) of top-1** against fp32."]
    return lines + [""]
