"""The store's quality histogram as inline SVG: bars of articles per band of quality. Inline, so
it needs no script, no image request and nothing from elsewhere."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.panel.html import Markup

BAND = 20  # quality points per bar
WIDTH, HEIGHT = 320, 140
AXIS = 20  # room below the bars for the labels


@dataclass(frozen=True, slots=True)
class Band:
    low: int  # the band holds low <= quality < low + BAND (the last: everything above)
    count: int

    def label(self, last: bool) -> str:
        return f"{self.low}+" if last else f"{self.low}-{self.low + BAND - 1}"


def bands(qualities: Iterable[float], top: int = 200) -> list[Band]:
    """Articles counted per band of `BAND` points from 0 to `top` (beyond it: the last)."""
    counts = [0] * (top // BAND + 1)
    for quality in qualities:
        index = min(max(int(quality // BAND), 0), len(counts) - 1)
        counts[index] += 1
    return [Band(i * BAND, n) for i, n in enumerate(counts)]


def histogram(found: Sequence[Band]) -> Markup:
    """The bars, each with its count as a tooltip (`<title>`) and the axis labelled every
    other band; an accessible name says what it shows."""
    if not found:
        return Markup("")
    highest = max(b.count for b in found) or 1
    slot = WIDTH / len(found)
    bars = []
    for i, band in enumerate(found):
        tall = (HEIGHT - AXIS) * band.count / highest
        x = i * slot + 2
        y = HEIGHT - AXIS - tall
        label = band.label(i == len(found) - 1)
        bars.append(
            Markup(
                '<rect class="bar" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}">'
                "<title>{}: {} articles</title></rect>"
            ).format(x, y, slot - 4, tall, label, band.count)
        )
        if i % 2 == 0:
            bars.append(
                Markup('<text x="{:.1f}" y="{}" class="axis">{}</text>').format(
                    x, HEIGHT - 6, band.low
                )
            )
    total = sum(b.count for b in found)
    return Markup(
        '<svg class="histogram" viewBox="0 0 {} {}" role="img" aria-label="{}">{}</svg>'
    ).format(
        WIDTH, HEIGHT, f"Quality of {total} scored articles, in bands of {BAND} points",
        Markup("").join(bars),
    )
