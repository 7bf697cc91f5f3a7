"""Settings, read from the environment only (12-factor).

Every variable is documented in README.md. Development defaults are safe; a
production deployment (DEBUG off) must provide its secrets or refuses to start.
"""

from __future__ import annotations

import os
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
import django
from django.core.exceptions import ImproperlyConfigured

from console import devsettings, logs

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
#: The dev stack writes the URL of the Redis server it started here, so that
#: management commands run from a second terminal find it with no set-up.
REDIS_URL_FILE = VAR_DIR / "redis" / "url"


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(
        f"{name}: expected a boolean (1/0, true/false), got {raw!r}"
    )


def env_list(name: str, default: str) -> list[str]:
    return [
        item.strip()
        for item in os.environ.get(name, default).split(",")
        if item.strip()
    ]


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}: expected an integer, got {raw!r}"
        ) from None


#: What `make run` runs with (console/devsettings.py), for a command typed in
#: a second terminal; read only when the environment sets neither variable,
#: and absent from a deployment, which still needs its SECRET_KEY.
_DEV_STACK = (
    {}
    if os.environ.get("DEBUG") or os.environ.get("SECRET_KEY")
    else devsettings.read(devsettings.settings_file(VAR_DIR))
)
DEBUG = env_bool("DEBUG", _DEV_STACK.get("DEBUG") == "1")

SECRET_KEY = os.environ.get("SECRET_KEY", "") or _DEV_STACK.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY: must be set when DEBUG is off (generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`)"
        )
    SECRET_KEY = "dev-insecure-" + "x" * 50

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
if not DEBUG and not ALLOWED_HOSTS:
    ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

#: Bearer token that grants access to /metrics (a staff session also does).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
#: Where alerts are sent besides the log: a JSON webhook and/or e-mail.
ALERT_WEBHOOK_URL = os.environ.get("ALERT_WEBHOOK_URL", "")
ALERT_EMAILS = env_list("ALERT_EMAILS", "")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "jobs-console@localhost")


#: WAL pages (4 KiB) before a writer checkpoints by itself (SQLite's default
#: is 1,000); the monitor's checkpoint duty normally runs long before.
SQLITE_AUTOCHECKPOINT_PAGES = 10_000


def _database() -> dict[str, Any]:
    default_sqlite = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
    url = os.environ.get("DATABASE_URL") or default_sqlite
    try:
        parsed = dj_database_url.parse(url, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))
        config: dict[str, Any] = dict(parsed)
    except Exception as exc:  # dj_database_url raises several types
        raise ImproperlyConfigured(
            f"DATABASE_URL: cannot parse {url!r} ({exc})"
        ) from None
    if not config.get("ENGINE"):
        raise ImproperlyConfigured(f"DATABASE_URL: unknown database scheme in {url!r}")
    if config["ENGINE"].endswith("sqlite3"):
        # WAL lets the web read while workers and the recorder write; NORMAL
        # sync keeps commits durable across crashes of the process (not of
        # the host), which is SQLite's own recommendation for WAL. The monitor
        # checkpoints the WAL every second; the high automatic threshold is
        # only a backstop, so no submission pays for copying the WAL back.
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
            f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES};",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
        Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        # A file, not memory: the tests' monitor threads and live server share
        # it under WAL (shared-cache memory databases lock whole tables).
        config["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
    config.setdefault("TEST", {})
    return config


DATABASES = {"default": _database()}


def _redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url and REDIS_URL_FILE.exists():
        url = REDIS_URL_FILE.read_text().strip()
    url = url or "redis://127.0.0.1:6379/0"
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(
            f"REDIS_URL: expected redis://, rediss:// or unix://, got {parts.scheme!r}"
        )
    return url


def _redis_sentinels() -> list[tuple[str, int]]:
    """REDIS_SENTINELS, `host:port,host:port`: Sentinel instead of REDIS_URL
    (REDIS_SENTINEL_MASTER names the primary, REDIS_PASSWORD is its password,
    REDIS_SENTINEL_PASSWORD the sentinels' own)."""
    from jobs.conf import parse_sentinels

    raw = os.environ.get("REDIS_SENTINELS", "").strip()
    if not raw:
        return []
    if os.environ.get("REDIS_URL", "").strip():
        raise ImproperlyConfigured(
            "REDIS_SENTINELS: REDIS_URL is set too; set one of them, not both"
        )
    try:
        sentinels = parse_sentinels(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"REDIS_SENTINELS: {exc}") from None
    if not os.environ.get("REDIS_SENTINEL_MASTER", "").strip():
        raise ImproperlyConfigured(
            "REDIS_SENTINEL_MASTER: must be set with REDIS_SENTINELS (the name "
            "of the primary the sentinels monitor, e.g. mymaster)"
        )
    return sentinels


REDIS_SENTINELS = _redis_sentinels()
REDIS_SENTINEL_MASTER = os.environ.get("REDIS_SENTINEL_MASTER", "").strip()
REDIS_SENTINEL_PASSWORD = os.environ.get("REDIS_SENTINEL_PASSWORD", "")
REDIS_PASSWORD = os.environ.get("REDIS_PASSWORD", "")
REDIS_DB = env_int("REDIS_DB", 0)
REDIS_URL = "" if REDIS_SENTINELS else _redis_url()
#: Seconds a starting worker or scheduler waits for Redis to answer (a
#: restart, or a server still starting beside it) before it gives up; 0 gives
#: up at once.
REDIS_STARTUP_WAIT = env_int("REDIS_STARTUP_WAIT", 30)
#: `rqworker --concurrency N --execution process`: a reused job process is
#: replaced after this many jobs, or once it is resident past this many MB.
JOB_PROCESS_MAX_JOBS = env_int("JOB_PROCESS_MAX_JOBS", 1000)
JOB_PROCESS_MAX_MEMORY_MB = env_int("JOB_PROCESS_MAX_MEMORY_MB", 256)

#: The queues this deployment serves. Each has three priority lanes in Redis.
JOB_QUEUES = env_list("JOB_QUEUES", "default,mail,reports")
if "default" not in JOB_QUEUES:
    JOB_QUEUES.insert(0, "default")

#: Where the @task registry looks for task modules (dotted paths, imported at
#: start-up: a job never imports a path that came from Redis).
JOB_TASK_MODULES = env_list("JOB_TASK_MODULES", "jobs.tasks.demo")

# The RQ_QUEUES lanes and the RQ classes come from the app (jobs/conf.py),
# derived from REDIS_URL and JOB_QUEUES as in any host project.
RQ_SHOW_ADMIN_LINK = False

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    # Template partials are built into Django 6.0; on 5.2 this app provides them
    # (its loader renders "template.html#partial").
    *(["template_partials"] if django.VERSION < (6, 0) else []),
    # Before django_rq: the app's `rqworker` and `rqworker-pool` extend
    # django-rq's commands of the same name (the first app listed wins).
    "jobs",
    "django_rq",
    "django_prometheus",
]

#: A worker process loads only the apps a job needs: the admin, templates and
#: the web's metrics would cost it memory for nothing (see `make bench`).
WORKER_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "jobs",
    "django_rq",
]
WORKER_COMMANDS = frozenset({"rqworker", "rqworker-pool"})
WORKER_PROCESS = len(sys.argv) > 1 and sys.argv[1] in WORKER_COMMANDS
if WORKER_PROCESS:
    INSTALLED_APPS = [app for app in INSTALLED_APPS if app in WORKER_APPS]
elif find_spec("django.tasks") is None:
    # Django 5.2: the Tasks API comes from the django-tasks backport, whose
    # app runs the backends' system checks (Django 6.0 has them built in).
    INSTALLED_APPS.append("django_tasks")

#: Django's standard Tasks API (`@task` from django.tasks or django_tasks)
#: runs on this project's jobs; see README.md, "Django's Tasks API".
TASKS = {"default": {"BACKEND": "jobs.tasks_backend.ConsoleTaskBackend"}}

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "console.worker_urls" if WORKER_PROCESS else "console.urls"
WSGI_APPLICATION = "console.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if WORKER_PROCESS:
    # A worker serves no pages: no middleware, no templates (importing them
    # cost each worker 1.4 MB, see `make bench` figure 5).
    MIDDLEWARE = []
    TEMPLATES = []

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
WHITENOISE_USE_FINDERS = DEBUG
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Security: strict by default when DEBUG is off; TLS termination is usually a
# proxy's job, so HTTPS redirects are opt-in (see README, "check --deploy").
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)

PROCESS_NAME = os.environ.get("PROCESS_NAME", "")
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "console.logs.JsonFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {
        "rq": {"level": "WARNING" if not DEBUG else "INFO"},
        "rq.worker": {"level": "WARNING"},
        "django.db.backends": {"level": "INFO"},
        # rq-scheduler adds a plain-text handler to a logger that has none.
        "rq_scheduler.scheduler": {"handlers": ["stderr"], "propagate": False},
    },
}
# The configuration above is the whole of it: Django's default one (applied
# first when LOGGING_CONFIG is set) would add a second, plain-text console
# handler in DEBUG and an e-mail handler for ADMINS, which this project does
# not use; building that handler imports Django's debug views and templates
# into every process (1.5 MB a worker).
LOGGING_CONFIG = None
logs.configure(LOGGING)
