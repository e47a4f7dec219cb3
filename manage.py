#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    # Development defaults; deployments set DJANGO_SETTINGS_MODULE=settings.base (README).
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")
    from django.core.management import execute_from_command_line

    from settings.env import configuration_errors_in_one_line

    with configuration_errors_in_one_line("manage.py"):
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
