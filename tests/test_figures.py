"""One definition per figure, the same numbers at every front door, and each
number on the overview leads to exactly the jobs behind it."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils.timezone import now
from prometheus_client.parser import text_string_to_metric_families

from jobs import services
from jobs.backend import connect
from jobs.models import JobRecord
from jobs.selectors.figures import DEFINITIONS, JSON_KEYS
from jobs.tokens import token_create
from tests.conftest import final
from tests.factories import user_in

pytestmark = pytest.mark.django_db(transaction=True)

#: One job failing 7 attempts then dead, one succeeding after a retry, one
#: succeeding at once: 10 attempts, 8 of them failed, in 2 jobs.
EXPECTED = {
    "succeeded": 2,
    "failed_attempts": 8,
    "failed_jobs": 2,
    "went_dead": 1,
    "dead": 1,
}
QUICK = {"base": 0.05, "factor": 1, "jitter": 0}


@pytest.fixture
def history(run_until) -> list[JobRecord]:
    jobs = [
        services.job_submit(
            task="demo.fail",
            payload={"times": -1},
            retry={"max_attempts": 7, **QUICK},
        ),
        services.job_submit(
            task="demo.fail", payload={"times": 1}, retry={"max_attempts": 3, **QUICK}
        ),
        services.job_submit(task="demo.echo", payload={"text": "ok"}),
    ]
    run_until(final(*jobs))
    return jobs


def console_figures(client: Client) -> dict[str, int]:
    page = client.get("/").content.decode()
    found = {}
    for key in JSON_KEYS:
        anchor = key.replace("_", "-")
        match = re.search(rf'id="fig-{anchor}" href="[^"]*">([\d,]+)[ <]', page)
        assert match, f"no figure {key} on the overview"
        found[key] = int(match.group(1).replace(",", ""))
    return found


def test_every_front_door_shows_the_same_figures_under_the_same_names(history):
    client = Client()
    client.force_login(user_in("Viewers"))
    assert console_figures(client) == EXPECTED

    out = StringIO()
    call_command("jobs", "stats", "--json", stdout=out)
    cli = json.loads(out.getvalue())
    assert {k: cli["totals"][k] for k in JSON_KEYS} == EXPECTED
    default = next(q for q in cli["queues"] if q["name"] == "default")
    assert {k: default[k] for k in JSON_KEYS} == EXPECTED
    table = StringIO()
    call_command("jobs", "stats", stdout=table)
    assert DEFINITIONS["failed_attempts"].label in table.getvalue()

    _token, secret = token_create(user=user_in("Viewers", "api"), name="t")
    api = Client().get("/api/stats/", HTTP_AUTHORIZATION=f"Bearer {secret}").json()
    assert {k: api["totals"][k] for k in JSON_KEYS} == EXPECTED
    assert api["definitions"] == cli["definitions"]

    staff = Client()
    staff_user = user_in("Operators", "admin-ish")
    staff_user.is_staff = True
    staff_user.save()
    staff.force_login(staff_user)
    by_metric: dict[str, float] = {}
    for family in text_string_to_metric_families(
        staff.get("/metrics").content.decode()
    ):
        for sample in family.samples:
            if sample.labels.get("queue") != "default":
                continue
            state = sample.labels.get("state")
            key = f'{sample.name}{{state="{state}"}}' if state else sample.name
            by_metric[key] = by_metric.get(key, 0.0) + sample.value
    for key in ("succeeded", "failed_attempts", "went_dead", "dead"):
        assert by_metric[DEFINITIONS[key].metric] == EXPECTED[key], key
    assert by_metric["jobs_retried_total"] == 7


def test_each_overview_figure_links_to_exactly_its_jobs(history):
    client = Client()
    client.force_login(user_in("Viewers"))
    page = client.get("/").content.decode()
    # The jobs behind each figure; failed attempts lead to the jobs that had them.
    jobs_behind = {
        "succeeded": 2,
        "failed-attempts": 2,
        "failed-jobs": 2,
        "went-dead": 1,
        "dead": 1,
    }
    for anchor, count in jobs_behind.items():
        href = re.search(rf'id="fig-{anchor}" href="([^"]*)"', page).group(1)
        listing = client.get(href.replace("&amp;", "&")).content.decode()
        match = re.search(r'class="count">([\d,]+) match', listing)
        assert match and int(match.group(1)) == count, (anchor, href)
    dead, retried, ok = history
    href = re.search(r'id="fig-went-dead" href="([^"]*)"', page).group(1)
    listing = client.get(href.replace("&amp;", "&")).content.decode()
    assert dead.pk in listing and ok.pk not in listing and retried.pk not in listing


def test_queue_page_figures_link_to_the_queue_jobs(history):
    client = Client()
    client.force_login(user_in("Viewers"))
    page = client.get("/queues/default/").content.decode()
    assert re.search(r"finished_since=[^\"]*\">2</a>.*jobs succeeded", page)
    assert re.search(r"failed_since=[^\"]*\">8</a>.*failed attempts", page)
    assert "queue=default&amp;status=dead&amp;finished_since=" in page


def test_job_list_shows_manual_retries_and_earlier_failures_as_such(run_until):
    quick = {"max_attempts": 2, **QUICK}
    stubborn = services.job_submit(task="demo.fail", payload={"times": -1}, retry=quick)
    recovered = services.job_submit(task="demo.fail", payload={"times": 1}, retry=quick)
    run_until(final(stubborn, recovered))
    for _ in range(2):  # two retries by hand, each a new round of 2 attempts
        services.job_retry(record=JobRecord.objects.get(pk=stubborn.pk), actor=None)
        run_until(final(stubborn))
    assert JobRecord.objects.get(pk=stubborn.pk).attempts == 6
    client = Client()
    client.force_login(user_in("Viewers"))
    page = client.get("/jobs/").content.decode()
    rows = {
        job_id: row
        for row in page.split("<tr>")
        for job_id in (stubborn.pk, recovered.pk)
        if job_id in row
    }
    assert "2 of 2, 2 manual retries" in rows[stubborn.pk]
    assert "6 attempts in all" in rows[stubborn.pk]
    assert 'class="error"' in rows[stubborn.pk]  # dead: the error is the outcome
    assert "2 of 2<" in rows[recovered.pk]
    assert 'class="error"' not in rows[recovered.pk]
    assert (
        'class="earlier-failure"><span class="tag">earlier failure'
        in rows[recovered.pk]
    )
    out = StringIO()
    call_command("jobs", "list", "--task", "demo.fail", stdout=out)
    line = next(x for x in out.getvalue().splitlines() if x.startswith(stubborn.pk))
    assert line.endswith("attempt 2 of 2, 2 manual retries")


def test_headline_numbers_count_every_queue_as_their_links_do():
    """Jobs in a queue no longer configured (or put there by another
    producer) are in the links' lists, so the headline counts them too."""
    from tests.test_history_screens import make, make_dead

    make_dead(queue="legacy")
    make_dead(queue="default")
    make(queue="legacy", status=JobRecord.Status.SUCCEEDED, finished_at=now())
    client = Client()
    client.force_login(user_in("Viewers"))
    page = client.get("/").content.decode()
    for anchor, count in (("dead", 2), ("went-dead", 2), ("succeeded", 1)):
        href, shown = re.search(
            rf'id="fig-{anchor}" href="([^"]*)">([\d,]+)<', page
        ).groups()
        listing = client.get(href.replace("&amp;", "&")).content.decode()
        listed = re.search(r'class="count">([\d,]+) match', listing).group(1)
        assert (int(shown), int(listed)) == (count, count), anchor
    assert "also one no longer configured" in page
    out = StringIO()
    call_command("jobs", "stats", "--json", stdout=out)
    assert json.loads(out.getvalue())["totals"]["dead"] == 2


def listed(client: Client, href: str) -> int:
    """How many jobs (or workers) the page a number links to lists."""
    page = client.get(href.replace("&amp;", "&")).content.decode()
    if href.startswith("/scheduled/"):
        return page.count('<td class="due">')
    pattern = r'class="count">([\d,]+) match' if href.startswith("/jobs/") else None
    assert pattern or href.startswith("/workers/"), href
    match = re.search(pattern or r"· (\d+) alive", page)
    assert match, href
    return int(match.group(1).replace(",", ""))


def test_a_queues_scheduled_and_workers_counts_lead_to_exactly_their_lists(
    run_until,
):
    from jobs.backend.workers import ConsoleWorker

    services.job_submit(task="demo.echo", payload={"text": "x"}, queue="mail")
    services.job_submit(
        task="demo.echo", payload={"text": "later"}, queue="mail", delay=600
    )
    retrying = services.job_submit(
        task="demo.fail",
        payload={"times": 1},
        queue="mail",
        retry={"max_attempts": 3, "base": 600, "factor": 1, "jitter": 0},
    )
    run_until(
        lambda: JobRecord.objects.get(pk=retrying.pk).status == "retrying",
        queues=("mail",),
    )
    for queues in (["mail"], ["default"]):
        ConsoleWorker(queues, connection=connect.connection()).register_birth()
    client = Client()
    client.force_login(user_in("Viewers"))
    for page_url in ("/", "/queues/mail/"):
        page = client.get(page_url).content.decode()
        for target in ("/scheduled/", "/workers/"):
            href, shown = re.search(
                rf'href="({target}\?queue=mail)"[^>]*>(\d+)<', page
            ).groups()
            assert listed(client, href) == int(shown) > 0, (page_url, target)
    assert listed(client, "/scheduled/?queue=mail") == 2
    assert listed(client, "/scheduled/?queue=default") == 0
    # An unknown queue is no filter, never an error.
    assert listed(client, "/workers/?queue=%00nope") == 2
