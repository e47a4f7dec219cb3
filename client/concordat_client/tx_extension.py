"""A python-threatexchange extension: a Concordat hub as a signal exchange, for the
``threatexchange`` CLI and HMA 2.0 (docs/client.md, "python-threatexchange and HMA").

    threatexchange config extensions add threatexchange.extensions.vpdq.manifest  # videos
    threatexchange config extensions add concordat_client.tx_extension
    threatexchange config collab edit concordat shared --create --hub https://hub.example.org
    CONCORDAT_TOKEN=cc_… threatexchange fetch
    threatexchange match photo picture.jpg
    threatexchange match video --only-signal vpdq clip.mp4

Fetching follows the hub's change stream (docs/sync.md) from its start, then by cursor: upserts
become records keyed by (signal type, Concordat value) carrying state, labels and contributors;
removals delete them. Concordat's ``pdq`` is python-threatexchange's ``pdq``, ``md5`` its
``video_md5``, ``sha256`` its ``video_sha256`` (threatexchange matches those on videos only;
Concordat's apply to any file) and ``vpdq`` its ``vpdq``: a video's frame list is fetched with
its upsert (``GET /api/v1/sync/frames``), checked against its value, and carried in the record
in python-threatexchange's string form, made here at the edge (``frames.to_threatexchange``);
the key stays the Concordat value, so a removal needs no frames. ``report_opinion`` writes
Concordat feedback: a positive opinion is ``agree``, a negative one ``false_positive``. Needs
the ``threatexchange`` extra (and ``vpdq`` for video signals).
"""

import hashlib
import logging
import typing as t
from dataclasses import dataclass, field

from threatexchange.exchanges import auth, signal_exchange_api
from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.collab_config import CollaborationConfigWithDefaults
from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.sha256 import VideoSHA256Signal
from threatexchange.signal_type.signal_base import SignalType

from concordat_client import frames as framelist
from concordat_client.hub import Hub, HubError

logger = logging.getLogger(__name__)

VPDQ = "vpdq"  # python-threatexchange's VPDQSignal (threatexchange.extensions.vpdq), by name:
# importing it needs the vpdq package, which fetching PDQ and file digests does not.
TO_THREATEXCHANGE = {
    "pdq": PdqSignal.get_name(),
    "md5": VideoMD5Signal.get_name(),
    "sha256": VideoSHA256Signal.get_name(),
    "vpdq": VPDQ,
}
FROM_THREATEXCHANGE = {name: ours for ours, name in TO_THREATEXCHANGE.items()}


@dataclass
class ConcordatCollabConfig(CollaborationConfigWithDefaults):
    hub: str = field(
        default="", metadata={"help": "The hub's base URL, e.g. https://hub.example.org"}
    )


@dataclass
class ConcordatCheckpoint(state.FetchCheckpointBase):
    cursor: str

    def get_progress_timestamp(self) -> int | None:
        return None  # the cursor is opaque


@dataclass
class ConcordatSignalMetadata(state.FetchedSignalMetadata):
    state: str
    labels: list[str] = field(default_factory=list)
    contributors: list[str] = field(default_factory=list)  # "member@hub"
    # vpdq only: the frame list in python-threatexchange's string form (the signal matched); the
    # record's key holds the Concordat value, the digest of the canonical list.
    threatexchange_signal: str | None = None

    def get_as_opinions(self) -> t.Sequence[state.SignalOpinion]:
        tags = set(self.labels)
        positive = state.SignalOpinion(False, state.SignalOpinionCategory.POSITIVE_CLASS, tags)
        if self.state == "disputed":  # aggregates as DISPUTED
            negative = state.SignalOpinion(False, state.SignalOpinionCategory.NEGATIVE_CLASS, tags)
            return [positive, negative]
        return [positive]


@dataclass
class ConcordatCredentials(auth.CredentialHelper):
    ENV_VARIABLE: t.ClassVar[str] = "CONCORDAT_TOKEN"
    FILE_NAME: t.ClassVar[str] = "~/.config/concordat/token"

    token: str = field(metadata={"help": "A Concordat API token with the read scope."})

    @classmethod
    def _from_str(cls, s: str) -> "ConcordatCredentials":
        return cls(s.strip())

    def _are_valid(self) -> bool:
        return bool(self.token)


class ConcordatSignalExchangeAPI(
    auth.SignalExchangeWithAuth[ConcordatCollabConfig, ConcordatCredentials],
    signal_exchange_api.SignalExchangeAPIWithSimpleUpdates[
        ConcordatCollabConfig, ConcordatCheckpoint, ConcordatSignalMetadata
    ],
):
    def __init__(self, hub: str, token: str) -> None:
        super().__init__()
        self.hub = Hub(hub, token)

    @classmethod
    def get_name(cls) -> str:
        return "concordat"

    @staticmethod
    def get_config_cls() -> type[ConcordatCollabConfig]:
        return ConcordatCollabConfig

    @staticmethod
    def get_checkpoint_cls() -> type[ConcordatCheckpoint]:
        return ConcordatCheckpoint

    @staticmethod
    def get_record_cls() -> type[ConcordatSignalMetadata]:
        return ConcordatSignalMetadata

    @staticmethod
    def get_credential_cls() -> type[ConcordatCredentials]:
        return ConcordatCredentials

    @classmethod
    def for_collab(
        cls, collab: ConcordatCollabConfig, credentials: ConcordatCredentials | None = None
    ) -> "ConcordatSignalExchangeAPI":
        if not collab.hub:
            raise ValueError(f"collab {collab.name!r} names no hub URL (its 'hub' field)")
        credentials = credentials or ConcordatCredentials.get(cls)
        return cls(collab.hub, credentials.token)

    @classmethod
    def naive_convert_to_signal_type(
        cls,
        signal_types: t.Sequence[type[SignalType]],
        collab: ConcordatCollabConfig,
        fetched: t.Mapping[tuple[str, str], ConcordatSignalMetadata | None],
    ) -> dict[type[SignalType], dict[str, ConcordatSignalMetadata]]:
        """Records as python-threatexchange's (signal type, signal string): the key's value, or
        for vpdq the string form the record carries."""
        by_name = {signal_type.get_name(): signal_type for signal_type in signal_types}
        converted: dict[type[SignalType], dict[str, ConcordatSignalMetadata]] = {}
        for (name, value), metadata in fetched.items():
            signal_type = by_name.get(name)
            if signal_type is None or metadata is None:
                continue
            signal = value if name != VPDQ else metadata.threatexchange_signal
            if signal is None:
                continue  # fetched while vpdq was not installed: `fetch --full` brings it
            try:
                signal_type.validate_signal_str(signal)
            except ValueError:  # as python-threatexchange's own exchanges do: skip, and say so
                logger.warning("invalid %s signal skipped: %.100s", name, signal)
                continue
            converted.setdefault(signal_type, {})[signal] = metadata
        return converted

    def fetch_iter(
        self,
        supported_signal_types: t.Sequence[type[SignalType]],
        checkpoint: ConcordatCheckpoint | None,
    ) -> t.Iterator[
        state.FetchDelta[tuple[str, str], ConcordatSignalMetadata, ConcordatCheckpoint]
    ]:
        cursor = checkpoint.cursor if checkpoint else None
        with_videos = any(st.get_name() == VPDQ for st in supported_signal_types)
        while True:
            try:
                page = self.hub.changes(cursor)
            except HubError as exc:
                if exc.code == "stale_cursor":
                    raise HubError(
                        exc.status, exc.code,
                        "the stored cursor is older than the hub keeps removals: run "
                        "`threatexchange fetch --full` to fetch from scratch",
                    ) from exc  # fmt: skip
                raise
            updates: dict[tuple[str, str], ConcordatSignalMetadata | None] = {}
            for change in page["changes"]:
                name = TO_THREATEXCHANGE.get(change["signal"]["type"])
                if name is None or (name == VPDQ and not with_videos):
                    continue
                key = (name, change["signal"]["value"])
                updates[key] = (
                    ConcordatSignalMetadata(
                        state=change["state"],
                        labels=list(change["labels"]),
                        contributors=[f"{c['member']}@{c['hub']}" for c in change["contributors"]],
                    )
                    if change["op"] == "upsert"
                    else None
                )
            self._add_video_signals(updates)
            cursor = page["next"]
            yield state.FetchDelta(updates, ConcordatCheckpoint(cursor))
            if not page["more"]:
                return

    def _add_video_signals(
        self, updates: dict[tuple[str, str], ConcordatSignalMetadata | None]
    ) -> None:
        """Fetch the frame list of each vpdq upsert of a page (100 a request, deferred ones asked
        again), check it hashes to its value, and put its string form in the record. A value the
        hub no longer shares (``unknown``: removed since the page was read) is dropped from the
        page; a later page removes it."""
        missing = [value for (name, value), meta in updates.items() if name == VPDQ and meta]
        while missing:
            answer = self.hub.video_frames(missing[:100])
            for item in answer["lists"]:
                canonical = framelist.canonical_bytes(item["frames"])
                if hashlib.sha256(canonical).hexdigest() != item["value"]:
                    raise HubError(0, "bad_frames", f"the frame list of {item['value']} does "
                                   "not hash to its value")  # fmt: skip
                record = updates[(VPDQ, item["value"])]
                assert record is not None
                record.threatexchange_signal = framelist.to_threatexchange(item["frames"])
            for value in answer.get("unknown", []):
                updates.pop((VPDQ, value), None)
            done = {item["value"] for item in answer["lists"]} | set(answer.get("unknown", []))
            if not done:
                raise HubError(0, "no_frames", "the hub served none of the frame lists asked")
            missing = [value for value in missing if value not in done]

    def report_opinion(
        self, s_type: type[SignalType], signal: str, opinion: state.SignalOpinion
    ) -> None:
        """Concordat feedback on the signal's entry: agree, or false_positive."""
        ours = FROM_THREATEXCHANGE.get(s_type.get_name())
        if ours is None:
            raise NotImplementedError(f"Concordat has no {s_type.get_name()} signals")
        positive = opinion.category == state.SignalOpinionCategory.POSITIVE_CLASS
        note = ", ".join(sorted(opinion.tags)) or None
        value = self._video_value(signal) if ours == "vpdq" else signal
        entry_id = self.hub.entry_id(ours, value)
        self.hub.feedback(entry_id, "agree" if positive else "false_positive", note)

    def _video_value(self, signal: str) -> str:
        """The Concordat value of a vpdq signal given in python-threatexchange's string form,
        which has lost the frame numbers the value hashes: the hub's exact matches of its frames
        (every frame, distance 0, both sides whole) whose own string form is that signal."""
        query = framelist.from_threatexchange(signal)
        results = self.hub.match(
            [{"type": "vpdq", "frames": query}], threshold=0,
            frame_quality_min=0, query_match_min=100, compared_match_min=100,
        )  # fmt: skip
        candidates = sorted({match["signal"]["value"] for match in results[0]["matches"]})
        found = []
        for start in range(0, len(candidates), 100):
            for item in self.hub.video_frames(candidates[start : start + 100])["lists"]:
                if framelist.to_threatexchange(item["frames"]) == signal:
                    found.append(item["value"])
        if len(found) > 1:  # the string form lost what tells them apart: feedback on neither
            raise HubError(
                409, "ambiguous", f"{len(found)} shared videos have this vpdq signal string; "
                "give feedback with `concordat feedback` on the entry you mean",
            )  # fmt: skip
        if not found:
            raise HubError(404, "not_found", "the hub shares no video with this vpdq signal")
        return found[0]


TX_MANIFEST = ThreatExchangeExtensionManifest(apis=(ConcordatSignalExchangeAPI,))
