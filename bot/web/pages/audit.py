"""The audit log, for organisers only: who did what and when, newest first, a page at a time.
The log never holds members' words (storage/audit.py); people show as the log names them
("telegram:<id>", "cli:<user>"), with a staff member's name from /roles beside it.

Routes:
  GET /audit?offset=N   a page of entries (facilitators are refused with a plain 403 page)
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bot.web.bench import Bench
from bot.web.pages.queue_tools import staff_or_refusal, when

NAV = ("/audit", "Audit log")
PAGE = 50


def details(detail: str) -> list[str]:
    """An entry's details as "name: value" lines (the log keeps them as JSON)."""
    try:
        values = json.loads(detail)
    except ValueError:
        return [detail]
    if not isinstance(values, dict):
        return [detail]
    return [f"{name}: {json.dumps(value, ensure_ascii=False)}" for name, value in values.items()]


def routes(bench: Bench) -> list[BaseRoute]:
    store = bench.resources.store

    async def audit(request: Request) -> Response:
        staff = await staff_or_refusal(bench, request, organisers="The audit log")
        if isinstance(staff, Response):
            return staff
        raw = request.query_params.get("offset", "0")
        offset = int(raw) if raw.isdigit() else 0
        found = await store.audit.newest(offset, PAGE + 1)
        names = {f"telegram:{r.telegram_user_id}": r.name for r in await store.roles.everyone()}
        rows = [
            (when(bench, e.at), e.actor, names.get(e.actor), e.action, details(e.detail))
            for e in found[:PAGE]
        ]
        return bench.page(
            request,
            "audit",
            staff=staff,
            rows=rows,
            older=offset + PAGE if len(found) > PAGE else None,
            newer=max(offset - PAGE, 0) if offset else None,
        )

    return [Route("/audit", audit, methods=["GET"])]
