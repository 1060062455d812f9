"""The SMS channel's adapter (issue 15): `ChannelRequest`, `SmsAdapter`, `NumberKey`.

Every Bot API call the bot makes passes one request object. `ChannelRequest` wraps the
Telegram one (bot/transport.py): a call whose chat_id is an SMS member's (bot/channels.py)
goes to `SmsAdapter` instead, which answers as Telegram would (a Message, or True), so ptb
and the flows never know; every other call goes to Telegram unchanged.

What each call does for an SMS chat:

    sendMessage                          one SMS: the text and its buttons as plain text
                                         (bot/sms_text.py), in the member's language
    editMessageText, editMessageReplyMarkup
                                         nothing, unless the edit asks something new:
                                         answerable buttons other than those the chat was
                                         last sent (then the text and its choices)
    sendPhoto, sendVoice, sendDocument,
    sendVideo, sendAudio, sendAnimation,
    sendMediaGroup                       the caption only (nothing without one)
    anything else (sendChatAction,       nothing; success
    deleteMessage, pinChatMessage,
    setMyCommands for the chat …)

A number that texted STOP (storage/sms.py `stopped_at`) is sent nothing, but the one reply
saying how to come back (`send_text(..., force=True)`). The provider's refusals come back as
Telegram's, so bot/delivery.py's `judge` reads them unchanged: a number that opted out at the
carrier (Twilio 21610) is 403 "bot was blocked by the user" (the member is marked
unreachable); the provider's 429 is RetryAfter; its 5xx is a NetworkError (tried again);
another refusal is 400 BadRequest; a connection refused is a NetworkError caused by
aiohttp.ClientConnectorError (never sent, tried again); a timeout or a lost connection may
have sent it (unconfirmed).

Texts go through the `twilio` package's REST client (`messages.create_async`), at
SMS_API_BASE_URL (`RebasedHttpClient`), at most SMS_RATE a second from this process
(`Pace`), each with a StatusCallback to WEB_URL/sms/status naming its row, and each recorded
in sms_messages (its segments, the outbox row it came from: OUTBOX_ROW, and its status).

Phone numbers: `NumberKey` derives two keys from SMS_NUMBER_KEY: one for a keyed hash
(HMAC-SHA256) to find a number's chat, one to seal the number itself (Fernet: AES-128-CBC
with HMAC-SHA256), so a dump of the database does not show it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Literal, TypeVar

import aiohttp
from cryptography.fernet import Fernet
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from bot.catalogue import DEFAULT_LANGUAGE, LANGUAGES
from bot.channels import OUTBOX_ROW, is_sms
from bot.clock import Clock
from bot.segments import segments
from bot.settings import Settings
from bot.sms_text import button_labels, choices_line, sms_body
from storage.sms import SmsNumber
from storage.store import Store

logger = logging.getLogger(__name__)

# Twilio's API, also at an edge or region (TWILIO_EDGE, TWILIO_REGION in the environment).
TWILIO_API = re.compile(r"^https://api(?:\.[a-z0-9-]+)*\.twilio\.com(?=/|$)")
STATUS_PATH = "/sms/status"
INBOUND_PATH = "/sms/inbound"
OPTED_OUT = 21610  # Twilio: "Attempt to send to unsubscribed recipient"
MAX_BODY = 1600  # Twilio refuses a longer Body; a longer text goes as several
SEND_TIMEOUT = 15.0  # seconds for the provider to answer one send
REMEMBERED = 1000  # numbers kept in memory, for the reply that follows an erasure
MEDIA_CALLS = frozenset(
    {"sendphoto", "sendvoice", "senddocument", "sendvideo", "sendaudio", "sendanimation"}
)
T = TypeVar("T")

# Carrier words (the whole text, any case): what a member texting them wants.
STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit"})
START_WORDS = frozenset({"start", "unstop"})
HELP_WORDS = frozenset({"help", "info"})
Carrier = Literal["stop", "start", "help", "yes"]


def carrier_word(body: str) -> Carrier | None:
    """What a text is, if it is one of the carriers' words (YES counts only while stopped)."""
    word = re.sub(r"[\s.!]+$", "", body.strip()).lower()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    if word == "yes":
        return "yes"
    return None


class NumberKey:
    """Hashes (to find) and seals (to keep) phone numbers, with keys from SMS_NUMBER_KEY."""

    def __init__(self, secret: str) -> None:
        material = secret.encode()
        self._lookup = hmac.new(material, b"cocreate sms: number lookup", hashlib.sha256).digest()
        seal = hmac.new(material, b"cocreate sms: number seal", hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(seal))

    def hash(self, number: str) -> str:
        """The keyed hash a number is found by (the same number, the same hash)."""
        return hmac.new(self._lookup, number.encode(), hashlib.sha256).hexdigest()

    def seal(self, number: str) -> str:
        """The number, sealed (different each time)."""
        return self._fernet.encrypt(number.encode()).decode()

    def open(self, sealed: str) -> str:
        """The number a seal holds."""
        return self._fernet.decrypt(sealed.encode()).decode()


class Pace:
    """At most `rate` texts a second: each send takes the next free moment, and waits for it."""

    def __init__(
        self,
        rate: float,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.interval = 1.0 / rate
        self._monotonic, self._sleep = monotonic, sleep
        self._next = 0.0

    async def turn(self) -> None:
        """Waits for this send's moment."""
        now = self._monotonic()
        at = max(now, self._next)
        self._next = at + self.interval
        if at > now:
            await self._sleep(at - now)


class RebasedHttpClient(AsyncHttpClient):  # type: ignore[misc]
    """The `twilio` package's REST client's HTTP, over one aiohttp session, sent to
    SMS_API_BASE_URL instead of api.twilio.com (a provider that copies Twilio's API, or the
    local stand-in). Unlike twilio's own AsyncTwilioHttpClient it logs nothing of the request
    (twilio's logs each one's number and words at INFO)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(logging.getLogger(f"{__name__}.http"), True, SEND_TIMEOUT)
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        """One request to the provider; its status, body and headers."""
        uri = TWILIO_API.sub(lambda _: self.base_url, uri, count=1)
        sent = dict(headers or {})
        if auth is not None:
            pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            sent["Authorization"] = f"Basic {pair}"
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        limit = aiohttp.ClientTimeout(total=timeout or self.timeout)
        async with self._session.request(
            method.upper(),
            uri,
            params=params,
            data=data,
            headers=sent,
            allow_redirects=allow_redirects,
            timeout=limit,
        ) as response:
            return TwilioResponse(response.status, await response.text(), response.headers)

    async def close(self) -> None:
        """Closes the session and its connections."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


def _own(work: Coroutine[Any, Any, T]) -> Awaitable[T]:
    """Runs database work in a task of its own: it commits at once, not with the update
    being handled (whose unit is the caller's task's)."""
    return asyncio.ensure_future(work)


def _asked(markup: Mapping[str, Any] | None) -> str | None:
    """What a message's buttons ask, as a short fingerprint (their callback data, or a reply
    keyboard's labels); None if it has no buttons to answer."""
    if not markup or not button_labels(markup):
        return None
    keys: list[str] = []
    for row in markup.get("inline_keyboard") or []:
        keys += [str(b.get("callback_data")) for b in row if "callback_data" in b]
    for row in markup.get("keyboard") or []:
        keys += [str(b.get("text", "")) if isinstance(b, dict) else str(b) for b in row]
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]


def _parts(body: str) -> list[str]:
    """A text as SMS bodies the provider takes (at most MAX_BODY characters each)."""
    if len(body) <= MAX_BODY:
        return [body]
    parts, current = [], ""
    for line in body.split("\n"):
        while len(line) > MAX_BODY:
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:MAX_BODY])
            line = line[MAX_BODY:]
        joined = f"{current}\n{line}" if current else line
        if len(joined) > MAX_BODY:
            parts.append(current)
            joined = line
        current = joined
    if current:
        parts.append(current)
    return parts


def _ok(result: object) -> tuple[int, bytes]:
    return 200, json.dumps({"ok": True, "result": result}).encode()


def _refused(code: int, description: str, retry_after: int | None = None) -> tuple[int, bytes]:
    answer: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        answer["parameters"] = {"retry_after": retry_after}
    return code, json.dumps(answer).encode()


class SmsAdapter:
    """Sends an SMS chat's Bot API calls as texts (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        pace: Pace | None = None,
    ) -> None:
        assert settings.sms_on and settings.sms_number_key is not None
        assert settings.twilio_auth_token is not None
        self.settings, self.store, self.clock = settings, store, clock
        self.keys = NumberKey(settings.sms_number_key.get_secret_value())
        self.pace = pace or Pace(settings.sms_rate)
        self._token = settings.twilio_auth_token.get_secret_value()
        self._http: RebasedHttpClient | None = None
        self._client: Any = None
        # Numbers lately texted from or to, by chat: the reply that follows an erasure still
        # reaches the member whose number has just been deleted. Memory only.
        self._recent: OrderedDict[int, str] = OrderedDict()

    @property
    def status_url(self) -> str:
        """Where the provider posts delivery statuses."""
        return self.settings.workbench_url + STATUS_PATH

    async def initialize(self) -> None:
        """Opens the REST client (in the running loop: it opens an aiohttp session)."""
        if self._client is None:
            self._http = RebasedHttpClient(self.settings.sms_api_base_url)
            self._client = Client(
                self.settings.twilio_account_sid, self._token, http_client=self._http
            )

    async def shutdown(self) -> None:
        """Closes the REST client's connections."""
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.close()

    def remember(self, chat_id: int, number: str) -> None:
        """Keeps a chat's number in memory for a while (see `_recent`)."""
        self._recent[chat_id] = number
        self._recent.move_to_end(chat_id)
        while len(self._recent) > REMEMBERED:
            self._recent.popitem(last=False)

    # ---- Bot API calls

    async def call(
        self, endpoint: str, chat_id: int, params: Mapping[str, Any]
    ) -> tuple[int, bytes]:
        """Answers one Bot API call to an SMS chat as Telegram would (HTTP status, body)."""
        name = endpoint.lower()
        markup = params.get("reply_markup")
        markup = markup if isinstance(markup, Mapping) else None
        if name == "sendmessage":
            text = str(params.get("text", ""))
            return await self._deliver(chat_id, text, params.get("parse_mode"), markup, None)
        if name == "editmessagetext":
            text = str(params.get("text", ""))
            edited = int(params.get("message_id", 0))
            return await self._deliver(chat_id, text, params.get("parse_mode"), markup, edited)
        if name == "editmessagereplymarkup":
            edited = int(params.get("message_id", 0))
            return await self._deliver(chat_id, "", None, markup, edited)
        if name in MEDIA_CALLS:
            caption = str(params.get("caption") or "")
            return await self._deliver(
                chat_id, caption, params.get("parse_mode"), markup, None, media=True
            )
        if name == "sendmediagroup":
            captions = [
                str(item.get("caption") or "")
                for item in params.get("media") or []
                if isinstance(item, Mapping)
            ]
            status, body = await self._deliver(
                chat_id, "\n".join(c for c in captions if c), None, None, None, media=True
            )
            if status != 200:
                return status, body
            message = json.loads(body)["result"]
            return _ok([message for _ in captions] or [message])
        if name == "getchat":
            return _ok({"id": chat_id, "type": "private", "first_name": ""})
        return _ok(True)  # chat actions, deletions, pins, reactions: nothing to send

    async def _deliver(
        self,
        chat_id: int,
        text: str,
        parse_mode: object,
        markup: Mapping[str, Any] | None,
        edited: int | None,
        *,
        media: bool = False,
    ) -> tuple[int, bytes]:
        """Sends what a message (or an edit) says, as one text; answers with a Message."""
        language = await _own(self.language(chat_id))
        mode = str(parse_mode) if isinstance(parse_mode, str) else None
        asked = _asked(markup)
        known = await _own(self.store.sms.by_chat(chat_id))
        message_id = edited or 0
        if edited is not None and (asked is None or known is None or asked == known.asked):
            pass  # an edit that asks nothing new: nothing is sent
        else:
            if edited is not None and not text:
                body = choices_line(button_labels(markup), language)
            else:
                body = sms_body(text, language, mode, markup)
            answer = await self._send(chat_id, known, body, asked)
            if isinstance(answer, tuple):
                return answer
            message_id = answer or message_id
        message: dict[str, Any] = {
            "message_id": message_id or 1,
            "date": int(self.clock.now().timestamp()),
            "chat": {"id": chat_id, "type": "private", "first_name": ""},
        }
        message["caption" if media else "text"] = text
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = dict(markup)
        return _ok(message)

    async def language(self, chat_id: int) -> str:
        """The language the member reads (before joining: their choice so far)."""
        member = await self.store.members.by_telegram_id(chat_id)
        if member is not None:
            return member.language
        session = await self.store.sessions.get(chat_id)
        chosen = session.data.get("language")
        return chosen if isinstance(chosen, str) and chosen in LANGUAGES else DEFAULT_LANGUAGE

    # ---- texts

    async def send_text(self, chat_id: int, body: str, *, force: bool = False) -> None:
        """Sends a text of the channel's own (the reply to STOP, about photos) to a chat;
        `force`: even to a number that texted STOP."""
        known = await _own(self.store.sms.by_chat(chat_id))
        answer = await self._send(chat_id, known, body, None, force=force)
        if isinstance(answer, tuple):
            logger.warning("A text of the SMS channel's own was not sent (%s)", answer[0])

    async def _send(
        self,
        chat_id: int,
        known: SmsNumber | None,
        body: str,
        asked: str | None,
        *,
        force: bool = False,
    ) -> int | tuple[int, bytes] | None:
        """Sends one text: the id of its sms_messages row (None if nothing was sent), or
        Telegram's refusal to answer with."""
        if known is not None and known.stopped and not force:
            logger.debug("Not texting a number that texted STOP")
            return None
        if not body.strip():
            return None
        if known is not None:
            number = self.keys.open(known.sealed)
            self.remember(chat_id, number)
        elif chat_id in self._recent:  # erased just now: this is the last reply
            number = self._recent[chat_id]
        else:
            return _refused(400, "Bad Request: chat not found")
        first: int | None = None
        for part in _parts(body):
            row = None
            if known is not None:
                row = await _own(
                    self.store.sms.sending(chat_id, segments(part), OUTBOX_ROW.get(), asked)
                )
            refused = await self._create(number, part, row)
            if refused is not None:
                return refused
            first = first if first is not None else row
        return first

    async def _create(self, number: str, body: str, row: int | None) -> tuple[int, bytes] | None:
        """One text through the provider's REST API; None when it took it."""
        await self.initialize()
        await self.pace.turn()
        callback = self.status_url + (f"?m={row}" if row is not None else "")
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                sent = await self._client.messages.create_async(
                    to=number, from_=self.settings.sms_from, body=body, status_callback=callback
                )
        except TwilioRestException as exc:
            if row is not None:
                await _own(self.store.sms.track(row, "failed"))
            return _refusal(exc)
        except aiohttp.ClientConnectorError as exc:  # never sent: tried again
            if row is not None:
                await _own(self.store.sms.track(row, "failed"))
            raise NetworkError(f"SMS provider: aiohttp.{type(exc).__name__}") from exc
        except TimeoutError as exc:  # it may have been sent
            raise TimedOut("The SMS provider did not answer in time") from exc
        except aiohttp.ClientError as exc:  # the connection broke: it may have been sent
            raise NetworkError(f"SMS provider: aiohttp.{type(exc).__name__}") from exc
        if row is not None:
            await _own(self.store.sms.sent(row, str(sent.sid), str(sent.status or "queued")))
        return None


def _refusal(exc: TwilioRestException) -> tuple[int, bytes]:
    """The provider's refusal as Telegram's (see the module docstring)."""
    logger.warning("The SMS provider refused a text: HTTP %s, code %s", exc.status, exc.code)
    if exc.code == OPTED_OUT:
        return _refused(403, "Forbidden: bot was blocked by the user")
    if exc.status == 429:
        return _refused(429, "Too Many Requests: retry after 1", retry_after=1)
    if exc.status >= 500:
        return _refused(502, "Bad Gateway")
    return _refused(400, f"Bad Request: the SMS provider refused the text ({exc.code})")


def _chat_id(request_data: RequestData | None) -> int | None:
    """The chat a Bot API call is for, if it names one by number (as chat_id, or in a
    command menu's scope)."""
    if request_data is None:
        return None
    value = request_data.parameters.get("chat_id")
    scope = request_data.parameters.get("scope")
    if value is None and isinstance(scope, Mapping):
        value = scope.get("chat_id")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


class ChannelRequest(BaseRequest):
    """The bot's one request object: Telegram's, except for SMS chats (module docstring)."""

    def __init__(self, telegram: BaseRequest, sms: SmsAdapter | None = None) -> None:
        self.telegram = telegram
        self.sms = sms

    @property
    def read_timeout(self) -> float | None:
        return self.telegram.read_timeout

    async def initialize(self) -> None:
        await self.telegram.initialize()
        if self.sms is not None:
            await self.sms.initialize()

    async def shutdown(self) -> None:
        await self.telegram.shutdown()
        if self.sms is not None:
            await self.sms.shutdown()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """An SMS chat's call goes to the SMS adapter; every other call to Telegram."""
        chat_id = _chat_id(request_data)
        if self.sms is not None and chat_id is not None and is_sms(chat_id):
            assert request_data is not None
            endpoint = url.rsplit("/", 1)[-1]
            return await self.sms.call(endpoint, chat_id, request_data.parameters)
        return await self.telegram.do_request(
            url,
            method,
            request_data,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
        )
