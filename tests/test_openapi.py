"""Issue 15.3: /api/schema/ is the API's contract, checked both ways."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings

from jobs.tokens import token_create
from tests.factories import user_in

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture
def operator_auth() -> dict[str, str]:
    _token, secret = token_create(user=user_in("Operators"), name="contract")
    return {"Authorization": f"Bearer {secret}"}


@SCHEMA.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_keeps_its_contract(case, operator_auth):
    case.call_and_validate(headers=operator_auth)
