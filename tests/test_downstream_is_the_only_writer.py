"""federation/downstream.py is the only caller of the change-stream, outbox and STIX-version
writers (docs/architecture.md): whatever follows a change of entries is written in one place."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("federation", "members")

# Each writer, and the module that defines it.
WRITERS = {
    "sync_changes_record": "federation/sync/changes.py",
    "outbox_record_transitions": "federation/propagation/outbox.py",
    "outbox_record_adds": "federation/propagation/outbox.py",
    "outbox_record_retracts": "federation/propagation/outbox.py",
    "outbox_record_keys": "federation/propagation/outbox.py",
    "stix_versions_record": "federation/taxii/versions.py",
}
DOWNSTREAM = "federation/downstream.py"


def _names_used(source: str) -> set[str]:
    """Every name a module imports, reads or calls (docstrings and comments aside)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
    return names


def _application_modules():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path.relative_to(ROOT).as_posix(), path.read_text()


def test_only_downstream_calls_the_writers_of_what_follows_a_change():
    offenders = [
        f"{name}: {writer}"
        for name, source in _application_modules()
        for writer in sorted(_names_used(source) & WRITERS.keys())
        if name not in (WRITERS[writer], DOWNSTREAM)
    ]
    assert offenders == [], f"call federation.downstream instead: {offenders}"
