"""Figure 9: submission latency with many job records already stored (it
must stay flat as the history grows)."""

from __future__ import annotations

from bench import generate, plots, submit
from bench.context import Context
from bench.reset import reset
from bench.results import progress
from bench.table import Row

#: ours/RQ p50 at each size against ours/RQ p50 at the smallest.
FLAT_RATIO = 1.5
QUEUES = 50
NOTE = (
    "9: figure 1's measurement (job_submit against Queue.enqueue, taking turns, "
    "50 warm-up rounds) repeated with N finished job records already stored "
    "(about 10 % dead, over 50 queues, written by figure 8's executemany), "
    "the table growing from the smallest N to the largest in one database "
    "(plus the jobs submitted at the smaller sizes). Plain RQ keeps no records: "
    "its column shows how busy the machine was at that moment, so the goal "
    "divides it out: our p50 over RQ's p50 at each size within "
    f"{FLAT_RATIO:g}x of that ratio at the smallest size."
)


def figure(ctx: Context) -> None:
    sizes, count = ctx.sizes.stored, ctx.sizes.stored_calls
    progress(f"figure 9: submit latency with {sizes} job records stored")
    reset()
    queues = generate.queue_names(QUEUES)
    sides = {
        side: call
        for side, call in submit.submitters().items()
        if side != submit.CELERY
    }
    found: list[submit.Latency] = []
    written = 0
    for size in sizes:
        generate.job_records(size, size // 10, queues, start=written)
        written = size
        found.append(submit.interleaved(count, sides))
    _rows(ctx, found)
    ctx.draw(
        "submit-latency-by-records",
        lambda path: plots.lines(
            path,
            f"Submit latency with job records already stored, {count:,} calls each",
            "job records stored",
            "ms per call",
            sizes,
            {
                f"{side} p{pct}": [f.p(side, pct) for f in found]
                for side in sides
                for pct in (50, 99)
            },
            dashed=[f"{side} p99" for side in sides],
        ),
    )


def _rows(ctx: Context, found: list[submit.Latency]) -> None:
    sizes, ours, base = ctx.sizes.stored, submit.OURS, submit.PLAIN

    def against_plain(latency: submit.Latency) -> float:
        return latency.p(ours, 50) / latency.p(base, 50)

    first = against_plain(found[0])
    for size, latency in zip(sizes, found, strict=True):
        flat = size != sizes[0]
        ctx.results.rows += [
            Row(
                f"9. submit p50, {size:,} records stored (ms)",
                latency.p(ours, 50),
                latency.p(base, 50),
                f"ours/RQ < {FLAT_RATIO:g}x {sizes[0]:,}'s" if flat else "-",
                against_plain(latency) < FLAT_RATIO * first if flat else None,
                3,
            ),
            Row(
                f"9. submit p99, {size:,} records stored (ms)",
                latency.p(ours, 99),
                latency.p(base, 99),
                decimals=3,
            ),
        ]
