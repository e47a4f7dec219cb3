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


# The layers of docs/architecture.md ("Code layout"): a package's models are the bottom layer
# that anything may read; its admin, API views, URLs, serializers and Celery tasks are entry
# points that may import anything. What is left of each package (its services and selectors)
# must not import in a circle with another package's.
ENTRY_POINTS = {"admin", "api", "urls", "serializers", "tasks"}


def _unit(module: str) -> str:
    """The unit an import is counted against: a package's models and its entry points stand
    alone; a module directly in an app (``federation.lifecycle``) is its own unit; anything
    else belongs to its package below the app (``federation.propagation.outbox`` to
    ``federation.propagation``)."""
    parts = module.split(".")
    if parts[-1] == "models" or parts[-1] in ENTRY_POINTS or "admin" in parts[1:-1]:
        return module
    return ".".join(parts[:2])


def _project_modules() -> dict[str, Path]:
    modules = {}
    for app in ("federation", "members"):
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _imports(path: Path, module: str, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports, at the top or inside functions."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one unit (Tarjan, iteratively)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_packages_import_each_other_in_a_circle():
    modules = _project_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        unit = _unit(module)
        graph.setdefault(unit, set())
        for imported in _imports(path, module, modules):
            other = _unit(imported)
            graph.setdefault(other, set())
            if other != unit:
                graph[unit].add(other)
    assert _cycles(graph) == [], "packages that import each other in a circle"
