"""The checks a signed contribution must pass, apart from storing it.

``check_contributions`` judges a batch of submitted items (structure, signal, hub, member, key
binding at ``created_at``, time window, Ed25519 signature, labels, incident) and touches nothing:
everything it needs comes in a ``CheckContext``:

- ``origin_hub``: the hub the contributions must name in their signed ``hub`` field (this hub for
  a member's own submissions; the peer hub for contributions that hub relays);
- ``member``: the member they must name (the requesting organisation), or ``None`` when any
  member the key provider knows may sign (a relay batch);
- ``keys``: where keys come from, as a ``KeyProvider`` (for local ingest the requesting
  organisation's keys, loaded once; federation will provide keys from forwarded signed key
  registrations);
- ``time``: a ``TimeRule``: local ingest requires the key to be active at ``created_at`` and now,
  and ``created_at`` within the clock skew ahead and the maximum age behind; a relayed
  contribution only has to have been valid when its origin accepted it (key active at
  ``created_at``, not dated ahead of this hub's clock), so a peer that was down for a day still
  delivers it;
- ``labels`` and ``incidents``: this hub's taxonomy and incidents.

Storage (federation/contributions/storage.py) takes the verified items as they are and records
their origin hub from the signed ``hub`` field.
"""

import base64
import queue
import re
import sys
import threading
import uuid as uuid_module
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings

from federation.process_wide import HeldSetting
from federation.signature_checks import SignatureChecks
from federation.signing import (
    MalformedContribution,
    ParsedContribution,
    decode_signature,
    parse_contribution,
)
from federation.transparency.actions import Key
from members.models import SigningKey

# Raw values copied into evidence only when they look like what they claim to be: rejected input
# may be anything, and PostgreSQL's jsonb refuses NUL characters and lone surrogates.
_EVIDENCE_UUID = re.compile(r"[0-9a-fA-F-]{1,64}")
_EVIDENCE_SIGNATURE = re.compile(r"[A-Za-z0-9+/=_-]{1,200}")
_ITEM_FIELDS = frozenset({"contribution", "signature"})


@dataclass(frozen=True, slots=True)
class TimeRule:
    """Which time window a contribution's ``created_at`` and key must satisfy."""

    name: str
    now: datetime
    clock_skew: timedelta  # how far ahead of ``now`` created_at may lie
    max_age: timedelta | None  # how far behind; None: no maximum age
    key_active_now: bool  # the key must also be unrevoked now, not only at created_at

    @classmethod
    def local(cls, *, now: datetime) -> "TimeRule":
        """A member submitting to its own hub: fresh, signed by a key valid then and now."""
        return cls(
            name="local",
            now=now,
            clock_skew=timedelta(seconds=settings.CONTRIBUTION_CLOCK_SKEW_SECONDS),
            max_age=timedelta(seconds=settings.CONTRIBUTION_MAX_AGE_SECONDS),
            key_active_now=True,
        )

    @classmethod
    def relay(cls, *, now: datetime) -> "TimeRule":
        """A contribution another hub accepted: valid when it was signed, however old now."""
        return cls(
            name="relay",
            now=now,
            clock_skew=timedelta(seconds=settings.CONTRIBUTION_CLOCK_SKEW_SECONDS),
            max_age=None,
            key_active_now=False,
        )

    def key_active(self, key: SigningKey, created_at: datetime) -> bool:
        return key.is_active_at(created_at) and (
            not self.key_active_now or key.is_active_at(self.now)
        )

    def in_window(self, created_at: datetime) -> bool:
        if created_at > self.now + self.clock_skew:
            return False
        return self.max_age is None or created_at >= self.now - self.max_age

    @property
    def key_message(self) -> str:
        if self.key_active_now:
            return "the key was not active when this was signed, or is revoked now"
        return "the key was not active when this was signed"

    @property
    def window_message(self) -> str:
        ahead = int(self.clock_skew.total_seconds())
        if self.max_age is None:
            return f"created_at must not lie more than {ahead} s ahead of the hub's clock"
        return (
            f"created_at must lie between {int(self.max_age.total_seconds())} s ago and "
            f"{ahead} s ahead of the hub's clock"
        )


class BoundKey(NamedTuple):
    """A signing key bound to its member, with its public key ready to verify."""

    signing_key: SigningKey
    verifier: Ed25519PublicKey


class KeyProvider(Protocol):
    """Where the keys of a check come from: the key ``key_id`` of ``member`` on ``hub``, or None."""

    def key_for(self, hub: str, member: str, key_id: str) -> BoundKey | None: ...


class MemberKeys:
    """The keys of one member of one hub, loaded once (one query) before the check loop."""

    def __init__(self, *, hub: str, member: str, keys: Iterable[SigningKey]) -> None:
        self.hub = hub
        self.member = member
        self._keys = {
            key.key_id: BoundKey(key, Ed25519PublicKey.from_public_bytes(key.public_key_bytes))
            for key in keys
        }

    @classmethod
    def of_organisation(cls, organisation, *, hub: str) -> "MemberKeys":
        return cls(
            hub=hub,
            member=organisation.slug,
            keys=SigningKey.objects.filter(organisation=organisation),
        )

    def key_for(self, hub: str, member: str, key_id: str) -> BoundKey | None:
        if hub != self.hub or member != self.member:
            return None
        return self._keys.get(key_id)


@dataclass(frozen=True)
class CheckContext:
    """Everything the checks need, given rather than looked up (see the module docstring)."""

    origin_hub: str
    member: str | None
    keys: KeyProvider
    time: TimeRule
    labels: Container[str]
    incidents: Callable[[], Container[uuid_module.UUID]] = field(default=lambda: frozenset())


@dataclass(slots=True)
class Verified:
    """An item that passed every check."""

    index: int
    parsed: ParsedContribution
    signature: bytes
    key: SigningKey

    @property
    def evidence(self) -> dict[str, Any]:
        return claim_evidence(self.parsed, self.signature)


@dataclass(frozen=True, slots=True)
class Rejection:
    """An item that failed. ``claim`` says whether it carried a verifiable claim (it parsed into a
    contribution with uuid, key id and canonical bytes, and a decodable signature) or was too
    malformed for that."""

    index: int
    code: str
    message: str
    field: str | None
    evidence: dict[str, Any]
    claim: bool


class CheckOutcome(NamedTuple):
    verified: list[Verified]
    rejections: list[Rejection]


def check_contributions(*, items: Sequence[object], context: CheckContext) -> CheckOutcome:
    """Judge each ``{"contribution": {...}, "signature": "..."}`` item under ``context``.

    A tight loop: parsing and canonical bytes run while a thread pool verifies signatures.
    Labels and incidents are judged only once the signature holds, so a forged item is reported
    as forged whatever else is wrong with it.
    """
    rejections: list[Rejection] = []
    judge = _Judge(context)
    return _chunk_finished(_chunk_started(_parsed(items, 0, rejections), judge, rejections), judge)


def check_parsed_contributions(
    *, items: Sequence[tuple[ParsedContribution, bytes]], context: CheckContext
) -> CheckOutcome:
    """``check_contributions`` for items already parsed (``parse_contribution``) and whose
    signature is decoded, as federation's receiving side has them: the same checks after those
    two, in the same order, without parsing each item a second time."""
    parsed_items = ((index, parsed, signature) for index, (parsed, signature) in enumerate(items))
    judge = _Judge(context)
    return _chunk_finished(_chunk_started(parsed_items, judge, []), judge)


def check_contributions_in_chunks(
    *,
    items: Sequence[object],
    context: CheckContext,
    chunk_size: int,
    first_chunk_size: int | None = None,
) -> Iterator[CheckOutcome]:
    """``check_contributions`` of ``items`` as consecutive chunks (indices stay those of
    ``items``), pipelined: the chunks are parsed and queued for verification on a thread of their
    own (``_StartedAhead``), ahead of the caller, which is handed each chunk once verified and
    writes it meanwhile (docs/architecture.md, "Ingest").

    Chunks hold ``chunk_size`` items, except the first and the last, which hold at most
    ``first_chunk_size``. The first chunk's parsing and verification are the one wait nothing
    overlaps, so a small first chunk lets the caller start writing sooner; the last chunk's write
    is the one nothing overlaps, so it is small too (what it would hold beyond that is a chunk
    of its own, before it). (Chunks doubling from the first cost two more chunks' fixed
    statements in a request of 2,000 for no less waiting.)"""
    judge = _Judge(context)
    bounds = _chunk_bounds(len(items), chunk_size, first_chunk_size or chunk_size)
    if len(bounds) < 2:  # nothing to overlap: checked here, without a thread
        for start, end in bounds:
            rejections: list[Rejection] = []
            chunk = _chunk_started(_parsed(items[start:end], start, rejections), judge, rejections)
            yield _chunk_finished(chunk, judge)
        return
    ahead = _StartedAhead(items, judge, bounds)
    try:
        with _QUICK_HANDOVER.held():
            for started in ahead:
                yield _chunk_finished(started, judge)
    finally:
        ahead.stop()


# The GIL's switch interval while a request's checks run beside its writes: a thread waiting
# for the GIL asks its holder to drop it after this long. The writer waits for PostgreSQL a dozen
# times per chunk and then for the GIL, held by the parsing thread: at CPython's 5 ms default
# those waits made the writes several times slower; at 0.5 ms they cost little.
_SWITCH_INTERVAL = 0.0005


def _lowered_switch_interval() -> Callable[[], None] | None:
    previous = sys.getswitchinterval()
    if previous <= _SWITCH_INTERVAL:
        return None
    sys.setswitchinterval(_SWITCH_INTERVAL)
    return lambda: sys.setswitchinterval(previous)


# The switch interval at most ``_SWITCH_INTERVAL`` while any request's checks run ahead of its
# writes. Process-wide: requests on other threads share it, and the last to end puts back the
# interval there was before the first (``federation.process_wide``).
_QUICK_HANDOVER = HeldSetting(_lowered_switch_interval)


class _StartedAhead:
    """``_chunk_started`` of each chunk in turn, on a thread of its own, as far ahead of the
    caller as it gets; iterating yields them in order.

    The caller's thread writes a chunk while this one parses the next: the writer spends most of
    a chunk waiting for PostgreSQL (the GIL released), which is when the parsing runs, instead
    of parsing between two writes with PostgreSQL idle. Verification does not wait for it either:
    it runs in the verification processes, and the pipes to them hold the chunks queued ahead.
    The thread touches no database (the incidents are judged by ``_chunk_finished``, on the
    caller's thread and connection) and ends by itself after the last chunk, or after the chunk
    it is on once ``stop`` is called."""

    def __init__(
        self, items: Sequence[object], judge: "_Judge", bounds: Sequence[tuple[int, int]]
    ) -> None:
        self._count = len(bounds)
        self._started: queue.SimpleQueue = queue.SimpleQueue()
        self._stopped = False
        thread = threading.Thread(
            target=self._run, args=(items, judge, bounds), name="ingest-checks", daemon=True
        )
        thread.start()

    def _run(
        self, items: Sequence[object], judge: "_Judge", bounds: Sequence[tuple[int, int]]
    ) -> None:
        try:
            for start, end in bounds:
                if self._stopped:
                    return
                rejections: list[Rejection] = []
                chunk = _parsed(items[start:end], start, rejections)
                self._started.put((_chunk_started(chunk, judge, rejections), None))
        except BaseException as exc:  # handed to the caller, which raises it
            self._started.put((None, exc))

    def __iter__(self) -> Iterator["_StartedChunk"]:
        for _ in range(self._count):
            started, error = self._started.get()
            if error is not None:
                raise error
            yield started

    def stop(self) -> None:
        self._stopped = True


def _chunk_bounds(count: int, chunk_size: int, first_chunk_size: int) -> list[tuple[int, int]]:
    """(start, end) of each chunk of ``count`` items: the first and the last at most
    ``first_chunk_size`` (or ``chunk_size`` if smaller), the others ``chunk_size`` but the one
    before the last, which holds the rest."""
    if not count:
        return []
    small = max(1, min(first_chunk_size, chunk_size))
    ends = [min(small, count)]
    while ends[-1] < count:
        ends.append(min(ends[-1] + chunk_size, count))
    if len(ends) > 1 and ends[-1] - ends[-2] > small:
        ends.insert(-1, count - small)
    return list(zip([0, *ends[:-1]], ends, strict=True))


class _Judge:
    """The context of one check, what it loads once on demand (the incidents), and its verdicts
    so far on the claims and label sets its items share (``_chunk_started``'s, on one thread)."""

    def __init__(self, context: CheckContext) -> None:
        self.context = context
        self._incident_ids: Container[uuid_module.UUID] | None = None
        self.claim_verdicts: dict[tuple, tuple[BoundKey | None, tuple | None]] = {}
        self.label_verdicts: dict[tuple[str, ...], tuple | None] = {}

    @property
    def incident_ids(self) -> Container[uuid_module.UUID]:
        if self._incident_ids is None:
            self._incident_ids = self.context.incidents()
        return self._incident_ids


class _StartedChunk(NamedTuple):
    checks: SignatureChecks
    candidates: list[tuple[int, ParsedContribution, bytes, SigningKey, tuple | None]]
    rejections: list[Rejection]


def _parsed(
    items: Sequence[object], offset: int, rejections: list[Rejection]
) -> Iterator[tuple[int, ParsedContribution, bytes]]:
    """Each well-formed item (the first at index ``offset``), parsed, with its decoded signature;
    the others rejected."""
    reject = rejections.append
    for index, item in enumerate(items, offset):
        if not isinstance(item, dict) or item.keys() != _ITEM_FIELDS:
            message = "each item is an object with exactly contribution and signature"
            reject(Rejection(index, "invalid", message, "item", raw_evidence(item), False))
            continue
        try:
            parsed = parse_contribution(item["contribution"])
        except MalformedContribution as exc:
            evidence = raw_evidence(item)
            reject(Rejection(index, "invalid", exc.message, exc.field, evidence, False))
            continue
        try:
            signature = decode_signature(item["signature"])
        except MalformedContribution as exc:
            evidence = {**parsed_evidence(parsed), **raw_evidence(item)}
            reject(Rejection(index, "invalid", exc.message, exc.field, evidence, False))
            continue
        yield index, parsed, signature


def _chunk_started(
    parsed_items: Iterable[tuple[int, ParsedContribution, bytes]],
    judge: _Judge,
    rejections: list[Rejection],
) -> _StartedChunk:
    """Judge parsed items up to their signatures, which are queued on the verification pool.
    Rejections of malformed items are appended to ``rejections`` by the generator as it goes;
    ``_chunk_finished`` sorts them by index."""
    claim_verdicts = judge.claim_verdicts
    label_verdicts = judge.label_verdicts
    reject = rejections.append
    checks = SignatureChecks()
    candidates: list[tuple[int, ParsedContribution, bytes, SigningKey, tuple | None]] = []
    for index, parsed, signature in parsed_items:
        # Judged once per distinct claim of a request: its items mostly share hub, member, key
        # and created_at.
        claim = (parsed.hub, parsed.member, parsed.key_id, parsed.created_at)
        verdict = claim_verdicts.get(claim)
        if verdict is None:
            verdict = claim_verdicts[claim] = _claim_verdict(judge.context, parsed)
        known, failure = verdict
        if failure is not None:
            code, message, field_name = failure
            evidence = claim_evidence(parsed, signature)
            reject(Rejection(index, code, message, field_name, evidence, True))
            continue
        deferred = label_verdicts.get(parsed.labels, False)
        if deferred is False:
            deferred = label_verdicts[parsed.labels] = _labels_verdict(judge.context, parsed)
        checks.add(known.verifier, signature, parsed.canonical)
        candidates.append((index, parsed, signature, known.signing_key, deferred))
    checks.submit()
    return _StartedChunk(checks, candidates, rejections)


def _claim_verdict(
    context: CheckContext, parsed: ParsedContribution
) -> tuple[BoundKey | None, tuple[str, str, str] | None]:
    """The key of a contribution's claim (hub, member, key id, created_at) and, if it fails,
    why: ``(code, message, field)``."""
    time_rule = context.time
    known = None
    if parsed.hub != context.origin_hub:
        failure = ("wrong_hub", f"the contribution must name hub {context.origin_hub!r}", "hub")
    elif context.member is not None and parsed.member != context.member:
        failure = ("member_mismatch", f"you submit for {context.member!r}", "member")
    elif (known := context.keys.key_for(parsed.hub, parsed.member, parsed.key_id)) is None:
        failure = (
            "unknown_key",
            f"no key {parsed.key_id} is registered to {parsed.member}",
            "key_id",
        )
    elif not time_rule.key_active(known.signing_key, parsed.created_at):
        failure = ("key_not_active", time_rule.key_message, "key_id")
    elif not time_rule.in_window(parsed.created_at):
        failure = ("clock_skew", time_rule.window_message, "created_at")
    else:
        failure = None
    return known, failure


def _labels_verdict(context: CheckContext, parsed: ParsedContribution) -> tuple | None:
    """Why a contribution's labels fail, judged once its signature holds; None if they pass."""
    labels = context.labels
    if all(label in labels for label in parsed.labels):
        return None
    unknown = ", ".join(label for label in parsed.labels if label not in labels)
    return ("unknown_label", f"not in the hub's taxonomy: {unknown}", "labels")


def _chunk_finished(started: _StartedChunk, judge: _Judge) -> CheckOutcome:
    """The outcome of a started chunk, once its signatures are verified. The incidents are
    judged here, on the caller's thread, which may query them (``_StartedAhead``'s may not)."""
    checks, candidates, rejections = started
    reject = rejections.append
    verified: list[Verified] = []
    for (index, parsed, signature, key, deferred), valid in zip(
        candidates, checks.results(), strict=True
    ):
        if not valid:
            deferred = (
                "bad_signature",
                "the signature does not verify over the canonical bytes",
                "signature",
            )
        elif (
            deferred is None
            and parsed.incident is not None
            and parsed.incident not in judge.incident_ids
        ):
            deferred = ("unknown_incident", "no such incident", "incident")
        if deferred is not None:
            code, message, field_name = deferred
            evidence = claim_evidence(parsed, signature)
            reject(Rejection(index, code, message, field_name, evidence, True))
        else:
            verified.append(Verified(index, parsed, signature, key))
    rejections.sort(key=lambda rejection: rejection.index)
    return CheckOutcome(verified, rejections)


def claim_evidence(parsed: ParsedContribution, signature: bytes) -> dict[str, Any]:
    """What is kept of a rejected claim: enough to verify (or disprove) it later."""
    return {**parsed_evidence(parsed), Key.SIGNATURE: base64.b64encode(signature).decode()}


def parsed_evidence(parsed: ParsedContribution) -> dict[str, Any]:
    return {
        Key.UUID: str(parsed.uuid),
        Key.KEY_ID: parsed.key_id,
        Key.CONTENT_HASH: parsed.content_hash,
        Key.CANONICAL: parsed.canonical.decode(),
    }


def raw_evidence(item: object) -> dict[str, Any]:
    """What can safely be kept of an item too malformed to parse: its uuid and signature text."""
    contribution = item.get("contribution") if isinstance(item, dict) else None
    raw_uuid = contribution.get("uuid") if isinstance(contribution, dict) else None
    raw_signature = item.get("signature") if isinstance(item, dict) else None
    return {
        Key.UUID: raw_uuid
        if isinstance(raw_uuid, str) and _EVIDENCE_UUID.fullmatch(raw_uuid)
        else None,
        Key.SIGNATURE: raw_signature
        if isinstance(raw_signature, str) and _EVIDENCE_SIGNATURE.fullmatch(raw_signature)
        else None,
    }
