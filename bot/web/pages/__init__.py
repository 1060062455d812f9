"""The workbench's pages beyond the overview and signing in, one module each.

Each module has `routes(bench: Bench) -> list[BaseRoute]` and `NAV`: its place in the menu,
`(path, label)`, or None. The menu shows them in this order.
"""

from __future__ import annotations

from types import ModuleType

from bot.web.pages import (
    audit,
    downloads,
    projects,
    questions,
    reader,
    safeguarding,
    themes,
    tracker,
)

PAGES: tuple[ModuleType, ...] = (
    reader,
    questions,
    safeguarding,
    tracker,
    themes,
    projects,
    downloads,
    audit,
)
