"""Point labels that neither overlap each other nor leave the plot: a small greedy placer.

Each label tries offsets around its point, nearest first (sixteen directions at growing
distances), and takes the first spot whose text box stays inside the axes and touches no label
placed before it and no other point's marker; a label pushed beyond the nearest ring gets a thin
leader line to its point. Crowded points choose first. When no spot is free the least-overlapping
one is used, so every point keeps its label.

Positions are computed in display pixels, so the figure's layout (sizes, scales, limits,
``tight_layout``) must be final before :func:`place_labels` is called. matplotlib is imported by
whoever draws (the report, lazily), not here: boxes are ``(x0, y0, x1, y1)`` tuples.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib is the caller's; importing it costs every profiling command time
    from matplotlib.axes import Axes
    from matplotlib.text import Annotation

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in display pixels

LABEL_FONT_SIZE = 8  # points: readable at the reports' 110 dpi
MARKER_RADIUS_PX = 4.0  # the part of a point's marker a label must not cover
RADII_PT = (3, 7, 12, 18, 26, 36, 48, 62, 78, 96, 120, 150, 190, 240)  # offset rings, nearest first
# directions in degrees, the diagonals first (a label beside its point reads best), then the rest of 16
ANGLES_DEG = (45, -45, 135, -135, 0, 180, 90, -90, 22.5, -22.5, 157.5, -157.5, 67.5, -67.5, 112.5, -112.5)


def _alignment(dx: float, dy: float) -> tuple[str, str]:
    """Anchor the text on the side facing its point, so it grows away from it."""
    horizontal = "left" if dx > 0.3 else "right" if dx < -0.3 else "center"
    vertical = "bottom" if dy > 0.3 else "top" if dy < -0.3 else "center"
    return horizontal, vertical


def _box(extent: object, pad: float = 0.0) -> Box:
    """A matplotlib ``Bbox`` as a tuple, grown by ``pad`` pixels on every side."""
    return extent.x0 - pad, extent.y0 - pad, extent.x1 + pad, extent.y1 + pad


def overlap(a: Box, b: Box) -> float:
    """Area (square pixels) two boxes share."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return width * height if width > 0 and height > 0 else 0.0


def outside(box: Box, area: Box) -> float:
    """How far (pixels, summed over sides) ``box`` sticks out of ``area``."""
    return (max(0.0, area[0] - box[0]) + max(0.0, box[2] - area[2])
            + max(0.0, area[1] - box[1]) + max(0.0, box[3] - area[3]))


def place_labels(axis: Axes, points: Sequence[tuple[float, float, str]],
                 fontsize: float = LABEL_FONT_SIZE) -> list[Annotation]:
    """Label each ``(x, y, text)`` point of ``axis`` without overlaps; returns the annotations made."""
    if not points:
        return []
    figure = axis.figure
    figure.canvas.draw()  # fixes scales, limits and layout, and gives the text renderer
    renderer = figure.canvas.get_renderer()
    area = _box(axis.get_window_extent(renderer), pad=-2)
    pixels = axis.transData.transform([(x, y) for x, y, _ in points])
    markers = [(px - MARKER_RADIUS_PX, py - MARKER_RADIUS_PX, px + MARKER_RADIUS_PX, py + MARKER_RADIUS_PX)
               for px, py in pixels]

    def crowding(index: int) -> int:
        px, py = pixels[index]
        return sum(abs(px - qx) < 40 and abs(py - qy) < 15 for qx, qy in pixels)

    placed: list[Box] = []
    made: list[Annotation] = []
    probe = axis.annotate("", (0, 0), xytext=(0, 0), textcoords="offset points", fontsize=fontsize)
    for index in sorted(range(len(points)), key=lambda i: (-crowding(i), pixels[i][0])):
        x, y, text = points[index]
        probe.set_text(text)
        probe.xy = (x, y)
        best = None  # (cost, radius, offset, alignment)
        for radius in RADII_PT:
            for angle in ANGLES_DEG:
                dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
                offset = (dx * radius, dy * radius)
                alignment = _alignment(dx, dy)
                probe.xyann = offset
                probe.set_ha(alignment[0])
                probe.set_va(alignment[1])
                box = _box(probe.get_window_extent(renderer), pad=1)
                cost = (outside(box, area) * 100 + sum(overlap(box, other) for other in placed)
                        + sum(overlap(box, marker) for marker in markers))
                if best is None or cost < best[0]:
                    best = (cost, radius, offset, alignment, box)
                if cost == 0:
                    break
            if best[0] == 0:
                break
        _, radius, offset, (horizontal, vertical), box = best
        leader = {"arrowprops": {"arrowstyle": "-", "lw": 0.5, "color": "0.45", "shrinkA": 0, "shrinkB": 3}} \
            if radius > RADII_PT[1] else {}
        made.append(axis.annotate(text, (x, y), xytext=offset, textcoords="offset points", ha=horizontal,
                                  va=vertical, fontsize=fontsize, **leader))
        placed.append(box)
    probe.remove()
    return made


def label_boxes(annotations: Sequence[Annotation]) -> list[Box]:
    """The text boxes of placed labels (their leader lines left out), in display pixels, for checks."""
    if not annotations:
        return []
    renderer = annotations[0].figure.canvas.get_renderer()
    boxes = []
    for annotation in annotations:
        # Annotation.get_window_extent adds the leader line; the Text it derives from measures the text
        # alone, once the annotation has put the text where its offset says
        annotation.update_positions(renderer)
        boxes.append(_box(super(type(annotation), annotation).get_window_extent(renderer)))
    return boxes
