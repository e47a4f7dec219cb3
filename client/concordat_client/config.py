"""Profiles: one per hub, from ``~/.config/concordat/config.toml`` (or ``$CONCORDAT_CONFIG``),
overridden by the environment. A profile names the hub URL, the API token, the member code, the
signing key file and the local state folder::

    [profiles.default]
    hub = "https://hub.example.org"
    token = "cc_..."            # or token_file = "~/.config/concordat/token"
    member = "acme"
    key = "~/.config/concordat/acme.pem"

Environment: ``CONCORDAT_PROFILE``, ``CONCORDAT_HUB``, ``CONCORDAT_TOKEN``, ``CONCORDAT_MEMBER``,
``CONCORDAT_KEY``, ``CONCORDAT_STATE_DIR``.
"""

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path


def config_path() -> Path:
    if os.environ.get("CONCORDAT_CONFIG"):
        return Path(os.environ["CONCORDAT_CONFIG"]).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "concordat" / "config.toml"


@dataclass
class Profile:
    name: str
    hub: str | None = None
    token: str | None = None
    member: str | None = None
    key: Path | None = None
    state_dir: Path | None = None

    def __repr__(self) -> str:  # never print the token
        shown = "set" if self.token else None
        return (
            f"Profile(name={self.name!r}, hub={self.hub!r}, token={shown}, member={self.member!r})"
        )

    @property
    def state(self) -> Path:
        """Where this profile's synced copy and submission journals live."""
        if self.state_dir is not None:
            return self.state_dir
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        return base / "concordat" / self.name


def load_profile(name: str | None = None) -> Profile:
    name = name or os.environ.get("CONCORDAT_PROFILE") or "default"
    path = config_path()
    table: dict = {}
    if path.exists():
        with path.open("rb") as file:
            table = tomllib.load(file).get("profiles", {}).get(name, {})
    token = table.get("token")
    if table.get("token_file"):
        token = Path(table["token_file"]).expanduser().read_text().strip()
    env = os.environ.get
    key = env("CONCORDAT_KEY") or table.get("key")
    state = env("CONCORDAT_STATE_DIR") or table.get("state_dir")
    return Profile(
        name=name,
        hub=env("CONCORDAT_HUB") or table.get("hub"),
        token=env("CONCORDAT_TOKEN") or token,
        member=env("CONCORDAT_MEMBER") or table.get("member"),
        key=Path(key).expanduser() if key else None,
        state_dir=Path(state).expanduser() if state else None,
    )
