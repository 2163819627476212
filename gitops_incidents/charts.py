"""The site's pictures, as inline SVG: charts with axes, labels and a legend, the
90-day strips of the home page, and the status badge. Pure: numbers in, markup out.

Colours are classes (`gi-sev-N`, the severity's place on the scale) that the site's
stylesheet sets for light and dark mode; axes and labels take the text's colour. Each
chart carries its numbers for screen readers in a table that only they read (the
page shows no second copy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Places on the severity scale that get a colour of their own; the rest share the last.
COLOURS = 5


def severity_class(rank: int | None) -> str:
    return f"gi-sev-{min(rank, COLOURS - 1)}" if rank is not None else "gi-sev-none"


@dataclass(frozen=True)
class Series:
    name: str  # a severity
    rank: int  # its place on the scale
    values: Sequence[float | None]  # one per label; None: nothing to show


def _ticks(top: float) -> list[float]:
    """Round steps from 0 to at least `top`: 0, 1, 2 ... or 0, 5, 10 ..."""
    if top <= 0:
        return [0, 1]
    raw = top / 4
    step = 10 ** math.floor(math.log10(raw))
    step = next(s * step for s in (1, 2, 5, 10) if s * step >= raw)
    return [step * n for n in range(math.ceil(top / step) + 1)]


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    unit: str,
    stacked: bool,
) -> Markup:
    """A bar chart (stacked: one bar a label, a segment a series) or a line chart (one
    line a series), with a y axis in `unit`, the labels along x and a legend."""
    if not series:
        empty = '<figure class="gi-figure"><figcaption>{}</figcaption><p>Nothing yet.</p></figure>'
        return Markup(empty).format(title)
    width, height, left, bottom, top_pad = 640, 260, 44, 40, 26
    plot_w, plot_h = width - left - 8, height - bottom - top_pad
    if stacked:
        totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    else:
        totals = [max((s.values[i] or 0 for s in series), default=0) for i in range(len(labels))]
    ticks = _ticks(max(totals, default=0))
    scale = plot_h / ticks[-1]
    slot = plot_w / max(len(labels), 1)

    def y(value: float) -> float:
        return round(top_pad + plot_h - value * scale, 1)

    parts = [
        f'<svg class="gi-chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMinYMin meet">'
    ]
    for tick in ticks:
        parts.append(
            f'<line class="gi-grid" x1="{left}" x2="{width - 8}" y1="{y(tick)}" y2="{y(tick)}"/>'
            f'<text class="gi-axis" x="{left - 6}" y="{y(tick) + 4}" text-anchor="end">'
            f"{_number(tick)}</text>"
        )
    every = max(1, math.ceil(len(labels) / 12))  # at most a dozen labels along x
    for index, label in enumerate(labels):
        if index % every == 0:
            parts.append(
                f'<text class="gi-axis" x="{round(left + slot * (index + 0.5), 1)}" '
                f'y="{height - bottom + 16}" text-anchor="middle">{escape(label)}</text>'
            )
    if stacked:
        bar = max(min(slot * 0.7, 48), 2)
        for index, label in enumerate(labels):
            base = 0.0
            x = round(left + slot * index + (slot - bar) / 2, 1)
            for one in series:
                value = one.values[index] or 0
                if value:
                    parts.append(
                        f'<rect class="{severity_class(one.rank)}" x="{x}" y="{y(base + value)}" '
                        f'width="{round(bar, 1)}" height="{round(value * scale, 1)}">'
                        f"<title>{escape(label)}: {_number(value)} {escape(one.name)}</title>"
                        "</rect>"
                    )
                    base += value
    else:
        for one in series:
            points = [
                (round(left + slot * (i + 0.5), 1), y(v), v)
                for i, v in enumerate(one.values)
                if v is not None
            ]
            if len(points) > 1:
                path = " ".join(f"{px},{py}" for px, py, _ in points)
                parts.append(f'<polyline class="{severity_class(one.rank)}" points="{path}"/>')
            for (px, py, value), label in zip(
                points, [labels[i] for i, v in enumerate(one.values) if v is not None], strict=True
            ):
                parts.append(
                    f'<circle class="{severity_class(one.rank)}" cx="{px}" cy="{py}" r="3.5">'
                    f"<title>{escape(label)}: {escape(one.name)} {_number(round(value, 1))} "
                    f"{escape(unit)}</title></circle>"
                )
    parts.append(
        f'<text class="gi-axis" x="4" y="{top_pad - 2}" text-anchor="start">{escape(unit)}</text>'
        f'<line class="gi-axis-line" x1="{left}" x2="{width - 8}" y1="{y(0)}" y2="{y(0)}"/>'
        "</svg>"
    )
    legend = "".join(
        f'<li><span class="gi-key {severity_class(s.rank)}"></span>{escape(s.name)}</li>'
        for s in series
    )
    return Markup(
        f'<figure class="gi-figure"><figcaption>{escape(title)}</figcaption>'
        f'{"".join(parts)}<ul class="gi-legend" aria-hidden="true">{legend}</ul>'
        f"{_table(title, labels, series, unit)}</figure>"
    )


def _table(title: str, labels: Sequence[str], series: Sequence[Series], unit: str) -> str:
    """The chart's numbers, for screen readers only."""
    head = "".join(f"<th>{escape(s.name)}</th>" for s in series)
    rows = "".join(
        f"<tr><th>{escape(label)}</th>"
        + "".join(
            f"<td>{'-' if s.values[i] is None else _number(round(s.values[i] or 0, 1))}</td>"
            for s in series
        )
        + "</tr>"
        for i, label in enumerate(labels)
    )
    # In a box of its own: a table's own box does not clip what it holds.
    return (
        f'<div class="gi-sr-only"><table><caption>{escape(title)} ({escape(unit)})</caption>'
        f"<thead><tr><th></th>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
    )


NAMED = 3  # incidents a strip's cell names; the rest are counted


@dataclass(frozen=True)
class Day:
    label: str  # 20 Nov 2026
    rank: int | None  # the worst severity's place that day; None: no incident
    incidents: Sequence[str]  # "#3 Database down (SEV-1)"


def strip(name: str, days: Sequence[Day]) -> Markup:
    """One cell a day, oldest first, coloured by that day's worst severity; a cell's
    tooltip names its incidents."""
    cell, gap = 8, 2
    width = len(days) * (cell + gap)
    cells = []
    for index, day in enumerate(days):
        said = "; ".join(day.incidents[:NAMED]) if day.incidents else "no incident"
        if len(day.incidents) > NAMED:
            said += f"; and {len(day.incidents) - NAMED} more"
        kind = severity_class(day.rank) if day.incidents else "gi-day-clear"
        cells.append(
            f'<rect class="{kind}" x="{index * (cell + gap)}" y="0" width="{cell}" height="24" '
            f'rx="1.5"><title>{escape(day.label)}: {escape(said)}</title></rect>'
        )
    bad = sum(1 for day in days if day.incidents)
    label = f"{name}: incidents on {bad} of the last {len(days)} days"
    return Markup(
        f'<svg class="gi-strip" viewBox="0 0 {width} 24" role="img" aria-label="{escape(label)}" '
        f'preserveAspectRatio="none">{"".join(cells)}</svg>'
    )


# Shields' colours, by the worst active severity's place; none active: green.
BADGE_COLOURS = ("#e05d44", "#fe7d37", "#dfb317", "#a4a61d", "#9f9f9f")
CLEAR = "#4c1"


def badge_colour(rank: int | None) -> str:
    return CLEAR if rank is None else BADGE_COLOURS[min(rank, len(BADGE_COLOURS) - 1)]


def badge(label: str, message: str, colour: str) -> bytes:
    """A flat badge in shields.io's style, for READMEs: `label | message`."""

    def width(text: str) -> int:
        return 10 + round(len(text) * 6.5)  # Verdana 11px, near enough

    left, right = width(label), width(message)
    total = left + right
    label_x, message_x = left / 2, left + right / 2
    text = escape(f"{label}: {message}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{text}"><title>{text}</title>'
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,sans-serif" '
        'font-size="11">'
        f'<text x="{label_x}" y="14">{escape(label)}</text>'
        f'<text x="{message_x}" y="14">{escape(message)}</text></g></svg>\n'
    ).encode()
