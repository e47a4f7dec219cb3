"""Collecting cosignatures on this hub's checkpoints from its witnesses (C2SP tlog-witness, the
client side; docs/transparency.md, "Witnesses").

After the sequencer commits a checkpoint, one Celery task per witness sends it the latest
checkpoint with a consistency proof from the size that witness last cosigned (so a witness that
was down is brought up to date over the gap in one request). A witness answering 409 tells the
size it holds; the request is made again once from there. Network errors and 5xx answers are
retried a few times with backoff, and the periodic task asks again later: a slow or absent
witness delays only its own cosignature, never sequencing.

A checkpoint whose new leaves (since the size a witness last cosigned) are all
``checkpoint.cosigned`` events, this hub's records of cosigning other logs, is not sent: each
cosignature the witnesses gave would add such a leaf to their own logs, whose checkpoints this
hub would cosign, and so on for ever. Those leaves are witnessed with the next other change;
the verifier checks that every other leaf is inside a cosigned checkpoint.
"""

import base64
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from federation.errors import InvalidInput
from federation.transparency import log_selectors as selectors
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from federation.transparency.cosignatures import (
    SIZE_CONTENT_TYPE,
    CosignatureError,
    find_cosignature,
    parse_cosigner_key,
    signature_lines,
)
from federation.transparency.models import AuditEvent, Checkpoint, Cosignature, Witness
from members.actors import Actor

logger = logging.getLogger(__name__)

# Leaves that do not by themselves need witnessing (see the module docstring).
BOOKKEEPING_ACTIONS = frozenset({Action.CHECKPOINT_COSIGNED})


class WitnessUnavailable(Exception):
    """The witness did not answer, or answered 5xx: worth retrying later."""


class WitnessRefused(Exception):
    """The witness refused the checkpoint (403, 404, 422, …): retrying the same will not help."""


@dataclass(frozen=True)
class Outcome:
    witness: str
    result: str  # "cosigned", "up_to_date", "nothing_new", "inactive", "no_checkpoint"
    tree_size: int | None = None


def needs_witnessing(*, since: int, tree_size: int) -> bool:
    """Whether leaves ``[since, tree_size)`` hold any event other than bookkeeping."""
    if since == 0:
        return tree_size > 0
    return (
        AuditEvent.objects.filter(leaf_index__gte=since, leaf_index__lt=tree_size)
        .exclude(action__in=BOOKKEEPING_ACTIONS)
        .exists()
    )


def add_checkpoint_body(*, old_size: int, checkpoint: Checkpoint) -> bytes:
    if 0 < old_size < checkpoint.tree_size:
        proof = selectors.consistency_proof(
            first=old_size, second=checkpoint.tree_size, published_size=checkpoint.tree_size
        ).consistency_path
    else:
        proof = []
    lines = [f"old {old_size}", *(base64.b64encode(node).decode() for node in proof)]
    return ("\n".join(lines) + "\n\n" + checkpoint.note).encode()


def _post(url: str, body: bytes) -> tuple[int, str, str]:
    request = urllib.request.Request(  # noqa: S310 (an http(s) URL an operator configured)
        url.rstrip("/") + "/add-checkpoint",
        data=body,
        method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(  # noqa: S310
            request, timeout=settings.WITNESS_TIMEOUT_SECONDS
        ) as response:
            return response.status, response.headers.get_content_type(), response.read().decode()
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        return error.code, error.headers.get_content_type(), text
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise WitnessUnavailable(f"{url}: {error}") from error


def cosignatures_collect(*, witness_id: int) -> Outcome:
    """Ask one witness to cosign the latest checkpoint; store its cosignature. Raises
    ``WitnessUnavailable`` (retry) or ``WitnessRefused``; either is recorded on the witness."""
    witness = Witness.objects.get(pk=witness_id)
    if not witness.active:
        return Outcome(witness.name, "inactive")
    checkpoint = selectors.latest_checkpoint()
    if checkpoint is None or checkpoint.tree_size == 0:
        return Outcome(witness.name, "no_checkpoint")
    if Cosignature.objects.filter(checkpoint=checkpoint, witness=witness).exists():
        return Outcome(witness.name, "up_to_date", checkpoint.tree_size)
    if witness.tree_size and not needs_witnessing(
        since=witness.tree_size, tree_size=checkpoint.tree_size
    ):
        return Outcome(witness.name, "nothing_new", witness.tree_size)
    Witness.objects.filter(pk=witness.pk).update(last_attempt_at=timezone.now())
    try:
        line, timestamp = _exchange(witness, checkpoint)
    except (WitnessUnavailable, WitnessRefused) as exc:
        Witness.objects.filter(pk=witness.pk).update(last_error=str(exc)[:2000])
        raise
    with transaction.atomic():
        try:
            with transaction.atomic():
                Cosignature.objects.create(
                    checkpoint=checkpoint, witness=witness, line=line, timestamp=timestamp
                )
        except IntegrityError:
            pass  # a concurrent task stored this witness's cosignature already
        Witness.objects.filter(pk=witness.pk).update(
            tree_size=checkpoint.tree_size, last_cosigned_at=timezone.now(), last_error=""
        )
    return Outcome(witness.name, "cosigned", checkpoint.tree_size)


def _exchange(witness: Witness, checkpoint: Checkpoint) -> tuple[str, int]:
    key = parse_cosigner_key(witness.vkey)
    old_size = min(witness.tree_size, checkpoint.tree_size)
    for _attempt in range(2):
        status, content_type, text = _post(
            witness.url, add_checkpoint_body(old_size=old_size, checkpoint=checkpoint)
        )
        if status == 409 and content_type == SIZE_CONTENT_TYPE:
            held = text.strip()
            if not held.isascii() or not held.isdigit():
                raise WitnessRefused(f"409 with a malformed size {held[:40]!r}")
            held_size = int(held)
            if held_size > checkpoint.tree_size:
                raise WitnessRefused(
                    f"the witness holds size {held_size}, beyond this log's {checkpoint.tree_size}"
                )
            if held_size == old_size:
                raise WitnessRefused(f"409 for the size it says it holds ({held_size})")
            old_size = held_size
            continue
        if status >= 500:
            raise WitnessUnavailable(f"{status}: {text[:300]}")
        if status != 200:
            raise WitnessRefused(f"{status}: {text[:300]}")
        try:
            note_text = checkpoint.note[: checkpoint.note.index("\n\n") + 1]
            found = find_cosignature(signature_lines(text), note_text, key)
        except CosignatureError as exc:
            raise WitnessRefused(f"its answer does not verify: {exc}") from exc
        if found is None:
            raise WitnessRefused("its answer carries no cosignature by its key")
        return found.line, found.timestamp
    raise WitnessRefused("409 twice")


def cosigned_checkpoint(
    *,
    tree_size: int | None = None,
    witnesses: list[str] | None = None,
    threshold: int | None = None,
) -> tuple[Checkpoint, list[Cosignature]]:
    """The newest checkpoint holding cosignatures (or the one at ``tree_size``), with them; the
    latest checkpoint with none when no witness has cosigned yet. With ``witnesses`` (names) and
    ``threshold``: the newest checkpoint that at least ``threshold`` of them cosigned, if any (a
    verifier's policy can be met by an older checkpoint while witnesses change)."""
    if tree_size is None and witnesses:
        met = (
            Cosignature.objects.filter(witness__name__in=witnesses)
            .values("checkpoint__tree_size")
            .annotate(count=Count("witness", distinct=True))
            .filter(count__gte=threshold or len(set(witnesses)))
            .order_by("-checkpoint__tree_size")
            .values_list("checkpoint__tree_size", flat=True)
            .first()
        )
        if met is not None:
            tree_size = met
    if tree_size is None:
        held = Cosignature.objects.order_by("-checkpoint__tree_size").select_related("checkpoint")
        first = held.first()
        checkpoint = first.checkpoint if first else selectors.checkpoint_for()
    else:
        checkpoint = selectors.checkpoint_for(tree_size=tree_size)
    cosignatures = list(
        checkpoint.cosignatures.select_related("witness").order_by("witness__name", "pk")
    )
    return checkpoint, cosignatures


def cosigned_note(checkpoint: Checkpoint, cosignatures: list[Cosignature]) -> str:
    """One signed note: the checkpoint with the hub's signature and every cosignature held."""
    return checkpoint.note + "".join(cosignature.line for cosignature in cosignatures)


def witness_save(
    *, name: str, vkey: str, url: str, active: bool = True, actor: Actor
) -> tuple[Witness, bool]:
    """Add a witness of this hub's log, or change one; returns (witness, created)."""
    try:
        key = parse_cosigner_key(vkey)
    except CosignatureError as exc:
        raise InvalidInput(f"The witness key: {exc}", code="invalid_key") from exc
    if key.name != name:
        raise InvalidInput(f"The witness key names {key.name!r}, not {name!r}.", code="invalid_key")
    if not url.startswith(("http://", "https://")):
        raise InvalidInput("The witness URL starts with http:// or https://.")
    values = {Key.VKEY: vkey.strip(), Key.URL: url.rstrip("/"), Key.ACTIVE: active}
    with transaction.atomic():
        witness = Witness.objects.select_for_update().filter(name=name).first()
        created = witness is None
        before = {} if created else {k: getattr(witness, k) for k in values}
        if not created and before == values:
            return witness, False
        if created:
            witness = Witness(name=name)
        for field, value in values.items():
            setattr(witness, field, value)
        witness.save()
        audit_record(
            AuditRecord(
                action=Action.WITNESS_ADDED if created else Action.WITNESS_CHANGED,
                actor=actor,
                object_type=ObjectType.WITNESS,
                object_id=name,
                data={
                    Key.NAME: name,
                    Key.KEY_ID: key.key_id.hex(),
                    **values,
                    **({} if created else {Key.PREVIOUS: before}),
                },
            )
        )
    return witness, created
