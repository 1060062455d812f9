"""The house stays as the house issue left it: no import cycles anywhere in the code (imports
inside functions and under `if TYPE_CHECKING:` count too), at most six floors of imports
inside conversations/, and no private python-telegram-bot module imported."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "conversations", "storage", "emulator")


@functools.cache
def imports_of(path: Path) -> frozenset[str]:
    """Every module a file imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return frozenset(found)


def graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports."""
    modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts): p
        for package in PACKAGES
        for p in (ROOT / package).rglob("*.py")
    }
    return {
        name: {m for m in imports_of(path) if m in modules and m != name}
        for name, path in modules.items()
    }


# Every file is parsed once, as the tests are collected, before any test starts a thread:
# CPython 3.11's parser can fail with "AST constructor recursion depth mismatch" while other
# threads run (python/cpython#106905), as the database's thread of an earlier test may.
graph()


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, if there is any."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(edges[node]):
            if (found := visit(target, [*path, node])) is not None:
                return found
        done.add(node)
        return None

    for start in sorted(edges):
        if (found := visit(start, [])) is not None:
            return found
    return None


def test_no_import_cycles() -> None:
    assert cycle(graph()) is None


def test_conversations_has_at_most_six_floors() -> None:
    inside = {
        name: {m for m in targets if m.startswith("conversations.")}
        for name, targets in graph().items()
        if name.startswith("conversations.")
    }

    @functools.cache
    def floor(module: str) -> int:
        return 1 + max((floor(m) for m in inside[module]), default=0)

    deepest = max(inside, key=floor)
    assert floor(deepest) <= 6, deepest


def test_no_private_python_telegram_bot_module_is_imported() -> None:
    private = sorted(
        f"{name}: {module}"
        for name, targets in {
            ".".join(p.relative_to(ROOT).with_suffix("").parts): imports_of(p)
            for package in PACKAGES
            for p in (ROOT / package).rglob("*.py")
        }.items()
        for module in targets
        if module.startswith("telegram") and any(part.startswith("_") for part in module.split("."))
    )
    assert private == []


def test_the_checks_see_a_cycle_and_a_floor() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
