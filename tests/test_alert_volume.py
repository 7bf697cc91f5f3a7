"""The failure-rate alert needs a volume of attempts and more than one
failing job, and the alert banner is readable in both themes."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from jobs.defaults import ensure_default_alert_rules
from jobs.models import Alert, AlertRule, Attempt, JobRecord
from jobs.processes import alerts
from tests.conftest import BASE_DIR
from tests.factories import user_in

pytestmark = pytest.mark.django_db(transaction=True)
_ids = itertools.count()


def job_with(outcomes: list[str], status: str) -> JobRecord:
    """A job and its attempts as the recorder writes them, a minute ago."""
    at = timezone.now() - timedelta(minutes=1)
    record = JobRecord.objects.create(
        id=f"job-{next(_ids)}",
        task="demo.fail",
        queue="default",
        status=status,
        attempts=len(outcomes),
        max_attempts=len(outcomes),
        submitted_at=at,
        finished_at=at,
    )
    for number, outcome in enumerate(outcomes, start=1):
        Attempt.objects.create(
            job=record, number=number, outcome=outcome, started_at=at, finished_at=at
        )
    return record


FAILED, OK = Attempt.Outcome.FAILED, Attempt.Outcome.SUCCEEDED


@pytest.fixture
def failure_rule() -> AlertRule:
    ensure_default_alert_rules(AlertRule)  # transactional tests flush them
    AlertRule.objects.exclude(kind=AlertRule.Kind.FAILURE_RATE).update(enabled=False)
    return AlertRule.objects.get(kind=AlertRule.Kind.FAILURE_RATE)


def test_defaults_need_twenty_attempts_and_two_failing_jobs(failure_rule):
    assert (failure_rule.min_attempts, failure_rule.min_failing_jobs) == (20, 2)


def test_one_failing_job_among_few_attempts_opens_no_alert(failure_rule):
    """The incident: 7 failed attempts of 10, all from one job, at 20 %."""
    job_with([FAILED] * 7, JobRecord.Status.DEAD)
    for _ in range(3):
        job_with([OK], JobRecord.Status.SUCCEEDED)
    assert alerts.evaluate() == ([], [])


def test_enough_attempts_from_one_job_still_open_no_alert(failure_rule):
    job_with([FAILED] * 15, JobRecord.Status.DEAD)
    for _ in range(10):
        job_with([OK], JobRecord.Status.SUCCEEDED)
    assert alerts.evaluate() == ([], [])
    failure_rule.min_failing_jobs = 1
    failure_rule.save()
    opened, _ = alerts.evaluate()
    assert [a.subject for a in opened] == ["default"]


def test_a_real_spike_opens_the_alert_with_its_figures(failure_rule):
    for _ in range(6):
        job_with([FAILED, FAILED], JobRecord.Status.DEAD)
    for _ in range(10):
        job_with([OK], JobRecord.Status.SUCCEEDED)
    opened, _ = alerts.evaluate()
    alert = Alert.objects.get()
    assert opened == [alert]
    assert alert.detail["failed_attempts"] == 12
    assert (alert.detail["attempts"], alert.detail["failed_jobs"]) == (22, 6)
    assert "12 of 22, 6 jobs" in alert.summary


def test_min_volume_is_editable_in_the_admin(failure_rule, admin_client):
    page = admin_client.get(f"/admin/jobs/alertrule/{failure_rule.pk}/change/")
    assert b'name="min_attempts"' in page.content
    assert b'name="min_failing_jobs"' in page.content
    rules = admin_client.get("/alerts/").content.decode()
    assert "20 attempts, 2 failing jobs" in rules


# -- banner contrast (WCAG AA: 4.5:1 for normal text) ------------------------


def _rules(css: str) -> dict[str, dict[str, str]]:
    """Selector -> declarations, for plain rules (not inside @media)."""
    found: dict[str, dict[str, str]] = {}
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    for selector, body in re.findall(r"([^{}@]+)\{([^{}]*)\}", css):
        declarations = dict(
            (name.strip(), value.strip())
            for name, _, value in (
                d.partition(":") for d in body.split(";") if ":" in d
            )
        )
        for one in selector.split(","):
            found.setdefault(one.strip(), {}).update(declarations)
    return found


MEDIA = re.compile(r"@media([^{]*)\{((?:[^{}]*\{[^{}]*\})*[^{}]*)\}")


def _theme(css: str, theme: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The custom properties and the rules in force in a theme: the plain
    rules, with the dark @media block's over them in the dark theme."""
    rules = _rules(MEDIA.sub("", css))
    if theme == "dark":
        blocks = [body for cond, body in MEDIA.findall(css) if "dark" in cond]
        assert blocks, "no dark theme"
        for body in blocks:
            for selector, declarations in _rules(body).items():
                rules.setdefault(selector, {}).update(declarations)
    return rules[":root"], rules


def _rgb(value: str, variables: dict[str, str]) -> tuple[float, float, float]:
    while value.startswith("var("):
        value = variables[value[4:-1].strip()]
    digits = value.lstrip("#")
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return tuple(int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_formula_matches_known_pairs():
    black, white = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    assert contrast(black, white) == pytest.approx(21.0)
    assert contrast(_rgb("#777", {}), white) == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_alert_banner_text_meets_wcag_aa(theme):
    """Every text colour the banner uses (its own, the "since" note, links)
    against its background, as the stylesheet sets them (no opacity)."""
    css = (BASE_DIR / "jobs/static/jobs/console.css").read_text()
    variables, rules = _theme(css, theme)
    background = _rgb(rules[".alert-banner"]["background"], variables)
    own = rules[".alert-banner"]["color"]
    for selector in (".alert-banner", ".alert-banner .muted", ".alert-banner a"):
        rule = rules[selector]
        assert "opacity" not in rule, f"{selector} fades its text"
        # Its own colour, else the inner class's own rule (.muted, a), else
        # the banner's, as the cascade would give it.
        inner = rules.get(selector.removeprefix(".alert-banner").strip(), {})
        color = rule.get("color") or inner.get("color") or own
        ratio = contrast(_rgb(color, variables), background)
        assert ratio >= 4.5, f"{theme} {selector}: {ratio:.2f}:1"


def test_banner_marks_the_since_text_with_its_own_class():
    ensure_default_alert_rules(AlertRule)
    rule = AlertRule.objects.get(kind=AlertRule.Kind.NO_WORKER)
    Alert.objects.create(
        rule=rule, subject="mail", opened_at=timezone.now(), summary="mail: stuck"
    )
    client = Client()
    client.force_login(user_in("Viewers"))
    page = client.get("/alerts/").content.decode()
    assert re.search(r'class="alert-banner"[^>]*>.*class="muted">since', page, re.S)


def count_listed(client: Client, href: str) -> int:
    page = client.get(href.replace("&amp;", "&")).content.decode()
    match = re.search(r'class="count">([\d,]+) match', page)
    assert match, href
    return int(match.group(1))


def test_an_alerts_numbers_link_to_the_jobs_it_counted(failure_rule, admin_client):
    AlertRule.objects.filter(kind=AlertRule.Kind.DEAD_GROWTH).update(
        enabled=True, threshold=3
    )
    for _ in range(6):
        job_with([FAILED, FAILED], JobRecord.Status.DEAD)
    for _ in range(10):
        job_with([OK], JobRecord.Status.SUCCEEDED)
    alerts.evaluate()
    page = admin_client.get("/alerts/").content.decode()
    links = re.findall(r'<a class="jobs-behind" href="([^"]*)"', page)
    assert len(links) == 2
    for href in links:
        assert count_listed(admin_client, href) == 6  # "6 jobs", "6 jobs went dead"
    rate, dead = (
        Alert.objects.get(rule__kind=k) for k in ("failure_rate", "dead_growth")
    )
    assert "6 jobs)" in rate.summary and dead.summary.startswith("6 jobs went dead")
