"""The report's figures, drawn from plain data: bars per model, and scatter panels per configuration.

Every figure says where it was measured (device and runtime versions in its title), keeps its
text at a readable size and inside the saved image (``bbox_inches="tight"``, legends beside the
plot), labels points with the non-overlapping placer (``profiling.plot_labels``), and switches an
axis to a log scale when its values span more than :data:`LOG_SPAN` (one slow model would
otherwise flatten every other bar or point into the floor).

``plt`` is ``matplotlib.pyplot``, imported by the caller (lazily, so commands that draw nothing
do not pay for it).
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from profiling.plot_labels import place_labels

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LOG_SPAN = 20.0  # an axis whose positive values span more than this factor is drawn in log scale
TITLE_SIZE = 10  # points
TEXT_SIZE = 8.5  # axis labels, ticks, legends
TITLE_WIDTH = 90  # characters per title line


def wants_log(values: Sequence[float | None]) -> bool:
    """Whether one value would flatten the others on a linear axis (they span more than LOG_SPAN)."""
    positive = [v for v in values if v is not None and v > 0]
    return len(positive) >= 2 and max(positive) / min(positive) > LOG_SPAN


def wrap_title(*lines: str) -> str:
    return "\n".join(textwrap.fill(line, TITLE_WIDTH) for line in lines if line)


def latency_bars(plt: Any, series: dict[str, dict[str, tuple[float, float, float]]], model_order: list[str],
                 title: str) -> Figure:
    """Median latency per model, one bar per configuration; ``series``: label -> model -> (min, median, p90) ms."""
    labels = list(series)
    width_in = min(20.0, max(7.0, 2.5 + 0.45 * len(model_order) * max(1.0, len(labels) ** 0.5)))
    figure, axis = plt.subplots(figsize=(width_in, 5.0))
    width = 0.8 / max(1, len(labels))
    medians_all = []
    for index, label in enumerate(labels):
        xs, medians, low, high = [], [], [], []
        for position, model in enumerate(model_order):
            if model not in series[label]:
                continue
            minimum, median, p90 = series[label][model]
            xs.append(position - 0.4 + width * (index + 0.5))
            medians.append(median)
            low.append(median - minimum)
            high.append(p90 - median)
        medians_all += medians
        axis.bar(xs, medians, width=width, label=label, yerr=[low, high], capsize=2, error_kw={"lw": 0.8})
    log = wants_log(medians_all)
    if log:
        axis.set_yscale("log")
    axis.set_xticks(range(len(model_order)), model_order, rotation=35, ha="right", fontsize=TEXT_SIZE)
    axis.tick_params(axis="y", labelsize=TEXT_SIZE)
    axis.set_ylabel("median latency (ms" + (", log scale" if log else "") + "); whiskers min..p90", fontsize=TEXT_SIZE)
    axis.set_title(title, fontsize=TITLE_SIZE)
    axis.grid(axis="y", alpha=0.3, which="both" if log else "major")
    axis.legend(fontsize=TEXT_SIZE, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="configuration",
                title_fontsize=TEXT_SIZE)
    figure.tight_layout()
    return figure


def scatter_panels(plt: Any, panels: dict[str, list[tuple[float, float, str]]], panel_titles: dict[str, str],
                   xlabel: str, ylabel: str, title: str,
                   fronts: dict[str, list[tuple[float, float]]] | None = None) -> Figure:
    """One panel per configuration (shared axes), each point labelled with its model; ``fronts``: a
    dashed line per panel (a Pareto front)."""
    names = [name for name, points in panels.items() if points]
    columns = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 4.3 * rows + 0.6), squeeze=False,
                                sharex=True, sharey=True)
    xs = [x for name in names for x, _, _ in panels[name]]
    ys = [y for name in names for _, y, _ in panels[name]]
    log_x, log_y = wants_log(xs), wants_log(ys)
    flat = [axis for row in axes for axis in row]
    for axis, name in zip(flat, names):
        points = panels[name]
        axis.scatter([p[0] for p in points], [p[1] for p in points], s=22, zorder=3)
        if fronts and fronts.get(name):
            front = fronts[name]
            axis.plot([p[0] for p in front], [p[1] for p in front], linestyle="--", lw=1, color="C1", zorder=2)
        axis.set_title(panel_titles.get(name, name), fontsize=TEXT_SIZE + 0.5)
        axis.grid(alpha=0.3, which="both")
        axis.tick_params(labelsize=TEXT_SIZE)
        axis.margins(0.12)  # room for the labels of the outermost points
    for axis in flat[len(names):]:
        axis.set_visible(False)
    if not names:
        flat[0].set_visible(True)
        flat[0].text(0.5, 0.5, "nothing to plot", ha="center", transform=flat[0].transAxes, fontsize=TEXT_SIZE)
    if log_x:
        flat[0].set_xscale("log")
    if log_y:
        flat[0].set_yscale("log")
    for axis in axes[-1]:
        axis.set_xlabel(xlabel + (", log scale" if log_x else ""), fontsize=TEXT_SIZE)
    for row in axes:
        row[0].set_ylabel(ylabel + (", log scale" if log_y else ""), fontsize=TEXT_SIZE)
    figure.suptitle(title, fontsize=TITLE_SIZE)
    figure.tight_layout()
    for axis, name in zip(flat, names):
        place_labels(axis, panels[name])
    return figure
