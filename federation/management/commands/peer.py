"""Register and run peer hubs from the command line (docs/federation.md, "For consortium admins").

    manage.py peer add --hub-id X --name N [--url URL] --public-key B64 [--inbound-policy P]
                       [--scopes peers,federation] [--labels a,b] [--signal-types pdq,md5]
    manage.py peer set-outbound-token --hub-id X --token cp_...
    manage.py peer update --hub-id X [--state S] [--url U] [--inbound-policy P] [--scopes ..]
                          [--labels ..] [--signal-types ..]
    manage.py peer rotate-key --hub-id X --public-key B64 --reason TEXT
    manage.py peer list [--json]
    manage.py peer status [--json]

``status`` prints each peer's health as text (``--json``: one JSON list, keys as documented in
docs/operations.md): the outbox, in flight (claimed under a lease, so a crashed worker shows
before its lease ends), dead letters (those that still matter and all), refused items, the last
push and pull, and their last errors ("recovered at …" once a later attempt succeeded).

``add`` prints one JSON line ``{"hub_id", "inbound_token"}`` (the token the peer presents here,
shown once; no token for a peer without a URL). Every change goes through
``federation.propagation.peers`` and is audited with the actor ``{"type": "system", "id": "cli"}``.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from federation.errors import ConcordatError
from federation.propagation import peers as services
from federation.propagation.selectors import peers_health
from members.actors import Actor
from members.models import Peer


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _peer_json(peer: Peer) -> dict:
    return {
        "hub_id": peer.hub_id,
        "name": peer.name,
        "url": peer.url,
        "key_id": peer.key_id,
        "state": peer.state,
        "inbound_policy": peer.inbound_policy,
        "outbound_scopes": list(peer.outbound_scopes),
        "outbound_labels": list(peer.outbound_labels),
        "outbound_signal_types": list(peer.outbound_signal_types),
        "inbound_credential": f"cp_{peer.inbound_prefix}_…" if peer.inbound_prefix else None,
        "outbound_token": bool(peer.outbound_token),
    }


class Command(BaseCommand):
    help = "Register peer hubs, change their state and policies, and show their health."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)

        def policies(p, *, with_policy_default: bool):
            p.add_argument(
                "--inbound-policy",
                choices=Peer.InboundPolicy.values,
                default=Peer.InboundPolicy.REVIEW if with_policy_default else None,
            )
            p.add_argument("--scopes", help="Comma-separated: peers,federation (empty: both).")
            p.add_argument("--labels", help="Comma-separated label slugs (empty: all).")
            p.add_argument("--signal-types", help="Comma-separated: pdq,md5,sha256 (empty: all).")

        add = sub.add_parser("add", help="Register a peer hub.")
        add.add_argument("--hub-id", required=True)
        add.add_argument("--name", required=True)
        add.add_argument("--url", default="", help="Its API base URL; leave out: known by key.")
        add.add_argument("--public-key", required=True, help="Its hub key, base64 of 32 bytes.")
        policies(add, with_policy_default=True)

        token = sub.add_parser("set-outbound-token", help="The token this hub presents to it.")
        token.add_argument("--hub-id", required=True)
        token.add_argument("--token", required=True)

        update = sub.add_parser("update", help="Change state, URL or policies.")
        update.add_argument("--hub-id", required=True)
        update.add_argument("--state", choices=Peer.State.values)
        update.add_argument("--url")
        policies(update, with_policy_default=False)

        rotate = sub.add_parser("rotate-key", help="Pin the peer's new hub key.")
        rotate.add_argument("--hub-id", required=True)
        rotate.add_argument("--public-key", required=True)
        rotate.add_argument("--reason", required=True)

        for name, text in (("list", "List peers."), ("status", "Each peer's delivery health.")):
            listing = sub.add_parser(name, help=text)
            listing.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, subcommand: str, **options):
        actor = Actor.system("cli")
        try:
            getattr(self, "_" + subcommand.replace("-", "_"))(actor, options)
        except ConcordatError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc

    def _peer(self, hub_id: str) -> Peer:
        peer = Peer.objects.filter(hub_id=hub_id).first()
        if peer is None:
            raise CommandError(f"No peer {hub_id!r}; add it first (manage.py peer add).")
        return peer

    def _line(self, value) -> None:
        self.stdout.write(json.dumps(value, sort_keys=False))

    def _add(self, actor, o):
        registered = services.peer_register(
            hub_id=o["hub_id"],
            name=o["name"],
            url=o["url"],
            public_key=o["public_key"],
            inbound_policy=o["inbound_policy"],
            outbound_scopes=_csv(o["scopes"]),
            outbound_labels=_csv(o["labels"]),
            outbound_signal_types=_csv(o["signal_types"]),
            actor=actor,
        )
        line = {"hub_id": registered.peer.hub_id}
        if registered.inbound_token is not None:
            line["inbound_token"] = registered.inbound_token
        self._line(line)

    def _set_outbound_token(self, actor, o):
        peer = services.peer_set_outbound_token(
            peer=self._peer(o["hub_id"]), token=o["token"], actor=actor
        )
        self._line({"hub_id": peer.hub_id, "outbound_token": True})

    def _update(self, actor, o):
        peer = services.peer_update(
            peer=self._peer(o["hub_id"]),
            state=o["state"],
            url=o["url"],
            inbound_policy=o["inbound_policy"],
            outbound_scopes=_csv(o["scopes"]),
            outbound_labels=_csv(o["labels"]),
            outbound_signal_types=_csv(o["signal_types"]),
            actor=actor,
        )
        self._line(_peer_json(peer))

    def _rotate_key(self, actor, o):
        peer = services.peer_rotate_key(
            peer=self._peer(o["hub_id"]),
            public_key=o["public_key"],
            reason=o["reason"],
            actor=actor,
        )
        self._line({"hub_id": peer.hub_id, "key_id": peer.key_id})

    def _list(self, actor, o):
        peers = [_peer_json(peer) for peer in Peer.objects.order_by("hub_id")]
        if o["as_json"]:
            self._line(peers)
            return
        for p in peers:
            self.stdout.write(
                f"{p['hub_id']:<32} {p['state']:<9} {p['inbound_policy']:<6} "
                f"key {p['key_id']}  {p['url'] or '(known by key only)'}"
            )

    def _status(self, actor, o):
        health = peers_health()
        if o["as_json"]:
            self._line([h.as_json() for h in health])
            return
        if not health:
            self.stdout.write("No peers.")
        for h in health:
            self.stdout.write(_status_text(h))


def _at(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "never"


def _status_text(h) -> str:
    """One peer's health as a few aligned lines (times UTC)."""
    lag = f"{h.lag_seconds:.1f}s" if h.lag_seconds is not None else "-"
    lines = [
        f"{h.hub_id}  ({h.state}, inbound {h.inbound_policy})",
        f"  outbox   depth {h.outbox_depth} (incident {h.incident_depth})  in flight "
        f"{h.in_flight}  lag {lag}  dead {h.dead_letters} ({h.live_dead_letters} still matter)"
        f"  refused {h.refused}",
        f"  push     last success {_at(h.last_success)}  attestations "
        + ("under roots" if h.attestation_roots else "signed alone"),
        f"  pull     last pull {_at(h.last_pull)}",
    ]
    if h.last_error:
        recovered = f" (recovered at {_at(h.push_recovered_at)})" if h.push_recovered_at else ""
        lines[2] += f"  last error at {_at(h.last_error_at)}{recovered}: {h.last_error}"
    if h.last_pull_error:
        lines[3] += f"  last error at {_at(h.last_pull_error_at)}: {h.last_pull_error}"
    elif h.pull_recovered_at:
        lines[3] += (
            f"  last error at {_at(h.last_pull_error_at)} (recovered at {_at(h.pull_recovered_at)})"
        )
    lines.append(
        f"  our feed pulled by it through position {h.peer_pulled_through}, "
        f"last at {_at(h.peer_pulled_at)}"
    )
    return "\n".join(lines)
