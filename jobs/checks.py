"""System checks: configuration mistakes reported by `manage.py check`.

They run in `check`, `migrate`, `runserver` and in a worker as it starts
(`manage.py rqworker` runs every check; the reference project's slimmer
worker runs the `jobs` tag): a worker whose configuration would not
understand the app's jobs refuses to start with one of these errors.
The `jobs_web` tag is what only the web needs (apps and middleware for the
pages), so that a worker that loads no templates is not held to it.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import urlsplit

import django
from django.apps import apps
from django.conf import settings
from django.core.checks import Error, register
from django.core.checks import Warning as CheckWarning

from jobs import conf

#: Apps whose template tags and commands the app's pages and workers use.
REQUIRED_APPS = (
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.humanize",
    "django_htmx",
    # `{% partialdef %}` and "page.html#name": built into Django 6.0.
    *(["template_partials"] if django.VERSION < (6, 0) else []),
    "django_rq",
)
HTMX_MIDDLEWARE = "django_htmx.middleware.HtmxMiddleware"
WORKER_COMMANDS = ("rqworker", "rqworker-pool")
#: Modules of JOB_TASK_MODULES that could not be imported (set by the app's
#: ready(): an import error there would be a traceback, not a check error).
missing_task_modules: list[str] = []


@register("jobs")
def queues_and_tasks(app_configs: Any, **kwargs: Any) -> list[Error]:
    from jobs import registry

    errors = [
        Error(
            f"JOB_TASK_MODULES: cannot import {module!r}",
            hint="Fix the dotted path, or remove it from JOB_TASK_MODULES.",
            id="jobs.E007",
        )
        for module in missing_task_modules
    ]
    queues = _job_queues()
    for task in registry.all_tasks():
        if queues is not None and task.queue not in queues:
            errors.append(
                Error(
                    f"task {task.name!r} uses queue {task.queue!r}, which JOB_QUEUES "
                    "does not list",
                    hint=f"Add {task.queue!r} to JOB_QUEUES.",
                    id="jobs.E001",
                )
            )
    return errors


@register("jobs")
def redis_url(app_configs: Any, **kwargs: Any) -> list[Error]:
    url = getattr(settings, "REDIS_URL", None)
    example = "REDIS_URL = 'redis://127.0.0.1:6379/0'"
    if conf.get("REDIS_SENTINELS"):
        return _sentinel_errors(url)
    if not url:
        return [_error("E002", "REDIS_URL is not set", f"Add {example}.")]
    if not isinstance(url, str) or urlsplit(url).scheme not in {
        "redis",
        "rediss",
        "unix",
    }:
        return [
            _error(
                "E002",
                f"REDIS_URL must be a redis://, rediss:// or unix:// URL, got {url!r}",
                f"For example {example}.",
            )
        ]
    return []


def _sentinel_errors(url: Any) -> list[Error]:
    """Sentinel is the alternative to REDIS_URL, never both: which server
    would be meant?"""
    if url:
        return [
            _error(
                "E020",
                "REDIS_URL and REDIS_SENTINELS are both set: which Redis is meant?",
                "Keep REDIS_SENTINELS (with REDIS_SENTINEL_MASTER) for Sentinel, "
                "or REDIS_URL for one server.",
            )
        ]
    try:
        conf.parse_sentinels(conf.get("REDIS_SENTINELS"))
    except ValueError as exc:
        return [
            _error(
                "E021",
                f"REDIS_SENTINELS: {exc}",
                "For example REDIS_SENTINELS = 'sentinel-1:26379,sentinel-2:26379'.",
            )
        ]
    master = conf.get("REDIS_SENTINEL_MASTER")
    if not isinstance(master, str) or not master.strip():
        return [
            _error(
                "E020",
                "REDIS_SENTINEL_MASTER is not set: Sentinel needs the name of the "
                "primary it monitors",
                "For example REDIS_SENTINEL_MASTER = 'mymaster'.",
            )
        ]
    if not isinstance(conf.get("REDIS_DB"), int):
        return [_error("E021", "REDIS_DB must be a whole number", "For example 0.")]
    return []


@register("jobs")
def job_queues(app_configs: Any, **kwargs: Any) -> list[Error]:
    queues = _job_queues()
    hint = "For example JOB_QUEUES = ['default', 'mail']."
    if queues is None:
        return [_error("E003", "JOB_QUEUES must be a list of queue names", hint)]
    if "default" not in queues:
        return [
            _error(
                "E003",
                "JOB_QUEUES must list 'default' (tasks without a queue go there)",
                hint,
            )
        ]
    return []


@register("jobs")
def rq_classes(app_configs: Any, **kwargs: Any) -> list[Error]:
    """django-rq's RQ dict must name the app's worker, job class, serializer
    and scheduler: with RQ's defaults a worker would unpickle JSON jobs."""
    rq = getattr(settings, "RQ", {})
    errors = []
    for key, allowed in conf.RQ_REQUIRED.items():
        value = rq.get(key, allowed[0])
        if _dotted(value) not in allowed:
            errors.append(
                _error(
                    "E004",
                    f"RQ[{key!r}] is {_dotted(value)!r}: the app's jobs need "
                    f"{' or '.join(allowed)}",
                    f"Remove {key!r} from RQ (the app sets it) or set it to "
                    f"{allowed[0]!r}.",
                )
            )
    return errors


@register("jobs")
def rq_queues(app_configs: Any, **kwargs: Any) -> list[Error]:
    """Every lane of every queue must be in RQ_QUEUES, on REDIS_URL's server:
    otherwise workers would listen where nothing is submitted."""
    queues = _job_queues()
    configured = getattr(settings, "RQ_QUEUES", None)
    try:
        target = conf.redis_target()
    except ValueError:
        return []  # reported by jobs.E021
    if queues is None or not isinstance(configured, dict) or not target.label:
        return []
    hint = (
        f"Remove RQ_QUEUES: the app derives it from {target.variable} and JOB_QUEUES."
    )
    for lane in (lane for queue in queues for lane in conf.lanes(queue)):
        config = configured.get(lane)
        if not isinstance(config, dict):
            return [_error("E005", f"RQ_QUEUES has no entry for {lane!r}", hint)]
        if not _same_server(config, target):
            message = f"RQ_QUEUES[{lane!r}] does not use {target.variable}"
            return [_error("E005", message, hint)]
    return []


def _same_server(config: dict, target: conf.RedisTarget) -> bool:
    if not target.sentinels:
        return bool(config.get("URL") == target.url)
    given = config.get("SENTINELS") or []
    try:
        sentinels = conf.parse_sentinels(list(given))
    except (ValueError, TypeError):
        return False
    return (
        "URL" not in config
        and tuple(sentinels) == target.sentinels
        and config.get("MASTER_NAME") == target.master
    )


@register("jobs")
def worker_command_line(app_configs: Any, **kwargs: Any) -> list[Error]:
    """A worker's own configuration is its command line: its queues and any
    class it was told to use instead of the app's."""
    command, options = _worker_options(sys.argv)
    if options is None:
        return []
    errors = []
    for key, option in (("WORKER_CLASS", "worker_class"), ("JOB_CLASS", "job_class")):
        given = getattr(options, option, None)
        flag = f"--{option.replace('_', '-')}"
        if given and given not in conf.RQ_REQUIRED[key]:
            errors.append(
                _error(
                    "E006",
                    f"{command} {flag} {given}: the app's jobs need "
                    + " or ".join(conf.RQ_REQUIRED[key]),
                    f"Leave out {flag}.",
                )
            )
    known = {lane for q in _job_queues() or [] for lane in conf.lanes(q)}
    errors += [
        _error(
            "E006",
            f"{command}: unknown queue {name!r}",
            "Give queues that JOB_QUEUES lists, or add it there.",
        )
        for name in getattr(options, "args", None) or []
        if name not in known
    ]
    return errors


def _worker_options(argv: list[str]) -> tuple[str, Any]:
    """The worker command being run and its parsed options (None if this
    process is no worker), read with the command's own parser."""
    if len(argv) < 2 or argv[1] not in WORKER_COMMANDS:
        return "", None
    from django.core.management import get_commands, load_command_class

    # The command Django runs: the app's own (which adds --concurrency) when
    # `jobs` is listed before `django_rq`, else django-rq's.
    app = get_commands().get(argv[1], "django_rq")
    parser = load_command_class(app, argv[1]).create_parser("manage.py", argv[1])
    options, _ = parser.parse_known_args(argv[2:])
    return argv[1], options


@register("jobs")
def app_order(app_configs: Any, **kwargs: Any) -> list[CheckWarning]:
    """The app's `rqworker` (`--concurrency`) and `rqworker-pool` (the heap
    frozen once in the parent) extend django-rq's commands of the same name;
    Django runs the command of the app listed first."""
    names = [config.name for config in apps.get_app_configs()]
    if "django_rq" not in names or names.index("django_rq") > names.index("jobs"):
        return []
    return [
        CheckWarning(
            "INSTALLED_APPS lists 'django_rq' before 'jobs': `rqworker` and "
            "`rqworker-pool` are then django-rq's own, without --concurrency "
            "and without the pool's shared memory",
            hint="List 'jobs' before 'django_rq'.",
            id="jobs.W001",
        )
    ]


@register("jobs_web")
def apps_and_middleware(app_configs: Any, **kwargs: Any) -> list[Error]:
    errors = [
        _error(
            "E008",
            f"INSTALLED_APPS lacks {app!r}, which the jobs app needs",
            f"Add {app!r} to INSTALLED_APPS.",
        )
        for app in REQUIRED_APPS
        if not apps.is_installed(app)
    ]
    if HTMX_MIDDLEWARE not in settings.MIDDLEWARE:
        errors.append(
            _error(
                "E009",
                "MIDDLEWARE lacks django-htmx's middleware, which the console's "
                "pages need",
                f"Add {HTMX_MIDDLEWARE!r} to MIDDLEWARE.",
            )
        )
    return errors


def _job_queues() -> list[str] | None:
    queues = getattr(settings, "JOB_QUEUES", None)
    if not isinstance(queues, list | tuple):
        return None
    if not all(isinstance(q, str) and q for q in queues):
        return None
    return list(queues)


def _dotted(value: Any) -> str:
    if isinstance(value, str):
        return value
    return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}"


def _error(code: str, message: str, hint: str) -> Error:
    return Error(message, hint=hint, id=f"jobs.{code}")
