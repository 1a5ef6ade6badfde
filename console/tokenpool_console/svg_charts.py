"""Charts drawn on the server as inline SVG: no chart library, no script, readable without
JavaScript, styled by the page's CSS (light and dark). Every text is escaped."""

from __future__ import annotations

from markupsafe import Markup, escape

from .tallies import Tally


def _nice_max(value: int) -> int:
    """The axis maximum: ``value`` rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def daily_bars(days: list[tuple[str, Tally]], title: str, width: int = 720, height: int = 200) -> Markup:
    """Stacked bars per day (successes, errors) with the axis maximum and first/last dates."""
    left, bottom, top = 44, 22, 10
    plot_w, plot_h = width - left - 6, height - bottom - top
    peak = _nice_max(max((t.requests for _, t in days), default=0))
    slot = plot_w / max(1, len(days))
    bar = max(1.0, slot * 0.72)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - 6}" y2="{top + plot_h}"/>',
        f'<line class="grid" x1="{left}" y1="{top}" x2="{width - 6}" y2="{top}"/>',
        f'<text class="tick" x="{left - 6}" y="{top + 4}" text-anchor="end">{peak}</text>',
        f'<text class="tick" x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    for i, (day, tally) in enumerate(days):
        x = left + i * slot + (slot - bar) / 2
        ok_h = plot_h * tally.successes / peak
        err_h = plot_h * min(tally.errors, max(0, peak - tally.successes)) / peak
        y_ok = top + plot_h - ok_h
        label = f"{day}: {tally.requests} requests, {tally.successes} ok, {tally.errors} errors"
        parts.append(f"<g><title>{escape(label)}</title>")
        if ok_h:
            parts.append(
                f'<rect class="bar-ok" x="{x:.1f}" y="{y_ok:.1f}" width="{bar:.1f}" height="{ok_h:.1f}"/>'
            )
        if err_h:
            y_err = y_ok - err_h
            parts.append(
                f'<rect class="bar-err" x="{x:.1f}" y="{y_err:.1f}" width="{bar:.1f}" height="{err_h:.1f}"/>'
            )
        hit_x = left + i * slot
        parts.append(
            f'<rect class="bar-hit" x="{hit_x:.1f}" y="{top}" width="{slot:.1f}" height="{plot_h}"/></g>'
        )
    if days:
        y = height - 6
        parts.append(f'<text class="tick" x="{left}" y="{y}">{escape(days[0][0])}</text>')
        parts.append(
            f'<text class="tick" x="{width - 6}" y="{y}" text-anchor="end">{escape(days[-1][0])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - numbers, and texts escaped above


def meter(value: int, maximum: int, label: str) -> Markup:
    """A small horizontal bar (quota used, share of requests)."""
    share = 0.0 if maximum <= 0 else min(1.0, value / maximum)
    text = escape(label)
    return Markup(  # noqa: S704 - numbers, and the label escaped
        f'<svg class="meter" viewBox="0 0 100 8" role="img" aria-label="{text}"><title>{text}</title>'
        f'<rect class="meter-bg" x="0" y="0" width="100" height="8" rx="2"/>'
        f'<rect class="meter-fg" x="0" y="0" width="{share * 100:.1f}" height="8" rx="2"/></svg>'
    )
