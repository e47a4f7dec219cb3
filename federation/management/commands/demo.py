"""`make demo`: a small federation on localhost, shown at work (``federation.demo``)."""

from django.core.management.base import BaseCommand

from federation.demo.hubs import MIN_CONTRIBUTIONS
from federation.demo.run import run_demo


class Command(BaseCommand):
    help = "Run a small Concordat federation on localhost and show it at work (no servers needed)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--port",
            type=int,
            default=8701,
            help="The first hub's port on 127.0.0.1 (must be free).",
        )
        parser.add_argument(
            "--hub-name", default="hub-a", help="Names the first hub and its folder var/NAME."
        )
        parser.add_argument(
            "--hubs", type=int, choices=(1, 2, 3), default=3,
            help="How many hubs (the first and its peers; 1 runs a hub alone).",
        )  # fmt: skip
        parser.add_argument(
            "--peer-ports",
            default="",
            help="The peers' ports, comma-separated (default: the ports after --port).",
        )
        parser.add_argument(
            "--contributions",
            type=int,
            default=300,
            help=f"How many contributions acme submits (at least {MIN_CONTRIBUTIONS}: the "
            "walkthrough approves three and rejects one).",
        )
        parser.add_argument(
            "--keep-running", action="store_true", help="Leave the hubs up until Ctrl-C when done."
        )

    def handle(self, *args, **options):
        run_demo(
            stdout=self.stdout,
            **{name: options[name] for name in ("port", "hub_name", "hubs", "peer_ports",
                                                "contributions", "keep_running")},
        )  # fmt: skip
