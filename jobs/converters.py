"""Path parts held to the front doors' one text rule.

A job id, a queue name or a failure group taken from a console URL goes
into a query; one the database cannot take (a NUL character: PostgreSQL
refuses the whole statement) must not reach it. A part that breaks the rule
matches no route, so the answer is the console's 404.
"""

from __future__ import annotations

from django.urls.converters import StringConverter

from jobs.services.validation import text_problem


class JobActionConverter(StringConverter):
    """The job actions (services.JOB_ACTIONS) a URL may name as its last
    part; delete asks for a confirmation first and has its own view."""

    regex = "retry|cancel"


class TextConverter(StringConverter):
    def to_python(self, value: str) -> str:
        problem = text_problem(value, identifier=True)
        if problem:
            raise ValueError(problem)
        return value
