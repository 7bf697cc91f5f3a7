""" "Payload has" and "error has": case-insensitive substring conditions on
job rows, served by jobs.textindex where it can answer.

PostgreSQL's planner uses the trigram indexes for icontains by itself. SQLite
has no such planner for FTS5, so here a term is first looked up in the index
(which stops reading past TEXT_INDEX_LIMIT matches): a rare term becomes a
list of rows, a common one stays a LIKE, because walking rows in the order
asked meets a page of matches sooner than the index could list them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL

from jobs import textindex
from jobs.models import JobRecord

TEXT_INDEX_LIMIT = 20_000


def stored_form(column: str, term: str) -> str:
    """The term as the column stores it: SQLite keeps JSON with non-ASCII
    characters escaped (\\u00e9), PostgreSQL's jsonb keeps them as they are."""
    if column != "payload" or connection.vendor != "sqlite" or term.isascii():
        return term
    return "".join(c if c.isascii() else json.dumps(c)[1:-1] for c in term)


def _indexable(term: str) -> bool:
    """Can SQLite's FTS5 index answer `term`? Not one with a NUL character,
    which its query parser reads as the end of the text ("unterminated
    string"); the front doors refuse those, and a LIKE still answers."""
    return (
        connection.vendor == "sqlite"
        and len(term) >= textindex.MIN_INDEXED
        and "\x00" not in term
    )


@dataclass
class TextMatches:
    """One filter's text conditions; each term is looked up in the index once,
    so a count and a page of one request see the same matches."""

    found: dict[tuple[str, str], list[int] | None] = field(default_factory=dict)

    def _lookup(self, column: str, term: str) -> list[int] | None:
        """Rowids of the matches, or None: too many, or not answerable."""
        if not _indexable(term):
            return None
        key = (column, term)
        if key not in self.found:
            self.found[key] = textindex.rowids(
                connection, column, term, limit=TEXT_INDEX_LIMIT
            )
        return self.found[key]

    def containing(
        self, rows: QuerySet[JobRecord], column: str, term: str
    ) -> QuerySet[JobRecord]:
        term = stored_form(column, term)
        found = self._lookup(column, term)
        if found is None:
            return rows.filter(**{f"{column}__icontains": term})
        return rows.filter(
            RawSQL(
                f'"{textindex.TABLE}".rowid IN (SELECT value FROM json_each(%s))',
                [json.dumps(found)],
                output_field=BooleanField(),
            )
        )

    def more_than(self, column: str, term: str, limit: int) -> bool:
        """Did the index find more than `limit` matches (as it stops reading
        past TEXT_INDEX_LIMIT, only a limit up to that can be answered)?"""
        term = stored_form(column, term)
        return (
            _indexable(term)
            and limit <= TEXT_INDEX_LIMIT
            and self._lookup(column, term) is None
        )
