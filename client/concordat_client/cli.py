"""The ``concordat`` command (docs/client.md). Exit status: 0 done; 1 something was refused, a
discrepancy found, or (``lookup``) a file matched; 2 bad usage or configuration; 3 the hub could
not be reached or answered an error; 130 interrupted.

This module owns the click group, its global options (``--profile``, ``--json``), the loading of
the profile into the shared ``Context`` (``cli_context.py``) and ``main``, which turns errors into
exit statuses. The commands live by job: keys (``cli_keys.py``), hashing and reading hash files
(``cli_hash.py``), submitting, retracting and feedback (``cli_submit.py``), sync and match
(``cli_match.py``), live streams (``cli_live.py``), and audit, status and private lookup
(``cli_audit.py``)."""

import sys

import click

from concordat_client import cli_audit, cli_hash, cli_keys, cli_live, cli_match, cli_submit, video
from concordat_client.cli_context import EXIT_HUB, EXIT_INTERRUPTED, EXIT_USAGE, Context, err
from concordat_client.config import load_profile
from concordat_client.hub import HubError


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        err.print("interrupted: rerun the same command to carry on")
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except HubError as exc:
        err.print(f"hub error: {exc}")
        sys.exit(EXIT_HUB)
    except video.MissingTool as exc:
        err.print(f"error: {exc}")
        sys.exit(EXIT_USAGE)


@click.group()
@click.option("--profile", default=None, help="Profile in the config file (default: 'default').")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output, one JSON per line.")
@click.pass_context
def cli(click_context: click.Context, profile: str | None, as_json: bool) -> None:
    """Concordat partner client: hash, sign, submit, sync, match, verify."""
    click_context.obj = Context(load_profile(profile), as_json)


for command in (
    cli_keys.keygen,
    cli_keys.register_key,
    cli_hash.hash_command,
    cli_submit.submit,
    cli_submit.retract,
    cli_submit.feedback,
    cli_match.sync,
    cli_match.match,
    cli_live.live,
    cli_audit.verify_log,
    cli_audit.status,
    cli_audit.lookup,
):
    cli.add_command(command)


if __name__ == "__main__":
    main()
