"""Text search over payload and error ("payload has", "error has"): a
case-insensitive substring, served by jobs.textindex, on SQLite and on
PostgreSQL alike."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.db import IntegrityError, connection
from django.utils import timezone

from jobs import services, textindex
from jobs.models import JobRecord
from jobs.selectors import history
from jobs.selectors import text_search as text_search_module
from jobs.selectors.history import JobFilter

pytestmark = pytest.mark.django_db
_ids = itertools.count(1)
Status = JobRecord.Status


def make(payload: Any = None, error: str = "", **fields: Any) -> JobRecord:
    return JobRecord.objects.create(
        id=f"text-{next(_ids):05d}",
        task="demo.echo",
        queue="default",
        payload={"text": "x"} if payload is None else payload,
        last_error=error,
        submitted_at=timezone.now(),
        **fields,
    )


def found(payload: str = "", error: str = "") -> set[str]:
    """Ids the selector finds, checked against the count it gives."""
    job_filter = JobFilter(payload=payload, error=error)
    ids = {job.pk for job in history.job_search(job_filter)}
    count = history.job_count(job_filter)
    assert count.exact and count.value == len(ids)
    return ids


def sqlite_only() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's FTS5 index")


def test_payload_search_is_a_case_insensitive_substring():
    order = make({"text": "Order ABC-123 shipped", "customer": "ada@example.com"})
    other = make({"text": "Order XYZ-999 held"})
    assert found(payload="abc-12") == {order.pk}
    assert found(payload="ORDER abc") == {order.pk}
    assert found(payload="Ada@Example.") == {order.pk}
    assert found(payload="order") == {order.pk, other.pk}
    assert found(payload="ABC-124") == set()
    # The payload's JSON text, keys included, as the job page shows it.
    assert found(payload='"customer"') == {order.pk}


def test_error_search_is_a_case_insensitive_substring():
    timeout = make(error="TimeoutError: gave up after 30 s on db-7:5432")
    refused = make(error="ConnectionError: refused by db-7:5432")
    assert found(error="GAVE UP after") == {timeout.pk}
    assert found(error="db-7:5432") == {timeout.pk, refused.pk}
    assert found(error="refused by db-8") == set()


def test_payload_and_error_are_searched_apart():
    in_payload = make({"text": "needle"}, error="boom")
    in_error = make({"text": "hay"}, error="needle broke")
    assert found(payload="needle") == {in_payload.pk}
    assert found(error="needle") == {in_error.pk}
    assert found(payload="needle", error="needle") == set()
    assert found(payload="hay", error="needle") == {in_error.pk}


@pytest.mark.parametrize(
    ("stored", "near_miss", "term"),
    [
        ("100% sure", "1000 sure", "0% s"),  # % is no wildcard
        ("a_b_c", "axbxc", "a_b"),  # _ is no wildcard
        ("it's here", "its here", "it's"),
        ('say "hi" now', "say hi now", '"hi"'),
        ("<script>alert(1)</script>", "script alert", "<script>"),
        ("back\\slash", "backslash", "k\\s"),
        ("a *star* OR NEAR(x)", "a star", "*star* OR"),  # FTS5 syntax is text
    ],
)
def test_special_characters_match_literally(stored, near_miss, term):
    hit = make(error=stored)
    make(error=near_miss)
    assert found(error=term) == {hit.pk}


def test_short_terms_still_match_by_a_scan():
    one = make({"text": "q"}, error="Q1")
    make({"text": "zz"}, error="z2")
    assert found(error="q") == {one.pk}
    assert found(error="Q1") == {one.pk}
    assert found(payload='"q"') == {one.pk}


def test_non_ascii_text_is_found():
    zoe = make({"name": "Zoë Ünal"}, error="Fehler bei Zoë: Größe")
    make({"name": "Zoe Unal"}, error="Fehler bei Zoe: Grosse")
    assert found(payload="Zoë") == {zoe.pk}
    assert found(payload="ë Ü") == {zoe.pk}
    assert found(error="Größe") == {zoe.pk}


def test_jobs_written_by_the_bulk_insert_are_found():
    """job_submit_many writes 50 or more records with one raw executemany."""
    records = services.job_submit_many(
        requests=[
            services.SubmitRequest(task="demo.echo", payload={"text": f"batch-{n}"})
            for n in range(60)
        ]
    )
    assert found(payload="batch-4") == {
        r.pk for r in records if r.payload["text"].startswith("batch-4")
    }
    assert len(found(payload="batch-")) == 60


def integrity_check() -> None:
    """FTS5 compares every index entry with the rows: raises on a mismatch."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {textindex.FTS}({textindex.FTS}) VALUES ('integrity-check')"
        )


def test_a_bulk_insert_indexes_at_its_end_and_the_trigger_resumes():
    sqlite_only()
    services.job_submit_many(
        requests=[
            services.SubmitRequest(task="demo.echo", payload={"text": f"bulk-{n}"})
            for n in range(25)
        ]
    )
    single = services.job_submit(task="demo.echo", payload={"text": "single-one"})
    integrity_check()
    assert len(found(payload="bulk-")) == 25
    assert found(payload="single-one") == {single.pk}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {textindex.PAUSE}")
        assert cursor.fetchone() == (0,)


def test_a_rolled_back_bulk_insert_leaves_neither_rows_nor_pause():
    sqlite_only()
    twice = services.SubmitRequest(
        task="demo.echo", payload={"text": "r-twice"}, idempotency_key="same"
    )
    with pytest.raises(IntegrityError):  # the insert itself fails, half-way
        services.job_submit_many(
            requests=[
                services.SubmitRequest(task="demo.echo", payload={"text": f"r-{n}"})
                for n in range(25)
            ]
            + [twice, twice]
        )
    assert not JobRecord.objects.exists()
    make({"text": "after-rollback"})
    integrity_check()
    assert found(payload="after-rollback") != set()
    assert found(payload="r-1") == set()


def test_changed_and_deleted_rows_leave_the_index():
    job = make(error="first failure")
    JobRecord.objects.filter(pk=job.pk).update(last_error="second failure")
    assert found(error="first fail") == set()
    assert found(error="second fail") == {job.pk}
    # A deleted row's text is gone even if a new row reuses its rowid.
    JobRecord.objects.filter(pk=job.pk).delete()
    newcomer = make(error="unrelated")
    assert found(error="second fail") == set()
    assert found(error="unrelated") == {newcomer.pk}


def test_status_updates_that_keep_the_text_keep_the_index_consistent():
    sqlite_only()
    jobs = [make({"text": f"t{n}"}, error=f"e{n}") for n in range(20)]
    for job in jobs[:10]:
        job.status = Status.SUCCEEDED
        job.save()
    JobRecord.objects.filter(pk__in=[j.pk for j in jobs[10:15]]).delete()
    with connection.cursor() as cursor:
        # FTS5 compares every index entry with the rows: raises on a mismatch.
        cursor.execute(
            f"INSERT INTO {textindex.FTS}({textindex.FTS}) VALUES ('integrity-check')"
        )
    assert found(payload='"t1"') == {jobs[1].pk}
    assert found(payload='"t12"') == set()


def test_common_terms_give_the_same_rows_through_a_scan(monkeypatch):
    """More matches than the index lists: the selector scans instead."""
    rows = {make({"text": f"common {n}"}).pk for n in range(6)}
    make({"text": "rare"})
    assert found(payload="common") == rows
    monkeypatch.setattr(text_search_module, "TEXT_INDEX_LIMIT", 3)
    assert found(payload="common") == rows
    assert found(payload="common 4") == {sorted(rows)[4]}


def test_a_single_common_term_is_counted_as_more_than(monkeypatch):
    sqlite_only()
    monkeypatch.setattr(text_search_module, "TEXT_INDEX_LIMIT", 3)
    for n in range(6):
        make({"text": f"common {n}"})
    count = history.job_count(JobFilter(payload="common"), limit=2)
    assert (count.value, count.exact) == (2, False)
    page = history.job_page(JobFilter(payload="common"), "1", count=count, per_page=4)
    assert (len(page), page.has_next) == (4, True)


def test_the_search_screen_and_bulk_actions_use_the_same_matches(client):
    from tests.factories import user_in

    client.force_login(user_in("Operators"))
    wanted = make({"order": "A-77"}, status=Status.DEAD, error="x failed")
    other = make({"order": "A-78"}, status=Status.DEAD, error="x failed")
    page = client.get("/jobs/?payload=a-77")
    assert [job.pk for job in page.context["page"]] == [wanted.pk]
    assert page.context["count"].label == "1"
    asked = client.post("/jobs/bulk/", {"action": "retry", "payload": "a-77"})
    assert 'name="expected" value="1"' in asked.content.decode()
    response = client.post(
        "/jobs/bulk/",
        {"action": "retry", "payload": "a-77", "confirm": "yes", "expected": "1"},
        follow=True,
    )
    assert "Retried 1 job" in [str(m) for m in response.context["messages"]]
    assert JobRecord.objects.get(pk=wanted.pk).status == Status.PENDING
    assert JobRecord.objects.get(pk=other.pk).status == Status.DEAD


def test_the_index_serves_the_search():
    make({"text": "served"})
    job_filter = JobFilter(payload="served")
    sql, params = history.job_search(job_filter).query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A GIN index is read by a bitmap scan only: with plain index scans
            # off as well, the planner cannot walk the submitted_at index backwards
            # for the ordering and filter each row (what it may do on a small table).
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = " ".join(row[0] for row in cursor.fetchall())
            assert "jobs_jobrecord_payload_trgm" in plan
        else:
            # Looked up in the index: one row, not "too many to list".
            assert len(job_filter._text.found[("payload", "served")] or []) == 1
            cursor.execute(
                f"EXPLAIN QUERY PLAN SELECT rowid FROM {textindex.FTS} "
                f"WHERE {textindex.FTS} MATCH %s",
                [textindex.match_query("payload", "served")],
            )
            assert "VIRTUAL TABLE" in str(cursor.fetchall())


def test_repair_restores_the_triggers_after_a_table_rebuild():
    sqlite_only()
    assert textindex.repair(connection) is False  # nothing missing
    with connection.cursor() as cursor:
        for name in textindex.SQLITE_TRIGGERS:
            cursor.execute(f"DROP TRIGGER {name}")
    unindexed = make(error="written while the triggers were gone")
    assert textindex.repair(connection) is True
    assert found(error="while the triggers") == {unindexed.pk}
    later = make(error="written after the repair")
    assert found(error="after the repair") == {later.pk}
