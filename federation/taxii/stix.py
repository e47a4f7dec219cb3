"""The STIX 2.1 mapping: deterministic ids, and an entry's version or a member as a STIX object
(docs/taxii.md, "Mapping").

Ids are UUIDv5 names under ``STIX_NAMESPACE``, computed from what every hub of the federation
holds alike (a signal's type and value; a member's home hub and slug), so the same entry has the
same STIX id on every hub.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

# Fixed for ever: changing it would change every id the federation has served.
STIX_NAMESPACE = uuid.UUID("6f1f3c52-7d0e-5b8e-9a51-1c0c8a5f4e21")
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
SPEC_VERSION = "2.1"

# The STIX pattern for each signal type: the hash name in the ``file:hashes`` dictionary. PDQ is
# not in STIX's hash-algorithm vocabulary, so it takes a custom name, which STIX requires to
# begin with ``x_``. A vPDQ indicator carries the signal's value, the SHA-256 of its canonical
# frame list (docs/video.md): the frames themselves are not STIX, members sync them.
HASH_NAMES = {"sha256": "'SHA-256'", "md5": "MD5", "pdq": "x_pdq", "vpdq": "x_vpdq"}
_TITLES = {"sha256": "SHA-256", "md5": "MD5", "pdq": "PDQ", "vpdq": "vPDQ"}

# Labels that are not taxonomy slugs.
DISPUTED_LABEL = "concordat:disputed"
INCIDENT_LABEL_PREFIX = "concordat:incident:"


def indicator_id(*, signal_type: str, value: str, generation: int = 0) -> str:
    """The indicator's id: the first generation's is a name over ``<type>:<value>``; a signal
    shared again after its indicator was revoked starts a new object, ``<type>:<value>:<n>``."""
    name = f"{signal_type}:{value}" + (f":{generation}" if generation else "")
    return f"indicator--{uuid.uuid5(STIX_NAMESPACE, name)}"


def identity_id(*, hub: str, slug: str) -> str:
    return f"identity--{uuid.uuid5(STIX_NAMESPACE, f'member:{hub}:{slug}')}"


def collection_id(name: str) -> str:
    return str(uuid.uuid5(STIX_NAMESPACE, f"collection:{name}"))


def stix_time(moment: datetime) -> str:
    """A STIX timestamp, to the millisecond (STIX 2.1 requires that precision for ``created``
    and ``modified``)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def taxii_time(moment: datetime) -> str:
    """A TAXII timestamp (``date_added``), to the microsecond."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pattern_for(signal_type: str, value: str) -> str:
    return f"[file:hashes.{HASH_NAMES[signal_type]} = '{value}']"


def indicator_document(
    *,
    stix_id: str,
    signal_type: str,
    value: str,
    created: datetime,
    modified: datetime,
    created_by: str,
    labels: list[str],
    incidents: list[str],
    disputed: bool,
    revoked: bool,
) -> bytes:
    title = _TITLES[signal_type]
    document: dict[str, Any] = {
        "type": "indicator",
        "spec_version": SPEC_VERSION,
        "id": stix_id,
        "created": stix_time(created),
        "modified": stix_time(modified),
        "created_by_ref": created_by,
        "name": f"{title} {value}",
        "description": (
            f"A {title} hash in the Christchurch Call shared set (Concordat): content vetted by "
            "member platforms as terrorist or violent extremist."
        ),
        "pattern": pattern_for(signal_type, value),
        "pattern_type": "stix",
        "valid_from": stix_time(created),
        "labels": sorted(labels)
        + [INCIDENT_LABEL_PREFIX + incident for incident in sorted(incidents)]
        + ([DISPUTED_LABEL] if disputed else []),
        "revoked": revoked,
    }
    if not document["labels"]:
        del document["labels"]
    if not created_by:
        del document["created_by_ref"]
    return orjson.dumps(document)


def identity_document(*, stix_id: str, name: str, slug: str, hub: str, created: datetime) -> bytes:
    return orjson.dumps(
        {
            "type": "identity",
            "spec_version": SPEC_VERSION,
            "id": stix_id,
            "created": stix_time(created),
            "modified": stix_time(created),
            "name": name,
            "description": f"Concordat member {slug} of hub {hub}.",
            "identity_class": "organization",
        }
    )
