"""Typed helpers that read configuration from environment variables with explicit defaults, and
the one-line report of a configuration error that manage.py and the WSGI entry point give."""

import contextlib
import ipaddress
import os
import sys
from collections.abc import Iterator

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str | None = None, *, hint: str = "") -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(
            f"Set the environment variable {name}" + (f" ({hint})" if hint else "") + "."
        )
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), not {raw!r}.")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}.") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(name: str, default: list[str]) -> list[str]:
    """A comma-separated list of IP networks (``10.0.0.0/8``, ``192.0.2.7``, ``::1``), checked."""
    networks = env_list(name, default)
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be a comma-separated list of IP networks, not {network!r}."
            ) from None
    return networks


@contextlib.contextmanager
def configuration_errors_in_one_line(program: str) -> Iterator[None]:
    """A configuration error (a missing or malformed variable, no hub key) ends the program with
    one line on stderr naming what to set, and exit status 2, rather than a long traceback."""
    try:
        yield
    except ImproperlyConfigured as error:
        sys.stderr.write(f"{program}: configuration error: {error} See README, 'Running a hub'.\n")
        raise SystemExit(2) from None
