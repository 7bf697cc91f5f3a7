"""A grouped bar chart as hand-written SVG (no plotting library)."""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 560, 340
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 50, 50
COLOURS = ("#3b6ea5", "#b0b7bf", "#d08c3a", "#5a9e6f")


def _nice_top(value: float) -> float:
    """The next round number above `value` (1, 2 or 5 times a power of 10)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _text(
    x: float, y: float, body: str, anchor: str = "middle", size: int = 12, turn: int = 0
) -> str:
    rotate = f' transform="rotate({turn} {x:.1f} {y:.1f})"' if turn else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" '
        f'text-anchor="{anchor}"{rotate}>{escape(body)}</text>'
    )


def bar_chart(
    title: str,
    unit: str,
    groups: list[str],
    series: list[tuple[str, list[float]]],
) -> str:
    """`series` is (name, one value per group); bars of a group side by side."""
    top = _nice_top(max((v for _, values in series for v in values), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group_w = plot_w / max(1, len(groups))
    bar_w = group_w * 0.7 / max(1, len(series))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'font-family="sans-serif">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        _text(WIDTH / 2, 22, title, size=14),
    ]
    for tick in range(5):
        value = top * tick / 4
        y = TOP + plot_h - plot_h * tick / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#e3e3e3"/>'
        )
        parts.append(_text(LEFT - 6, y + 4, f"{value:,.0f}", anchor="end", size=11))
    parts.append(_text(16, TOP + plot_h / 2, unit, size=11, turn=-90))
    for g, group in enumerate(groups):
        x0 = LEFT + g * group_w + group_w * 0.15
        for s, (_, values) in enumerate(series):
            value = values[g]
            height = plot_h * value / top
            x, y = x0 + s * bar_w, TOP + plot_h - height
            colour = COLOURS[s % len(COLOURS)]
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" '
                f'height="{height:.1f}" fill="{colour}"/>'
            )
            parts.append(_text(x + bar_w / 2 - 1, y - 4, f"{value:,.0f}", size=11))
        parts.append(_text(LEFT + (g + 0.5) * group_w, HEIGHT - BOTTOM + 18, group))
    parts.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" '
        f'y2="{TOP + plot_h}" stroke="#444"/>'
    )
    for s, (name, _) in enumerate(series):
        x = LEFT + 10 + s * 120
        colour = COLOURS[s % len(COLOURS)]
        parts.append(
            f'<rect x="{x}" y="{HEIGHT - 22}" width="12" height="12" fill="{colour}"/>'
        )
        parts.append(_text(x + 18, HEIGHT - 12, name, anchor="start"))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
