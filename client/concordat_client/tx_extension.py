"""A python-threatexchange extension: a Concordat hub as a signal exchange, for the
``threatexchange`` CLI and HMA 2.0 (docs/client.md, "python-threatexchange and HMA").

    threatexchange config extensions add concordat_client.tx_extension
    threatexchange config collab edit concordat shared --create --hub https://hub.example.org
    CONCORDAT_TOKEN=cc_… threatexchange fetch
    threatexchange match photo picture.jpg

Fetching follows the hub's change stream (docs/sync.md) from its start, then by cursor: upserts
become (signal type, value) records carrying state, labels and contributors; removals delete
them. Concordat's ``pdq`` is python-threatexchange's ``pdq``, ``md5`` its ``video_md5`` and
``sha256`` its ``video_sha256`` (threatexchange matches those on videos only; Concordat's apply to
any file). ``report_opinion`` writes Concordat feedback: a positive opinion is ``agree``, a
negative one ``false_positive``. Needs the ``threatexchange`` extra.
"""

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

from concordat_client.hub import Hub, HubError

TO_THREATEXCHANGE = {
    "pdq": PdqSignal.get_name(),
    "md5": VideoMD5Signal.get_name(),
    "sha256": VideoSHA256Signal.get_name(),
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

    def fetch_iter(
        self,
        _supported_signal_types: t.Sequence[type[SignalType]],
        checkpoint: ConcordatCheckpoint | None,
    ) -> t.Iterator[
        state.FetchDelta[tuple[str, str], ConcordatSignalMetadata, ConcordatCheckpoint]
    ]:
        cursor = checkpoint.cursor if checkpoint else None
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
                if name is None:
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
            cursor = page["next"]
            yield state.FetchDelta(updates, ConcordatCheckpoint(cursor))
            if not page["more"]:
                return

    def report_opinion(
        self, s_type: type[SignalType], signal: str, opinion: state.SignalOpinion
    ) -> None:
        """Concordat feedback on the signal's entry: agree, or false_positive."""
        ours = FROM_THREATEXCHANGE.get(s_type.get_name())
        if ours is None:
            raise NotImplementedError(f"Concordat has no {s_type.get_name()} signals")
        positive = opinion.category == state.SignalOpinionCategory.POSITIVE_CLASS
        note = ", ".join(sorted(opinion.tags)) or None
        entry_id = self.hub.entry_id(ours, signal)
        self.hub.feedback(entry_id, "agree" if positive else "false_positive", note)


TX_MANIFEST = ThreatExchangeExtensionManifest(apis=(ConcordatSignalExchangeAPI,))
