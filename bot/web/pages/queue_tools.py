"""What the queue's pages (safeguarding, tracker, audit, downloads) share: the signed-in staff
member or the refusal, organisers-only pages, posted forms checked for their CSRF token, and
times shown in TIMEZONE."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from bot.web.access import Staff, form_of, same_token
from bot.web.bench import Bench


async def staff_or_refusal(
    bench: Bench, request: Request, *, organisers: str = ""
) -> Staff | Response:
    """The staff member behind the request (role read now), or the page refusing them. With
    `organisers` (what the page is, for the explanation) a facilitator is refused too."""
    staff = await bench.signed_in(request)
    if isinstance(staff, Response):
        return staff
    if organisers and not staff.is_organiser:
        return bench.page(request, "audit_organisers", 403, staff=staff, what=organisers)
    return staff


async def posted(
    bench: Bench, request: Request, *, organisers: str = ""
) -> tuple[Staff, dict[str, str]] | Response:
    """A posted form from a signed-in staff member, with its CSRF token checked."""
    staff = await staff_or_refusal(bench, request, organisers=organisers)
    if isinstance(staff, Response):
        return staff
    form = await form_of(request)
    if not same_token(form.get("csrf"), staff.csrf):
        return bench.page(request, "forbidden", 403, staff=staff)
    return staff, form


def when(bench: Bench, moment: datetime | None) -> str:
    """A time as staff read it, in TIMEZONE: "1 Dec 2026, 14:05"."""
    if moment is None:
        return ""
    local = moment.astimezone(bench.resources.settings.tz)
    return f"{local.day} {local:%b %Y, %H:%M}"
