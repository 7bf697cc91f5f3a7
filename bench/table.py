"""The results table: one row per figure, as plain text or markdown."""

from __future__ import annotations

from dataclasses import dataclass

from bench.stats import ratio

HEADERS = (
    "figure",
    "ours",
    "plain RQ",
    "ours/RQ",
    "Celery",
    "ours/Celery",
    "goal",
    "met?",
)


@dataclass(frozen=True)
class Row:
    figure: str
    ours: float | str
    plain: float | str | None
    goal: str = "-"
    met: bool | None = None
    decimals: int = 0
    celery: float | str | None = None
    #: A check that the bench worked (every job done), not a performance
    #: goal: the run exits non-zero when it is not met.
    required: bool = False

    def ratio_to(self, other: float | str | None) -> float | None:
        if isinstance(self.ours, str) or not isinstance(other, float | int):
            return None
        return ratio(self.ours, other)

    @property
    def broken(self) -> bool:
        return self.required and not self.met

    def cells(self) -> tuple[str, ...]:
        return (
            self.figure,
            _number(self.ours, self.decimals),
            _number(self.plain, self.decimals),
            _times(self.ratio_to(self.plain)),
            _number(self.celery, self.decimals),
            _times(self.ratio_to(self.celery)),
            self.goal,
            "-" if self.met is None else ("yes" if self.met else "no"),
        )


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _number(value: float | str | None, decimals: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:,.{decimals}f}"


def text(rows: list[Row]) -> str:
    lines = [HEADERS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADERS))]
    rendered = [
        " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
        for line in lines
    ]
    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([rendered[0], rule, *rendered[1:]])


def markdown(rows: list[Row]) -> str:
    lines = [HEADERS, *(row.cells() for row in rows)]
    out = [
        "| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines
    ]
    out.insert(1, "|" + "|".join(" --- " for _ in HEADERS) + "|")
    return "\n".join(out)
