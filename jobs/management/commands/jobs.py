"""`python manage.py jobs ...`: the command-line front door.

Thin: parse, call one service or selector, print. Errors exit non-zero with
one line. `--json` output is documented in README.md and stays stable.
"""

from __future__ import annotations

import json
import sys
import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs import selectors, services
from jobs.backend import connect
from jobs.backend.errors import BackendUnavailable, explain
from jobs.models import JobRecord, Origin, Schedule
from jobs.selectors import history
from jobs.selectors.history import job_round, with_rounds
from jobs.selectors.overview import overview
from jobs.selectors.schedules import schedule_json
from jobs.selectors.stats_text import stats_json, stats_table
from jobs.services import schedules as schedule_services
from jobs.services.reconcile import reconcile
from jobs.services.validation import (
    MAX_KEY_LENGTH,
    MAX_REASON_LENGTH,
    MAX_TERM_LENGTH,
    check_text,
)


def _ids_or_error(ids: list[str]) -> list[str]:
    found = set(JobRecord.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing = [i for i in ids if i not in found]
    if missing:
        raise CommandError(f"no such job: {', '.join(missing)}")
    return ids


#: Arguments the text rule does not apply to: Django's own, and payloads
#: (JSON text with a rule of its own, see services.validation.stored_payload).
UNCHECKED = frozenset({"settings", "pythonpath", "payload"})
#: Arguments that are identifiers (one printable line), and longer texts.
IDENTIFIERS = frozenset({"id", "ids", "depends_on", "idempotency_key"})
LIMITS = {"reason": MAX_REASON_LENGTH, "idempotency_key": MAX_KEY_LENGTH}


def _check_text_arguments(options: dict[str, Any]) -> None:
    """Every text argument, by the front doors' one text rule (a shell can
    pass a lone surrogate: bytes that are not UTF-8 arrive as one)."""
    for name, value in options.items():
        if name in UNCHECKED:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                check_text(
                    name.replace("_", "-"),
                    item,
                    max_length=LIMITS.get(name, MAX_TERM_LENGTH),
                    identifier=name in IDENTIFIERS,
                )


class Command(BaseCommand):
    help = "Submit, inspect and steer background jobs."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(
            dest="action", required=True, parser_class=ArgumentParser
        )
        submit = sub.add_parser("submit", help="submit a registered task")
        submit.add_argument("task")
        submit.add_argument("--payload", default="{}", help="JSON object")
        submit.add_argument("--queue")
        submit.add_argument("--priority", choices=["high", "normal", "low"])
        when = submit.add_mutually_exclusive_group()
        when.add_argument("--delay", type=float, help="seconds from now")
        when.add_argument("--at", dest="run_at", help="ISO 8601 time with zone")
        submit.add_argument("--depends-on", nargs="+", default=[], metavar="ID")
        submit.add_argument("--allow-failure", action="store_true")
        submit.add_argument("--idempotency-key")
        submit.add_argument("--timeout", type=int, help="seconds a run may take")

        status = sub.add_parser("status", help="one job's state")
        status.add_argument("id")
        status.add_argument("--json", action="store_true")

        listing = sub.add_parser("list", help="search job history")
        for name in ("status", "queue", "task", "payload", "error", "since", "until"):
            listing.add_argument(f"--{name}")
        listing.add_argument(
            "--worker", help="jobs whose latest attempt ran on this worker (its name)"
        )
        listing.add_argument("--limit", type=int, default=50)
        listing.add_argument("--json", action="store_true")

        retry = sub.add_parser("retry", help="retry dead or canceled jobs")
        retry.add_argument("ids", nargs="*")
        retry.add_argument("--dead", action="store_true", help="every dead job")
        retry.add_argument("--queue")
        retry.add_argument("--task")
        retry.add_argument("--since")
        retry.add_argument("--reason", default="")
        retry.add_argument(
            "--yes", action="store_true", help="with --dead: retry without asking"
        )

        cancel = sub.add_parser("cancel", help="cancel jobs (running ones are stopped)")
        cancel.add_argument("ids", nargs="+")
        cancel.add_argument("--reason", default="")

        for verb in ("pause", "resume"):
            queue = sub.add_parser(verb, help=f"{verb} a queue")
            queue.add_argument("queue")
            queue.add_argument("--reason", default="", required=verb == "pause")

        stop = sub.add_parser(
            "stop-worker",
            help="ask a worker to stop: no new job, its running jobs finish, it exits",
        )
        stop.add_argument(
            "name", help="the worker's name (the Workers screen, rq info)"
        )
        stop.add_argument("--reason", default="")

        rec = sub.add_parser("reconcile", help="compare the database with Redis")
        rec.add_argument(
            "--dry-run", action="store_true", help="report, repair nothing"
        )
        rec.add_argument("--json", action="store_true")

        self.add_schedule_arguments(sub)

        stats_parser = sub.add_parser("stats", help="queues at a glance")
        stats_parser.add_argument("--json", action="store_true")
        stats_parser.add_argument(
            "--watch", action="store_true", help="refresh every 2 s until Ctrl-C"
        )

        purge = sub.add_parser("purge", help="delete finished history in batches")
        purge.add_argument("--older-than", type=float, required=True, metavar="DAYS")

        sub.add_parser("monitor", help="run the monitor process (recorder, outbox)")
        sub.add_parser("ping", help="exit 0 if the database and Redis answer")

    def add_schedule_arguments(self, sub: Any) -> None:
        schedule = sub.add_parser("schedule", help="cron and interval schedules")
        verbs = schedule.add_subparsers(
            dest="verb", required=True, parser_class=ArgumentParser
        )
        listing = verbs.add_parser("list")
        listing.add_argument("--json", action="store_true")
        add = verbs.add_parser("add")
        add.add_argument("name")
        add.add_argument("task")
        add.add_argument("--payload", default="{}")
        when = add.add_mutually_exclusive_group(required=True)
        when.add_argument("--cron", help="five-field cron expression")
        when.add_argument("--every", type=int, metavar="SECONDS")
        add.add_argument("--tz", default="UTC", help="time zone of the cron expression")
        add.add_argument("--queue", default="")
        add.add_argument(
            "--priority", default="", choices=["", "high", "normal", "low"]
        )
        add.add_argument("--catch-up", action="store_true")
        add.add_argument("--disabled", action="store_true")
        for verb in ("enable", "disable", "run-now", "delete"):
            verbs.add_parser(verb).add_argument("name")

    def do_schedule(self, options: dict[str, Any]) -> None:
        verb = options["verb"]
        if verb == "list":
            rows = [schedule_json(s) for s in Schedule.objects.all()]
            if options["json"]:
                self.emit(rows)
                return
            for r in rows:
                state = "enabled" if r["enabled"] else "disabled"
                self.stdout.write(
                    f"{r['name']:<20} {r['task']:<16} {r['every']:<28} "
                    f"{state:<8} next {r['next_run_at']}"
                )
            return
        if verb == "add":
            created = schedule_services.schedule_create(
                actor=None,
                origin=Origin.CLI,
                name=options["name"],
                task=options["task"],
                payload=options["payload"],
                cron=options["cron"] or "",
                interval_seconds=options["every"],
                timezone=options["tz"],
                queue=options["queue"],
                priority=options["priority"],
                catch_up=options["catch_up"],
                enabled=not options["disabled"],
            )
            self.stdout.write(
                f"Created schedule {created.name}; next run {created.next_run_at}."
            )
            return
        found = Schedule.objects.filter(name=options["name"]).first()
        if found is None:
            raise CommandError(f"no such schedule: {options['name']}")
        if verb in ("enable", "disable"):
            schedule_services.schedule_set_enabled(
                schedule=found, enabled=verb == "enable", actor=None, origin=Origin.CLI
            )
            self.stdout.write(f"{verb.title()}d schedule {found.name}.")
        elif verb == "run-now":
            record = schedule_services.schedule_run_now(
                schedule=found, actor=None, origin=Origin.CLI
            )
            self.stdout.write(record.pk)
        else:
            schedule_services.schedule_delete(
                schedule=found, actor=None, origin=Origin.CLI
            )
            self.stdout.write(f"Deleted schedule {found.name}.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            _check_text_arguments(options)
            getattr(self, f"do_{action.replace('-', '_')}")(options)
        except services.InvalidInput as exc:
            raise CommandError(str(exc)) from None
        except BackendUnavailable as exc:
            raise CommandError(explain(exc)) from None

    def emit(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str))

    def do_submit(self, options: dict[str, Any]) -> None:
        run_at = None
        if options["run_at"]:
            run_at = selectors.parse_when(options["run_at"])
            if run_at is None:
                raise CommandError(
                    f"--at: {options['run_at']!r} is not an ISO 8601 time"
                )
        record = services.job_submit(
            task=options["task"],
            payload=options["payload"],
            queue=options["queue"],
            priority=options["priority"],
            delay=options["delay"],
            run_at=run_at,
            depends_on=options["depends_on"],
            allow_failure=options["allow_failure"],
            idempotency_key=options["idempotency_key"],
            timeout=options["timeout"],
            origin=Origin.CLI,
        )
        self.stdout.write(record.pk)

    def do_status(self, options: dict[str, Any]) -> None:
        record = JobRecord.objects.filter(pk=options["id"]).first()
        if record is None:
            raise CommandError(f"no such job: {options['id']}")
        data = selectors.job_json(record)
        if options["json"]:
            self.emit(data)
            return
        for key, value in data.items():
            if value not in (None, "", {}):
                self.stdout.write(f"{key:>16}  {value}")

    def do_list(self, options: dict[str, Any]) -> None:
        job_filter = selectors.JobFilter.from_mapping(options)
        if job_filter.problems:
            raise CommandError("; ".join(job_filter.problems))
        found = with_rounds(selectors.job_search(job_filter))
        rows = list(found[: max(1, options["limit"])])
        if options["json"]:
            self.emit([selectors.job_json(r) for r in rows])
            return
        for r in rows:
            self.stdout.write(
                f"{r.pk}  {r.status:<9}  {r.queue:<10}  {r.task:<20}  "
                f"{r.submitted_at:%Y-%m-%d %H:%M:%S}  attempt {job_round(r).text}"
            )

    def do_retry(self, options: dict[str, Any]) -> None:
        if options["dead"]:
            job_filter = selectors.JobFilter.from_mapping(
                {**options, "status": JobRecord.Status.DEAD}
            )
            if job_filter.problems:
                raise CommandError("; ".join(job_filter.problems))
            if not self.confirm_dead(job_filter, options["yes"]):
                return
            ids = iter(
                list(
                    selectors.job_search(job_filter).values_list("pk", flat=True)[
                        : services.BULK_CAP
                    ]
                )
            )
            target = "dead jobs " + json.dumps(job_filter.as_query())
        elif options["ids"]:
            ids = iter(_ids_or_error(options["ids"]))
            target = "jobs " + " ".join(options["ids"])[:200]
        else:
            raise CommandError("give job ids or --dead")
        result = services.jobs_retry(
            ids=ids,
            actor=None,
            origin=Origin.CLI,
            reason=options["reason"],
            target=target,
        )
        self.stdout.write(result.summary("Retried"))

    def confirm_dead(self, job_filter: selectors.JobFilter, yes: bool) -> bool:
        """State the exact count, then go on only with --yes or a "y" typed at
        a terminal; a script without --yes is refused, never left waiting."""
        count = history.job_count(job_filter, limit=services.BULK_CAP)
        what = f"{count.label} dead job{'s' if count.value != 1 else ''}"
        self.stdout.write(f"Found {what} ({job_filter.as_text()}).")
        if not count or yes:
            return True
        if not sys.stdin.isatty():
            raise CommandError(
                f"nothing done: add --yes to retry {what} (no terminal to ask on)"
            )
        answer = input(f"Retry {what}? [y/N] ").strip().lower()
        if answer in ("y", "yes"):
            return True
        self.stdout.write("Nothing done.")
        return False

    def do_cancel(self, options: dict[str, Any]) -> None:
        result = services.jobs_cancel(
            ids=_ids_or_error(options["ids"]),
            actor=None,
            origin=Origin.CLI,
            reason=options["reason"],
            target="jobs " + " ".join(options["ids"])[:200],
        )
        self.stdout.write(result.summary("Canceled"))

    def do_pause(self, options: dict[str, Any]) -> None:
        services.queue_pause(
            name=options["queue"],
            actor=None,
            reason=options["reason"],
            origin=Origin.CLI,
        )
        self.stdout.write(f"Paused queue {options['queue']}.")

    def do_resume(self, options: dict[str, Any]) -> None:
        services.queue_resume(
            name=options["queue"],
            actor=None,
            reason=options["reason"],
            origin=Origin.CLI,
        )
        self.stdout.write(f"Resumed queue {options['queue']}.")

    def do_stop_worker(self, options: dict[str, Any]) -> None:
        asked = services.worker_stop(
            name=options["name"],
            actor=None,
            reason=options["reason"],
            origin=Origin.CLI,
        )
        if asked:
            self.stdout.write(
                f"Asked {options['name']} to stop: it takes no new job, finishes "
                "the ones it runs, then exits."
            )
        else:
            self.stdout.write(f"Nothing done: {options['name']} is stopping already.")

    def do_reconcile(self, options: dict[str, Any]) -> None:
        differences = reconcile(repair=not options["dry_run"])
        if options["json"]:
            self.emit([d.__dict__ for d in differences])
            return
        verb = "found" if options["dry_run"] else "repaired"
        for d in differences:
            self.stdout.write(
                f"{d.job_id}  database={d.database}  redis={d.redis}  -> {d.repair}"
            )
        self.stdout.write(f"{len(differences)} difference(s) {verb}.")

    def do_stats(self, options: dict[str, Any]) -> None:
        if options["json"]:
            self.emit(stats_json(overview()))
            return
        while True:
            table = stats_table(overview())
            if not options["watch"]:
                self.stdout.write(table)
                return
            self.stdout.write("\x1b[2J\x1b[H" + table)  # clear, then draw
            self.stdout.flush()
            try:
                time.sleep(2)
            except KeyboardInterrupt:
                return

    def do_purge(self, options: dict[str, Any]) -> None:
        def bar(done: int, total: int) -> None:
            width = 30
            filled = width * done // max(total, 1)
            self.stdout.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending=""
            )
            self.stdout.flush()

        removed = services.history_purge(
            older_than_days=options["older_than"],
            actor=None,
            origin=Origin.CLI,
            progress=bar,
        )
        self.stdout.write(f"\nPurged {removed} finished job(s).")

    def do_ping(self, options: dict[str, Any]) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        connect.connection().ping()
        self.stdout.write("ok")

    def do_monitor(self, options: dict[str, Any]) -> None:
        from jobs.processes.monitor import Monitor

        Monitor().run()
