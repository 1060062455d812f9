"""Themes: facilitators and organisers name what members said, and tag items with the names.

Routes:
  GET  /themes               every theme with its count; create, rename, merge; untagged text
                             (the newest), each with a form to tag it
  GET  /themes/{id}          one theme's items, each with a form to take the theme off
  GET  /themes/suggestions   suggested themes for the untagged text (bot/web/suggestions.py,
                             in a thread); each with its top words and examples, and a form
                             to name it and use it: nothing is tagged until then
  POST /themes/create, /themes/rename, /themes/merge, /themes/tag, /themes/untag,
       /themes/use         the changes (CSRF token and role checked on each)

Members appear by pseudonym only. A change redirects to a page that says what was done
(`done`, one of DONE's keys); a refused change shows the page again with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.web.access import Staff, form_of, same_token
from bot.web.bench import Bench
from storage.themes import MAX_NAME, FreeText, ItemRef, Theme, ThemeError, Themes

if TYPE_CHECKING:
    from bot.web.suggestions import Suggestions

logger = logging.getLogger(__name__)

NAV = ("/themes", "Themes")
UNTAGGED_SHOWN = 50  # the newest untagged items listed on /themes
TAGGED_SHOWN = 200  # a theme's items listed on its page
MIN_SUGGESTED = 10  # bot/web/suggestions.py's MIN_ITEMS (a test keeps them the same)
MAX_SUGGESTED_TEXTS = 5000  # suggestions read the newest untagged texts, at most this many
COUNTED = 10_000  # untagged items counted at most (past it: "10,000 or more")
SHORT = 300  # characters of an item's text shown in lists
KIND_LABELS = {"experience": "Story", "idea": "Idea", "answer": "Answer"}
DONE = {
    "created": "The theme was created.",
    "renamed": "The theme was renamed.",
    "merged": "The themes were merged.",
    "tagged": "The item was tagged.",
    "untagged": "The theme was taken off the item.",
    "used": "The suggested theme was used.",
}


@dataclass(frozen=True)
class Shown:
    """An item as a page lists it: its key, kind, pseudonym, date and (short) text."""

    key: str
    kind: str
    pseudonym: str
    at: datetime
    text: str


@dataclass(frozen=True)
class ShownSuggestion:
    """A suggestion as its page shows it."""

    number: int
    words: tuple[str, ...]
    name: str  # the name offered (its top two words), which the facilitator may change
    items: str  # the keys of the items it covers, space-separated (the form sends them back)
    count: int
    examples: tuple[Shown, ...]


def short(text: str) -> str:
    return text if len(text) <= SHORT else text[: SHORT - 1].rstrip() + "…"


class ThemesPage:
    """The routes, with the workbench they belong to."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.suggesting = asyncio.Lock()  # one suggestion run at a time (two cores, shared)

    @property
    def themes(self) -> Themes:
        return self.bench.resources.store.themes

    async def shown(self, texts: list[FreeText]) -> list[Shown]:
        """Items as listed, with their authors' pseudonyms."""
        names = await self.bench.resources.store.pseudonyms.of_many(t.member_id for t in texts)
        tz = self.bench.resources.settings.tz
        return [
            Shown(
                key=t.item.key,
                kind=KIND_LABELS.get(t.kind, t.kind.title()),
                pseudonym=names[t.member_id],
                at=t.at.astimezone(tz),
                text=short(t.text),
            )
            for t in texts
        ]

    async def _staff_form(self, request: Request) -> tuple[Staff, dict[str, str]] | Response:
        """The staff member and the posted form; or the refusal (no session, not staff, or a
        form without its CSRF token)."""
        staff = await self.bench.signed_in(request)
        if isinstance(staff, Response):
            return staff
        form = await form_of(request)
        if not same_token(form.get("csrf"), staff.csrf):
            return self.bench.page(request, "forbidden", 403, staff=staff)
        return staff, form

    # ---- pages

    async def index(
        self, request: Request, staff: Staff | None = None, error: str | None = None
    ) -> Response:
        if staff is None:
            signed_in = await self.bench.signed_in(request)
            if isinstance(signed_in, Response):
                return signed_in
            staff = signed_in
        themes: list[Theme] = await self.themes.all()
        untagged = await self.themes.untagged(UNTAGGED_SHOWN)
        return self.bench.page(
            request,
            "themes",
            400 if error else 200,
            staff=staff,
            themes=themes,
            untagged=await self.shown(untagged),
            untagged_count=await self.themes.untagged_count(COUNTED),
            counted=COUNTED,
            done=None if error else DONE.get(request.query_params.get("done", "")),
            error=error,
            max_name=MAX_NAME,
        )

    async def one(self, request: Request) -> Response:
        staff = await self.bench.signed_in(request)
        if isinstance(staff, Response):
            return staff
        theme = await self.themes.get(int(request.path_params["theme_id"]))
        if theme is None:
            return self.bench.page(request, "theme_missing", 404, staff=staff)
        items = await self.themes.tagged(theme.id, TAGGED_SHOWN)
        return self.bench.page(
            request,
            "theme",
            staff=staff,
            theme=theme,
            items=await self.shown(items),
            done=DONE.get(request.query_params.get("done", "")),
        )

    async def suggested(self, request: Request) -> Response:
        staff = await self.bench.signed_in(request)
        if isinstance(staff, Response):
            return staff
        texts: list[FreeText] = await self.themes.untagged(MAX_SUGGESTED_TEXTS)
        async with self.suggesting:
            found = await asyncio.to_thread(_suggest, [(t.item.key, t.text) for t in texts])
        by_key = {t.item.key: t for t in texts}
        shown = []
        for number, topic in enumerate(found.topics, start=1):
            examples = await self.shown([by_key[key] for key in topic.examples])
            shown.append(
                ShownSuggestion(
                    number=number,
                    words=topic.words,
                    name=" and ".join(topic.words[:2]),
                    items=" ".join(topic.items),
                    count=len(topic.items),
                    examples=tuple(examples),
                )
            )
        return self.bench.page(
            request,
            "theme_suggestions",
            staff=staff,
            found=found,
            suggestions=shown,
            limit=MAX_SUGGESTED_TEXTS,
            min_items=MIN_SUGGESTED,
            max_name=MAX_NAME,
        )

    # ---- changes

    async def create(self, request: Request) -> Response:
        posted = await self._staff_form(request)
        if isinstance(posted, Response):
            return posted
        staff, form = posted
        try:
            await self.themes.create(form.get("name", ""), by=staff.session.telegram_user_id)
        except ThemeError as refused:
            return await self.index(request, staff, str(refused))
        return RedirectResponse("/themes?done=created", status_code=303)

    async def rename(self, request: Request) -> Response:
        posted = await self._staff_form(request)
        if isinstance(posted, Response):
            return posted
        staff, form = posted
        try:
            await self.themes.rename(
                _number(form.get("theme")), form.get("name", ""), by=staff.session.telegram_user_id
            )
        except ThemeError as refused:
            return await self.index(request, staff, str(refused))
        return RedirectResponse("/themes?done=renamed", status_code=303)

    async def merge(self, request: Request) -> Response:
        posted = await self._staff_form(request)
        if isinstance(posted, Response):
            return posted
        staff, form = posted
        try:
            await self.themes.merge(
                _number(form.get("theme")),
                _number(form.get("into")),
                by=staff.session.telegram_user_id,
            )
        except ThemeError as refused:
            return await self.index(request, staff, str(refused))
        return RedirectResponse("/themes?done=merged", status_code=303)

    async def tag(self, request: Request) -> Response:
        posted = await self._staff_form(request)
        if isinstance(posted, Response):
            return posted
        staff, form = posted
        item = ItemRef.parse(form.get("item", ""))
        theme = await self.themes.get(_number(form.get("theme"), missing=0))
        if item is None or theme is None:
            return await self.index(request, staff, "Choose a theme for the item.")
        await self.themes.tag(theme.id, [item], by=staff.session.telegram_user_id)
        return RedirectResponse("/themes?done=tagged", status_code=303)

    async def untag(self, request: Request) -> Response:
        posted = await self._staff_form(request)
        if isinstance(posted, Response):
            return posted
        _, form = posted
        item = ItemRef.parse(form.get("item", ""))
        theme_id = _number(form.get("theme"), missing=0)
        if item is not None:
            await self.themes.untag(theme_id, item)
        return RedirectResponse(f"/themes/{theme_id}?done=untagged", status_code=303)

    async def use(self, request: Request) -> Response:
        """A suggestion the facilitator named and chose to use: a theme of that name (an
        existing one if the name is taken), on the items the suggestion covered."""
        posted = await self._staff_form(request)
        if isinstance(posted, Response):
            return posted
        staff, form = posted
        by = staff.session.telegram_user_id
        items = [i for i in map(ItemRef.parse, form.get("items", "").split()) if i is not None]
        try:
            theme = await self.themes.by_name(form.get("name", ""))
            if theme is None:
                theme = await self.themes.create(form.get("name", ""), by=by)
        except ThemeError as refused:
            return await self.index(request, staff, str(refused))
        tagged = await self.themes.tag(theme.id, items[:MAX_SUGGESTED_TEXTS], by=by)
        await self.bench.resources.store.audit.add(
            f"telegram:{by}", "theme_suggestion_used", theme=theme.id, tagged=tagged
        )
        return RedirectResponse(f"/themes/{theme.id}?done=used", status_code=303)


def _suggest(texts: list[tuple[str, str]]) -> Suggestions:
    """Suggestions, in a worker thread: scikit-learn is imported there the first time
    (about a second), so neither the bot's start nor its event loop waits for it."""
    from bot.web.suggestions import suggest

    return suggest(texts)


def _number(value: str | None, missing: int | None = None) -> int:
    """A theme's number from a form; ThemeError (or `missing`) if there is none."""
    if value is not None and value.isascii() and value.isdigit():
        return int(value)
    if missing is not None:
        return missing
    raise ThemeError("Choose a theme.")


def routes(bench: Bench) -> list[BaseRoute]:
    page = ThemesPage(bench)
    return [
        Route("/themes", page.index),
        Route("/themes/suggestions", page.suggested),
        Route("/themes/{theme_id:int}", page.one),
        Route("/themes/create", page.create, methods=["POST"]),
        Route("/themes/rename", page.rename, methods=["POST"]),
        Route("/themes/merge", page.merge, methods=["POST"]),
        Route("/themes/tag", page.tag, methods=["POST"]),
        Route("/themes/untag", page.untag, methods=["POST"]),
        Route("/themes/use", page.use, methods=["POST"]),
    ]
