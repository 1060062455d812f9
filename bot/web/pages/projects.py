"""Projects: each project's join link, and its printable A4 poster (PDF) with a QR code of the
link, in English and in Welsh (bot/posters.py makes both, as `cocreate projects poster` does).

Routes:
  GET /projects                             the projects, their links and posters
  GET /projects/{code}/poster-{language}.pdf  a project's poster (en or cy)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from telegram.error import TelegramError

from bot.posters import TextToJoin, bot_username, join_link, poster_pdf, text_to_join
from bot.web.bench import Bench

logger = logging.getLogger(__name__)

NAV = ("/projects", "Projects")
LANGUAGES = {"en": "English", "cy": "Welsh (Cymraeg)"}


@dataclass(frozen=True)
class Row:
    code: str
    name: str
    link: str | None  # None while the bot's username is not known
    sms: TextToJoin | None  # None when SMS is off


class Username:
    """The bot's username, asked of Telegram (getMe) once, on first need."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.known: str | None = None

    async def get(self) -> str | None:
        if self.known is None:
            try:
                self.known = await bot_username(self.bench.resources.settings)
            except (TelegramError, OSError):
                logger.warning("Could not ask Telegram for the bot's username")
        return self.known


def routes(bench: Bench) -> list[BaseRoute]:
    username = Username(bench)

    async def projects(request: Request) -> Response:
        """Every project, with its join link and its posters."""
        staff = await bench.signed_in(request)
        if isinstance(staff, Response):
            return staff
        name = await username.get()
        settings = bench.resources.settings
        rows = [
            Row(
                p.code,
                p.name,
                join_link(name, p.code) if name else None,
                text_to_join(settings, p.code),
            )
            for p in await bench.resources.store.projects.all()
        ]
        return bench.page(
            request,
            "projects",
            staff=staff,
            projects=rows,
            languages=LANGUAGES,
            sms_on=settings.sms_on,
        )

    async def poster(request: Request) -> Response:
        """A project's poster, as a PDF to print."""
        staff = await bench.signed_in(request)
        if isinstance(staff, Response):
            return staff
        language = request.path_params["language"]
        project = await bench.resources.store.projects.by_code(request.path_params["code"])
        name = await username.get()
        if language not in LANGUAGES or project is None or name is None:
            return Response("Not found", status_code=404, media_type="text/plain")
        # Made in a thread (tens of milliseconds): the bot's loop goes on meanwhile.
        link = join_link(name, project.code)
        sms = text_to_join(bench.resources.settings, project.code)
        pdf = await asyncio.to_thread(poster_pdf, project.name, link, language, sms)
        filename = f"poster-{project.code}-{language}.pdf"
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"content-disposition": f'inline; filename="{filename}"'},
        )

    return [
        Route("/projects", projects),
        Route("/projects/{code}/poster-{language}.pdf", poster),
    ]
