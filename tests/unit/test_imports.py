"""The house rules for imports (issue #12, DESIGN.md section 1), read from the source, not from sys.modules.

Every import counts, at module level or inside a function, except those under ``if TYPE_CHECKING:`` (they
never run). So a function-level import cannot hide a cycle: it may be there for start-up time only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "cogs", "storage")
VOCABULARY = {"bot.domain", "bot.errors", "bot.clock", "bot.settings"}
BOT_TOP_LEVEL = {"__init__", "app", "cli", "runtime", "domain", "errors", "settings", "clock"}
BOT_CONCERNS = {"routing", "providers", "jobs", "pipeline", "services", "media", "publish", "health"}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (or package), as far as it is ours or a top-level library
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


MODULES = our_modules()


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, in_function: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _type_checking_only(child):
            for other in child.orelse:
                yield other, in_function
                yield from _walk(other, in_function)
            continue
        inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield child, inside
        yield from _walk(child, inside)


def imports_of(name: str, path: Path) -> list[Import]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node, in_function in _walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, node.lineno, in_function) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # ``from bot.pipeline import handlers`` imports a module; ``from bot.jobs import Worker`` a name.
                full = f"{base}.{alias.name}"
                found.append(Import(name, full if full in MODULES else base, node.lineno, in_function))
    return found


IMPORTS = [imp for name, path in MODULES.items() for imp in imports_of(name, path)]


def within(module: str, *prefixes: str) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def broken(rule: str, offending: list[Import]) -> str:
    lines = [f"  {imp.source} imports {imp.target} (line {imp.line})" for imp in offending]
    return f"{rule}:\n" + "\n".join(lines)


def cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for imp in IMPORTS:
        if imp.target in MODULES and imp.target != imp.source:
            graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def test_the_rules_see_our_modules_and_their_imports() -> None:
    # A guard for the guards: were the walk to find nothing, every rule below would pass.
    assert {"bot.app", "bot.runtime", "cogs.story", "storage.db", "bot.pipeline.flow"} <= set(MODULES)
    assert any(imp.source == "bot.runtime" and imp.target == "storage.engines" for imp in IMPORTS)
    assert any(imp.in_function for imp in IMPORTS)


def test_no_import_cycles_not_even_behind_a_function_level_import() -> None:
    assert cycles() == []


def test_storage_imports_only_the_vocabulary_of_bot() -> None:
    allowed = {"bot.domain", "bot.errors", "bot.clock"}
    offending = [
        i for i in IMPORTS if within(i.source, "storage") and within(i.target, "bot") and i.target not in allowed
    ]
    assert not offending, broken("storage/ may import only bot.domain, bot.errors and bot.clock", offending)


def test_cogs_never_import_storage() -> None:
    offending = [i for i in IMPORTS if within(i.source, "cogs") and within(i.target, "storage")]
    assert not offending, broken("cogs/ reach the database through bot/services/", offending)


def test_discord_is_imported_only_by_the_app_and_the_cogs() -> None:
    offending = [
        i for i in IMPORTS
        if within(i.target, "discord") and not (i.source == "bot.app" or within(i.source, "cogs"))
    ]  # fmt: skip
    assert not offending, broken("discord belongs to bot/app.py and cogs/", offending)


def test_cogs_import_the_bot_only_for_type_checking() -> None:
    offending = [i for i in IMPORTS if within(i.source, "cogs") and within(i.target, "bot.app")]
    assert not offending, broken("cogs import StoryBot under TYPE_CHECKING only (RoboDanny's pattern)", offending)


def test_providers_know_nothing_of_storage_jobs_or_the_pipeline() -> None:
    forbidden = ("storage", "bot.jobs", "bot.pipeline", "bot.services", "bot.runtime", "cogs")
    offending = [i for i in IMPORTS if within(i.source, "bot.providers") and within(i.target, *forbidden)]
    assert not offending, broken("providers/ talk to models only", offending)


def test_jobs_know_no_handler() -> None:
    forbidden = ("bot.pipeline", "bot.services", "bot.runtime", "cogs")
    offending = [i for i in IMPORTS if within(i.source, "bot.jobs") and within(i.target, *forbidden)]
    assert not offending, broken("jobs/ run handlers they are given, and know none", offending)


def test_the_vocabulary_imports_only_the_vocabulary() -> None:
    offending = [
        i for i in IMPORTS
        if i.source in VOCABULARY and within(i.target, *PACKAGES) and i.target not in VOCABULARY
    ]  # fmt: skip
    assert not offending, broken("domain, errors, settings and clock are the words everything else uses", offending)


def test_nothing_below_the_entry_points_imports_them() -> None:
    entry_points = ("bot.app", "bot.cli", "bot.runtime")
    offending = [
        i for i in IMPORTS
        if within(i.target, *entry_points) and i.source not in entry_points and not within(i.source, "cogs")
    ]  # fmt: skip
    assert not offending, broken(
        "only the entry points (and the cogs, for the Runtime) import the entry points", offending
    )


@pytest.mark.parametrize("path", sorted((ROOT / "bot").iterdir()), ids=lambda p: p.name)
def test_bot_keeps_only_its_entry_points_and_vocabulary_at_the_top(path: Path) -> None:
    if path.name.startswith(".") or path.name == "__pycache__":
        return
    if path.is_dir():
        assert path.name in BOT_CONCERNS, f"bot/{path.name}/ is not one of the concern packages of DESIGN.md"
    else:
        assert path.suffix == ".py" and path.stem in BOT_TOP_LEVEL, f"bot/{path.name} belongs in a concern package"


def test_the_testing_reads_stay_out_of_the_product() -> None:
    offending = [i for i in IMPORTS if i.target == "storage.testing"]
    assert not offending, broken("storage/testing.py holds reads only tests make", offending)
