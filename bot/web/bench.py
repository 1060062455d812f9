"""What a workbench page may use of the workbench (bot/web/app.py's `Workbench`), so that
the pages (bot/web/pages/) need not import the app that imports them."""

from __future__ import annotations

from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from bot.web.access import Staff
from conversations.context import Resources
from storage.workbench import Reader


class Bench(Protocol):
    """The workbench, as its pages see it."""

    resources: Resources  # the bot's store, settings, clock …
    reader: Reader  # a read-only connection of its own, for figures and lists

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        """A page from templates/ (its name without ".html")."""
        ...

    async def signed_in(self, request: Request) -> Staff | Response:
        """The staff member behind the request (role read now), or the page refusing them."""
        ...

    def wake_delivery(self) -> None:
        """Wakes the outbox's sender: what a page just queued goes at once."""
        ...
