"""The API's OpenAPI description of errors: one ``Error`` component for the documented shape
``{"error": {"code", "message", "details"}}`` and, on every operation, the 4xx statuses it can
answer with the codes behind each (in the description and as one example per code).

Codes come from two places: those every endpoint of a kind can return (a body can be malformed,
a token wrong, a path object missing), derived here from the view, and those of the endpoint's
own domain checks, which a view declares in ``error_codes``: ``{status: [code, ...]}``, or
``{"POST": {status: [code, ...]}}`` per method. ``ERROR_CODES`` says what each code means; a test
checks that every code an operation lists is described there (tests/federation/api/test_openapi_schema.py).
"""

import functools
import unicodedata
from collections import defaultdict

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from members.validators import UNSAFE_CATEGORIES, DisplayNameValidator

ERROR_CODES: dict[str, str] = {
    "https_required": "The hub is behind HTTPS and the request came over plain HTTP "
    "(details.url is the HTTPS URL); the credential crossed in the clear: revoke it.",
    # Request-level (any endpoint of the kind)
    "malformed_json": "The body is not JSON: bad syntax, not UTF-8, NaN, or nested too deeply.",
    "invalid": "Wrong shape or types; details names the fields at fault.",
    "bad_request": "Refused before reaching the API (e.g. a Host header this hub does not serve).",
    "not_authenticated": "No credentials were sent.",
    "authentication_failed": "Unknown, wrong, expired or revoked token, or a deactivated holder.",
    "permission_denied": "Your role or token scopes do not allow this, or your organisation is "
    "suspended.",
    "not_found": "No such object in your organisation, or no such URL (details.url names the "
    "URL with or without the trailing slash when that one exists).",
    "not_acceptable": "The Accept header asks for a media type this endpoint does not produce.",
    "payload_too_large": "The body is over the hub's limit (details.limit, in bytes).",
    "unsupported_media_type": "The body is not of the endpoint's media type: application/json "
    "(text/plain for the witness's add-checkpoint).",
    "rate_limited": "Over the per-user request rate; retry after the Retry-After header.",
    # Contributions
    "too_many_items": "A bulk request over its limit (BULK_MAX_ITEMS items, MATCH_MAX_SIGNALS "
    "signals); details: {limit, received}.",
    "wrong_hub": "The contribution names another hub.",
    "unknown_key": "key_id is not a key of your organisation.",
    "key_not_active": "The key was not valid at created_at (before its not_before, at or after "
    "its revocation) or is revoked now.",
    "clock_skew": "created_at is too far ahead of the hub's clock, or too old.",
    "bad_signature": "The Ed25519 signature does not verify over the canonical bytes.",
    "unknown_label": "A label outside the hub's active taxonomy.",
    "unknown_incident": "An incident the hub does not know.",
    "member_mismatch": "The contribution names another member than your organisation.",
    "uuid_conflict": "This UUID was already used for other bytes, or by another member.",
    "nothing_to_retract": "A retract where your organisation has no active add of the signal.",
    # Member management
    "invalid_key": "public_key is not a valid raw 32-byte Ed25519 public key (hex or base64).",
    "key_exists": "This public key is already registered.",
    "peer_exists": "A peer with this hub id is already registered (manage.py peer update).",
    "same_key": "The key given is already the peer's pinned key: nothing to rotate.",
    "key_revoked": "The key is already revoked (from that time or earlier).",
    "reason_required": "A reason is required.",
    "unknown_holder": "holder is not a user of your organisation.",
    "scope_not_allowed": "A scope the holder's role does not have.",
    "scope_exceeds_issuer": "A scope the issuing token (or its holder) does not have itself.",
    "credential_revoked": "The credential is already revoked.",
    "staff_user": "Hub staff cannot belong to a member organisation.",
    "other_organisation": "The user belongs to another organisation.",
    "unsafe_characters": "A name with invisible or text-direction characters (bidi controls, "
    "zero-width, control characters); the API reports these as `invalid` with the field.",
    # Raised by services only the Django admin and the management commands reach
    "slug_exists": "An organisation with this slug exists.",
    "member_user": "Members of an organisation cannot also be hub staff.",
    # Vetting, feedback, incidents
    "not_pending": "The entry is not pending review.",
    "self_vote": "Your organisation contributed this entry; it cannot vote on it.",
    "already_voted": "Your organisation already voted in this review round.",
    "not_disputed": "The entry is not disputed.",
    "not_vetted": "Feedback is given on vetted (or disputed) entries only.",
    "own_entry": "Your organisation contributed this entry; it cannot give feedback on it.",
    "incident_closed": "The incident is already closed.",
    # Federation and sync (branches merged alongside this one)
    "foreign_organisation": "The organisation is another hub's member, mirrored here read-only.",
    "invalid_hub": "hub must be a hub id of 1-200 characters.",
    "local_hub": "A mirror names another hub's member; this hub's own members are not mirrored.",
    "invalid_cursor": "The cursor is not one this hub issued (docs/sync.md).",
    "invalid_next": "TAXII: next is not a page's next, unchanged (docs/taxii.md).",
    "read_only": "TAXII: the collections are read-only (docs/taxii.md).",
    "stale_cursor": "The cursor is older than the stream's retention of removals; start again "
    "from the export (docs/sync.md).",
    # Federation: a batch refused as a whole (docs/federation.md, "Receiving")
    "peer_suspended": "The peer is suspended on this hub; nothing it sends is accepted.",
    "wrong_sender": "batch.from is not the hub id of the authenticated peer.",
    "wrong_receiver": "batch.to is not this hub's id.",
    "bad_batch_signature": "The batch signature does not verify under the peer's pinned hub key.",
    "feed_mismatch": "A feed page that does not continue from the cursor the puller asked for.",
    # … and one item of a batch (results[].code)
    "loop": "This hub is already on the item's path.",
    "hop_limit": "The item's path is longer than FEDERATION_HOP_LIMIT.",
    "wrong_path": "The item's path does not end with the sending hub.",
    "unknown_hub": "A hub on the path, or the key's home hub, is not a peer here (or suspended).",
    "bad_attestation": "Not one attestation per path hub, in order, signed by its pinned key and "
    "naming the item's signal.",
    "wrong_origin": "The contribution's hub is not the path's first hub.",
    "out_of_scope": "An add whose signed scope does not allow it here.",
    "unbound_key": "The key binding is not signed by the member's home hub or does not match the "
    "contribution and the registration.",
    "invalid_registration": "The member's key registration is malformed or not self-signed.",
    "key_conflict": "The key id is held here for another member or public key.",
    # Matching (docs/matching.md)
    "invalid_signal": "A signal with an unknown type, or a value of the wrong length or not hex "
    "(details: field, length, index of the signal).",
    "invalid_threshold": "threshold must be an integer 0-63 (details: min, max).",
    "invalid_quality": "quality_min must be null or an integer 0-100 (details: min, max).",
    "invalid_video_parameter": "frame_quality_min, query_match_min or compared_match_min not "
    "null or an integer 0-100, or include_frames not a boolean (details: field, min, max; "
    "docs/video.md).",
    # Live-stream sessions (docs/video.md §7)
    "invalid_live_parameter": "A live session setting out of its bounds (details: field, min, max).",
    "member_only": "Live sessions belong to a member organisation: a staff token has none.",
    "too_many_sessions": "The member already has the most open live sessions allowed "
    "(details.limit): close one first.",
    "closed": "The live session is closed or expired: open a new one.",
    "session_full": "The live session has taken its most frames (details.limit): open a new one.",
    # Transparency log
    "missing_parameter": "A required query parameter is missing (details.parameter).",
    "bad_range": "Need 0 <= start < end <= tree size, at most 1000 entries.",
    "log_refused": "The audit log sequencer refuses to sequence (a forged row, a mismatched tree); "
    "no checkpoint is signed until an operator acts (docs/transparency.md).",
    "log_stalled": "Audit events have waited longer than CONCORDAT_LOG_STALL_SECONDS for a leaf "
    "(no worker sequences the log).",
    "bad_tree_size": "A tree size beyond the latest checkpoint, or otherwise impossible.",
    "bad_leaf_index": "A leaf index outside the tree.",
    "no_checkpoint": "The hub has not signed a checkpoint yet.",
    # Witnessing (C2SP tlog-witness; docs/transparency.md, "Witnesses")
    "unknown_origin": "This hub does not witness the checkpoint's origin.",
    "bad_log_signature": "The checkpoint carries no valid signature by the key configured for "
    "its origin.",
    "inconsistent": "The checkpoint does not extend the one this witness cosigned (a proof that "
    "fails, which changes nothing; another root for the same size, kept as split-view evidence; "
    "a non-empty proof from size 0).",
    "split_view": "This witness holds evidence that the log showed two histories and cosigns "
    "nothing more for it.",
    # Private lookup (docs/private-lookup.md)
    "invalid_element": "A blinded element is not the base64 of a canonical, non-identity "
    "ristretto255 element (details.index names it).",
    "lookup_key_changed": "The request names a lookup key that is no longer current "
    "(details.key_id is the current one): fetch the key and table again, and blind again.",
    "lookup_rate_limited": "This credential's evaluations for the UTC day would pass its limit "
    "(details: limit, used, asked, resets_at).",
    "lookup_table_stale": "The hub cannot continue the table from that key and position: "
    "download the table whole.",
    "lookup_unavailable": "The hub has no lookup key, or its key file does not hold the "
    "published key.",
    "lookup_table_building": "The table is being built under a new key; try again shortly.",
    "lookup_token_required": "Evaluations are counted per API credential: call with a token, "
    "not a session.",
    "lookup_key_exists": "The hub has a lookup key already: rotate it.",
    "lookup_key_missing": "The hub has no lookup key to rotate: create one.",
}

_STATUS_TEXT = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    406: "Not acceptable",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    429: "Too many requests",
    503: "Service unavailable",
}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable (docs/api.md lists them).")
    message = serializers.CharField(help_text="Human-readable; may change.")
    details = serializers.JSONField(
        allow_null=True,
        help_text="null, or an object: for `invalid` bodies the offending fields and their "
        "messages; otherwise as documented for the code.",
    )


class ErrorSerializer(serializers.Serializer):
    """Every error the API answers (4xx and the rare 5xx) has this shape."""

    error = ErrorDetailSerializer()


@functools.cache
def display_name_pattern() -> str:
    """The schema's form of ``members.validators``: at least one character and none of the
    refused categories of the Basic Multilingual Plane, written ``\\uXXXX``, which ECMA, Python
    and Rust regular expressions (and schemathesis' generator) all read alike. The few refused
    characters above U+FFFF (some format characters, planes 15-16 of private use) and lone
    surrogates are left out of the pattern; the server refuses them all the same."""
    ranges: list[list[int]] = []
    for point in range(0x10000):
        if 0xD800 <= point <= 0xDFFF:
            continue
        if unicodedata.category(chr(point)) in UNSAFE_CATEGORIES:
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1][1] = point
            else:
                ranges.append([point, point])

    parts = [rf"\u{a:04x}" if a == b else rf"\u{a:04x}-\u{b:04x}" for a, b in ranges]
    return "^[^" + "".join(parts) + "]+$"


# Operations grouped by who calls them, so that /api/docs/ reads by audience: the first path
# segment under /api/v1/ decides the tag. A new segment must be given one here
# (tests/federation/api/test_openapi_schema.py).
TAGS: dict[str, str] = {
    "contributions": "partners: contributions",
    "labels": "partners: contributions",
    "hub": "partners: contributions",
    "keys": "partners: keys",
    "sync": "partners: sync",
    "match": "partners: match",
    "lookup": "lookup: private lookup",
    "live": "partners: match",
    "entries": "reviewers: vetting",
    "review": "reviewers: vetting",
    "policy": "reviewers: vetting",
    "incidents": "reviewers: vetting",
    "credentials": "admins: members",
    "memberships": "admins: members",
    "log": "auditors: log",
    "federation": "hubs: federation",
    "witness": "hubs: witness",
}

TAG_DESCRIPTIONS: dict[str, str] = {
    "partners: contributions": "Members' systems: submit signed contributions (docs/signing.md), "
    "list your own, read the hub's identity and label taxonomy (docs/api.md).",
    "partners: keys": "Members' systems: register and revoke your organisation's Ed25519 "
    "signing keys (docs/signing.md §8).",
    "partners: sync": "Members' systems: the delta change stream and the full export of the "
    "shared set, and the frame lists of its vpdq videos (docs/sync.md).",
    "partners: match": "Members' systems: match PDQ, MD5, SHA-256 and vPDQ hashes against the "
    "shared set (docs/matching.md, docs/video.md), and live-stream sessions (docs/video.md §7).",
    "lookup: private lookup": "Members and lookup-only platforms: check exact hashes against "
    "the shared set without revealing them (RFC 9497 VOPRF; docs/private-lookup.md).",
    "reviewers: vetting": "Reviewers and consortium admins: entries, the review queue, votes, "
    "feedback and disputes, the vetting policy and incidents (docs/vetting.md).",
    "admins: members": "Member admins: your organisation's users' roles and API credentials "
    "(docs/api.md).",
    "auditors: log": "Auditors (and anyone, when the log is public): the transparency log, its "
    "checkpoints and proofs, status and figures (docs/transparency.md).",
    "hubs: federation": "Peer hubs, with their cp_ token: pushed batches and the pull feed "
    "(docs/federation.md).",
    "hubs: witness": "Logs and witnesses: this hub as a C2SP tlog-witness "
    '(docs/transparency.md, "Witnesses").',
}


def tag_postprocess(result, generator, request, public):
    """drf-spectacular hook: the tags in audience order, each with its description."""
    result["tags"] = [
        {"name": name, "description": description} for name, description in TAG_DESCRIPTIONS.items()
    ]
    return result


# The two bearer-token schemes. drf-spectacular finds an extension by its subclassing, so these
# live in the module that builds the schema (``DEFAULT_SCHEMA_CLASS``), imported whenever a schema
# is: beside the authentication classes they were imported by every process, and with them
# drf-spectacular (about 0.2 s of a Celery worker's start, which builds no schema).
class ApiCredentialScheme(OpenApiAuthenticationExtension):
    """The members' API credentials (``members.authentication.ApiCredentialAuthentication``)."""

    target_class = "members.authentication.ApiCredentialAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "cc_<prefix>_<secret>",
            "description": "An API credential issued by a member admin (docs/api.md).",
        }


class PeerTokenScheme(OpenApiAuthenticationExtension):
    """Peer hubs' credentials (``federation.propagation.authentication.PeerAuthentication``)."""

    target_class = "federation.propagation.authentication.PeerAuthentication"
    name = "peerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "cp_<prefix>_<secret>",
            "description": "A peer hub's inbound credential, issued by this hub's consortium "
            "admin (`manage.py peer add`, docs/federation.md).",
        }


class ConcordatAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the error responses of each operation, tagged by
    audience (``TAGS``)."""

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if any(isinstance(v, DisplayNameValidator) for v in getattr(field, "validators", [])):
            schema["pattern"] = display_name_pattern()
        return schema

    def _get_request_for_media_type(self, serializer, direction="request"):
        # drf-spectacular makes every field of a PATCH body optional; a view whose PATCH needs
        # its fields (``patch_is_partial = False``) is described as the whole object instead.
        if self.method == "PATCH" and not getattr(self.view, "patch_is_partial", True):
            self.method = "PUT"
            try:
                return super()._get_request_for_media_type(serializer, direction)
            finally:
                self.method = "PATCH"
        return super()._get_request_for_media_type(serializer, direction)

    def get_tags(self) -> list[str]:
        segment = self.path.removeprefix("/api/v1/").split("/", 1)[0]
        return [TAGS[segment]] if segment in TAGS else super().get_tags()

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for status, codes in sorted(self.error_codes().items()):
            if str(status) in responses:
                continue
            responses[str(status)] = self._get_response_for_code(
                OpenApiResponse(
                    response=ErrorSerializer,
                    description=(
                        f"{_STATUS_TEXT.get(status, 'Error')}. Error codes: "
                        + "; ".join(f"`{code}`: {ERROR_CODES.get(code, '')}" for code in codes)
                    ),
                    examples=[
                        OpenApiExample(
                            code,
                            value={
                                "error": {
                                    "code": code,
                                    "message": ERROR_CODES.get(code, code),
                                    "details": None,
                                }
                            },
                            response_only=True,
                            status_codes=[str(status)],
                        )
                        for code in codes
                    ],
                ),
                str(status),
                direction=direction,
            )
        return responses

    def error_codes(self) -> dict[int, list[str]]:
        """Status → codes this operation can answer with (generic ones, then the view's own)."""
        found: dict[int, list[str]] = defaultdict(list)
        public = any(isinstance(p, AllowAny) for p in self.view.get_permissions())
        has_body = self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer()
        if has_body:
            found[400] += ["malformed_json", "invalid"]
            found[413].append("payload_too_large")
            found[415].append("unsupported_media_type")
        elif self._has_query_input():
            found[400].append("invalid")
        if not public:
            found[401] += ["not_authenticated", "authentication_failed"]
            found[403].append("permission_denied")
        paginated = self._is_list_view() and getattr(self.view, "pagination_class", None)
        if paginated and "invalid" not in found[400]:
            found[400].append("invalid")  # page_size that is not a whole number >= 1
        if "{" in self.path or paginated:
            # A path object that is not yours, or (paginated lists) a cursor not the hub's.
            found[404].append("not_found")
        found[406].append("not_acceptable")
        found[429].append("rate_limited")
        declared = getattr(self.view, "error_codes", {}) or {}
        if self.method in declared:
            declared = declared[self.method]
        elif any(isinstance(key, str) for key in declared):
            declared = {}
        for status, codes in declared.items():
            for code in codes:
                if code not in found[status]:
                    found[status].append(code)
        return {status: codes for status, codes in found.items() if codes}

    def _has_query_input(self) -> bool:
        return bool(getattr(self.view, "filterset_class", None)) or bool(
            getattr(self.view, "query_error_codes", False)
        )
