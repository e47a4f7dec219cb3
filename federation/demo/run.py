"""Running the demo: the checks that come before anything under ``var/`` changes, the hubs
started, the walkthrough, and every hub process stopped however the demo ends."""

import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.management.base import CommandError

from federation.demo.hubs import (
    MIN_CONTRIBUTIONS,
    ROOT,
    DemoHub,
    HubDied,
    claim_demo,
    peer_names,
    refuse_if_port_taken,
)
from federation.demo.setup import set_up, wait_until_up, witness_each_other
from federation.demo.walkthrough import Walkthrough


def _stop_on_signal(signum, frame) -> None:
    raise KeyboardInterrupt


def run_demo(
    *,
    stdout,
    port: int,
    hub_name: str,
    hubs: int,
    peer_ports: str,
    contributions: int,
    keep_running: bool,
) -> None:
    """Run the demo, saying what happens on ``stdout``; every hub process is stopped at the end,
    however it ends (Ctrl-C, SIGTERM, SIGHUP, an error)."""
    show = Walkthrough(stdout)
    if contributions < MIN_CONTRIBUTIONS:
        raise CommandError(
            f"--contributions must be at least {MIN_CONTRIBUTIONS}: the walkthrough approves "
            "three entries and rejects one."
        )
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
        raise CommandError(
            "Run the demo with DJANGO_SETTINGS_MODULE=settings.demo (make demo does)."
        )
    ports = [port, *(int(p) for p in peer_ports.split(",") if p.strip())]
    ports += [ports[-1] + 1 + n for n in range(hubs - len(ports))]
    names = [hub_name, *peer_names(hub_name)][:hubs]
    federation = [
        DemoHub(name=name, port=hub_port, folder=ROOT / "var" / name)
        for name, hub_port in zip(names, ports[:hubs], strict=True)
    ]
    hub = federation[0]
    # Every check comes before anything under var/ is removed: a second demo must never wipe
    # the database and key of one that is running.
    locks = []
    try:
        for member in federation:
            locks.append(claim_demo(member))
        for member in federation:
            refuse_if_port_taken(member)
    except CommandError:
        for lock in locks:
            lock.release()
        raise
    # SIGTERM (kill, a supervisor, a CI timeout) stops the hubs' processes as Ctrl-C does.
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGHUP, _stop_on_signal)
    try:
        for member in federation:
            shutil.rmtree(member.folder, ignore_errors=True)
        show.say(
            f"Setting up hub {hub.hub_id}: SQLite in {hub.folder.relative_to(ROOT)}, "
            "file-system broker"
        )
        for peer in federation[1:]:
            show.say(
                f"Setting up its peer {peer.hub_id}: SQLite in "
                f"{peer.folder.relative_to(ROOT)}, file-system broker"
            )
        people = set_up(federation)
        for member in federation:
            member.start()
        for member in federation:
            wait_until_up(member)
        if len(federation) > 1:
            show.say(
                "The hubs are peered with each other (manage.py peer add / "
                "set-outbound-token: hub keys pinned, tokens exchanged, inbound policy trust)"
            )
            witness_each_other(federation, people)
            show.say(
                "Each hub witnesses the others' logs (manage.py witnessed_logs add / "
                "hub_witnesses add): it cosigns their checkpoints, and they ask it to"
            )
        show.walkthrough(hub, people, contributions, peers=federation[1:])
        show.show_next_steps(hub, people, keep_running=keep_running, peers=federation[1:])
        if keep_running:
            show.say(
                "The hubs stay up; press Ctrl-C to stop."
                if len(federation) > 1
                else "The hub stays up; press Ctrl-C to stop."
            )
            while True:
                for member in federation:
                    member.check_alive()
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    except CommandError as error:
        # A process that died explains a failed step better than the step's own error.
        deaths = [death for member in federation for death in member.deaths()]
        if deaths and not isinstance(error, HubDied):
            raise HubDied(f"{error}\n" + "\n".join(deaths)) from error
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        with ThreadPoolExecutor(max_workers=len(federation)) as pool:
            list(pool.map(DemoHub.stop, federation))
        show.say("Stopped the hub." if len(federation) == 1 else "Stopped the hubs.")
        for lock in locks:
            lock.release()
