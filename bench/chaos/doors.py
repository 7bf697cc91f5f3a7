"""The three front doors a submission can come through, driven as a client
would: the JSON API and the console's form through Django's full request
stack, the CLI through its own argument parsing (in this process, and a
sample as real `manage.py` processes). Each answers with what happened."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
from dataclasses import dataclass
from typing import Any

#: API answers that are not accepted but also not a server fault.
API_REJECTED = range(400, 500)


@dataclass
class Tried:
    door: str
    given: str
    accepted: bool = False
    job_id: str | None = None
    #: What went wrong on the server's side (a 500, a traceback), if it did.
    server_error: str | None = None
    #: Rejected without saying why.
    unclear: bool = False


def shown(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class Doors:
    def __init__(self) -> None:
        from django.contrib.auth.models import Group, User
        from django.core.management import load_command_class
        from django.test import Client

        from jobs.roles import OPERATORS
        from jobs.tokens import token_create

        user = User.objects.create_user("chaos-operator")
        user.groups.add(Group.objects.get(name=OPERATORS))
        _, secret = token_create(user=user, name="chaos")
        common: dict[str, Any] = {"HTTP_HOST": "localhost"}
        self.api = Client(
            raise_request_exception=False,
            HTTP_AUTHORIZATION=f"Bearer {secret}",
            **common,
        )
        self.web = Client(raise_request_exception=False, **common)
        self.web.force_login(user)
        self.command = load_command_class("jobs", "jobs")

    # -- the JSON API ---------------------------------------------------------

    def through_api(self, fields: dict[str, Any], raw: bytes | None) -> Tried:
        body = raw if raw is not None else json.dumps(fields).encode()
        tried = Tried("api", shown(raw if raw is not None else fields))
        response = self.api.post(
            "/api/jobs/", data=body, content_type="application/json"
        )
        try:
            answer = json.loads(response.content)
        except ValueError:
            answer = None
        if response.status_code >= 500 or not isinstance(answer, dict):
            tried.server_error = f"HTTP {response.status_code}"
        elif response.status_code in (200, 201) and answer.get("id"):
            tried.accepted, tried.job_id = True, str(answer["id"])
        elif response.status_code in API_REJECTED:
            tried.unclear = not answer.get("error")
        else:
            tried.server_error = f"HTTP {response.status_code}: {shown(answer)}"
        return tried

    # -- the console's submit form ----------------------------------------------

    def through_form(self, fields: dict[str, Any]) -> Tried:
        data = {
            name: _form_value(fields[name])
            for name in ("task", "payload", "queue", "priority", "delay")
            if name in fields
        }
        tried = Tried("form", shown(data))
        response = self.web.post("/submit/", data=data)
        location = response.get("Location", "")
        if response.status_code >= 500:
            tried.server_error = f"HTTP {response.status_code}"
        elif response.status_code == 302 and "/jobs/" in location:
            tried.accepted = True
            tried.job_id = location.rstrip("/").rsplit("/", 1)[-1]
        elif response.status_code == 400:
            tried.unclear = b'class="error"' not in response.content
        else:
            tried.server_error = f"HTTP {response.status_code} {location}"
        return tried

    # -- the CLI ------------------------------------------------------------------

    def through_cli(self, fields: dict[str, Any], process: bool = False) -> Tried:
        argv = cli_arguments(fields)
        tried = Tried("cli", shown(argv))
        if process:
            return _cli_process(argv, tried)
        from django.core.management import CommandError, call_command

        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                call_command(self.command, "submit", *argv, stdout=out, stderr=err)
        except CommandError as exc:
            tried.unclear = not str(exc).strip()
        except SystemExit as exc:  # argparse: usage and a one-line reason
            tried.unclear = exc.code != 2 or not err.getvalue().strip()
        except Exception as exc:  # noqa: BLE001 - what a user would see as a traceback
            tried.server_error = f"{type(exc).__name__}: {shown(str(exc))}"
        else:
            tried.accepted, tried.job_id = True, out.getvalue().strip()
        return tried


def cli_arguments(fields: dict[str, Any]) -> list[str]:
    """The fields as `jobs submit` arguments (an argv never holds NUL)."""
    argv = [_arg(fields.get("task", "")), "--payload", _arg(fields.get("payload"))]
    for name, flag in (
        ("queue", "--queue"),
        ("priority", "--priority"),
        ("delay", "--delay"),
        ("run_at", "--at"),
        ("idempotency_key", "--idempotency-key"),
    ):
        if name in fields:
            argv += [flag, _arg(fields[name])]
    if "depends_on" in fields:
        parents = fields["depends_on"]
        argv += [
            "--depends-on",
            *map(_arg, parents if isinstance(parents, list) else [parents]),
        ]
    if fields.get("allow_failure") is True:
        argv.append("--allow-failure")
    return argv


def _arg(value: Any) -> str:
    """What a process would find in its argv for this value: the bytes of its
    UTF-8 (a lone surrogate too), decoded as Python decodes an argv; never a
    NUL, which no argv can hold."""
    text = value if isinstance(value, str) else json.dumps(value)
    return os.fsdecode(text.replace("\x00", "").encode("utf-8", "surrogatepass"))


def _form_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    # A browser sends well-formed UTF-8: lone surrogates become U+FFFD.
    return text.encode("utf-8", "replace").decode("utf-8", "replace")


def _cli_process(argv: list[str], tried: Tried) -> Tried:
    from bench.procs import MANAGE

    done = subprocess.run(
        [*MANAGE, "jobs", "submit", *argv],
        env=dict(os.environ, PROCESS_NAME="cli"),
        capture_output=True,
        text=True,
        check=False,
    )
    if "Traceback" in done.stderr:
        tried.server_error = "traceback: " + shown(done.stderr[-300:])
    elif done.returncode == 0:
        tried.accepted, tried.job_id = True, done.stdout.strip().splitlines()[-1]
    elif done.returncode in (1, 2):
        tried.unclear = not done.stderr.strip()
    else:
        tried.server_error = f"exit {done.returncode}: {shown(done.stderr[-300:])}"
    return tried


#: Linux refuses a single argument longer than 128 kB (MAX_ARG_STRLEN).
LONGEST_ARGUMENT = 100_000


def fits_a_process(argv: list[str]) -> bool:
    """Whether an argv can be passed to a real process at all."""
    try:
        sizes = [len(os.fsencode(arg)) for arg in argv]
    except UnicodeError:
        return False
    return max(sizes, default=0) < LONGEST_ARGUMENT
