#!/usr/bin/env python
"""Django's command-line utility, with one clear line for bad configuration."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    from console.startup import run_or_explain

    run_or_explain(sys.argv)


if __name__ == "__main__":
    main()
