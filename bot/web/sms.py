"""SMS in: the provider posts members' texts to /sms/inbound and delivery statuses to
/sms/status, on the workbench's app (one app, one port, as the webhook: bot/web/webhook.py).

Every post must carry a valid X-Twilio-Signature (twilio's RequestValidator, with the auth
token, over the address the provider used: WEB_URL and the path); one without is refused
(403) and nothing is read or written. Until the bot has started (`open`) and once it is
stopping (`close`) the answer is 503: the provider tries again.

A text from a number:
- not known yet: if it is a project's code (as on the poster), the number is kept (sealed,
  found by its keyed hash: bot/sms.py `NumberKey`), given a chat (SMS_BASE + n), and the
  text becomes `/start CODE`; anything else gets one short reply saying to text the code
  (in the answer's TwiML), and nothing about the number is kept. STOP gets nothing at all.
- known: the carriers' words (the whole text, any case) become our commands: STOP,
  STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT → /stop, and nothing more is texted but one
  reply saying to text START; START, UNSTOP (and YES while stopped) → /resume; HELP, INFO →
  /help. A code from a number that has not joined is `/start CODE`. Any other text goes to
  the flows as it is.
The text becomes an Update from the member (private chat and user id = their chat id), with
update id SMS_BASE + the sms_inbound row kept for its MessageSid (a retried post is the
same update), recorded in the durable inbox before the answer (bot/receiving.py
`DurableUpdateQueue.put`), exactly as a webhook's update. A photo or voice note (MMS): its
words, if any, are handled as usual, and the member is told kindly that photos and voice
work only on Telegram. The answer is 200 with empty TwiML.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from telegram import Update
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from bot.catalogue import t, writing_to
from bot.channels import SMS_BASE
from bot.receiving import CocreateApplication
from bot.sms import INBOUND_PATH, STATUS_PATH, ChannelRequest, SmsAdapter, carrier_word
from conversations.safeguarding import at_risk, risk_phrases
from storage.models import Project

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?=\s|$)")
_CODE = re.compile(r"[^\s]{1,64}")


def twiml(*texts: str) -> Response:
    """A TwiML answer: these texts as replies (none: an empty <Response/>)."""
    answer = MessagingResponse()
    for text in texts:
        answer.message(text)
    return Response(str(answer), media_type="text/xml")


def text_update(update_id: int, chat_id: int, text: str, date: int) -> dict[str, Any]:
    """A Bot API Update of a text from an SMS member (a command gets its entity)."""
    person = {"id": chat_id, "is_bot": False, "first_name": ""}
    message: dict[str, Any] = {
        "message_id": update_id % 2**31,
        "date": date,
        "chat": {"id": chat_id, "type": "private", "first_name": ""},
        "from": person,
        "text": text,
    }
    command = _COMMAND.match(text)
    if command is not None:
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": command.end()}]
    return {"update_id": update_id, "message": message}


class SmsRoutes:
    """The SMS routes of the workbench's app, and whether they take posts now."""

    def __init__(self, application: CocreateApplication, adapter: SmsAdapter) -> None:
        settings = application.resources.settings
        assert settings.twilio_auth_token is not None
        self.application = application
        self.adapter = adapter
        self.public_url = settings.workbench_url  # the address the provider posts to
        self._validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
        self._tasks: set[asyncio.Task[None]] = set()
        self.taking = False

    @classmethod
    def of(cls, application: CocreateApplication) -> SmsRoutes | None:
        """The SMS routes of a bot built with SMS on (bot/app.py), else None."""
        request = application.bot.request
        if isinstance(request, ChannelRequest) and request.sms is not None:
            return cls(application, request.sms)
        return None

    def routes(self) -> list[BaseRoute]:
        """The routes to add to the workbench's app."""
        return [
            Route(INBOUND_PATH, self.inbound, methods=["POST"]),
            Route(STATUS_PATH, self.status, methods=["POST"]),
        ]

    async def open(self) -> None:
        """Takes posts from now on (the bot has started)."""
        self.taking = True

    def close(self) -> None:
        """Takes no more posts (the bot is stopping): the provider tries again later."""
        self.taking = False

    async def settled(self) -> None:
        """Waits for the texts the routes started sending (the reply to STOP, about MMS)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ---- the posts

    async def _signed_form(self, request: Request) -> dict[str, str] | None:
        """The posted form, if its signature is the provider's; else None."""
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            logger.warning("An SMS post without a signature was refused")
            return None
        body = (await request.body()).decode("utf-8", "replace")
        form = dict(parse_qsl(body, keep_blank_values=True))
        url = self.public_url + request.url.path
        if request.url.query:
            url += f"?{request.url.query}"
        if not self._validator.validate(url, form, signature):
            logger.warning("An SMS post with a wrong signature was refused")
            return None
        return form

    async def status(self, request: Request) -> Response:
        """A text's delivery status: queued, sent, delivered, undelivered or failed."""
        form = await self._signed_form(request)
        if form is None:
            return Response(status_code=403)
        if not self.taking:
            return Response(status_code=503, headers={"retry-after": "1"})
        row = request.query_params.get("m", "")
        status = form.get("MessageStatus") or form.get("SmsStatus") or ""
        if row.isdigit() and status:
            await self.application.resources.store.sms.track(int(row), status)
        return Response(status_code=204)

    async def inbound(self, request: Request) -> Response:
        """A text from a member (see the module docstring)."""
        form = await self._signed_form(request)
        if form is None:
            return Response(status_code=403)
        if not self.taking:
            return Response(status_code=503, headers={"retry-after": "1"})
        number = form.get("From", "").strip()
        sid = form.get("MessageSid") or form.get("SmsMessageSid") or ""
        if not number or not sid:
            return Response(status_code=400)
        return await self._received(number, sid, form)

    async def _received(self, number: str, sid: str, form: Mapping[str, str]) -> Response:
        store = self.application.resources.store
        keys = self.adapter.keys
        body = form.get("Body", "")
        media = int(form.get("NumMedia") or 0) if (form.get("NumMedia") or "0").isdigit() else 0
        word = carrier_word(body)
        known = await store.sms.by_hash(keys.hash(number))
        stopping = False
        text: str | None = body if body.strip() else None
        if known is None:
            project = await self._project(body)
            if project is None:  # nothing is kept about a number that did not join
                if word == "stop":
                    return twiml()
                return twiml(*self._crisis_help(body), *self._join_hint())
            known = await store.sms.add(keys.hash(number), keys.seal(number))
            text = f"/start {project.code}"
        elif word == "stop":
            stopping = await store.sms.set_stopped(known.chat_id, True)
            text = "/stop"
        elif word == "start" or (word == "yes" and known.stopped):
            await store.sms.set_stopped(known.chat_id, False)
            text = "/resume"
        elif word == "help":
            text = "/help"
        elif not await store.members.exists(known.chat_id):
            project = await self._project(body)
            if project is not None:
                text = f"/start {project.code}"
        chat_id = known.chat_id
        self.adapter.remember(chat_id, number)
        update_id, fresh = await store.sms.inbound_id(sid, chat_id)
        if text is not None:
            date = int(self.application.resources.clock.now().timestamp())
            data = text_update(update_id, chat_id, text, date)
            update = Update.de_json(data, self.application.bot)
            await self.application.update_queue.put(update)  # recorded before it is queued
        language = await self.adapter.language(chat_id)
        if stopping:
            self._spawn(self.adapter.send_text(chat_id, t(language, "sms.stopped"), force=True))
        if media and fresh:
            self._spawn(self.adapter.send_text(chat_id, t(language, "sms.no_media")))
        return twiml()

    async def _project(self, body: str) -> Project | None:
        """The project whose code a text is (the whole text, any case), if any."""
        code = body.strip()
        if not _CODE.fullmatch(code):
            return None
        return await self.application.resources.store.projects.by_code(code)

    def _crisis_help(self, body: str) -> list[str]:
        """Help at once, in English and Welsh, for words that suggest a risk to life or
        safety, from someone who has not joined (nothing is kept, and no one is alerted:
        there is no one to follow up)."""
        settings = self.application.resources.settings
        if not at_risk(body, risk_phrases(settings)):
            return []
        logger.warning("Safeguarding words from a number that has not joined: help sent")
        if settings.safeguarding_help:
            return [settings.safeguarding_help]
        with writing_to(SMS_BASE):
            return [t("en", "safeguarding.help"), t("cy", "safeguarding.help")]

    @staticmethod
    def _join_hint() -> list[str]:
        """The one reply to a number that has not joined: text the project's code."""
        return [f"{t('en', 'sms.text_the_code')}\n{t('cy', 'sms.text_the_code')}"]

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
