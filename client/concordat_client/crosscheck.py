#!/usr/bin/env python3
"""The auditor's tools that read more than one hub or auditor, beside the standalone verifier
(``verifier.py``, which must sit in the same folder; like it, they need only Python 3.11+ and
``cryptography``):

    python crosscheck.py compare STATE_DIR_A STATE_DIR_B --key "<verifier key>" [--hub URL]
    python crosscheck.py evidence --key "<verifier key>" (--witness-url URL | --file FILE)
    python crosscheck.py reconcile-hubs --hub-a URL --key-a VKEY --hub-b URL --key-b VKEY

``compare`` is the split-view check of two auditors' histories, ``evidence`` checks a witness's
split-view evidence, ``reconcile-hubs`` says what two hubs' logs say they sent each other, item
by item. Exit status as the verifier's: 0 nothing found, 1 a discrepancy, 2 could not run.

See docs/transparency.md.
"""

import argparse
import binascii
import json
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

if __package__:
    from . import verifier
else:  # run as a script from its folder
    import verifier  # type: ignore[no-redef]

FEDERATION_SENT = "federation.sent"
FEDERATION_RECEIVED = "federation.received"


# --- comparing two auditors' views ------------------------------------------------------------


def compare(
    *,
    first: Path,
    second: Path,
    vkey: str,
    hub: str | None,
    token: str | None,
    out: TextIO,
    client: verifier.HubClient | None = None,
) -> int:
    """Split-view check between two state directories: every checkpoint either auditor verified
    must be signed by the pinned key; two checkpoints of the same size must have the same root
    (two signed roots for one size are evidence of a split view, printed in full); and the two
    latest checkpoints must be consistent (a proof from the hub, with --hub)."""
    report = verifier.Report(out)
    report.line(
        f"Concordat split-view check: {verifier._shown(first)} against {verifier._shown(second)}"
    )
    try:
        key = verifier.parse_verifier_key(vkey)
    except verifier.NoteError as exc:
        report.line(f"ERROR the --key argument: {exc}")
        return 2
    views: dict[str, list[verifier.SignedCheckpoint]] = {}
    for directory in (first, second):
        records = verifier.load_history(directory)
        if not records:
            report.line(
                f"ERROR {verifier._shown(directory)} holds no verified checkpoints ({verifier.HISTORY_FILE})"
            )
            return 2
        checkpoints = []
        for record in records:
            try:
                checkpoints.append(verifier.verify_checkpoint(record["checkpoint"], key))
            except (verifier.NoteError, KeyError, TypeError) as exc:
                report.fail(
                    f"{verifier._shown(directory)}: a saved checkpoint is not signed by the key: {exc}"
                )
        views[verifier._shown(directory)] = checkpoints
    names = list(views)
    origins = {checkpoint.origin for view in views.values() for checkpoint in view}
    if len(origins) > 1:
        report.line(f"ERROR the two states are of different logs: {sorted(origins)}")
        return 2
    by_size: dict[int, dict[bytes, tuple[str, verifier.SignedCheckpoint]]] = {}
    for name, view in views.items():
        for checkpoint in view:
            by_size.setdefault(checkpoint.tree_size, {}).setdefault(
                checkpoint.root_hash, (name, checkpoint)
            )
    split = {size: roots for size, roots in by_size.items() if len(roots) > 1}
    for size, roots in sorted(split.items()):
        report.fail(f"SPLIT VIEW: the hub signed {len(roots)} different roots for tree size {size}")
        report.line("        evidence (each note verifies under the pinned key):")
        for name, checkpoint in roots.values():
            report.line(f"        seen in {name}:")
            for line in checkpoint.note.rstrip("\n").split("\n"):
                report.line(f"            {line}")
    if not split:
        shared = sum(1 for roots in by_size.values() if len(roots) == 1)
        report.ok(f"no tree size has two roots ({shared} sizes across both histories)")
    latest = [max(views[name], key=lambda c: c.tree_size) for name in names if views[name]]
    if len(latest) == 2:
        old, new = sorted(latest, key=lambda c: c.tree_size)
        if old.tree_size == new.tree_size:
            if old.root_hash == new.root_hash:
                report.ok(f"both latest checkpoints are the same (size {new.tree_size})")
        elif hub is None and client is None:
            report.note(
                f"latest sizes differ ({old.tree_size} and {new.tree_size}): pass --hub to ask "
                "the hub for a consistency proof between them"
            )
        else:
            try:
                length = verifier.prove_consistency(
                    client or verifier.HubClient(hub, token), old, new
                )
                report.ok(
                    f"consistency: size {old.tree_size} is a prefix of size {new.tree_size} "
                    f"(proof of {length} hashes from the hub verified)"
                )
            except verifier.ProofError as exc:
                report.fail(
                    f"SPLIT VIEW: size {old.tree_size} is NOT a prefix of size {new.tree_size}: "
                    f"{exc}"
                )
            except (verifier.HubError, KeyError, TypeError, ValueError) as exc:
                report.line(f"ERROR could not get a consistency proof: {exc}")
                return 2
    if report.failures:
        report.line(f"RESULT: FAIL ({report.failures} problems)")
        return 1
    report.line("RESULT: OK, the two views agree")
    return 0


# --- split-view evidence held by a witness ----------------------------------------------------


def fetch_evidence(url: str, timeout: float = 60) -> dict:
    """A witness's evidence document (GET <witness prefix>/evidence)."""
    if not url.startswith(("http://", "https://")):
        raise verifier.HubError("the witness URL must start with http:// or https://")
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/evidence", timeout=timeout) as answer:  # noqa: S310
            return json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise verifier.HubError(f"GET {url}/evidence failed: {error}") from error


def evidence(
    *,
    document: dict,
    vkey: str,
    out: TextIO,
    witness_vkey_text: str | None = None,
    client: verifier.HubClient | None = None,
) -> int:
    """Check a witness's split-view evidence against the log's pinned key: both checkpoints
    must be signed by the log; then either they give two roots for one size (proof in itself),
    or the consistency proof between them fails (the one the log sent the witness, and, with
    ``client``, one asked of the hub now). Exit 1 when a split view is shown, 0 when there is no
    evidence, 2 when none of it is signed by the log."""
    report = verifier.Report(out)
    report.line("Concordat split-view evidence check")
    try:
        key = verifier.parse_verifier_key(vkey)
        witness = verifier.parse_witness_key(witness_vkey_text) if witness_vkey_text else None
    except verifier.NoteError as exc:
        report.line(f"ERROR a key argument: {exc}")
        return 2
    items = [item for item in document.get("evidence", []) if item.get("origin") == key.name]
    if not items:
        report.ok(f"the witness holds no evidence against {key.name}")
        report.line("RESULT: OK, no split view")
        return 0
    shown = 0
    for item in items:
        report.line(f"evidence {item.get('id')} ({item.get('kind')}), {item.get('detected_at')}:")
        try:
            first = verifier.verify_checkpoint(item["cosigned_note"], key)
            second = verifier.verify_checkpoint(item["shown_note"], key)
        except (verifier.NoteError, KeyError, TypeError) as exc:
            report.note(f"not evidence: a checkpoint is not signed by {key.name}: {exc}")
            continue
        report.ok(
            f"both checkpoints are signed by {key.name} (sizes {first.tree_size} and "
            f"{second.tree_size})"
        )
        if witness is not None:
            check = verifier.check_cosignatures(
                item["cosigned_note"], key, [witness], datetime.now(UTC)
            )
            if witness.name in check.cosigned:
                report.ok(f"the first carries the cosignature of witness {witness.name}")
        for label, checkpoint in (("cosigned", first), ("shown", second)):
            report.line(f"        {label}:")
            for line in checkpoint.note.rstrip("\n").split("\n"):
                report.line(f"            {line}")
        old, new = sorted((first, second), key=lambda c: c.tree_size)
        if old.tree_size == new.tree_size:
            if old.root_hash != new.root_hash:
                report.fail(f"SPLIT VIEW: the log signed two roots for tree size {old.tree_size}")
                shown += 1
            else:
                report.note("the two checkpoints agree: no split view in this item")
            continue
        proofs: list[tuple[str, list[bytes]]] = []
        try:
            proofs.append(
                ("the proof the log sent the witness", [verifier._b64(h) for h in item["proof"]])
            )
        except (KeyError, TypeError, binascii.Error):
            report.note("the evidence carries no readable proof")
        if client is not None:
            try:
                answer = client.json(
                    "/proof/consistency", first=old.tree_size, second=new.tree_size
                )
                proofs.append(
                    (
                        "a proof asked of the hub now",
                        [verifier._b64(h) for h in answer["consistency_path"]],
                    )
                )
            except (verifier.HubError, KeyError, TypeError, binascii.Error) as exc:
                report.note(f"the hub gave no consistency proof: {exc}")
        failed = 0
        for what, path in proofs:
            try:
                verifier.verify_consistency(
                    old.tree_size, new.tree_size, old.root_hash, new.root_hash, path
                )
                report.ok(f"{what} verifies: size {old.tree_size} is a prefix of {new.tree_size}")
            except verifier.ProofError as exc:
                report.line(f"        {what} does not verify: {exc}")
                failed += 1
        if proofs and failed == len(proofs):
            report.fail(
                f"SPLIT VIEW: no consistency proof from size {old.tree_size} to "
                f"{new.tree_size} verifies against the two signed roots"
            )
            shown += 1
    if shown:
        report.line(f"RESULT: FAIL, {shown} split views of {key.name} shown")
        return 1
    report.line("RESULT: no split view shown by the evidence")
    return 2 if items else 0


# --- reconciling what two hubs say they sent each other --------------------------------------


def read_whole_log(
    client: verifier.HubClient, key: verifier.VerifierKey, report: verifier.Report
) -> list[dict] | None:
    """Every event document of a hub's log, once its checkpoint verifies under ``key`` and the
    leaves (exact canonical bytes) give the signed root. None when they do not."""
    try:
        checkpoint = verifier.verify_checkpoint(client.get("/checkpoint").decode("utf-8"), key)
    except verifier.NoteError as exc:
        report.fail(f"{key.name}: checkpoint rejected: {exc}")
        return None
    frontier = verifier.Frontier()
    documents: list[dict] = []
    while frontier.size < checkpoint.tree_size:
        end = min(frontier.size + verifier.ENTRIES_PAGE, checkpoint.tree_size)
        page = client.json("/entries", start=frontier.size, end=end)
        if not page["entries"]:
            report.fail(f"{key.name}: no entries from leaf {frontier.size}")
            return None
        for entry in page["entries"]:
            leaf = verifier._b64(entry["leaf"])
            try:
                documents.append(verifier.check_leaf(leaf, entry.get("event")))
            except verifier.CanonicalError as exc:
                report.fail(f"{key.name}: leaf {frontier.size}: {exc}")
                return None
            frontier.append(verifier.leaf_hash(leaf))
    if frontier.root() != checkpoint.root_hash:
        report.fail(f"{key.name}: the leaves do not give the signed root")
        return None
    report.ok(f"{key.name}: {checkpoint.tree_size} leaves verified against its signed checkpoint")
    return documents


def federation_records(documents: list[dict], hub: str) -> tuple[dict, dict]:
    """(sent, recorded): digest sets keyed by (sender, receiver), from ``hub``'s own log. Pages
    of the pull feed are in ``sent`` too; ``sent_batches`` says which they are."""
    sent: dict[tuple[str, str], set[str]] = {}
    recorded: dict[tuple[str, str], set[str]] = {}
    for document in documents:
        data = document["data"]
        if document["action"] == FEDERATION_SENT:
            items = data.get("items") or []
            sent.setdefault((hub, str(data.get("peer"))), set()).update(map(str, items))
        elif document["action"] == FEDERATION_RECEIVED:
            seen = {str(item) for item in data.get("accepted") or []}
            seen |= {str(item) for item in data.get("duplicates") or []}
            seen |= {
                str(rejected.get("item"))
                for rejected in data.get("rejected") or []
                if isinstance(rejected, dict)
            }
            recorded.setdefault((str(data.get("peer")), hub), set()).update(seen)
    return sent, recorded


def sent_batches(documents: list[dict], hub: str) -> dict[tuple[str, str], dict[str, tuple]]:
    """What ``hub`` says it sent, batch by batch: ``(via, digests)`` by batch id, keyed by
    (sender, receiver). ``via`` is ``pull`` for a page of its feed, ``push`` otherwise (events
    written before ``via`` was recorded were all pushes)."""
    batches: dict[tuple[str, str], dict[str, tuple]] = {}
    for document in documents:
        data = document["data"]
        if document["action"] == FEDERATION_SENT:
            via = "pull" if data.get("via") == "pull" else "push"
            sent = batches.setdefault((hub, str(data.get("peer"))), {})
            _via, items = sent.setdefault(str(data.get("batch")), (via, set()))
            items.update(map(str, data.get("items") or []))
    return batches


def received_batches(documents: list[dict], hub: str) -> dict[tuple[str, str], set[str]]:
    """The batch ids ``hub`` recorded receiving, keyed by (sender, receiver)."""
    batches: dict[tuple[str, str], set[str]] = {}
    for document in documents:
        data = document["data"]
        if document["action"] == FEDERATION_RECEIVED:
            batches.setdefault((str(data.get("peer")), hub), set()).add(str(data.get("batch")))
    return batches


def _untaken(sent: dict[str, tuple], taken: set[str]) -> tuple[int, set[str]]:
    """Of the pull pages served (in ``sent``, batch by batch), those whose batch the puller
    never recorded (the answer was lost, or the page refused whole: the puller asks again from
    the same cursor), and the items no other batch offered."""
    untaken = [b for b, (via, _items) in sent.items() if via == "pull" and b not in taken]
    elsewhere = set().union(*(items for b, (_via, items) in sent.items() if b not in untaken))
    only = set().union(*(sent[b][1] for b in untaken)) - elsewhere
    return len(untaken), only


def compare_federation_records(
    report: verifier.Report, first: tuple[str, list[dict]], second: tuple[str, list[dict]]
) -> int:
    """Pair what each hub (name, its log's documents) says it sent the other with what the other
    recorded, both ways, and report it; the number of items unmatched."""
    (a, a_docs), (b, b_docs) = first, second
    a_sent, a_recorded = federation_records(a_docs, a)
    b_sent, b_recorded = federation_records(b_docs, b)
    a_pages, b_pages = sent_batches(a_docs, a), sent_batches(b_docs, b)
    a_batches, b_batches = received_batches(a_docs, a), received_batches(b_docs, b)
    problems = 0
    for sender, receiver, sent, recorded, pages, batches in (
        (a, b, a_sent, b_recorded, a_pages, b_batches),
        (b, a, b_sent, a_recorded, b_pages, a_batches),
    ):
        said = sent.get((sender, receiver), set())
        got = recorded.get((sender, receiver), set())
        untaken, only_untaken = _untaken(
            pages.get((sender, receiver), {}), batches.get((sender, receiver), set())
        )
        if untaken:
            report.note(
                f"{untaken} pull pages {sender} served to {receiver} that {receiver} never "
                f"recorded (an answer lost or a page refused whole; it pulls them again): "
                f"{len(only_untaken - got)} items offered only on them"
            )
        said_taken = said - only_untaken
        missing, unsent = sorted(said_taken - got), sorted(got - said)
        if missing:
            problems += len(missing)
            report.fail(
                f"{len(missing)} items {sender} says it sent to {receiver} that {receiver} never "
                "recorded:"
            )
            report.listing([f"item {digest}" for digest in missing])
        if unsent:
            problems += len(unsent)
            report.fail(
                f"{len(unsent)} items {receiver} recorded from {sender} that {sender} never says "
                "it sent:"
            )
            report.listing([f"item {digest}" for digest in unsent])
        if not missing and not unsent:
            report.ok(
                f"{sender} -> {receiver}: {len(said_taken)} items sent, every one recorded, "
                "none other"
            )
    return problems


def reconcile_hubs(
    *,
    first: tuple[str, str, str | None],
    second: tuple[str, str, str | None],
    out: TextIO,
    clients: tuple[verifier.HubClient, verifier.HubClient] | None = None,
) -> int:
    """Read two hubs' logs (each verified against its checkpoint) and report every federation
    item one hub says it sent the other that the other never recorded (accepted, duplicate or
    rejected), and every item one recorded from the other that the other never says it sent.
    ``first``/``second`` are (url, vkey, token). Exit 0 they agree, 1 they differ, 2 could not
    run."""
    report = verifier.Report(out)
    report.line(f"Concordat cross-hub reconciliation: {first[0]} and {second[0]}")
    logs = []
    for index, (url, vkey, token) in enumerate((first, second)):
        try:
            key = verifier.parse_verifier_key(vkey)
            client = clients[index] if clients else verifier.HubClient(url, token)
            documents = read_whole_log(client, key, report)
        except verifier.NoteError as exc:
            report.line(f"ERROR the key of {url}: {exc}")
            return 2
        except (verifier.HubError, KeyError, TypeError, ValueError) as exc:
            report.line(f"ERROR could not read the log of {url}: {exc}")
            return 2
        if documents is None:
            report.line("RESULT: FAIL, a log does not verify; nothing reconciled")
            return 1
        logs.append((key.name, documents))
    problems = compare_federation_records(report, logs[0], logs[1])
    if problems:
        report.line(f"RESULT: FAIL ({problems} items unmatched)")
        return 1
    report.line("RESULT: OK, the two logs agree on what crossed between the hubs")
    return 0


SUBCOMMANDS = ("compare", "evidence", "reconcile-hubs")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] not in ([name] for name in SUBCOMMANDS):
        print(f"usage: crosscheck.py {{{','.join(SUBCOMMANDS)}}} ...", file=sys.stderr)
        return 2
    if argv[:1] == ["compare"]:
        parser = argparse.ArgumentParser(
            prog="crosscheck.py compare", description="Split-view check of two state directories"
        )
        parser.add_argument("first", type=Path)
        parser.add_argument("second", type=Path)
        parser.add_argument("--key", required=True, help="The hub's verifier key (pin it)")
        parser.add_argument("--hub", default=None, help="Ask this hub for a consistency proof")
        parser.add_argument("--token", default=None, help="An API token with the audit scope")
        args = parser.parse_args(argv[1:])
        return compare(
            first=args.first,
            second=args.second,
            vkey=args.key,
            hub=args.hub,
            token=args.token,
            out=sys.stdout,
        )
    if argv[:1] == ["evidence"]:
        parser = argparse.ArgumentParser(
            prog="crosscheck.py evidence", description="Check a witness's split-view evidence"
        )
        parser.add_argument("--key", required=True, help="The log's verifier key (pin it)")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument(
            "--witness-url", help="The witness's prefix, e.g. https://w/api/v1/witness"
        )
        source.add_argument("--file", type=Path, help="An evidence document saved earlier")
        parser.add_argument("--witness", default=None, help="The witness's key (type 0x04 vkey)")
        parser.add_argument("--hub", default=None, help="Also ask this hub for the proof")
        parser.add_argument("--token", default=None, help="An API token with the audit scope")
        args = parser.parse_args(argv[1:])
        try:
            document = (
                json.loads(args.file.read_text()) if args.file else fetch_evidence(args.witness_url)
            )
        except (verifier.HubError, OSError, ValueError) as exc:
            print(f"ERROR could not read the evidence: {exc}")
            return 2
        return evidence(
            document=document,
            vkey=args.key,
            out=sys.stdout,
            witness_vkey_text=args.witness,
            client=verifier.HubClient(args.hub, args.token) if args.hub else None,
        )
    if argv[:1] == ["reconcile-hubs"]:
        parser = argparse.ArgumentParser(
            prog="crosscheck.py reconcile-hubs",
            description="What two hubs' logs say they sent each other, item by item",
        )
        for side in ("a", "b"):
            parser.add_argument(f"--hub-{side}", required=True)
            parser.add_argument(f"--key-{side}", required=True)
            parser.add_argument(f"--token-{side}", default=None)
        args = parser.parse_args(argv[1:])
        return reconcile_hubs(
            first=(args.hub_a, args.key_a, args.token_a),
            second=(args.hub_b, args.key_b, args.token_b),
            out=sys.stdout,
        )
    return 2


if __name__ == "__main__":
    sys.exit(main())
