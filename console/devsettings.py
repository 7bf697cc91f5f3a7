"""The dev stack's own settings, recorded for commands run beside it.

`make run` sets DEBUG for its processes only; a management command typed in
a second terminal has neither DEBUG nor SECRET_KEY, and a deployment with
neither must refuse to start. So the stack writes what it runs with to a
private file under VAR_DIR (as it does its Redis URL), and the settings read
it only when the environment sets neither variable. A deployment has no such
file and still refuses. The file is kept when the stack stops: commands keep
working against the dev database, and the signing key (so logins) survives a
restart. This module imports nothing from Django's settings: the dev stack
writes the file before any settings are read.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

FILE_NAME = "devstack.env"
#: What the file may set; anything else in it is ignored.
KEYS = ("DEBUG", "SECRET_KEY")
_HEADER = (
    "# Written by `make run` (console/devstack.py) for management commands run\n"
    "# beside it; read only when neither DEBUG nor SECRET_KEY is set.\n"
)


def settings_file(var_dir: Path) -> Path:
    return var_dir / FILE_NAME


def read(path: Path) -> dict[str, str]:
    """The recorded settings, or {} when the stack never ran here.

    A file that another user could have written or read is refused rather
    than trusted: it would set the signing key and turn DEBUG on."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return {}
    if (
        not stat.S_ISREG(info.st_mode)
        or info.st_uid != os.getuid()
        or info.st_mode & 0o077
    ):
        raise ImproperlyConfigured(
            f"{path}: the dev stack's settings must be a private file of yours "
            "(chmod 600); remove it, or set DEBUG and SECRET_KEY"
        )
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in KEYS:
            values[key.strip()] = value.strip()
    return values


def record(path: Path, *, debug: str) -> dict[str, str]:
    """Write the stack's settings (keeping an earlier key) and return them."""
    try:
        key = read(path).get("SECRET_KEY", "")
    except ImproperlyConfigured:
        key = ""  # replaced below by a private file with a new key
    on = debug.strip().lower() in {"1", "true", "yes", "on"}
    values = {
        "DEBUG": "1" if on else "0",
        "SECRET_KEY": key or secrets.token_urlsafe(50),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(_HEADER + "".join(f"{k}={v}\n" for k, v in values.items()))
    os.replace(partial, path)
    return values
