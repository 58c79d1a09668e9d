"""The suite's own shape: no test module imports another test module (or a conftest.py). What several
modules share lives in a conftest.py (fixtures), tests/support/ (plain helpers) or tests/fakes/ (servers)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


def _test_module(dotted: str) -> str | None:
    """The test module (or conftest) that ``dotted`` is or lies in, if any."""
    parts = dotted.split(".")
    for end, part in enumerate(parts, start=1):
        if part.startswith("test_") or part == "conftest":
            return ".".join(parts[:end])
    return None


def imported_test_modules(path: Path, root: Path) -> list[str]:
    """Every test module (or conftest) that the file at ``path`` imports, by dotted name, as ``line: name``."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            # `from tests.e2e import test_x` imports a module too; `from tests.x import name` only if x is one.
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        modules = sorted({module for name in names if (module := _test_module(name))})
        found += [f"{node.lineno}: {module}" for module in modules]
    return found


def test_no_test_module_imports_another_test_module() -> None:
    offenders = {
        str(path.relative_to(ROOT)): hits
        for folder in (TESTS, ROOT / "bench")
        for path in sorted(folder.rglob("*.py"))
        if (hits := imported_test_modules(path, ROOT))
    }
    assert offenders == {}, "move what is shared to a conftest.py fixture or tests/support/"


def test_the_check_sees_every_form_of_such_an_import(tmp_path: Path) -> None:
    folder = tmp_path / "tests" / "e2e"
    folder.mkdir(parents=True)
    module = folder / "test_b.py"
    module.write_text(
        "from tests.e2e.test_a import OWNER\n"
        "import tests.e2e.test_a\n"
        "from tests.e2e import test_a\n"
        "from .test_a import running\n"
        "from . import test_a as a\n"
        "from tests.fault.conftest import provider_env\n"
        "def later():\n"
        "    from ..integration.test_cli import cli_env\n"
        "from tests.support.discord_harness import OWNER\n"
        "from tests.fakes.discord import FakeDiscord\n"
        "import pytest\n"
    )
    assert imported_test_modules(module, tmp_path) == [
        "1: tests.e2e.test_a",
        "2: tests.e2e.test_a",
        "3: tests.e2e.test_a",
        "4: tests.e2e.test_a",
        "5: tests.e2e.test_a",
        "6: tests.fault.conftest",
        "8: tests.integration.test_cli",
    ]
