"""Webhook mode: Telegram's updates come to a route of the workbench's app, so the webhook and
the workbench are one ASGI app on one port (WEB_LISTEN:WEB_PORT), as python-telegram-bot's
"Custom Webhook Bot Example" does with Starlette and uvicorn (its Updater is not used).

A POST to WEBHOOK_URL's path is answered only when it carries WEBHOOK_SECRET in
X-Telegram-Bot-Api-Secret-Token (else 403, and nothing is read). The update is recorded in
the inbox before the answer (bot/receiving.py `DurableUpdateQueue.put`), so a 200 means it is
on disk; a redelivery is dropped there. Until the bot has started and replayed what was left
unfinished (`running` calls `open`), and again once it is stopping (`close`), the answer is
503 and nothing is recorded: Telegram tries again later, as it does for any failed post.
"""

from __future__ import annotations

import hmac
import json
import logging
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from telegram import Update

from bot.receiving import CocreateApplication

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class Webhook:
    """The webhook's route, and whether it takes updates now."""

    def __init__(self, application: CocreateApplication) -> None:
        settings = application.resources.settings
        secret = settings.webhook_token()  # webhook mode without a secret stops here
        assert secret is not None, "the webhook is for webhook mode (WEBHOOK_URL set)"
        self.application = application
        self.url = settings.webhook_url
        self.path = urlsplit(self.url).path or "/"
        self._secret = secret.encode()
        self.taking = False

    def routes(self) -> list[BaseRoute]:
        """The route to add to the workbench's app."""
        return [Route(self.path, self.receive, methods=["POST"])]

    async def open(self) -> None:
        """Takes updates from now on, and tells Telegram where to post them (setWebhook)."""
        self.taking = True
        await self.application.bot.set_webhook(url=self.url, secret_token=self._secret.decode())

    def close(self) -> None:
        """Takes no more updates (the bot is stopping): Telegram keeps them and tries again."""
        self.taking = False

    async def receive(self, request: Request) -> Response:
        """One update from Telegram: recorded in the inbox, then queued, then 200."""
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            logger.warning("A webhook post without the right secret token was refused")
            return Response(status_code=403)
        if not self.taking:
            return Response(status_code=503, headers={"retry-after": "1"})
        try:
            data = json.loads(await request.body())
            update = Update.de_json(data, self.application.bot)
        except (ValueError, TypeError, KeyError):
            logger.warning("A webhook post was not an update")
            return Response(status_code=400)
        if update is None:
            return Response(status_code=400)
        await self.application.update_queue.put(update)  # recorded before it is queued
        return Response(status_code=200)
