"""Stories and ideas: what members shared, newest first, a page at a time, with filters
(project, kind, dates, flagged, an idea's status, and a theme once storage/themes.py's
tables exist) and a search box (SQLite FTS5, English and
Welsh: storage/search.py). Voice notes play in the page and photos show, with their caption
as alt text; both come from /media/{id}, which only signed-in staff may open. Members are
shown by pseudonym only.

Routes:
  GET /reader           the reader (its filters and search are the form's GET fields)
  GET /media/{id}       a file a member sent (HTTP Range too, so audio knows its length)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from bot.catalogue import t
from bot.web.bench import Bench
from storage.kinds import IDEA, all_kinds, find
from storage.search import Filters, Item
from storage.tracker import STATUSES

logger = logging.getLogger(__name__)

NAV = ("/reader", "Stories and ideas")
PAGE = 20
NO_CAPTION = "Photo from a member"
KIND_NAMES = {"experience": "Story", "idea": "Idea"}
PART_NAMES = {"idea": "The idea"}  # the catalogue's label speaks to the member ("Your idea")
# What may be shown in the page, by type; any other file is only offered as a download, so
# nothing a member sent can run as a page on the workbench's own address.
SHOWN_TYPES = {
    "audio/ogg",
    "audio/mpeg",
    "audio/mp4",
    "audio/x-m4a",
    "audio/wav",
    "audio/webm",
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "video/mp4",
}
DEFAULT_TYPES = {"voice": "audio/ogg", "photo": "image/jpeg", "video_note": "video/mp4"}


def status_name(status: str) -> str:
    return t("en", f"tracking.status.{status}")


def kind_name(key: str) -> str:
    return KIND_NAMES.get(key, key.capitalize())


def part_name(kind_key: str, part: str) -> str:
    kind = find(kind_key)
    if part in PART_NAMES or kind is None:
        return PART_NAMES.get(part, part)
    return t("en", f"{kind.noun}.label.{part}")


def located(folder: Path, file_name: str) -> Path | None:
    """The file in MEDIA_DIR, if it is there (and nowhere else)."""
    folder = folder.resolve()
    path = (folder / file_name).resolve()
    return path if path.parent == folder and path.is_file() else None


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isascii() and value.isdigit() else None


def _date(value: str | None) -> date | None:
    """A day typed in the form (YYYY-MM-DD, as a date field sends it), if it is one."""
    try:
        return datetime.strptime(value, "%Y-%m-%d").date() if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Asked:
    """The reader's form, as asked (unknown values are dropped)."""

    filters: Filters
    page: int
    fields: dict[str, str]  # the fields kept, for the form and the page links

    def link(self, page: int) -> str:
        return "/reader?" + urlencode({**self.fields, "page": str(page)})


def asked(request: Request, bench: Bench, themes: list[tuple[int, str]] | None) -> Asked:
    q = request.query_params
    theme = _int(q.get("theme")) if themes is not None else None
    kinds = {kind.key for kind in all_kinds()}
    fields = {
        "q": q.get("q", "").strip()[:200],
        "project": str(_int(q.get("project")) or ""),
        "kind": q.get("kind", "") if q.get("kind") in kinds else "",
        "from": str(_date(q.get("from")) or ""),
        "to": str(_date(q.get("to")) or ""),
        "flagged": "1" if q.get("flagged") == "1" else "",
        "status": q.get("status", "") if q.get("status") in STATUSES else "",
        "theme": str(theme or ""),
    }
    fields = {name: value for name, value in fields.items() if value}
    filters = Filters(
        project_id=_int(fields.get("project")),
        kind=fields.get("kind"),
        since=_date(fields.get("from")),
        until=_date(fields.get("to")),
        flagged="flagged" in fields,
        status=fields.get("status"),
        words=fields.get("q", ""),
        theme_id=_int(fields.get("theme")),
        tz=bench.resources.settings.tz,
    )
    return Asked(filters, max(_int(q.get("page")) or 1, 1), fields)


@dataclass(frozen=True)
class Shown:
    """An item with its member's pseudonym and its time as the team reads it."""

    item: Item
    pseudonym: str
    when: str


def routes(bench: Bench) -> list[BaseRoute]:
    async def reader(request: Request) -> Response:
        staff = await bench.signed_in(request)
        if isinstance(staff, Response):
            return staff
        library = bench.reader.library
        themes = await library.themes()
        form = asked(request, bench, themes)
        found = await library.items(form.filters, (form.page - 1) * PAGE, PAGE + 1)
        items = found[:PAGE]
        names = await bench.resources.store.pseudonyms.of_many(i.member_id for i in items)
        tz = bench.resources.settings.tz
        shown = [
            Shown(i, names[i.member_id], i.submitted_at.astimezone(tz).strftime("%-d %b %Y, %H:%M"))
            for i in items
        ]
        return bench.page(
            request,
            "reader",
            staff=staff,
            form=form,
            shown=shown,
            more=len(found) > PAGE,
            projects=await library.projects(),
            themes=themes,
            kinds=[(kind.key, kind_name(kind.key)) for kind in all_kinds()],
            statuses=[(s, status_name(s)) for s in STATUSES],
            idea=IDEA.key,
            kind_name=kind_name,
            part_name=part_name,
            status_name=status_name,
            no_caption=NO_CAPTION,
        )

    async def media(request: Request) -> Response:
        staff = await bench.signed_in(request)
        if isinstance(staff, Response):
            return staff
        stored = await bench.reader.library.stored_file(int(request.path_params["media_id"]))
        folder = bench.resources.settings.media_dir
        path = await asyncio.to_thread(located, folder, stored.file_name) if stored else None
        if stored is None or path is None:
            return Response("Not found", status_code=404, media_type="text/plain")
        kind = stored.mime_type or DEFAULT_TYPES.get(stored.kind, "application/octet-stream")
        headers = {
            # Whatever the file says it is, it cannot run here.
            "content-security-policy": "default-src 'none'; sandbox",
            "cache-control": "private, no-store",
        }
        if kind not in SHOWN_TYPES:
            kind = "application/octet-stream"
            headers["content-disposition"] = f'attachment; filename="{path.name}"'
        return FileResponse(path, media_type=kind, headers=headers)

    return [
        Route("/reader", reader),
        Route("/media/{media_id:int}", media),
    ]
