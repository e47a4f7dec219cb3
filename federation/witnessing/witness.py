"""This hub as a witness of other hubs' logs (C2SP tlog-witness ``add-checkpoint``, cosignatures
of C2SP tlog-cosignature; docs/transparency.md, "Witnesses").

For each log it witnesses (``WitnessedLog``, configured by an operator with the log's origin and
verifier key) the witness keeps the latest checkpoint it cosigned. It cosigns a new checkpoint
only when the log's signature verifies and the log proves, with an RFC 6962 consistency proof,
that the new tree extends that checkpoint.

Only the log's own signatures are evidence against it. Two checkpoints it signed for the same
size with different roots cannot both be true: they are kept as ``SplitViewEvidence`` and the
log is refused every cosignature until an operator looks. A consistency proof that fails is
refused (422) and changes nothing: anyone may post a genuine checkpoint with a proof of their
own making, and a bad proof is the sender's, not the log's.

The request's old size is checked and the new checkpoint stored under a row lock on the log, so
two concurrent requests cannot roll the stored size back (the race the spec describes).
"""

import base64
import binascii
import re
import time
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from federation.canonical import JCS_INT_MAX
from federation.errors import InvalidInput, NotFound
from federation.transparency import merkle
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from federation.transparency.checkpoints import (
    CheckpointError,
    parse_checkpoint_body,
    parse_log_key,
    verify_log_note,
)
from federation.transparency.cosignatures import hub_cosign
from federation.transparency.models import SplitViewEvidence, WitnessedLog
from members.actors import Actor

MAX_PROOF_LINES = 63  # the spec's bound on consistency proof lines
MAX_BODY_BYTES = 64 * 1024
_OLD_LINE = re.compile(r"old (0|[1-9][0-9]{0,18})")


class WitnessRefusal(Exception):
    """A request the witness refuses, with the status the spec gives (400, 403, 404, 409, 422).
    ``code`` names the reason in the hub's error shape; a 409 answers the size as text instead."""

    def __init__(self, status: int, code: str, message: str, *, size: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.size = size


@dataclass(frozen=True)
class AddCheckpointRequest:
    old_size: int
    proof: list[bytes]
    note: str  # the checkpoint: note text, blank line, signature lines
    text: str  # the note text alone (what the log signed)
    origin: str
    tree_size: int
    root_hash: bytes


def parse_add_checkpoint(body: bytes) -> AddCheckpointRequest:
    """The ``add-checkpoint`` body: ``old <size>``, up to 63 base64 proof lines, a blank line,
    the signed checkpoint. Anything else is a 400."""
    if len(body) > MAX_BODY_BYTES:
        raise WitnessRefusal(400, "invalid", f"The body is over {MAX_BODY_BYTES} bytes.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WitnessRefusal(400, "invalid", "The body is not UTF-8.") from exc
    head, separator, note = text.partition("\n\n")
    if not separator:
        raise WitnessRefusal(400, "invalid", "No blank line between the proof and the checkpoint.")
    lines = head.split("\n")
    old = _OLD_LINE.fullmatch(lines[0])
    if old is None:
        raise WitnessRefusal(400, "invalid", "The first line is not `old <decimal size>`.")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessRefusal(400, "invalid", f"More than {MAX_PROOF_LINES} proof lines.")
    try:
        proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    except binascii.Error as exc:
        raise WitnessRefusal(400, "invalid", "A proof line is not base64.") from exc
    if any(len(node) != 32 for node in proof):
        raise WitnessRefusal(400, "invalid", "A proof line is not a 32-byte hash.")
    split = note.find("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise WitnessRefusal(400, "invalid", "The checkpoint is not a signed note.")
    note_text = note[: split + 1]
    try:
        origin, size, root = parse_checkpoint_body(note_text)
    except CheckpointError as exc:
        raise WitnessRefusal(400, "invalid", f"The checkpoint is malformed: {exc}") from exc
    # The sizes go into this hub's audit events, whose leaves (RFC 8785) hold integers up to
    # 2**53 - 1: a larger size, which a log's key can sign, would be an event the sequencer could
    # never write a leaf for, and it would stop the hub's own log.
    if size > JCS_INT_MAX:
        raise WitnessRefusal(
            400,
            "invalid",
            f"The tree size is over {JCS_INT_MAX}, the largest this witness records.",
        )
    return AddCheckpointRequest(
        old_size=int(old.group(1)),
        proof=proof,
        note=note,
        text=note_text,
        origin=origin,
        tree_size=size,
        root_hash=root,
    )


def checkpoint_add(*, body: bytes, actor: Actor) -> str:
    """Cosign the checkpoint in an ``add-checkpoint`` request body; returns the cosignature
    line. Raises ``WitnessRefusal``. Evidence of a split view is committed before the refusal is
    raised, so the 422 never rolls it back."""
    request = parse_add_checkpoint(body)
    log = WitnessedLog.objects.filter(origin=request.origin).first()
    if log is None:
        raise WitnessRefusal(
            404, "unknown_origin", f"This witness does not witness {request.origin!r}."
        )
    try:
        verify_log_note(request.note, parse_log_key(log.vkey))
    except CheckpointError as exc:
        raise WitnessRefusal(403, "bad_log_signature", f"The log's signature: {exc}") from exc
    if request.old_size > request.tree_size:
        raise WitnessRefusal(400, "invalid", "The old size is larger than the checkpoint's.")
    if request.tree_size == 0 and request.root_hash != merkle.EMPTY_ROOT:
        raise WitnessRefusal(422, "inconsistent", "A tree of size 0 has the empty tree's root.")
    if request.old_size == 0 and request.proof:
        raise WitnessRefusal(422, "inconsistent", "A proof from size 0 must be empty.")
    refusal: WitnessRefusal | None = None
    with transaction.atomic():
        log = WitnessedLog.objects.select_for_update().get(pk=log.pk)
        if log.state == WitnessedLog.State.SPLIT_VIEW:
            raise WitnessRefusal(
                422,
                "split_view",
                "This witness holds evidence that the log showed two histories; it cosigns "
                "nothing more for it.",
            )
        if request.old_size != log.tree_size:
            raise WitnessRefusal(
                409, "old_size", f"The latest cosigned size is {log.tree_size}.", size=log.tree_size
            )
        if _conflicts(log, request):
            reason = f"The log signed two roots for tree size {log.tree_size}."
            _keep_evidence(
                log, request, kind=SplitViewEvidence.Kind.SAME_SIZE, reason=reason, actor=actor
            )
            refusal = WitnessRefusal(422, "inconsistent", reason)
        else:
            _check_extends(log, request)
            line = _cosign(log, request, actor=actor)
    if refusal is not None:
        raise refusal
    return line


def _conflicts(log: WitnessedLog, request: AddCheckpointRequest) -> bool:
    """Whether the request's checkpoint and the cosigned one, both signed by the log, name two
    roots for one tree size: the only split view the witness can prove by itself."""
    if log.root_hash is None or request.tree_size != log.tree_size:
        return False
    return request.root_hash != bytes(log.root_hash)


def _check_extends(log: WitnessedLog, request: AddCheckpointRequest) -> None:
    """Refuse (422, nothing kept) a checkpoint whose proof does not show it extends the cosigned
    one. The proof is the caller's: it failing proves nothing about the log, whose honest
    checkpoint anyone may post with a bogus proof."""
    if log.root_hash is None or request.tree_size == log.tree_size:
        return  # never cosigned (the empty tree is a prefix of every tree), or the same root
    try:
        merkle.verify_consistency(
            first=log.tree_size,
            second=request.tree_size,
            first_root=bytes(log.root_hash),
            second_root=request.root_hash,
            proof=request.proof,
        )
    except merkle.ProofError as exc:
        raise WitnessRefusal(
            422,
            "inconsistent",
            f"The consistency proof from size {log.tree_size} to {request.tree_size} does not "
            f"verify: {exc}. Nothing was recorded; send a proof that does.",
        ) from exc


def _cosign(log: WitnessedLog, request: AddCheckpointRequest, *, actor: Actor) -> str:
    timestamp = int(time.time())
    line = hub_cosign(request.text, timestamp=timestamp)
    log.tree_size = request.tree_size
    log.root_hash = request.root_hash
    log.checkpoint = request.note + line
    log.cosigned_at = timezone.now()
    log.save(update_fields=["tree_size", "root_hash", "checkpoint", "cosigned_at"])
    audit_record(
        AuditRecord(
            action=Action.CHECKPOINT_COSIGNED,
            actor=actor,
            object_type=ObjectType.WITNESSED_LOG,
            object_id=log.origin,
            data={
                Key.ORIGIN: log.origin,
                Key.OLD_SIZE: request.old_size,
                Key.TREE_SIZE: request.tree_size,
                Key.ROOT_HASH: base64.b64encode(request.root_hash).decode(),
                Key.TIMESTAMP: timestamp,
                Key.COSIGNATURE: line,
            },
        )
    )
    return line


def _keep_evidence(
    log: WitnessedLog, request: AddCheckpointRequest, *, kind: str, reason: str, actor: Actor
) -> SplitViewEvidence:
    evidence = SplitViewEvidence.objects.create(
        witnessed_log=log,
        origin=log.origin,
        kind=kind,
        cosigned_note=log.checkpoint,
        shown_note=request.note,
        old_size=request.old_size,
        proof=[base64.b64encode(node).decode() for node in request.proof],
        reason=reason,
    )
    log.state = WitnessedLog.State.SPLIT_VIEW
    log.save(update_fields=["state"])
    audit_record(
        AuditRecord(
            action=Action.CHECKPOINT_SPLIT_VIEW,
            actor=actor,
            object_type=ObjectType.WITNESSED_LOG,
            object_id=log.origin,
            data={
                Key.ORIGIN: log.origin,
                Key.KIND: kind,
                Key.REASON: reason,
                Key.EVIDENCE_ID: evidence.pk,
                Key.COSIGNED_NOTE: evidence.cosigned_note,
                Key.SHOWN_NOTE: evidence.shown_note,
            },
        )
    )
    return evidence


def witnessed_log_save(*, origin: str, vkey: str, actor: Actor) -> tuple[WitnessedLog, bool]:
    """Add a log to witness, or change the verifier key of one; returns (log, created)."""
    try:
        key = parse_log_key(vkey)
    except CheckpointError as exc:
        raise InvalidInput(f"The log's verifier key: {exc}", code="invalid_key") from exc
    with transaction.atomic():
        log = WitnessedLog.objects.select_for_update().filter(origin=origin).first()
        created = log is None
        if created:
            log = WitnessedLog.objects.create(origin=origin, vkey=vkey.strip())
        elif log.vkey == vkey.strip():
            return log, False
        previous = log.vkey
        log.vkey = vkey.strip()
        log.save(update_fields=["vkey"])
        audit_record(
            AuditRecord(
                action=Action.WITNESSED_LOG_ADDED if created else Action.WITNESSED_LOG_CHANGED,
                actor=actor,
                object_type=ObjectType.WITNESSED_LOG,
                object_id=origin,
                data={
                    Key.ORIGIN: origin,
                    Key.VKEY: log.vkey,
                    Key.KEY_ID: key.key_id.hex(),
                    **({} if created else {Key.PREVIOUS: previous}),
                },
            )
        )
    return log, created


def witnessed_log_resume(*, origin: str, reason: str, actor: Actor) -> WitnessedLog:
    """Witness a log held in split view again, from the checkpoint it last cosigned; the
    evidence stays (and stays public). For an operator who has looked: e.g. evidence of kind
    ``inconsistent``, which earlier versions kept from a proof that failed, proves nothing
    against the log. Writes ``witnessed_log.resumed``."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("Give a reason for resuming.", code="reason_required")
    with transaction.atomic():
        log = WitnessedLog.objects.select_for_update().filter(origin=origin).first()
        if log is None:
            raise NotFound(f"This witness does not witness {origin!r}.")
        if log.state != WitnessedLog.State.SPLIT_VIEW:
            raise InvalidInput(f"{origin!r} is not held in split view.", code="invalid")
        log.state = WitnessedLog.State.ACTIVE
        log.save(update_fields=["state"])
        evidence = list(
            SplitViewEvidence.objects.filter(witnessed_log=log)
            .order_by("pk")
            .values_list("pk", "kind")
        )
        audit_record(
            AuditRecord(
                action=Action.WITNESSED_LOG_RESUMED,
                actor=actor,
                object_type=ObjectType.WITNESSED_LOG,
                object_id=origin,
                data={
                    Key.ORIGIN: origin,
                    Key.REASON: reason,
                    Key.EVIDENCE: [{Key.EVIDENCE_ID: pk, Key.KIND: kind} for pk, kind in evidence],
                    Key.TREE_SIZE: log.tree_size,
                },
            )
        )
    return log
