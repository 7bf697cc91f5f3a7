"""Every front door calls the same service and leaves the same log entry."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from jobs.models import OperatorAction
from jobs.tokens import token_create
from tests.factories import user_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_pause_through_each_door_leaves_the_same_operator_log_entry():
    operator = user_in("Operators")
    web = Client()
    web.force_login(operator)
    web.post("/queues/mail/pause/", {"reason": "same reason"})
    web.post("/queues/mail/resume/")

    _token, secret = token_create(user=operator, name="doors")
    Client().post(
        "/api/queues/mail/pause/",
        json.dumps({"reason": "same reason"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    Client().post(
        "/api/queues/mail/resume/",
        "{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )

    call_command("jobs", "pause", "mail", "--reason", "same reason")
    call_command("jobs", "resume", "mail")

    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "r@example.com", "pw"))
    admin.post(
        "/admin/jobs/queuestate/",
        {"action": "pause", "_selected_action": ["mail"], "reason": "same reason"},
    )

    pauses = OperatorAction.objects.filter(action="pause").order_by("at")
    assert [p.origin for p in pauses] == ["web", "api", "cli", "admin"]
    assert {(p.target, p.count, p.reason) for p in pauses} == {
        ("queue mail", 1, "same reason")
    }
