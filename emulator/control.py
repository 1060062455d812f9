"""The member side over HTTP, under `/_emu/`: for a local chat page and out-of-process tests.

    GET  /                              the chat page (static/index.html, for `cocreate try`)
    GET  /_emu/static/{name}            its script and style sheet
    GET  /_emu/people                   [{"id", "name", "role", "hint", "intro", "steps"}]:
                                        whom the page offers; "steps" are the buttons on
                                        their empty chat, [{"label", "text"}] ("text" is sent)
    GET  /_emu/chats/{id}/commands      [{"command", "description"}]: this chat's command menu
    POST /_emu/chats/{id}/opened        the page shows this chat now (calls `on_open`, if set)

    POST /_emu/users/{id}/send          {"text", "first_name"?, "last_name"?, "username"?,
                                         "language_code"?, "reply_to"?} → {"update_id"}
    POST /_emu/users/{id}/press         {"text"} or {"data"}, "message_id"? → {"update_id"}
    POST /_emu/users/{id}/voice|photo|document|audio|video_note
                                        multipart: "file", "caption"?, "duration"?
    POST /_emu/users/{id}/sticker|location|contact   JSON like the SimUser methods
    GET  /_emu/chats/{id}/messages?after=<message_id>[&all=1]   → [message, ...]
    GET  /_emu/chats/{id}/wait?after=<message_id>&since=<version>&timeout=<s>[&all=1]
                                        long-polls for new, edited or deleted messages
    GET  /_emu/chats/{id}/answers       answerCallbackQuery answers for this member
    GET  /_emu/files/{file_id}          the bytes of any stored file
    GET  /_emu/state                    {"pending_updates", "sent": {chat_id: n}, ...}
    GET  /_emu/updates/{update_id}      {"confirmed", "dropped"}
    GET  /_emu/calls                    [{"method", "params"}, ...]
    GET  /_emu/rates                    the rate report (emulator/rates.py `RateReport`)
    POST /_emu/webhook                  {"targets"?: ["http://127.0.0.1:8001", ...],
                                         "parallel"?: n} → {"targets", "parallel"}: the
                                        proxy's targets and POSTs in flight at once
    POST /_emu/faults                   {method, status, retry_after, times, chat_id, delay}
    DELETE /_emu/faults
    POST /_emu/block/{id}, /_emu/unblock/{id}

    With an SMS provider stand-in (`emulator.sms`, emulator/sms.py), a member's phone thread:
    GET  /_emu/sms/{number}/thread?since=<version>&timeout=<s>
                                        {"version", "number": the provider's, "texts": [text,
                                        ...]}; with `since`, long-polls until something changed
    POST /_emu/sms/{number}/send        {"text"} → {"status": the bot's HTTP status}: the member
                                        texts the number (`SmsProvider.text`, signed as Twilio)
    A text is {key, from_me, text, media, status, answered, error}: `status` is the delivery
    status of the bot's texts; `answered`/`error` what the bot's web app said to the member's.

A message is {message_id, text, buttons, callback_data, kind, file_name, file_url, mime_type,
date, edited, deleted, version, reply_markup, from_bot}; `version` grows with every change in
the chat, so a page can pass the highest one it saw as `since` to hear about edits. Errors are
{"error": "..."} with 400 (bad input) or 404 (no such button or message).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Protocol

from aiohttp import BodyPartReader, ClientError, web

from emulator.faults import Faults
from emulator.member import SimUser
from emulator.methods import UploadedFile
from emulator.sms import InboundSms, SentSms, SmsProvider
from emulator.state import JSON, BotMessage, Chat, MemberMessage, TelegramState, wait_until


class Emulated(Protocol):
    """What the member-side API needs of the emulator (emulator/emulator.py's `Emulator`,
    which builds these routes: a protocol, so neither module imports the other's)."""

    state: TelegramState
    people: list[dict[str, Any]]
    sms: SmsProvider | None
    on_open: Callable[[int], None] | None
    webhook_parallel: int

    @property
    def webhook_targets(self) -> list[str]: ...

    def set_webhook_targets(self, targets: list[str]) -> None: ...

    @property
    def url(self) -> str: ...

    @property
    def users(self) -> list[SimUser]: ...

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]: ...

    @property
    def commands(self) -> dict[str, list[dict[str, str]]]: ...

    @property
    def faults(self) -> Faults: ...

    @property
    def webhook_url(self) -> str | None: ...

    @property
    def pending_updates(self) -> int: ...

    def user(
        self,
        user_id: int,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> SimUser: ...

    def open_chat(self, user_id: int, **profile: Any) -> SimUser: ...

    def block(self, user_id: int, *, notify: bool = False) -> None: ...

    def unblock(self, user_id: int, *, notify: bool = False) -> None: ...


__all__ = ["ControlRoutes"]

MAX_WAIT = 60.0  # seconds a /wait may hold the request
_UPLOAD_KINDS = ("voice", "photo", "document", "audio", "video_note")
_MEMBER_KINDS = (*_UPLOAD_KINDS, "text", "sticker", "location", "contact")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The chat page's files (emulator/static/), by the name they are served under.
_PAGE_FILES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}


def _guarded(handler: Handler) -> Handler:
    """Turn the member API's expected failures into JSON errors."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except LookupError as exc:
            return web.json_response({"error": str(exc).strip("'\"")}, status=404)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    return wrapper


def _int(value: str | None, name: str, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise ValueError(f"{name} is required")
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    body = await request.json()
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _page_file(name: str) -> web.Response:
    """A file of the chat page; never cached, so a new version shows on reload."""
    data = (resources.files("emulator") / "static" / name).read_bytes()
    return web.Response(
        body=data,
        content_type=_PAGE_FILES[name],
        charset="utf-8",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


class ControlRoutes:
    """aiohttp handlers for the member-side API of one Emulator."""

    def __init__(self, emulator: Emulated) -> None:
        self._emu = emulator

    def add_to(self, app: web.Application) -> None:
        """Register the routes on `app`."""
        routes = [
            ("GET", "/", self.page),
            ("GET", "/_emu/static/{name}", self.static),
            ("GET", "/_emu/people", self.people),
            ("GET", "/_emu/chats/{id}/commands", self.commands),
            ("POST", "/_emu/chats/{id}/opened", self.opened),
            ("POST", "/_emu/users/{id}/send", self.send),
            ("POST", "/_emu/users/{id}/press", self.press),
            ("POST", "/_emu/users/{id}/{kind}", self.send_other),
            ("GET", "/_emu/chats/{id}/messages", self.messages),
            ("GET", "/_emu/chats/{id}/wait", self.wait),
            ("GET", "/_emu/chats/{id}/answers", self.answers),
            ("GET", "/_emu/files/{file_id}", self.file),
            ("GET", "/_emu/state", self.state),
            ("GET", "/_emu/updates/{update_id}", self.update),
            ("GET", "/_emu/calls", self.calls),
            ("GET", "/_emu/rates", self.rates),
            ("POST", "/_emu/webhook", self.webhook),
            ("POST", "/_emu/faults", self.add_fault),
            ("DELETE", "/_emu/faults", self.clear_faults),
            ("POST", "/_emu/chats/open", self.open_chats),
            ("POST", "/_emu/block/{id}", self.block),
            ("POST", "/_emu/unblock/{id}", self.unblock),
            ("GET", "/_emu/sms/{number}/thread", self.sms_thread),
            ("POST", "/_emu/sms/{number}/send", self.sms_send),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, _guarded(handler))

    def _user(self, request: web.Request, **profile: Any) -> SimUser:
        user_id = _int(request.match_info["id"], "user id")
        if user_id <= 0:
            raise ValueError("a user id is a positive integer")
        return self._emu.user(user_id, **profile)

    def _chat(self, request: web.Request) -> Chat:
        return self._emu.state.chat(self._user(request).id)

    # ---- the chat page

    async def page(self, request: web.Request) -> web.StreamResponse:
        return _page_file("index.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "index.html" or name not in _PAGE_FILES:
            raise LookupError("no such file")
        return _page_file(name)

    async def people(self, request: web.Request) -> web.StreamResponse:
        people = self._emu.people or [
            {
                "id": user.id,
                "name": user.first_name,
                "role": "member",
                "hint": "",
                "intro": "This is the start of your chat with the bot.",
                "steps": [{"label": "Start", "text": "/start"}],
            }
            for user in self._emu.users
        ]
        return web.json_response(people)

    async def commands(self, request: web.Request) -> web.StreamResponse:
        chat_id = self._user(request).id
        # The most specific menu Telegram would show this chat (ignoring languages).
        known = self._emu.commands
        menu = (
            known.get(f"chat:{chat_id}") or known.get("all_private_chats") or known.get("default")
        )
        return web.json_response(menu or [])

    async def opened(self, request: web.Request) -> web.StreamResponse:
        user_id = self._user(request).id
        if self._emu.on_open is not None:
            self._emu.on_open(user_id)
        return web.json_response({"ok": True})

    # ---- member actions

    async def send(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        text = body.get("text")
        if not isinstance(text, str) or not text:
            raise ValueError("text is required")
        profile = {
            key: body.get(key)
            for key in ("first_name", "last_name", "username", "language_code")
            if body.get(key) is not None
        }
        user = self._user(request, **profile)
        reply_to = body.get("reply_to")
        update_id = user.send(text, reply_to=int(reply_to) if reply_to is not None else None)
        return web.json_response({"update_id": update_id})

    async def press(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        user = self._user(request)
        message_id = body.get("message_id")
        message_id = int(message_id) if message_id is not None else None
        data = body.get("data")
        if isinstance(data, str):
            if message_id is None:
                # The message showing a button with this data, if any (else a forged press).
                message_id = next(
                    (
                        m.message_id
                        for m in reversed(user.messages)
                        if not m.deleted and any(data in row for row in m.callback_data)
                    ),
                    None,
                )
            update_id = user.press_callback(data, message_id=message_id)
        elif isinstance(body.get("text"), str):
            update_id = user.press(body["text"], message_id=message_id)
        else:
            raise ValueError("text or data is required")
        return web.json_response({"update_id": update_id})

    async def send_other(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        user = self._user(request)
        if kind in _UPLOAD_KINDS:
            update_id = await self._upload(request, user, kind)
        elif kind in ("sticker", "location", "contact"):
            body = await _json_body(request)
            if kind == "sticker":
                update_id = user.send_sticker(str(body.get("emoji", "😀")))
            elif kind == "location":
                update_id = user.send_location(float(body["latitude"]), float(body["longitude"]))
            else:
                update_id = user.send_contact(
                    str(body.get("phone_number", user.phone_number)),
                    str(body.get("first_name", user.first_name)),
                    body.get("last_name"),
                    body.get("user_id", user.id),
                )
        else:
            raise LookupError(f"unknown member action {kind!r}")
        return web.json_response({"update_id": update_id})

    async def _upload(self, request: web.Request, user: SimUser, kind: str) -> int:
        fields: dict[str, str] = {}
        upload: UploadedFile | None = None
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                continue
            data = await part.read(decode=True)
            if part.name == "file":
                upload = UploadedFile(part.filename, part.headers.get("Content-Type"), bytes(data))
            elif part.name:
                fields[part.name] = data.decode(part.get_charset("utf-8"))
        if upload is None:
            raise ValueError('a multipart field "file" is required')
        caption = fields.get("caption") or None
        duration = _int(fields.get("duration"), "duration", 3 if kind != "video_note" else 2)
        mime = upload.content_type
        if kind == "voice":
            return user.send_voice(upload.data, duration, mime or "audio/ogg", caption)
        if kind == "photo":
            return user.send_photo(upload.data, caption)
        if kind == "document":
            return user.send_document(
                upload.data,
                upload.filename or "file",
                mime or "application/octet-stream",
                caption,
            )
        if kind == "audio":
            return user.send_audio(
                upload.data,
                duration,
                upload.filename or "audio.mp3",
                mime or "audio/mpeg",
                caption=caption,
            )
        return user.send_video_note(upload.data, duration)

    # ---- what the member sees

    def _message_dict(self, message: BotMessage) -> JSON:
        file_url = f"{self._emu.url}/_emu/files/{message.file_id}" if message.file else None
        return {
            "message_id": message.message_id,
            "from_bot": True,
            "text": message.text,
            "kind": message.kind,
            "buttons": message.buttons,
            "callback_data": message.callback_data,
            "reply_markup": message.reply_markup,
            "file_name": message.file_name,
            "mime_type": message.mime_type,
            "file_url": file_url,
            "date": message.date,
            "edited": message.edited,
            "deleted": message.deleted,
            "version": message.version,
        }

    def _member_message_dict(self, message: MemberMessage) -> JSON:
        payload = message.payload
        kind = next((k for k in _MEMBER_KINDS if k in payload), "text")
        media = payload.get(kind)
        file_id = None
        if isinstance(media, list) and media:
            file_id = media[-1].get("file_id")
        elif isinstance(media, dict):
            file_id = media.get("file_id")
        return {
            "message_id": message.message_id,
            "from_bot": False,
            "text": payload.get("text", payload.get("caption")),
            "kind": kind,
            "buttons": [],
            "callback_data": [],
            "reply_markup": None,
            "file_name": media.get("file_name") if isinstance(media, dict) else None,
            "mime_type": media.get("mime_type") if isinstance(media, dict) else None,
            "file_url": f"{self._emu.url}/_emu/files/{file_id}" if file_id else None,
            "date": payload["date"],
            "edited": False,
            "deleted": False,
            "version": message.version,
            "payload": payload,
        }

    def _select(self, chat: Chat, after: int, since: int, everything: bool) -> list[JSON]:
        chosen: list[tuple[int, JSON]] = [
            (m.message_id, self._message_dict(m))
            for m in chat.bot_messages
            if m.message_id > after or m.version > since
        ]
        if everything:
            chosen += [
                (m.message_id, self._member_message_dict(m))
                for m in chat.member_messages.values()
                if m.message_id > after or m.version > since
            ]
        return [message for _, message in sorted(chosen, key=lambda pair: pair[0])]

    async def messages(self, request: web.Request) -> web.StreamResponse:
        chat = self._chat(request)
        after = _int(request.query.get("after"), "after", 0)
        everything = request.query.get("all") in ("1", "true")
        return web.json_response(self._select(chat, after, chat.version, everything))

    async def wait(self, request: web.Request) -> web.StreamResponse:
        chat = self._chat(request)
        after = _int(request.query.get("after"), "after", 0)
        # Without `since`, edits made while waiting count; earlier ones are old news.
        since = _int(request.query.get("since"), "since", chat.version)
        timeout = min(float(request.query.get("timeout", "10")), MAX_WAIT)
        everything = request.query.get("all") in ("1", "true")
        state = self._emu.state
        await wait_until(
            chat.changed,
            lambda: bool(self._select(chat, after, since, everything)) or state.closing.is_set(),
            timeout,
        )
        return web.json_response(self._select(chat, after, since, everything))

    async def answers(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._user(request).callback_answers)

    async def file(self, request: web.Request) -> web.StreamResponse:
        stored = self._emu.state.files.by_id(request.match_info["file_id"])
        if stored is None:
            raise LookupError("no such file")
        headers = {}
        if stored.file_name:
            headers["Content-Disposition"] = f'inline; filename="{stored.file_name}"'
        return web.Response(
            body=stored.data,
            content_type=stored.mime_type or "application/octet-stream",
            headers=headers,
        )

    # ---- a member's phone (SMS)

    def _phone(self, request: web.Request) -> tuple[SmsProvider, str]:
        provider = self._emu.sms
        if provider is None:
            raise LookupError("no SMS provider here")
        return provider, request.match_info["number"]

    @staticmethod
    def _text_dict(sms: SentSms | InboundSms) -> JSON:
        if isinstance(sms, SentSms):
            return {
                "key": f"out-{sms.sid}",
                "from_me": False,
                "text": sms.body,
                "media": [],
                "status": sms.status,
                "answered": None,
                "error": None,
            }
        return {
            "key": f"in-{sms.sid}",
            "from_me": True,
            "text": sms.body,
            "media": sms.media,
            "status": None,
            "answered": sms.http_status,
            "error": sms.error,
        }

    def _thread(self, provider: SmsProvider, number: str) -> JSON:
        return {
            "version": provider.version,
            "number": provider.number,
            "texts": [self._text_dict(sms) for sms in provider.thread(number)],
        }

    async def sms_thread(self, request: web.Request) -> web.StreamResponse:
        provider, number = self._phone(request)
        since = request.query.get("since")
        if since is not None:
            seen = _int(since, "since")
            timeout = min(float(request.query.get("timeout", "10")), MAX_WAIT)
            state = self._emu.state
            await wait_until(
                provider.changed,
                lambda: provider.version > seen or state.closing.is_set(),
                timeout,
            )
        return web.json_response(self._thread(provider, number))

    async def sms_send(self, request: web.Request) -> web.StreamResponse:
        provider, number = self._phone(request)
        text = (await _json_body(request)).get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text is required")
        try:
            status, _ = await provider.text(number, text)
        except (ClientError, TimeoutError):
            return web.json_response({"error": "the bot did not answer"}, status=502)
        return web.json_response({"status": status})

    # ---- the emulator itself

    async def state(self, request: web.Request) -> web.StreamResponse:
        emu = self._emu
        return web.json_response(
            {
                "pending_updates": emu.pending_updates,
                "sent": {str(chat_id): n for chat_id, n in emu.state.sent.items()},
                "webhook_url": emu.webhook_url,
                "users": sorted(emu.state.chats),
                "blocked": sorted(c.id for c in emu.state.chats.values() if c.blocked),
                "faults": len(emu.faults),
                # 429s answered by Telegram's overall flood limit (None: the limit is off).
                "flood_refused": emu.state.flood.refused if emu.state.flood else None,
                # Texts the bot sent each phone number (the SMS stand-in's, if any).
                "sms_sent": _sms_counts(emu.sms),
            }
        )

    async def update(self, request: web.Request) -> web.StreamResponse:
        update_id = _int(request.match_info["update_id"], "update_id")
        updates = self._emu.state.updates
        return web.json_response(
            {"confirmed": updates.is_confirmed(update_id), "dropped": updates.is_dropped(update_id)}
        )

    async def rates(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._emu.state.rates.report().as_dict())

    async def webhook(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        emu = self._emu
        targets = body.get("targets")
        if targets is not None:
            if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                raise ValueError("targets is a list of URLs")
            emu.set_webhook_targets(targets)
        parallel = body.get("parallel")
        if parallel is not None:
            if not isinstance(parallel, int) or isinstance(parallel, bool):
                raise ValueError("parallel is an integer")
            emu.webhook_parallel = parallel
        return web.json_response({"targets": emu.webhook_targets, "parallel": emu.webhook_parallel})

    async def calls(self, request: web.Request) -> web.StreamResponse:
        def plain(value: Any) -> Any:
            if isinstance(value, UploadedFile):
                return {"filename": value.filename, "size": len(value.data)}
            return value

        return web.json_response(
            [
                {"method": method, "params": {k: plain(v) for k, v in params.items()}}
                for method, params in self._emu.calls
            ]
        )

    async def add_fault(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        self._emu.faults.add(
            method=body.get("method"),
            status=body.get("status"),
            retry_after=body.get("retry_after"),
            times=body.get("times", 1),
            chat_id=body.get("chat_id"),
            delay=float(body.get("delay") or 0.0),
            description=body.get("description"),
        )
        return web.json_response({"ok": True, "faults": len(self._emu.faults)})

    async def clear_faults(self, request: web.Request) -> web.StreamResponse:
        self._emu.faults.clear()
        return web.json_response({"ok": True})

    async def open_chats(self, request: web.Request) -> web.StreamResponse:
        """Members who wrote to the bot before (`{"ids": [...]}`), so it may write to them."""
        body = await _json_body(request)
        ids = body.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) and i > 0 for i in ids):
            raise ValueError("ids is a list of user ids")
        for user_id in ids:
            self._emu.open_chat(user_id)
        return web.json_response({"opened": len(ids)})

    async def block(self, request: web.Request) -> web.StreamResponse:
        self._emu.block(self._user(request).id)
        return web.json_response({"ok": True})

    async def unblock(self, request: web.Request) -> web.StreamResponse:
        self._emu.unblock(self._user(request).id)
        return web.json_response({"ok": True})


def _sms_counts(provider: SmsProvider | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sms in [*provider.sent, *provider.replies] if provider is not None else []:
        counts[sms.to] = counts.get(sms.to, 0) + 1
    return counts
