"""Building wire items (docs/federation.md, "Items") from outbox rows, a batch at a time.

A ``contribution`` item carries the member's signed object verbatim (``Contribution.canonical``
parsed back, and its signature), the key section (the member's own registration and the home
hub's binding: signed here for this hub's members, as received for foreign ones), the
attestations received with the first arrival of a relayed contribution plus this hub's own,
fresh one, the path (arrival path + this hub), and ``sent_to``: the other hubs it is sent to,
by this hub (its outbox rows for the contribution) or by one before it (its arrivals'
``sent_to``), which the receiver does not push it to again. An ``entry`` item carries this hub's
attestation of an entry's new state; a ``key`` item a key section alone (a revocation).

This hub's attestation says what the entry's state is *when the item is built* (state,
``state_changed_at``, and the policy of the latest vetting decision, or ``peer <hub> (trust)``
for an entry vetted on a trusted peer's word). A few queries per batch whatever its size.
"""

import base64
import binascii
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.conf import settings
from django.db import connection
from django.db.models import F, Func, TextField
from django.db.models.functions import Cast

from federation.canonical import canonical_json_bytes
from federation.contributions.models import Contribution, Entry
from federation.hubkey import hub_private_key
from federation.propagation import attestation_roots
from federation.propagation.bindings import KeyNotBindable, binding_pair, key_bindings_for
from federation.propagation.models import OutboxItem, Receipt
from federation.propagation.wire import (
    ATTESTED_STATES,
    ITEM_CONTRIBUTION,
    ITEM_ENTRY,
    ITEM_KEY,
    MAX_SENT_TO,
    attestation_canonical,
    attestation_document,
    digest_of,
)
from federation.signing import format_timestamp, sign_bytes
from federation.transparency.actions import Key, PolicyRule
from federation.vetting.models import Decision
from members.models import SigningKey

_RULE_SUMMARY = {
    PolicyRule.QUORUM: "quorum of reviewers",
    PolicyRule.INCIDENT_QUORUM: "incident quorum of reviewers",
    PolicyRule.TRUSTED_MEMBER: "trusted member",
    PolicyRule.INCIDENT: "incident fast lane",
    PolicyRule.ADMIN_RULING: "admin ruling",
    PolicyRule.DISPUTE_RESOLUTION: "dispute resolution",
    PolicyRule.DISPUTE_THRESHOLD: "dispute threshold",
}


@dataclass(frozen=True, slots=True)
class RowRef:
    """What the builder needs of an outbox row (a push passes its claimed rows, a
    ``batching.ClaimedRow`` having these fields, as they are)."""

    id: int
    kind: str
    contribution_id: int | None
    entry_id: int | None
    signing_key_id: int | None
    path: list[str]


@dataclass
class BuiltBatch:
    items: list[tuple[int, dict[str, Any], str]] = field(
        default_factory=list
    )  # (row, item, digest)
    failed: dict[int, str] = field(default_factory=dict)  # row → why it cannot be built
    dropped: list[int] = field(default_factory=list)  # rows no longer owed (peer on the path…)
    canonical: dict[int, bytes] = field(default_factory=dict)  # row → the item's RFC 8785 bytes


def policy_summary(snapshot: dict | None, *, trusted_peer: str | None = None) -> str:
    """A short text for an attestation's ``policy``."""
    if snapshot:
        rule = snapshot.get(Key.RULE)
        if rule == PolicyRule.TRUSTED_PEER:
            hub = snapshot.get(Key.PEER) or snapshot.get(Key.HUB) or trusted_peer or "?"
            return f"peer {hub} (trust)"
        text = _RULE_SUMMARY.get(rule, rule or "vetting")
        if snapshot.get(Key.EFFECTIVE_QUORUM) is not None:
            text += f" ({snapshot[Key.EFFECTIVE_QUORUM]} needed)"
        return text
    if trusted_peer:
        return f"peer {trusted_peer} (trust)"
    return "hub policy"


class _WireTimestamp(Func):
    """A ``timestamptz`` column as ``format_timestamp`` writes it (UTC, ``Z``, whole seconds or
    six digits of microseconds), written by PostgreSQL: the entries' decision times of a round
    are read as that text, not as datetimes (Django's loader for them is psycopg's Python one:
    with the ``strftime`` that wrote them again, 40% of the round's reads in a profile of the
    sending worker during the three-hub bench)."""

    arity = 1
    output_field = TextField()
    template = (
        "CASE WHEN date_trunc('second', %(expressions)s) = %(expressions)s"
        " THEN to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        " ELSE to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        " END"
    )


@dataclass(slots=True)
class _Leaf:
    """This hub's attestation in a batch whose attestations go under roots: its document and
    RFC 8785 bytes, and its pair's bytes and (only if an item's dict asked for it) its value,
    both written when the batch is sealed."""

    document: dict[str, Any]
    canonical: bytes
    pair: dict[str, Any] | None = None
    pair_canonical: bytes = b""


class _Context:
    """Everything one batch needs, loaded in bulk (each list of ids one array literal:
    ``federation.db.lookups``)."""

    def __init__(
        self, refs: Sequence[RowRef], now: datetime, peer_hub: str, roots: bool = False
    ) -> None:
        self.now = now
        contribution_ids = {r.contribution_id for r in refs if r.contribution_id}
        self.contributions = {
            c["pk"]: c
            for c in Contribution.objects.filter(pk__in=contribution_ids).values(
                "pk", "canonical", "signature", "signing_key_id", "entry_id", "origin_hub",
                "action",
            )
        }  # fmt: skip
        entry_ids = {r.entry_id for r in refs if r.entry_id} | {
            c["entry_id"] for c in self.contributions.values()
        }
        self.entries = {
            e["pk"]: e
            for e in Entry.objects.filter(pk__in=entry_ids).values(
                "pk", "signal_type", "value", "state",
                decided_at=_WireTimestamp("state_changed_at")
                if connection.vendor == "postgresql"
                else F("state_changed_at"),
            )
        }  # fmt: skip
        # The latest decision of each entry (read in order: the last one read wins), as its
        # JSON text: a round's entries share a few policies, each parsed and summarised once
        # (``policy_text``) instead of once per entry by the field's loader.
        self.decisions = dict(
            Decision.objects.filter(entry_id__in=entry_ids)
            .order_by("entry_id", "created_at", "pk")
            .annotate(policy_text=Cast("policy", TextField()))
            .values_list("entry_id", "policy_text")
        )
        self._policies: dict[tuple[str | None, str | None], str] = {}
        self.receipts: dict[int, list[dict]] = {}
        for receipt in (
            Receipt.objects.filter(contribution_id__in=contribution_ids)
            .order_by("contribution_id", "received_at", "pk")
            .values("contribution_id", "peer_hub", "path", "attestations", "sent_to")
        ):
            self.receipts.setdefault(receipt["contribution_id"], []).append(receipt)
        # The other peers this hub sends each contribution to (or will): named in ``sent_to``
        # (never the peer the items are for: half the rows, in a triangle).
        self.targets: dict[int, set[str]] = {}
        for contribution_id, target in (
            OutboxItem.objects.filter(
                contribution_id__in=contribution_ids, kind=OutboxItem.Kind.CONTRIBUTION
            )
            .exclude(state=OutboxItem.State.REFUSED)
            .exclude(peer__hub_id=peer_hub)
            .values_list("contribution_id", "peer__hub_id")
        ):
            self.targets.setdefault(contribution_id, set()).add(target)
        key_ids = {r.signing_key_id for r in refs if r.signing_key_id} | {
            c["signing_key_id"] for c in self.contributions.values()
        }
        self.keys = {
            k.pk: k
            for k in SigningKey.objects.select_related("organisation").filter(pk__in=key_ids)
        }
        self._bindings = None
        self._key_sections: dict[int, dict[str, Any]] = {}
        self._attestations: dict[tuple[int, str], tuple[dict[str, Any], bytes, bytes]] = {}
        self._attestation_pairs: dict[tuple[int, str], dict] = {}
        # RFC 8785 bytes of the shared parts above (key sections, attestations), by id(): they
        # live, unmodified, as long as this context, so an id is never reused for another part.
        self._canonical: dict[int, bytes] = {}
        self._hub_lists: dict[tuple[str, ...], bytes] = {}
        self._private_key = hub_private_key()
        self._attested_at = format_timestamp(now)
        # With ``roots``: the batch's attestations being gathered, and every leaf written so far
        # (kept so that no pair's id() is reused while ``_canonical`` holds it).
        self.roots = roots
        self._leaves: dict[tuple[int, str], _Leaf] = {}
        self._sealed: list[_Leaf] = []

    @property
    def bindings(self):
        if self._bindings is None:
            self._bindings = key_bindings_for(self.keys.values())
        return self._bindings

    def key_section(self, key_pk: int) -> dict[str, Any]:
        """One key section per key, shared by every item it signed (never modified)."""
        cached = self._key_sections.get(key_pk)
        if cached is not None:
            return cached
        key = self.keys[key_pk]
        if not key.registration:
            raise KeyNotBindable(f"key {key.key_id} has no proof of possession")
        binding = self.bindings.get(key_pk)
        if binding is None:
            raise KeyNotBindable(f"key {key.key_id} has no binding from its home hub")
        document, signature = binding_pair(binding)
        section = self._key_sections[key_pk] = {
            "registration": orjson.loads(key.registration),
            "signature": base64.b64encode(bytes(key.registration_signature)).decode(),
            "binding": document,
            "binding_signature": signature,
        }
        self._canonical[id(section)] = canonical_json_bytes(section)
        return section

    def attestation(self, entry_id: int, state: str, trusted_peer: str | None) -> dict:
        """This hub's attestation of the entry as a pair (``{"attestation", "signature"}``),
        one per entry and state, shared by the items that carry it (never modified once the
        batch is sealed; with ``roots`` it is the rooted pair, written by ``seal``)."""
        if self.roots:
            leaf = self._leaf(entry_id, state, trusted_peer)
            if leaf.pair is None:
                leaf.pair = {}
            return leaf.pair
        cached = self._attestation_pairs.get((entry_id, state))
        if cached is not None:
            return cached
        document, signature, canonical = self.attested(entry_id, state, trusted_peer)
        pair = self._attestation_pairs[(entry_id, state)] = {
            "attestation": document,
            "signature": signature.decode(),
        }
        self._canonical[id(pair)] = canonical
        return pair

    def own(self, entry_id: int, state: str, trusted_peer: str | None) -> "bytes | _Leaf":
        """The RFC 8785 bytes of this hub's attestation pair for the entry, or with ``roots``
        its leaf in the batch's tree (its bytes are known once the batch is sealed)."""
        if self.roots:
            return self._leaf(entry_id, state, trusted_peer)
        return self.attested(entry_id, state, trusted_peer)[2]

    def _leaf(self, entry_id: int, state: str, trusted_peer: str | None) -> "_Leaf":
        leaf = self._leaves.get((entry_id, state))
        if leaf is None:
            document, canonical = self.attestation_text(entry_id, state, trusted_peer)
            leaf = self._leaves[(entry_id, state)] = _Leaf(document, canonical)
        return leaf

    def seal(self) -> None:
        """Sign the batch's attestations (``roots``) a root for each run of
        ``LEAVES_PER_ROOT`` of them, and write each one's pair: a few signatures per batch,
        where ``attested`` signs one per entry."""
        leaves = list(self._leaves.values())
        self._leaves = {}
        step = attestation_roots.LEAVES_PER_ROOT
        for start in range(0, len(leaves), step):
            under = leaves[start : start + step]
            tree = attestation_roots.Tree([leaf.canonical for leaf in under])
            root = attestation_roots.root_canonical(
                hub=settings.HUB_ID, size=tree.size, root=tree.root, attested_at=self._attested_at
            )
            signature = sign_bytes(self._private_key, root)
            encoded = binascii.b2a_base64(signature, newline=False)
            for index, leaf in enumerate(under):
                proof = tree.proof(index)
                leaf.pair_canonical = attestation_roots.rooted_pair_canonical(
                    leaf.canonical, index=index, size=tree.size, proof=proof, signature=encoded
                )
                if leaf.pair is not None:  # an item's dict holds it
                    leaf.pair.update(
                        attestation_roots.rooted_pair(
                            leaf.document, index=index, size=tree.size, proof=proof,
                            signature=signature,
                        )
                    )  # fmt: skip
                    self._canonical[id(leaf.pair)] = leaf.pair_canonical
        self._sealed += leaves

    def attestation_text(
        self, entry_id: int, state: str, trusted_peer: str | None
    ) -> tuple[dict[str, Any], bytes]:
        """This hub's attestation document of the entry and its RFC 8785 bytes, unsigned."""
        entry = self.entries[entry_id]
        document = attestation_document(
            hub=settings.HUB_ID,
            signal_type=entry["signal_type"],
            value=entry["value"],
            state=state,
            decided_at=entry["decided_at"],
            policy=self.policy_text(self.decisions.get(entry_id), trusted_peer),
            attested_at=self._attested_at,
        )
        return document, attestation_canonical(document)

    def attested(
        self, entry_id: int, state: str, trusted_peer: str | None
    ) -> tuple[dict[str, Any], bytes, bytes]:
        """This hub's attestation of the entry, signed once per entry and state: its document,
        its signature's padded base64, and the RFC 8785 bytes of its pair (what a push writes;
        ``attestation`` gives the pair itself)."""
        cached = self._attestations.get((entry_id, state))
        if cached is not None:
            return cached
        document, canonical = self.attestation_text(entry_id, state, trusted_peer)
        signature = binascii.b2a_base64(sign_bytes(self._private_key, canonical), newline=False)
        # JCS: members sorted by name ("attestation" < "signature"), the document's bytes as
        # signed, the signature's padded base64 as it is between quotes.
        cached = self._attestations[(entry_id, state)] = (
            document,
            signature,
            b'{"attestation":' + canonical + b',"signature":"' + signature + b'"}',
        )
        return cached

    def policy_text(self, snapshot: str | None, trusted_peer: str | None) -> str:
        """``policy_summary`` of a decision's policy given as its JSON text, once per text."""
        known = self._policies.get((snapshot, trusted_peer))
        if known is None:
            parsed = orjson.loads(snapshot) if snapshot is not None else None
            known = self._policies[(snapshot, trusted_peer)] = policy_summary(
                parsed, trusted_peer=trusted_peer
            )
        return known

    def item_canonical(self, item: dict[str, Any], known: dict[str, bytes] | None = None) -> bytes:
        """``canonical_json_bytes(item)``, with the parts items share (key sections, this hub's
        attestations) written once per round instead of once per item, and the members whose
        bytes the caller already holds (``known``: the member's contribution as stored) not
        written again. JCS writes an object as its members sorted by name (the item's names are
        fixed ASCII words: code point order is UTF-16 order) and an array as its elements joined
        by commas; every other part goes through ``canonical_json_bytes`` as before."""
        if not all(name.isascii() for name in item):
            return canonical_json_bytes(item)
        known = known or {}
        members = []
        for name in sorted(item):
            value = item[name]
            encoded = known.get(name)
            if encoded is None:
                if name == "attestations":
                    encoded = b"[" + b",".join(self.part_canonical(a) for a in value) + b"]"
                else:
                    encoded = self.part_canonical(value)
            members.append(_member_name(name) + encoded)
        return b"{" + b",".join(members) + b"}"

    def hubs_canonical(self, hubs: list[str]) -> bytes:
        """The RFC 8785 bytes of a list of hub ids (a path, ``sent_to``): the items of a round
        share a few, each written once."""
        key = tuple(hubs)
        known = self._hub_lists.get(key)
        if known is None:
            known = self._hub_lists[key] = canonical_json_bytes(hubs)
        return known

    def part_canonical(self, part: object) -> bytes:
        """The RFC 8785 bytes of a part of an item: written once a round for a key section or
        this hub's attestation, by ``canonical_json_bytes`` for another (an attestation an
        arrival carried)."""
        known = self._canonical.get(id(part))
        return known if known is not None else canonical_json_bytes(part)


_CONTRIBUTION_TYPE = canonical_json_bytes(ITEM_CONTRIBUTION)


@functools.cache
def _member_name(name: str) -> bytes:
    """A member's name as JCS writes it, with its colon (items use a handful of names)."""
    return canonical_json_bytes(name) + b":"


class ItemsBuilder:
    """The items of rows for the peer ``peer_hub``, each batch's in row order: what the rows
    need is loaded once, for all of them, and each batch's items are built when it is sent
    (``build``). ``push``: a contribution whose arrival named the peer in ``sent_to`` is dropped
    (the pull feed, ``push=False``, still offers it: pulling is the safety net for a push that
    never came). ``documents=False`` (a push or a feed page, which send the items' bytes): a
    contribution item comes as its bytes alone, its dict not built (``BuiltBatch.items`` holds
    None in its place). ``roots``: each batch's attestations by this hub go under one signed
    root (``attestation_roots``), for a peer that takes them."""

    def __init__(
        self,
        refs: Sequence[RowRef],
        *,
        peer_hub: str,
        now: datetime,
        push: bool = True,
        documents: bool = True,
        roots: bool = False,
    ) -> None:
        self.context = _Context(refs, now, peer_hub, roots)
        self.peer_hub = peer_hub
        self.roots = roots
        self.push = push
        self.documents = documents

    def build(self, refs: Sequence[RowRef]) -> BuiltBatch:
        """The items of ``refs`` (some of the rows given at construction), in row order."""
        built = BuiltBatch()
        hub = settings.HUB_ID
        gathered = []
        for ref in refs:
            try:
                built_item = _build(
                    ref, self.context, self.peer_hub, hub, self.push, self.documents
                )
            except KeyNotBindable as exc:
                built.failed[ref.id] = str(exc)
                continue
            except KeyError as exc:
                built.failed[ref.id] = f"cannot build the item: {exc} is gone"
                continue
            if built_item is None:
                built.dropped.append(ref.id)
            else:
                gathered.append((ref.id, *built_item))
        # Every item's own attestation is known now: with ``roots``, sign their root.
        self.context.seal()
        for ref_id, item, known in gathered:
            if type(known) is list:
                canonical = b"".join(p if type(p) is bytes else p.pair_canonical for p in known)
            else:
                canonical = self.context.item_canonical(item, known)
            built.canonical[ref_id] = canonical
            built.items.append((ref_id, item, digest_of(canonical)))
        return built


def _build(
    ref: RowRef, context: _Context, peer_hub: str, hub: str, push: bool, documents: bool = True
) -> tuple[dict[str, Any] | None, dict[str, bytes] | list[bytes | _Leaf]] | None:
    """The item of ``ref`` (None when it is no longer owed) and its RFC 8785 bytes as parts to
    join (a ``_Leaf`` stands for this hub's attestation under a root, known once the batch is
    sealed), or those of its members that are known without writing them
    (``_Context.item_canonical`` writes the rest); a contribution item's dict only with
    ``documents``. A contribution item's bytes are
    its parts' joined in JCS order (its member names sorted: ``attestations``,
    ``contribution``, ``key``, ``path``, ``sent_to``, ``signature``, ``type``):
    ``contribution`` is the member's signed object, whose RFC 8785 text is what
    ``Contribution.canonical`` holds (the bytes its signature was verified over),
    ``signature`` is padded base64, which JCS writes as it is between quotes, and the key
    section, this hub's attestation, ``path`` and ``sent_to`` are written once a round.
    """
    if ref.kind == OutboxItem.Kind.CONTRIBUTION:
        contribution = context.contributions[ref.contribution_id]
        receipts = context.receipts.get(ref.contribution_id)
        if receipts:
            on_path = {r["peer_hub"] for r in receipts} | {h for r in receipts for h in r["path"]}
            if peer_hub in on_path or peer_hub == contribution["origin_hub"]:
                return None
            sent_to = {h for r in receipts for h in r["sent_to"]}
            if push and peer_hub in sent_to:
                return None
            first = receipts[0]
            trusted_peer, path = first["peer_hub"], [*first["path"], hub]
            received = first["attestations"]
        else:  # this hub's own member's (or one whose arrival is gone: refused below)
            if peer_hub == contribution["origin_hub"]:
                return None
            if contribution["origin_hub"] != hub:
                raise KeyNotBindable("a relayed contribution with no recorded arrival")
            sent_to, trusted_peer, path, received = set(), None, [hub], []
        entry = context.entries[contribution["entry_id"]]
        state = entry["state"]
        if state not in ATTESTED_STATES:
            if contribution["action"] == Contribution.Action.ADD:
                return None  # back in review: no longer shared (it is sent again once vetted)
            state = Entry.State.RETRACTED
        own = context.own(entry["pk"], state, trusted_peer)
        canonical = contribution["canonical"]
        signature = binascii.b2a_base64(contribution["signature"], newline=False)
        key = context.key_section(contribution["signing_key_id"])
        # The other hubs it is sent to, by this hub or one before it: they are not sent it again.
        sent_to |= context.targets.get(ref.contribution_id, set())
        sent_to -= {peer_hub, *path}
        listed = sorted(sent_to)[:MAX_SENT_TO] if sent_to else None
        parts = [
            b'{"attestations":[',
            *[context.part_canonical(a) + b"," for a in received],
            own,
            b'],"contribution":',
            canonical.encode(),
            b',"key":',
            context.part_canonical(key),
            b',"path":',
            context.hubs_canonical(path),
        ]
        if listed:
            parts += [b',"sent_to":', context.hubs_canonical(listed)]
        parts += [b',"signature":"', signature, b'","type":', _CONTRIBUTION_TYPE, b"}"]
        if not documents:
            return None, parts
        item = {
            "type": ITEM_CONTRIBUTION,
            "contribution": orjson.loads(canonical),
            "signature": signature.decode(),
            "key": key,
            "attestations": [*received, context.attestation(entry["pk"], state, trusted_peer)],
            "path": path,
        }
        if listed:
            item["sent_to"] = listed
        return item, parts
    if ref.kind == OutboxItem.Kind.ENTRY:
        entry = context.entries[ref.entry_id]
        if entry["state"] not in ATTESTED_STATES:
            return None
        item = {
            "type": ITEM_ENTRY,
            "attestations": [context.attestation(entry["pk"], entry["state"], None)],
            "path": [hub],
        }
        return item, {}
    if ref.kind == OutboxItem.Kind.KEY:
        if peer_hub in ref.path:
            return None
        item = {
            "type": ITEM_KEY,
            "key": context.key_section(ref.signing_key_id),
            "path": [*ref.path, hub],
        }
        return item, {}
    raise KeyNotBindable(f"unknown outbox kind {ref.kind!r}")
