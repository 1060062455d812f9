"""The staff workbench: a Starlette app, served in the bot's own process (bot/web/server.py).

Pages are rendered on the server and read well without JavaScript; the overview's figures
also come live, by server-sent events (/live; bot/web/live.py says how changes are noticed).
Every page but sign-in needs a session, and the role behind it is read from the database on
every request (bot/web/access.py). Templates and static files ship in this package: no CDN.

Routes:
  GET  /                the overview
  GET  /live            the overview's figures, as server-sent events
  GET  /signin          how to sign in (send /workbench to the bot)
  GET  /signin/{token}  a "Sign in" button for a link (a link preview does not use it up)
  POST /signin/{token}  uses the link: a session cookie, then the overview
  POST /signout         ends the session
  /static/...           the style sheet and the one script
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.web import overview, pages
from bot.web.access import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    Guesses,
    Refused,
    Staff,
    current_staff,
    form_of,
    same_token,
    set_session_cookie,
)
from bot.web.live import Live
from conversations.context import Resources
from storage.web_sessions import LinkState
from storage.workbench import Reader

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
FIGURES = "figures"  # the overview's figures: a part of its page, and what /live sends
SECURITY_HEADERS = {
    # Only this app's own files; no frames, no inline script, no form posted elsewhere.
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    # A sign-in link's token is in the address: it must not leave as a Referer.
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}
REFUSED_LINK = {
    LinkState.USED: "This link has been used already.",
    LinkState.EXPIRED: "This link has expired.",
    LinkState.UNKNOWN: "This link does not work.",
}


class Headers:
    """Adds the security headers to every response, and keeps pages out of caches."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if "status" in message:  # the response's start, with its status and headers
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = dict(SECURITY_HEADERS)
                if not static:
                    extra["cache-control"] = "no-store"
                for name, value in extra.items():
                    if name.encode() not in names:
                        headers.append((name.encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class Workbench:
    """The app and what it holds: the bot's resources, a reading connection, the live
    figures, the guess limit."""

    def __init__(
        self,
        resources: Resources,
        reader: Reader,
        routes: Sequence[BaseRoute] = (),
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.resources = resources
        self.wake_delivery = wake  # the outbox's sender: what a page queued goes at once
        self.reader = reader  # the figures are read on a connection of their own
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.guesses = Guesses(resources.clock.now)
        self.figures = overview.Overview(resources, reader)
        self.live: Live[str] = Live(self._figures_html, reader.changes)
        self.figures.refreshed = self.live.poke  # who takes part, read anew in the background
        self.app = Starlette(
            routes=[
                *routes,  # in webhook mode, the webhook (bot/web/webhook.py): one app, one port
                Route("/", self.overview),
                Route("/live", self.live_figures),
                Route("/signin", self.how_to_sign_in),
                Route("/signin/{token}", self.open_link, methods=["GET"]),
                Route("/signin/{token}", self.use_link, methods=["POST"]),
                Route("/signout", self.sign_out, methods=["POST"]),
                *(route for page in pages.PAGES for route in page.routes(self)),
                Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
            ],
        )
        # The menu: the overview, then each page that has a place in it.
        self.templates.env.globals["nav"] = [
            ("/", "Overview"),
            *(page.NAV for page in pages.PAGES if page.NAV is not None),
        ]
        self.asgi: ASGIApp = Headers(self.app)

    async def close(self) -> None:
        """Ends the live streams (the server is stopping)."""
        await self.live.close()
        await self.figures.close()

    # ---- helpers

    @property
    def secure(self) -> bool:
        return self.resources.settings.workbench_https

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        """A page from templates/ (its name without ".html")."""
        return self.templates.TemplateResponse(request, f"{name}.html", context, status_code=status)

    async def signed_in(self, request: Request) -> Staff | Response:
        """The staff member behind the request (role read now), or the page refusing them."""
        try:
            return await current_staff(request, self.resources.store)
        except Refused as refusal:
            return self.refused(request, refusal)

    def refused(self, request: Request, refusal: Refused) -> Response:
        """A request without a live session, or from someone no longer staff."""
        if refusal.reason == "not_staff":
            response = self.page(request, "refused", 403)
        else:  # "You are signed out" only to someone who was signed in
            ended = SESSION_COOKIE in request.cookies
            response = self.page(request, "signin", 401, signed_out=ended)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def _figures_html(self) -> str:
        figures = await self.figures.figures()
        template = self.templates.get_template(f"{FIGURES}.html")
        return template.render(figures=figures)

    # ---- pages

    async def overview(self, request: Request) -> Response:
        """The overview: live counters and who takes part."""
        try:
            staff = await current_staff(request, self.resources.store)
        except Refused as refusal:
            return self.refused(request, refusal)
        figures = await self.figures.figures()
        return self.page(request, "overview", staff=staff, figures=figures)

    async def live_figures(self, request: Request) -> Response:
        """The overview's figures as server-sent events: now, then whenever they change."""
        try:
            await current_staff(request, self.resources.store)
        except Refused as refusal:
            return Response(status_code=401 if refusal.reason == "signed_out" else 403)

        async def events() -> AsyncIterator[dict[str, str]]:
            sent = None
            async for html in self.live.watch():
                # After every change the session and the role are checked again, as a
                # request would be: someone removed from the team loses the stream at once.
                try:
                    await current_staff(request, self.resources.store)
                except Refused:
                    return
                if html != sent:
                    sent = html
                    yield {"event": "figures", "data": html}

        return EventSourceResponse(events(), ping=15, send_timeout=10)

    async def how_to_sign_in(self, request: Request) -> Response:
        """How to sign in: there are no passwords, only links from the bot."""
        return self.page(request, "signin")

    def _address(self, request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def _too_many(self, request: Request) -> Response | None:
        wait = self.guesses.blocked(self._address(request))
        if wait is None:
            return None
        seconds = max(math.ceil(wait.total_seconds()), 1)
        response = self.page(request, "too_many", 429, minutes=(seconds + 59) // 60)
        response.headers["retry-after"] = str(seconds)
        return response

    async def open_link(self, request: Request) -> Response:
        """A sign-in link: a button that uses it (opening it changes nothing)."""
        blocked = self._too_many(request)
        if blocked is not None:
            return blocked
        token = request.path_params["token"]
        state = await self.resources.store.web_sessions.check_link(token)
        if state is not LinkState.OK:
            self.guesses.wrong(self._address(request))
            return self.page(request, "bad_link", 400, why=REFUSED_LINK[state])
        form_token = secrets.token_urlsafe(16)
        response = self.page(request, "confirm", form_token=form_token, token=token)
        response.set_cookie(
            SIGN_IN_COOKIE,
            form_token,
            max_age=600,
            httponly=True,
            samesite="strict",
            secure=self.secure,
            path="/signin",
        )
        return response

    async def use_link(self, request: Request) -> Response:
        """Uses a sign-in link: starts a session and opens the overview."""
        blocked = self._too_many(request)
        if blocked is not None:
            return blocked
        form = await form_of(request)
        if not same_token(form.get("csrf"), request.cookies.get(SIGN_IN_COOKIE)):
            return self.page(request, "forbidden", 403)
        store = self.resources.store
        result = await store.web_sessions.sign_in(request.path_params["token"])
        if result.state is not LinkState.OK or result.token is None:
            self.guesses.wrong(self._address(request))
            return self.page(request, "bad_link", 400, why=REFUSED_LINK[result.state])
        assert result.telegram_user_id is not None
        if await store.roles.role_of(result.telegram_user_id) is None:
            # Removed from the team since the link was made: the session ends at once.
            session = await store.web_sessions.current(result.token)
            if session is not None:
                await store.web_sessions.end(session, "not_staff")
            return self.page(request, "refused", 403)
        response = RedirectResponse("/", status_code=303)
        set_session_cookie(response, result.token, secure=self.secure)
        response.delete_cookie(SIGN_IN_COOKIE, path="/signin")
        return response

    async def sign_out(self, request: Request) -> Response:
        """Ends the session, and forgets its cookie."""
        try:
            staff: Staff = await current_staff(request, self.resources.store)
        except Refused as refusal:
            return self.refused(request, refusal)
        form = await form_of(request)
        if not same_token(form.get("csrf"), staff.csrf):
            return self.page(request, "forbidden", 403)
        await self.resources.store.web_sessions.end(staff.session, "signed_out")
        response = self.page(request, "signin", signed_out=True)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
