"""The safeguarding queue: flags no one has dealt with yet come first, oldest first; then the
ones dealt with, most recent first. Each shows the member's words in their context (under
their pseudonym: never a name or a Telegram id) and, while waiting, "I have dealt with this",
which records who and when (storage/safeguarding.py `record`: the same record as "Read it" in
Telegram, and an audit entry). Facilitators and organisers alike.

Routes:
  GET  /safeguarding              the queue
  POST /safeguarding/{flag}/done  "I have dealt with this" (CSRF), then back to the queue
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.catalogue import catalogue, t
from bot.web.bench import Bench
from bot.web.pages.queue_tools import posted, staff_or_refusal, when
from storage import kinds
from storage.safeguarding import QueuedFlag

NAV = ("/safeguarding", "Safeguarding")
LANGUAGE = "en"


@dataclass(frozen=True)
class Shown:
    """A flag as the page shows it."""

    flag: QueuedFlag
    pseudonym: str
    where: str
    flagged: str
    dealt: str


def where(flag: QueuedFlag) -> str:
    """What the words were for: a part of a story or idea, a question, or the menu."""
    kind = kinds.find(flag.kind) if flag.kind else None
    if kind is not None and flag.part is not None:
        key = f"{kind.noun}.label.{flag.part}"
        if key in catalogue().keys(LANGUAGE):
            return f"{kind.noun.capitalize()}, the part: {t(LANGUAGE, key)}"
    if flag.question:
        return f"An answer to the question: {flag.question}"
    if flag.place in (None, "menu"):
        return "A message sent outside any story, idea or question"
    return f"A message sent while in {flag.place}"


def routes(bench: Bench) -> list[BaseRoute]:
    store = bench.resources.store

    async def shown(flags: list[QueuedFlag]) -> list[Shown]:
        names = await store.pseudonyms.of_many(f.member_id for f in flags) if flags else {}
        return [
            Shown(
                f,
                names[f.member_id],
                where(f),
                when(bench, f.flagged_at),
                when(bench, f.followed_up_at),
            )
            for f in flags
        ]

    async def queue(request: Request) -> Response:
        staff = await staff_or_refusal(bench, request)
        if isinstance(staff, Response):
            return staff
        waiting = await shown(await store.safeguarding.waiting())
        dealt = await shown(await store.safeguarding.dealt_with())
        done = request.query_params.get("done", "")
        return bench.page(
            request,
            "safeguarding",
            staff=staff,
            waiting=waiting,
            dealt=dealt,
            done=int(done) if done.isdigit() else None,
        )

    async def deal_with(request: Request) -> Response:
        checked = await posted(bench, request)
        if isinstance(checked, Response):
            return checked
        staff, _ = checked
        flag_id = int(request.path_params["flag"])
        await store.safeguarding.record(flag_id, staff.session.telegram_user_id, "dealt_with")
        # Already dealt with (by someone else, or pressed twice): the queue shows who did.
        return RedirectResponse(f"/safeguarding?done={flag_id}", status_code=303)

    return [
        Route("/safeguarding", queue, methods=["GET"]),
        Route("/safeguarding/{flag:int}/done", deal_with, methods=["POST"]),
    ]
