"""Inline SVG charts for the HTML evaluation report (no scripts, no external assets).

Every string that reaches the markup goes through `esc`; numbers through `as_float`, so a
malformed report degrades to an omitted mark instead of an exception.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

MAX_LABELLED_AXIS = 40
MAX_CELL_TITLES = 6000
SMALL_MATRIX = 15
BLUE = ((238, 244, 251), (31, 95, 168))
RED = ((253, 236, 234), (192, 57, 43))
INK = "#1f2933"
MUTED = "#6b7785"
GRID = "#e3e7ec"


def esc(value: object) -> str:
    """HTML-escape any value (quotes included), for text and attributes alike."""
    return html.escape(str(value), quote=True)


def as_float(value: object) -> float | None:
    """A finite float from an int/float, else None (bools and strings are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def fmt(value: object) -> str:
    """Three decimals for floats, thousands separators for ints, a dash for anything else."""
    number = as_float(value)
    if number is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{number:.3f}"


def pct(value: object) -> str:
    """A share as a percentage with one decimal, or a dash."""
    number = as_float(value)
    return "—" if number is None else f"{number:.1%}"


def mapping_of(value: object) -> Mapping[str, Any]:
    """The value if it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def rows_of(value: object) -> list[Mapping[str, Any]]:
    """The mappings in a list-like value (anything else is skipped)."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        return []
    return [row for row in value if isinstance(row, Mapping)]


def _n(value: float) -> str:
    """Compact coordinate: at most one decimal, no trailing zeros."""
    return f"{round(value, 1):g}"


def _shade(scale: tuple[tuple[int, int, int], tuple[int, int, int]], t: float) -> str:
    t = min(1.0, max(0.0, t))
    low, high = scale
    return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(low, high, strict=True))


def _clip(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _svg(width: float, height: float, body: list[str], title: str) -> str:
    return (
        f'<svg role="img" aria-label="{esc(title)}" '
        f'viewBox="0 0 {_n(width)} {_n(height)}" width="{_n(width)}" height="{_n(height)}" '
        f'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="11">'
        + "".join(body)
        + "</svg>"
    )


def _matrix(raw: object, size: int) -> list[list[int]]:
    rows: list[list[int]] = []
    source = raw if isinstance(raw, Sequence) and not isinstance(raw, str) else []
    for index in range(size):
        row = source[index] if index < len(source) else []
        cells = row if isinstance(row, Sequence) and not isinstance(row, str) else []
        values = [as_float(cells[j]) if j < len(cells) else None for j in range(size)]
        rows.append([max(0, int(v)) if v is not None else 0 for v in values])
    return rows


def confusion_svg(labels: Sequence[str], raw_matrix: object) -> tuple[str, str]:
    """Heatmap of counts (rows expected, columns predicted), shaded by share of the row.

    Returns (svg, note): only non-zero cells are drawn; the note says how to read it.
    """
    size = len(labels)
    if size == 0:
        return "", ""
    matrix = _matrix(raw_matrix, size)
    totals = [sum(row) for row in matrix]
    labelled = size <= MAX_LABELLED_AXIS
    cell = max(4.0, min(44.0, 640.0 / size))
    font = min(12.0, max(8.0, cell * 0.75))
    longest = max(len(_clip(label, 24)) for label in labels) if labelled else 0
    margin = (longest * font * 0.58 + 12) if labelled else 24.0
    left, top = margin + 22, margin + 22
    side = cell * size
    nonzero = sorted(
        ((matrix[i][j], i, j) for i in range(size) for j in range(size) if matrix[i][j]),
        reverse=True,
    )
    if not nonzero:
        return "", ""
    titled = {(i, j) for _, i, j in nonzero[:MAX_CELL_TITLES]}
    body = [
        f'<rect x="{_n(left)}" y="{_n(top)}" width="{_n(side)}" height="{_n(side)}" '
        f'fill="#f7f9fb" stroke="{GRID}"/>'
    ]
    if size <= SMALL_MATRIX:
        for k in range(1, size):
            offset = k * cell
            body.append(
                f'<path d="M{_n(left + offset)} {_n(top)}v{_n(side)}M{_n(left)} '
                f'{_n(top + offset)}h{_n(side)}" stroke="{GRID}"/>'
            )
    for count, i, j in nonzero:
        share = count / totals[i] if totals[i] else 0.0
        fill = _shade(BLUE, 0.15 + 0.85 * share) if i == j else _shade(RED, 0.2 + 0.8 * share**0.5)
        x, y = left + j * cell, top + i * cell
        rect = f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(cell)}" height="{_n(cell)}" fill="{fill}"'
        if (i, j) in titled:
            tip = f"{labels[i]} → {labels[j]}: {count} ({share:.0%} of {labels[i]})"
            rect += f"><title>{esc(tip)}</title></rect>"
        else:
            rect += "/>"
        body.append(rect)
        if size <= SMALL_MATRIX:
            colour = "#fff" if share > 0.55 else INK
            body.append(
                f'<text x="{_n(x + cell / 2)}" y="{_n(y + cell / 2 + 4)}" text-anchor="middle" '
                f'fill="{colour}" pointer-events="none">{count}</text>'
            )
    if labelled:
        for k, label in enumerate(labels):
            mid = k * cell + cell / 2
            short, full = esc(_clip(label, 24)), esc(label)
            body.append(
                f'<text x="{_n(left - 6)}" y="{_n(top + mid + font * 0.35)}" '
                f'font-size="{_n(font)}" text-anchor="end" '
                f'fill="{INK}"><title>{full}</title>{short}</text>'
            )
            body.append(
                f'<text transform="translate({_n(left + mid + font * 0.35)} {_n(top - 6)}) '
                f'rotate(-90)" '
                f'font-size="{_n(font)}" fill="{INK}"><title>{full}</title>{short}</text>'
            )
    body.append(
        f'<text x="{_n(left + side / 2)}" y="14" text-anchor="middle" font-weight="600" '
        f'fill="{MUTED}">Predicted</text>'
        f'<text transform="translate(14 {_n(top + side / 2)}) rotate(-90)" text-anchor="middle" '
        f'font-weight="600" fill="{MUTED}">Expected</text>'
    )
    note = "Blue: correct predictions; red: errors. Shade = share of the expected class's cases."
    if not labelled:
        note += f" {size} labels: axis labels are hidden; hover a cell for its labels and count."
    if len(nonzero) > MAX_CELL_TITLES:
        note += f" Hover details shown for the {MAX_CELL_TITLES} largest cells only."
    return _svg(left + side + 8, top + side + 8, body, "Confusion matrix"), note


def _axes(
    x0: float, y0: float, w: float, h: float, y_range: tuple[float, float], labels: tuple[str, str]
) -> list[str]:
    """Frame, grid and tick labels of a unit-x chart; y runs over y_range."""
    low, high = y_range
    parts = [f'<rect x="{_n(x0)}" y="{_n(y0)}" width="{_n(w)}" height="{_n(h)}" fill="#fbfcfd"/>']
    for k in range(6):
        gx = x0 + w * k / 5
        gy = y0 + h - h * k / 5
        y_value = low + (high - low) * k / 5
        parts.append(
            f'<path d="M{_n(gx)} {_n(y0)}v{_n(h)}M{_n(x0)} {_n(gy)}h{_n(w)}" stroke="{GRID}"/>'
            f'<text x="{_n(gx)}" y="{_n(y0 + h + 14)}" text-anchor="middle" '
            f'fill="{MUTED}">{k / 5:.1f}</text>'
            f'<text x="{_n(x0 - 6)}" y="{_n(gy + 4)}" text-anchor="end" '
            f'fill="{MUTED}">{y_value:.2f}</text>'
        )
    parts.append(
        f'<rect x="{_n(x0)}" y="{_n(y0)}" width="{_n(w)}" height="{_n(h)}" fill="none" '
        f'stroke="#c5ccd4"/>'
        f'<text x="{_n(x0 + w / 2)}" y="{_n(y0 + h + 30)}" text-anchor="middle" '
        f'fill="{INK}">{esc(labels[0])}</text>'
        f'<text transform="translate(14 {_n(y0 + h / 2)}) rotate(-90)" text-anchor="middle" '
        f'fill="{INK}">{esc(labels[1])}</text>'
    )
    return parts


def reliability_svg(bins: Sequence[Mapping[str, Any]]) -> str:
    """Accuracy per confidence bin against the diagonal, with bin counts as a histogram."""
    rows = rows_of(bins)
    if not rows:
        return ""
    x0, y0, w, h = 52.0, 12.0, 360.0, 230.0
    hist_top, hist_h = y0 + h + 44, 46.0
    body = _axes(x0, y0, w, h, (0.0, 1.0), ("Confidence", "Accuracy"))
    ticks: list[str] = []
    counts = [as_float(b.get("count")) or 0.0 for b in rows]
    most = max(counts) or 1.0
    for b, count in zip(rows, counts, strict=True):
        lower, upper = as_float(b.get("lower")), as_float(b.get("upper"))
        if lower is None or upper is None or upper <= lower:
            continue
        bx, bw = x0 + w * max(0.0, lower), w * (min(1.0, upper) - max(0.0, lower))
        accuracy, confidence = as_float(b.get("accuracy")), as_float(b.get("confidence"))
        tip = f"confidence {lower:.2f} to {upper:.2f}: {count:g} cases"
        if accuracy is not None and count > 0:
            tip += f", accuracy {accuracy:.3f}"
            if confidence is not None:
                tip += f", mean confidence {confidence:.3f}"
            top = y0 + h * (1 - accuracy)
            body.append(
                f'<rect x="{_n(bx + 0.5)}" y="{_n(top)}" width="{_n(max(bw - 1, 0.5))}" '
                f'height="{_n(y0 + h - top)}" fill="#4a84c4" fill-opacity="0.85">'
                f"<title>{esc(tip)}</title></rect>"
            )
            if confidence is not None:
                ticks.append(
                    f'<path d="M{_n(bx + 1)} {_n(y0 + h * (1 - confidence))}h{_n(bw - 2)}" '
                    f'stroke="#c0392b" stroke-width="2"/>'
                )
        bar = hist_h * count / most
        body.append(
            f'<rect x="{_n(bx + 0.5)}" y="{_n(hist_top + hist_h - bar)}" '
            f'width="{_n(max(bw - 1, 0.5))}" height="{_n(bar)}" fill="#9aa7b4">'
            f"<title>{esc(tip)}</title></rect>"
        )
    body.append(
        f'<path d="M{_n(x0)} {_n(y0 + h)}L{_n(x0 + w)} {_n(y0)}" stroke="#5b6673" '
        f'stroke-dasharray="4 3"/>'
    )
    body.extend(ticks)
    body.append(
        f'<path d="M{_n(x0)} {_n(hist_top + hist_h)}h{_n(w)}" stroke="#c5ccd4"/>'
        f'<text x="{_n(x0 - 6)}" y="{_n(hist_top + 10)}" text-anchor="end" '
        f'fill="{MUTED}">{most:g}</text>'
        f'<text x="{_n(x0 + w)}" y="{_n(hist_top - 4)}" text-anchor="end" '
        f'fill="{MUTED}">cases per bin</text>'
    )
    return _svg(x0 + w + 16, hist_top + hist_h + 8, body, "Reliability diagram")


def _point_at(
    points: Sequence[tuple[float, float, float]], threshold: float
) -> tuple[float, float, float] | None:
    """The curve point whose threshold is closest to the review threshold."""
    if not points:
        return None
    return min(points, key=lambda p: abs(p[0] - threshold))


def coverage_svg(
    curve: Sequence[Mapping[str, Any]], review_threshold: float | None
) -> tuple[str, str]:
    """Accuracy on answered cases against coverage; marks the review threshold.

    Returns (svg, caption).
    """
    points: list[tuple[float, float, float]] = []
    for row in rows_of(curve):
        t, c, a = (as_float(row.get(k)) for k in ("threshold", "coverage", "accuracy"))
        if t is not None and c is not None and a is not None:
            points.append((t, min(1.0, max(0.0, c)), min(1.0, max(0.0, a))))
    if not points:
        return "", ""
    points.sort(key=lambda p: (p[1], -p[0]))
    lowest = min(p[2] for p in points) - 0.01
    low = max(b for b in (0.0, 0.5, 0.75, 0.9, 0.95) if b <= max(lowest, 0.0))
    x0, y0, w, h = 52.0, 12.0, 360.0, 230.0
    body = _axes(x0, y0, w, h, (low, 1.0), ("Coverage (share answered automatically)", "Accuracy"))

    def xy(point: tuple[float, float, float]) -> tuple[float, float]:
        return x0 + w * point[1], y0 + h * (1 - (point[2] - low) / (1.0 - low))

    path = " ".join(f"{_n(px)},{_n(py)}" for px, py in map(xy, points))
    body.append(f'<polyline points="{path}" fill="none" stroke="#1f5fa8" stroke-width="2"/>')
    if len(points) <= 80:
        for point in points:
            px, py = xy(point)
            tip = f"threshold {point[0]:.3f}: coverage {point[1]:.1%}, accuracy {point[2]:.1%}"
            body.append(
                f'<circle cx="{_n(px)}" cy="{_n(py)}" r="2.5" fill="#1f5fa8">'
                f"<title>{esc(tip)}</title></circle>"
            )
    caption = ""
    marked = _point_at(points, review_threshold) if review_threshold is not None else None
    if marked is not None and review_threshold is not None:
        px, py = xy(marked)
        caption = (
            f"At the review threshold {review_threshold:.3f}, {marked[1]:.1%} of cases are "
            f"answered automatically with {marked[2]:.1%} accuracy; the rest go to review."
        )
        anchor = "end" if px > x0 + w * 0.6 else "start"
        dx = -8 if anchor == "end" else 8
        body.append(
            f'<path d="M{_n(px)} {_n(y0)}V{_n(y0 + h)}" stroke="#d9822b" '
            f'stroke-dasharray="4 3"/>'
            f'<circle cx="{_n(px)}" cy="{_n(py)}" r="5.5" fill="#d9822b" stroke="#fff" '
            f'stroke-width="1.5"><title>{esc(caption)}</title></circle>'
            f'<text x="{_n(px + dx)}" y="{_n(y0 + h - 10)}" text-anchor="{anchor}" '
            f'fill="#a35f17" font-weight="600">review threshold {review_threshold:.2f}</text>'
        )
    return _svg(x0 + w + 16, y0 + h + 40, body, "Coverage and accuracy curve"), caption
