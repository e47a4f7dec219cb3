"""The names of audit events live in one module (federation/transparency/actions.py): nothing else
in the hub spells an action as a literal, the standalone verifier relies on no action or key the
hub does not define, and auditors find every action in the catalogue of docs/transparency.md."""

import ast
import re
from pathlib import Path

import pytest
from concordat_client import crosscheck, verifier

from federation.transparency import actions
from federation.transparency.actions import Action, Key, ObjectType, all_actions

ROOT = Path(__file__).resolve().parents[3]
ACTIONS_MODULE = ROOT / "federation" / "transparency" / "actions.py"
VERIFIER_MODULE = ROOT / "client" / "concordat_client" / "verifier.py"
CROSSCHECK_MODULE = VERIFIER_MODULE.with_name("crosscheck.py")


def _constants(cls) -> set[str]:
    return {value for name, value in vars(cls).items() if name.isupper()}


def _hub_sources() -> list[Path]:
    """The hub's own code: federation/ and members/, but not the verifier (which must keep its
    own copy), the constants themselves, or migrations (frozen history)."""
    return [
        path
        for app in ("federation", "members")
        for path in sorted((ROOT / app).rglob("*.py"))
        if path not in (ACTIONS_MODULE, VERIFIER_MODULE) and "migrations" not in path.parts
    ]


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (prose may name an event)."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add(id(value))
    return found


def _audit_literals(path: Path) -> list[str]:
    """Where ``path`` spells an audit action as a string, or gives ``AuditRecord`` a literal
    action or object type."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    docstrings = _docstrings(tree)
    known = all_actions()
    action_like = re.compile(r"[a-z_]+\.[a-z_]+")
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and node.value in known
        ):
            found.append(f"{where}:{node.lineno}: {node.value!r}")
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            for keyword in node.keywords:
                value = keyword.value
                if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                    continue
                audited = name == "AuditRecord" and keyword.arg in ("action", "object_type")
                queried = (keyword.arg or "").startswith("action") and action_like.fullmatch(
                    value.value
                )
                if audited or queried:
                    found.append(f"{where}:{node.lineno}: {keyword.arg}={value.value!r}")
    return found


def test_no_audit_action_is_spelled_outside_the_actions_module():
    literals = [found for path in _hub_sources() for found in _audit_literals(path)]
    assert literals == [], "use the constants of federation/transparency/actions.py"


def test_the_source_scan_finds_a_literal_action(tmp_path):
    # The scan above must be able to fail: a service written the old way is caught.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n"
        "    '''entry.vetted in prose is fine'''\n"
        "    AuditRecord(action='contribution.accepted', actor=a, object_type='entry')\n"
        "    AuditEvent.objects.filter(action='something.new')\n"
        "    parser.add_argument('--x', action='store_true')\n"
    )
    found = _audit_literals(sample)
    assert sorted(line.split(": ", 1)[1] for line in found) == [
        "'contribution.accepted'",
        "action='contribution.accepted'",
        "action='something.new'",
        "object_type='entry'",
    ]


def _verifier_tree() -> ast.Module:
    """The verifier and its multi-hub tools, as one tree."""
    tree = ast.parse(VERIFIER_MODULE.read_text())
    tree.body += ast.parse(CROSSCHECK_MODULE.read_text()).body
    return tree


def test_every_action_the_verifier_relies_on_is_a_hub_action():
    """The verifier compares ``document["action"]`` with its own constants; each must be a value
    the hub writes, or the verifier would silently skip the events it exists to check."""
    compared = set()
    for node in ast.walk(_verifier_tree()):
        if not isinstance(node, ast.Compare):
            continue
        left = node.left
        if (
            isinstance(left, ast.Subscript)
            and isinstance(left.slice, ast.Constant)
            and left.slice.value == "action"
        ):
            for comparator in node.comparators:
                named = comparator.elts if isinstance(comparator, ast.Tuple) else [comparator]
                for name in named:
                    if isinstance(name, ast.Name):
                        compared.add(
                            getattr(verifier, name.id, None) or getattr(crosscheck, name.id)
                        )
                    elif isinstance(name, ast.Constant):
                        compared.add(name.value)
    assert compared == {
        verifier.ACCEPTED,
        verifier.KEY_REGISTERED,
        verifier.KEY_RECEIVED,
        verifier.KEY_BOUND,
        verifier.PEER_REGISTERED,
        verifier.PEER_KEY_ROTATED,
        verifier.COSIGNED,
        crosscheck.FEDERATION_SENT,
        crosscheck.FEDERATION_RECEIVED,
    }
    assert compared <= all_actions()
    assert verifier.ACCEPTED == Action.CONTRIBUTION_ACCEPTED
    assert verifier.KEY_REGISTERED == Action.KEY_REGISTERED
    assert verifier.KEY_RECEIVED == Action.KEY_RECEIVED
    assert verifier.KEY_BOUND == Action.KEY_BOUND
    assert verifier.PEER_REGISTERED == Action.PEER_REGISTERED
    assert verifier.PEER_KEY_ROTATED == Action.PEER_KEY_ROTATED
    assert verifier.COSIGNED == Action.CHECKPOINT_COSIGNED
    assert crosscheck.FEDERATION_SENT == Action.FEDERATION_SENT
    assert crosscheck.FEDERATION_RECEIVED == Action.FEDERATION_RECEIVED


def test_every_payload_key_the_verifier_reads_is_a_hub_key():
    read = set()
    for node in ast.walk(_verifier_tree()):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id == "data"
            and isinstance(node.slice, ast.Constant)
        ):
            read.add(node.slice.value)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "data"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            read.add(node.args[0].value)
    assert {"uuid", "key_id", "public_key", "content_hash", "signature", "labels"} <= read
    assert read <= _constants(Key)


def _catalogue() -> str:
    text = (ROOT / "docs" / "transparency.md").read_text()
    start = text.index("## Events and their payloads")
    return text[start : text.index("\n## ", start + 1)]


@pytest.mark.parametrize("action", sorted(all_actions()))
def test_every_action_is_in_the_documented_catalogue(action):
    rows = [line for line in _catalogue().splitlines() if line.startswith(f"| `{action}` |")]
    assert len(rows) == 1, f"{action} needs one row in docs/transparency.md's event catalogue"


def test_the_catalogue_documents_no_action_the_hub_does_not_write():
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", _catalogue(), re.MULTILINE))
    assert documented == all_actions()


def test_all_actions_are_the_action_constants():
    assert all_actions() == _constants(Action)
    assert len(all_actions()) == len([n for n in vars(Action) if n.isupper()])  # no duplicates
    assert ObjectType.CONTRIBUTION == "contribution" and actions.Action is Action
