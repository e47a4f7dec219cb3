"""Building blocks of the federation tests: peers, foreign contributions and their arrivals, a
vetted entry, and a local HTTP server standing in for a receiving hub."""

import base64
import hashlib
import http.server
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rest_framework.test import APIClient

from federation.canonical import canonical_json_bytes
from federation.contributions.models import Contribution, Entry
from federation.lifecycle import entries_transition
from federation.propagation.models import OutboxItem, Receipt
from federation.propagation.peers import peer_register, peer_set_outbound_token
from federation.signing import format_timestamp, sign_contribution
from members.actors import Actor
from members.models import Organisation, Peer, SigningKey, key_id_for
from tests.support.parties import Party, random_hex, raw_public_key, signed_key_registration

ACTOR = Actor.system("test")


def new_hub_key() -> tuple[Ed25519PrivateKey, str]:
    key = Ed25519PrivateKey.generate()
    return key, base64.b64encode(raw_public_key(key)).decode()


def make_peer(hub_id: str, *, url: str | None = None, token: bool = True, **policies) -> Peer:
    """A linked peer (a URL unless ``url=""``) with an outbound token."""
    _key, public = new_hub_key()
    registered = peer_register(
        hub_id=hub_id,
        name=hub_id.split(".")[0].title(),
        url=f"http://{hub_id}.invalid" if url is None else url,
        public_key=public,
        actor=ACTOR,
        **policies,
    )
    peer = registered.peer
    if token and peer.url:
        peer_set_outbound_token(peer=peer, token=f"cp_{uuid.uuid4().hex[:12]}_secret", actor=ACTOR)
        peer.refresh_from_db()
    return peer


def feed_reader(hub_id: str, **policies) -> tuple[Peer, APIClient]:
    """A peer registered here (``policies`` as for ``peer_register``) and a client that reads
    this hub's pull feed with the peer's inbound token."""
    registered = peer_register(
        hub_id=hub_id,
        name=hub_id.split(".")[0].title(),
        url=f"http://{hub_id}.invalid",
        public_key=new_hub_key()[1],
        actor=ACTOR,
        **policies,
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {registered.inbound_token}")
    return registered.peer, client


def vet(*entries: Entry) -> None:
    entries_transition(entry_ids=[e.pk for e in entries], to="vetted", actor=ACTOR)


def submit(party: Party, **overrides) -> Entry:
    response = party.submit(**overrides)
    assert response.status_code == 201, response.json()
    return Entry.objects.get(pk=response.json()["entry_id"])


def vetted_entry(party: Party, **overrides) -> Entry:
    entry = submit(party, **overrides)
    if entry.state == "pending":  # an incident's fast lane may have vetted it already
        vet(entry)
    entry.refresh_from_db()
    assert entry.state == "vetted"
    return entry


@dataclass
class ForeignMember:
    """A member of another hub, mirrored here, with its key (and the contributions it signs)."""

    hub: str
    organisation: Organisation
    private_key: Ed25519PrivateKey
    signing_key: SigningKey

    def contribution(self, *, scope="federation", signal=None, **overrides) -> Contribution:
        """A stored relayed contribution (as receiving would have stored it)."""
        document = {
            "kind": "concordat.contribution",
            "v": 1,
            "hub": self.hub,
            "member": self.organisation.slug,
            "key_id": self.signing_key.key_id,
            "uuid": str(uuid.uuid4()),
            "created_at": format_timestamp(datetime.now(UTC).replace(microsecond=0)),
            "action": "add",
            "signal": signal or {"type": "pdq", "value": random_hex(64)},
            "labels": ["attack-footage"],
            "scope": scope,
            **overrides,
        }
        canonical = canonical_json_bytes(document)
        signature = base64.b64decode(sign_contribution(self.private_key, document))
        entry, _ = Entry.objects.get_or_create(
            signal_type=document["signal"]["type"], value=document["signal"]["value"]
        )
        return Contribution.objects.create(
            uuid=document["uuid"],
            organisation=self.organisation,
            signing_key=self.signing_key,
            entry=entry,
            action="add",
            labels=document["labels"],
            scope=scope,
            created_at=datetime.fromisoformat(document["created_at"]),
            canonical=canonical.decode(),
            content_hash=hashlib.sha256(canonical).hexdigest(),
            signature=signature,
            origin_hub=self.hub,
        )


def foreign_member(hub: str, slug: str = "initech") -> ForeignMember:
    organisation = Organisation.objects.create(hub=hub, slug=slug, name=slug.title())
    private_key = Ed25519PrivateKey.generate()
    registration = signed_key_registration(private_key, organisation, hub=hub)
    public = raw_public_key(private_key)
    key = SigningKey.objects.create(
        organisation=organisation,
        key_id=key_id_for(public),
        public_key=public,
        registration=canonical_json_bytes(registration["registration"]).decode(),
        registration_signature=base64.b64decode(registration["signature"]),
    )
    return ForeignMember(hub, organisation, private_key, key)


def arrival(
    contribution: Contribution, *, peer_hub: str, path: list[str], attestations=(), sent_to=()
):
    return Receipt.objects.create(
        contribution=contribution,
        peer_hub=peer_hub,
        via="push",
        path=path,
        attestations=list(attestations),
        sent_to=list(sent_to),
        effective_scope="hub" if contribution.scope == "peers" else contribution.scope,
        digest="0" * 64,
    )


def rows(**filters) -> list[OutboxItem]:
    return list(OutboxItem.objects.filter(**filters).select_related("peer").order_by("pk"))


def row_refs(rows) -> list:
    """The builder's references to outbox rows (a drain passes its claimed rows as they are)."""
    from federation.propagation.items import RowRef

    return [
        RowRef(r.id, r.kind, r.contribution_id, r.entry_id, r.signing_key_id, list(r.path or []))
        for r in rows
    ]


def owed(**filters) -> set[tuple[str, str, int | None]]:
    """(peer hub id, kind, contribution or entry or key id) of the outbox rows."""
    return {
        (
            row.peer.hub_id,
            row.kind,
            row.contribution_id or (row.entry_id if row.kind == "entry" else row.signing_key_id),
        )
        for row in rows(**filters)
    }


# --- A receiving hub on 127.0.0.1 ----------------------------------------------------------------


@dataclass
class Receiver:
    """Records the batches POSTed to it and answers like a hub (docs/federation.md): every item
    accepted unless ``answer`` says otherwise. ``answer(batch) -> (status, body)``."""

    answer: object = None
    roots: bool = False  # answers say it takes attestations under a root
    batches: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def items(self) -> list[dict]:
        return [item for batch in self.batches for item in batch["batch"]["items"]]

    def __enter__(self) -> "Receiver":
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                receiver.batches.append(body)
                receiver.headers.append({"path": self.path, **dict(self.headers)})
                if receiver.answer is not None:
                    status, answer = receiver.answer(body)
                else:
                    status, answer = 200, accept_all(body)
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                if receiver.roots:
                    self.send_header("Concordat-Attestation-Roots", "1")
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def accept_all(
    body: dict,
    *,
    status_of=lambda index, item: "accepted",
    code: str = "bad_signature",
    message: str = "forged",
) -> dict:
    from federation.propagation.wire import item_digest

    items = body["batch"]["items"]
    results = []
    for index, item in enumerate(items):
        status = status_of(index, item)
        result = {"index": index, "digest": item_digest(item), "status": status}
        if status == "rejected":
            result.update(code=code, message=message)
        results.append(result)
    counts = {s: sum(r["status"] == s for r in results) for s in ("accepted", "duplicate")}
    return {
        "batch": body["batch"]["id"],
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": len(results) - sum(counts.values()),
        "results": results,
    }
