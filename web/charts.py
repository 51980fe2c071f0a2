"""Charts drawn on the server as inline SVG (no JavaScript). Pure functions."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape

DEFAULT_COLORS = ("#16a34a", "#dc2626", "#d97706", "#64748b", "#2563eb", "#9333ea")
# the report's donut, by status label (scanner.report.STATUS_LABELS): "Not checked" has a
# colour of its own, never the error grey
STATUS_COLORS = {
    "Available": "#16a34a",
    "Removed": "#dc2626",
    "Out of stock": "#d97706",
    "Error": "#64748b",
    "Not checked": "#a78bfa",
}
_EMPTY = "#e8ecf4"


def _color(colors: Mapping[str, str] | Sequence[str], label: str, n: int) -> str:
    if isinstance(colors, Mapping):
        return colors.get(label, DEFAULT_COLORS[n % len(DEFAULT_COLORS)])
    if colors:
        return colors[n % len(colors)]
    return DEFAULT_COLORS[n % len(DEFAULT_COLORS)]


def percent(part: int, whole: int) -> str:
    """``42.5 %`` (one decimal), ``0 %`` when there is nothing."""
    if whole <= 0:
        return "0 %"
    return f"{100 * part / whole:.1f} %"


def legend_line(label: str, count: int, total: int) -> str:
    """``Available: 100 (61.7 %)``: a label with its count and share."""
    return f"{label}: {count} ({percent(count, total)})"


def donut(
    counts: Mapping[str, int],
    colors: Mapping[str, str] | Sequence[str] = DEFAULT_COLORS,
    *,
    title: str = "Products by status",
    units: tuple[str, str] = ("product", "products"),
    legend: Callable[[str, int, int], str] = legend_line,
    number: Callable[[int], str] = str,
) -> str:
    """A donut chart of ``counts`` (label → count, drawn in that order) as SVG markup, with a
    legend giving each label's count and percentage. ``colors`` maps labels to CSS colours, or
    lists them in the order of ``counts``. ``units`` names the total (one, many). ``legend``
    writes a label's line from (label, count, total) and ``number`` the total, so that a page
    can say them in its language. Labels are escaped."""
    total = sum(max(0, v) for v in counts.values())
    size, cx, cy, r, width = 390, 80.0, 80.0, 60.0, 24.0  # room for the longest legend
    circumference = 2 * math.pi * r
    parts = [
        f'<svg class="donut" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} 160" '
        f'width="{size}" height="160" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<circle cx="{cx}" cy="{cy}" r="{r}" fill="none" stroke="{_EMPTY}" '
        f'stroke-width="{width}"/>',
    ]
    offset = 0.0
    for n, (label, count) in enumerate(counts.items()):
        if count <= 0 or total == 0:
            continue
        length = circumference * count / total
        parts.append(
            f'<circle class="segment" cx="{cx}" cy="{cy}" r="{r}" fill="none" '
            f'stroke="{escape(_color(colors, label, n))}" stroke-width="{width}" '
            f'stroke-dasharray="{length:.3f} {circumference - length:.3f}" '
            f'stroke-dashoffset="{-offset:.3f}" transform="rotate(-90 {cx} {cy})">'
            f"<title>{escape(legend(label, count, total))}</title></circle>"
        )
        offset += length
    parts.append(
        f'<text x="{cx}" y="{cy - 2}" text-anchor="middle" font-size="22" font-weight="600">'
        f"{escape(number(total))}</text>"
        f'<text x="{cx}" y="{cy + 16}" text-anchor="middle" font-size="11" fill="#6b7385">'
        f"{escape(units[0] if total == 1 else units[1])}</text>"
    )
    y = 80 - 12 * len(counts) + 12
    for n, (label, count) in enumerate(counts.items()):
        parts.append(
            f'<g class="legend"><rect x="180" y="{y - 10}" width="12" height="12" rx="2" '
            f'fill="{escape(_color(colors, label, n))}"/>'
            f'<text x="198" y="{y}" font-size="13">{escape(legend(label, count, total))}'
            "</text></g>"
        )
        y += 24
    parts.append("</svg>")
    return "".join(parts)
