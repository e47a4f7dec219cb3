"""A recorded vetting policy in words, for people: the admin's entry page and the auditor reports
read a decision's (or a state change's) policy snapshot through ``policy_lines`` rather than
showing its JSON. Plain text; the callers escape and lay it out."""

from typing import Any

from federation.transparency.actions import Key, PolicyRule

RULE_TEXT = {
    PolicyRule.QUORUM: "quorum of reviewers' votes",
    PolicyRule.INCIDENT_QUORUM: "an incident's quorum of reviewers' votes",
    PolicyRule.TRUSTED_MEMBER: "automatic: a trusted member's add",
    PolicyRule.INCIDENT: "automatic: an incident's fast lane",
    PolicyRule.ADMIN_RULING: "a consortium admin's ruling",
    PolicyRule.DISPUTE_RESOLUTION: "a consortium admin's resolution of a dispute",
    PolicyRule.DISPUTE_THRESHOLD: "members' dissent reached the dispute threshold",
    PolicyRule.TRUSTED_PEER: "a trusted peer's vetting",
}


def rule_text(snapshot: dict[str, Any] | None) -> str:
    """The rule of a snapshot in one phrase; a trusted peer's is named by its hub id."""
    snapshot = snapshot or {}
    rule = snapshot.get(Key.RULE)
    if rule == PolicyRule.TRUSTED_PEER:
        return f"trusted from peer {snapshot.get(Key.PEER) or 'unknown'}: its vetting"
    return RULE_TEXT.get(rule, rule or "not recorded")


def policy_lines(snapshot: dict[str, Any] | None) -> list[str]:
    """A policy snapshot (``federation.vetting.policy.policy_snapshot``, or the ``policy`` of a
    state change's audit event) as short sentences; none for an empty snapshot."""
    if not snapshot:
        return []
    lines = [f"Rule: {rule_text(snapshot)}"]
    if snapshot.get(Key.EFFECTIVE_QUORUM) is not None:
        needed = snapshot[Key.EFFECTIVE_QUORUM]
        lines.append(f"Needed {needed} approval{'s' if needed != 1 else ''} (or rejections)")
    if snapshot.get(Key.INCIDENT):
        lines.append(f"Incident {snapshot[Key.INCIDENT]}")
    if snapshot.get(Key.MEMBER):
        lines.append(f"Member {snapshot[Key.MEMBER]}")
    if Key.QUORUM in snapshot:
        trusted = "yes" if snapshot.get(Key.AUTO_VET_TRUSTED) else "no"
        lines.append(
            f"Hub policy then: quorum {snapshot.get(Key.QUORUM)}, trusted members auto-vetted: "
            f"{trusted}, dispute threshold {snapshot.get(Key.DISPUTE_THRESHOLD)}"
        )
    return lines
