"""The ideas tracker: every idea, facilitator's statement and sent question round with its
status (issue 12: storage/tracker.py), and a way to change one with a public reason.

Before anything is sent the page shows who will be told: how many can get it now, and the
message as the first of them will read it (in English here; each member gets it in their own
language). Confirming sets the status through the chat's own path (conversations/tracking.py
`set_status`: storage/tracker.py `change` queues the messages as one delivery batch in the
same transaction, and it is audited). "Not possible now" needs a reason.

Routes:
  GET  /tracker                 every idea and round, newest first, a page at a time
  GET  /tracker/{key}           one of them: its history, and the form to change its status
  POST /tracker/{key}/preview   who will be told, and the message (CSRF)
  POST /tracker/{key}           sets the status and tells them (CSRF)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.catalogue import t
from bot.web.access import Staff
from bot.web.bench import Bench
from bot.web.pages.queue_tools import posted, staff_or_refusal, when
from conversations.tracking import preview_of, set_status
from storage.tracker import (
    MAX_REASON,
    NEEDS_REASON,
    SETTABLE,
    Item,
    ReasonNeeded,
    Status,
    Tracked,
)

NAV = ("/tracker", "Ideas tracker")
LANGUAGE = "en"
PAGE = 25
KINDS = {"idea": "Idea", "statement": "Statement", "round": "Question"}


def status_name(status: str) -> str:
    return t(LANGUAGE, f"tracking.status.{status}")


def routes(bench: Bench) -> list[BaseRoute]:
    store = bench.resources.store
    statuses = [(s, status_name(s)) for s in SETTABLE]

    async def tracked_of(request: Request) -> Tracked | None:
        item = Item.parse(request.path_params["key"])
        return await store.tracker.get(item) if item is not None else None

    async def listing(request: Request) -> Response:
        staff = await staff_or_refusal(bench, request)
        if isinstance(staff, Response):
            return staff
        raw = request.query_params.get("offset", "0")
        offset = int(raw) if raw.isdigit() else 0
        found = await store.tracker.items(offset, PAGE + 1)
        return bench.page(
            request,
            "tracker",
            staff=staff,
            items=found[:PAGE],
            kinds=KINDS,
            status_name=status_name,
            when=lambda moment: when(bench, moment),
            older=offset + PAGE if len(found) > PAGE else None,
            newer=max(offset - PAGE, 0) if offset else None,
        )

    async def form_page(
        request: Request,
        staff: Staff,
        tracked: Tracked,
        *,
        status: str = "",
        reason: str = "",
        error: str = "",
        code: int = 200,
    ) -> Response:
        history = await store.tracker.history(tracked.item)
        names = {r.telegram_user_id: r.name for r in await store.roles.everyone()}
        saved = request.query_params.get("saved")
        return bench.page(
            request,
            "tracker_item",
            code,
            staff=staff,
            tracked=tracked,
            kinds=KINDS,
            history=[
                (
                    when(bench, c.changed_at),
                    status_name(c.status),
                    c.reason,
                    names.get(c.changed_by),
                )
                for c in reversed(history)
            ],
            now=status_name(tracked.status),
            statuses=statuses,
            chosen=status,
            reason=reason,
            error=error,
            max_reason=MAX_REASON,
            saved=int(saved) if saved and saved.isdigit() else None,
            unchanged="unchanged" in request.query_params,
        )

    async def item_page(request: Request) -> Response:
        staff = await staff_or_refusal(bench, request)
        if isinstance(staff, Response):
            return staff
        tracked = await tracked_of(request)
        if tracked is None:
            return bench.page(request, "tracker_gone", 404, staff=staff)
        return await form_page(request, staff, tracked)

    def problem(status: str, reason: str) -> str:
        """What is wrong with a status and reason, if anything."""
        if status not in SETTABLE:
            return "Choose the new status."
        if status in NEEDS_REASON and not reason:
            return f'"{status_name(status)}" needs a reason. Write why, so members understand.'
        if len(reason) > MAX_REASON:
            return f"The reason is too long. Use {MAX_REASON} letters or fewer."
        return ""

    async def asked_change(request: Request) -> tuple[Staff, Tracked, str, str] | Response:
        """The change a posted form asks for (who, what, the status and reason), or the page
        saying why it cannot be made."""
        checked = await posted(bench, request)
        if isinstance(checked, Response):
            return checked
        staff, form = checked
        tracked = await tracked_of(request)
        if tracked is None:
            return bench.page(request, "tracker_gone", 404, staff=staff)
        status, reason = form.get("status", ""), form.get("reason", "").strip()
        error = problem(status, reason)
        if error:
            return await form_page(
                request, staff, tracked, status=status, reason=reason, error=error, code=400
            )
        return staff, tracked, status, reason

    async def preview(request: Request) -> Response:
        asked = await asked_change(request)
        if isinstance(asked, Response):
            return asked
        staff, tracked, status, reason = asked
        message, count = await preview_of(
            store, tracked, status_as(status), reason or None, LANGUAGE
        )
        return bench.page(
            request,
            "tracker_preview",
            staff=staff,
            tracked=tracked,
            kinds=KINDS,
            chosen=status,
            status_label=status_name(status),
            reason=reason,
            message=message,
            count=count,
        )

    async def change(request: Request) -> Response:
        asked = await asked_change(request)
        if isinstance(asked, Response):
            return asked
        staff, tracked, status, reason = asked
        by = staff.session.telegram_user_id
        member = await store.members.by_telegram_id(by)
        count = await store.tracker.reachable(tracked.item)  # as the preview said (and the chat)
        try:
            changed = await set_status(
                store,
                tracked.item,
                status_as(status),
                reason or None,
                by=by,
                lang=member.language if member else LANGUAGE,
                via="workbench",
            )
        except (ReasonNeeded, ValueError):
            error = problem(status, "") or "That status cannot be set. Reload and try again."
            return await form_page(
                request, staff, tracked, status=status, reason=reason, error=error, code=400
            )
        key = tracked.item.key
        if changed is None:  # the same status and reason again (sent twice): nothing is sent
            return RedirectResponse(f"/tracker/{key}?unchanged=1", status_code=303)
        bench.wake_delivery()
        return RedirectResponse(f"/tracker/{key}?saved={count}", status_code=303)

    return [
        Route("/tracker", listing, methods=["GET"]),
        Route("/tracker/{key}", item_page, methods=["GET"]),
        Route("/tracker/{key}/preview", preview, methods=["POST"]),
        Route("/tracker/{key}", change, methods=["POST"]),
    ]


def status_as(status: str) -> Status:
    """A status checked to be one that can be set."""
    for settable in SETTABLE:
        if settable == status:
            return settable
    raise ValueError(status)
