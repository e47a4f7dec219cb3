"""The layout rules of docs/architecture.md that a reader relies on: each application module holds
one job (no more than about 600 lines, except those named below with why), and test modules
share helpers only through tests/support/, never by importing one another.

That the client and the verifier import nothing of the hub is tests/client/test_imports.py.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPLICATION = ["federation", "members", "settings", "client"]
MAX_LINES = 600

# path → why it may be longer
LONG_MODULES = {
    # Auditors pin one artefact that needs only the standard library and cryptography.
    "client/concordat_client/verifier.py": "the standalone verifier is one file on purpose",
}


def application_modules() -> list[Path]:
    return sorted(
        path
        for folder in APPLICATION
        for path in (ROOT / folder).rglob("*.py")
        if "migrations" not in path.parts  # generated, and never edited once applied
    )


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_application_module_is_longer_than_the_limit():
    too_long = {
        str(path.relative_to(ROOT)): line_count(path)
        for path in application_modules()
        if line_count(path) > MAX_LINES and str(path.relative_to(ROOT)) not in LONG_MODULES
    }
    assert not too_long, f"split these by job, or say in LONG_MODULES why not: {too_long}"


@pytest.mark.parametrize("name", sorted(LONG_MODULES))
def test_every_allowed_long_module_exists_and_is_still_long(name):
    # An entry left behind after a split would let the next long file in unseen.
    path = ROOT / name
    assert path.exists(), f"{name} is gone: remove it from LONG_MODULES"
    assert line_count(path) > MAX_LINES, f"{name} is short now: remove it from LONG_MODULES"


def imported_test_modules(path: Path) -> set[str]:
    """The modules under ``tests`` that ``path`` imports, other than tests.support."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "tests":
                names = [f"tests.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names = ["tests.<relative>"]  # a relative import between test modules
        else:
            continue
        found |= {
            name
            for name in names
            if (name == "tests" or name.startswith("tests."))
            and name != "tests.support"
            and not name.startswith("tests.support.")
        }
    return found


def test_no_test_module_imports_another_test_module():
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported)
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if "support" not in path.relative_to(ROOT / "tests").parts[:1]
        and (imported := imported_test_modules(path))
    }
    assert not offenders, f"move what they share to tests/support/: {offenders}"
