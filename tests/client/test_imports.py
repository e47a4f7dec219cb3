"""The client package, the verifier and its multi-hub tools import nothing of the hub: auditors
and partners run them without the hub's code or requirements."""

import ast
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.support.client_cli import CLIENT

PACKAGE = CLIENT / "concordat_client"
HUB_PACKAGES = {"federation", "members", "settings", "django", "rest_framework", "celery", "tests"}
STANDALONE = {"verifier.py": {"cryptography"}, "crosscheck.py": {"cryptography", "verifier"}}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda path: path.name)
def test_no_client_module_imports_the_hub(path):
    assert not imported_roots(path) & HUB_PACKAGES


@pytest.mark.parametrize("name", sorted(STANDALONE))
def test_the_verifier_files_need_only_the_standard_library_and_cryptography(name):
    outside = imported_roots(PACKAGE / name) - set(sys.stdlib_module_names)
    assert outside <= STANDALONE[name]


def test_importing_every_client_module_loads_no_hub_module():
    modules = [f"concordat_client.{path.stem}" for path in sorted(PACKAGE.glob("*.py"))]
    modules = [name.removesuffix(".__init__") for name in modules]
    code = (
        f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(HUB_PACKAGES)!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=CLIENT, capture_output=True, text=True, check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(CLIENT)},
    )  # fmt: skip
    assert done.stdout.strip() == "[]"


def test_the_verifier_runs_as_one_file_copied_out_of_the_repository(tmp_path):
    for name in STANDALONE:
        (tmp_path / name).write_bytes((PACKAGE / name).read_bytes())
    for name in STANDALONE:
        done = subprocess.run(
            [sys.executable, "-s", "-E", name, *(["compare"] if name == "crosscheck.py" else []), "--help"],
            cwd=tmp_path, capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "--key" in done.stdout


@pytest.mark.integration
def test_the_package_installs_into_a_fresh_venv_and_its_command_runs(tmp_path):
    """``pip install ./client`` into an empty virtual environment (its dependencies come from the
    index, or from this machine's wheel cache), then ``concordat --help`` there."""
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    # A copy: building in place would leave build/ and *.egg-info in the checkout.
    folder = shutil.copytree(
        CLIENT,
        tmp_path / "client",
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(folder)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if installed.returncode != 0 and "No matching distribution" in installed.stderr:
        pytest.skip("no package index reachable from this machine")
    assert installed.returncode == 0, installed.stderr
    done = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "concordat"), "--help"], capture_output=True, text=True,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for verb in (
        "keygen",
        "register-key",
        "hash",
        "submit",
        "sync",
        "match",
        "verify-log",
        "status",
        "live",
    ):
        assert verb in done.stdout
    hub_modules = subprocess.run(
        [str(python), "-c", "import django"], capture_output=True, text=True
    )  # fmt: skip
    assert hub_modules.returncode != 0  # the hub's requirements are not there
