"""What every ``concordat`` command shares: the profile-bound ``Context`` (its checks of the
profile, its hub, its output as text or JSON lines), the exit statuses, the error console and
the profile's local copy of the shared set.

It is apart from ``cli.py`` because ``python -m concordat_client.cli`` runs that file as
``__main__``: the command modules import from here, so there is one ``Context`` class whichever
way the command is started."""

import json
from typing import Any

import click
from rich.console import Console

from concordat_client.config import Profile
from concordat_client.hub import Hub
from concordat_client.local import SharedSet

EXIT_REFUSED, EXIT_USAGE, EXIT_HUB, EXIT_INTERRUPTED = 1, 2, 3, 130
err = Console(stderr=True)


class Context:
    def __init__(self, profile: Profile, as_json: bool) -> None:
        self.profile, self.as_json = profile, as_json
        self.out = Console(highlight=False)

    def need(self, *fields: str) -> None:
        missing = [f for f in fields if getattr(self.profile, f) in (None, "")]
        if missing:
            names = ", ".join(f"CONCORDAT_{f.upper()}" for f in missing)
            raise click.UsageError(
                f"profile {self.profile.name!r} has no {', '.join(missing)} (set it in the config "
                f"file or {names})"
            )

    def hub(self) -> Hub:
        self.need("hub")
        return Hub(self.profile.hub, self.profile.token)

    def emit(self, document: Any, text: str | None = None) -> None:
        if self.as_json:
            click.echo(json.dumps(document, separators=(",", ":")))
        elif text is not None:
            self.out.print(text)


pass_context = click.make_pass_decorator(Context)


def shared_set(context: Context) -> SharedSet:
    return SharedSet(context.profile.state / "shared-set.sqlite")
