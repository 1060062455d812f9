"""`cocreate try`: the whole bot on your own computer, in a browser, with no Telegram account.

One process holds the built-in emulator (`emulator`: the Bot API, the member API and a
chat page at `/`, all on 127.0.0.1) and the real bot, built and run exactly as `cocreate run`
does (`build_application` + `running`) and pointed at the emulator by its settings. The cast
below are people in the emulator; the organiser comes in through ORGANISER_IDS and the
facilitator is granted the role in the database at start, so nothing in the bot knows it is
being tried. The data goes to a throw-away folder (removed on exit) unless `--db` names a
file to keep. Quiet hours are off, so questions arrive at once.

Sam takes part by SMS: the same process holds a stand-in for a Twilio-compatible SMS
provider (emulator/sms.py), and the bot is given SMS settings pointing at it (a made-up
account, a number key new each run), so Sam's texts reach the bot's /sms/inbound signed as
Twilio signs them and the bot's texts to Sam go through the stand-in's REST API. The chat
page shows Sam's screen as a plain phone thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
import webbrowser
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import SecretStr
from telegram.error import TelegramError

from bot.app import build_application, running
from bot.catalogue import DEFAULT_LANGUAGE, t
from bot.clock import SystemClock
from bot.logs import configure
from bot.receiving import CocreateApplication
from bot.settings import Settings
from bot.web import WorkbenchUnavailable
from bot.web.server import listen, serving
from bot.web.sms import SmsRoutes
from conversations.workbench import sign_in_link
from emulator import Emulator, SmsProvider
from storage.store import Store
from storage.web_sessions import LINK_TTL

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8080
WORKBENCH_PORT = 8081  # the staff workbench's, unless WEB_PORT says (else any free one)
TOKEN = "100000:TRY-cocreate-on-this-computer"  # the emulator's, not a real bot's
POLL_TIMEOUT = 10  # seconds; a short long-poll lets Ctrl-C stop the bot quickly


@dataclass(frozen=True)
class FirstStep:
    """A button on an empty chat: what it says, and what it sends as if typed."""

    label: str
    text: str


@dataclass(frozen=True)
class Person:
    """Someone the chat page lets you be."""

    id: int
    name: str
    role: str  # "member", "facilitator" or "organiser"
    hint: str  # shown on the page under the switch
    intro: str  # shown on an empty chat, above the first steps
    steps: tuple[FirstStep, ...]  # buttons on an empty chat
    # "telegram", or "sms": a phone thread on the page, texting from `number`. An SMS
    # person's `id` only tells the page's people apart: the bot picks its own chat id.
    channel: str = "telegram"
    number: str = ""


def _command(command: str, what: str) -> FirstStep:
    return FirstStep(f"/{command} – {what}", f"/{command}")


MEMBER_HINT = "Tap Start to join, then try Share your story. Questions from Fran arrive here."
MEMBER_INTRO = "This is the start of your chat with the bot."
MEMBER_STEPS = (FirstStep("Start", "/start"),)
# Staff do not join as members do, so an empty staff chat offers that role's own work.
STAFF_INTRO = (
    "This is the start of your chat with the bot. You are {a_role}, so you do not need to "
    "join. Try one of these:"
)
# Sam texts the bot from a phone. The stand-in's number and Sam's are UK numbers kept for
# drama (Ofcom), never anyone's phone.
SMS_NUMBER = "+447700900000"
SAM_NUMBER = "+447700900123"
# Joining by SMS is texting a project's code (as on its poster): the try has this project.
TRY_PROJECT = ("TRY", "Try cocreate")
SAM_HINT = (
    "Sam has no Telegram, only a phone that sends texts. The bot's buttons come as numbered "
    "lines: reply with the number. Questions from Fran arrive here as texts."
)
SAM_INTRO = (
    f"These are Sam's texts with the bot's number, {SMS_NUMBER}. "
    f"To join, text the project's code: {TRY_PROJECT[0]}"
)
PEOPLE = (
    Person(1001, "Ana", "member", MEMBER_HINT, MEMBER_INTRO, MEMBER_STEPS),
    Person(1002, "Bryn", "member", MEMBER_HINT, MEMBER_INTRO, MEMBER_STEPS),
    Person(1003, "Cai", "member", MEMBER_HINT, MEMBER_INTRO, MEMBER_STEPS),
    Person(4001, "Sam", "member", SAM_HINT, SAM_INTRO, (), channel="sms", number=SAM_NUMBER),
    Person(
        2001,
        "Fran",
        "facilitator",
        "Type /ask to ask the members a question, then switch to a member to answer it. "
        "Also /broadcast, /responses, /scheduled, and /workbench for the web workbench.",
        STAFF_INTRO.format(a_role="a facilitator"),
        (_command("ask", "Ask the members a question"), _command("responses", "Read the answers")),
    ),
    Person(
        3001,
        "Olu",
        "organiser",
        "Type /export to download what people said, /invite to invite a facilitator, "
        "/roles to see the team, /workbench to sign in to the web workbench.",
        STAFF_INTRO.format(a_role="an organiser"),
        (
            _command("export", "Download what people said"),
            _command("invite", "Invite a facilitator"),
            _command("stats", "See how many took part"),
        ),
    ),
)
FACILITATOR = next(p for p in PEOPLE if p.role == "facilitator")
ORGANISER = next(p for p in PEOPLE if p.role == "organiser")
STAFF_IDS = frozenset(p.id for p in PEOPLE if p.role != "member")


class PortUnavailable(RuntimeError):
    """The port asked for with --port cannot be listened on."""


@dataclass(frozen=True)
class TryData:
    """Where this try keeps its data, and where the emulator's ids start."""

    db: Path
    media: Path
    kept: bool  # --db: the database stays after the try
    first_id: int


def try_bot(settings: Settings, *, port: int | None, db: Path | None, open_browser: bool) -> int:
    """Runs the try until Ctrl-C or SIGTERM; returns the exit code."""
    # LOG_LEVEL if it was set; otherwise only warnings, so the chat page is the news.
    level = settings.log_level if "log_level" in settings.model_fields_set else "WARNING"
    configure(level, [TOKEN])
    folder = None if db is not None else Path(tempfile.mkdtemp(prefix="cocreate-try-"))
    try:
        if folder is not None:
            data = TryData(folder / "cocreate-try.db", folder / "media", kept=False, first_id=1)
        else:
            assert db is not None
            path = db.expanduser().resolve()
            # A kept database remembers the update and message ids of the last try.
            first_id = int(time.time() * 1000)
            data = TryData(path, path.with_name(f"{path.stem}-media"), True, first_id)
        data.media.mkdir(parents=True, exist_ok=True)
        asyncio.run(_try(settings, data, port=port, open_browser=open_browser))
    except PortUnavailable as exc:
        print(f"cocreate: {exc}", file=sys.stderr)
        return 1
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    print("Stopped.", flush=True)
    return 0


async def _try(settings: Settings, data: TryData, *, port: int | None, open_browser: bool) -> None:
    """Starts the emulator and the bot, waits for SIGINT or SIGTERM, stops both."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Unwound in reverse: the bot stops, the database closes, the emulator stops.
    async with contextlib.AsyncExitStack() as stack:
        emulator = await start_emulator(port, data.first_id)
        stack.push_async_callback(emulator.stop)
        # Sam's SMS provider, stopped after the bot (which may text while it stops).
        sms = await start_sms_provider()
        stack.push_async_callback(sms.stop)
        emulator.sms = sms
        emulator.people = [asdict(person) for person in PEOPLE]
        for person in PEOPLE:
            if person.channel == "sms":
                continue
            if person.role == "member":
                emulator.user(person.id, first_name=person.name)
            else:  # staff have opened the bot before, so alerts and reports can reach them
                emulator.open_chat(person.id, first_name=person.name)

        web = workbench_socket(settings)
        stack.callback(web.close)
        settings = _settings_for(settings, emulator, data, web_port=web.getsockname()[1], sms=sms)
        sms.inbound_url = settings.workbench_url + "/sms/inbound"
        clock = SystemClock(settings.tz)
        store = await Store.open_url(settings.database_url, clock.now)
        stack.push_async_callback(store.close)
        await store.roles.grant_facilitator(
            FACILITATOR.id, FACILITATOR.name, granted_by=ORGANISER.id
        )
        if await store.projects.by_code(TRY_PROJECT[0]) is None:  # a kept database has it
            await store.projects.add(*TRY_PROJECT)
        application = build_application(settings, store, clock)
        # The staff workbench, as `cocreate run` serves it: /workbench sends a sign-in link;
        # Sam's texts come to its SMS routes (bot/web/sms.py), as with `cocreate run`.
        sms_routes = SmsRoutes.of(application)
        routes = sms_routes.routes() if sms_routes is not None else []
        await stack.enter_async_context(
            serving(application.resources, web, routes, wake=lambda: application.delivery.wake())
        )
        await stack.enter_async_context(
            running(application, poll_timeout=POLL_TIMEOUT, sms=sms_routes)
        )
        # Olu and Fran find a sign-in link in their chat when they first open it.
        links = SignInLinks(application)
        emulator.on_open = links.opened
        stack.push_async_callback(links.close)

        _announce(emulator.url, settings.workbench_url, data)
        if open_browser and _has_display():
            if not await asyncio.to_thread(webbrowser.open, emulator.url):
                logger.warning("Could not open a browser; open %s yourself", emulator.url)
        await stop.wait()
        print("Stopping…", flush=True)


class SignInLinks:
    """Sends Olu and Fran a sign-in link to the workbench the first time the chat page opens
    their chat (not at start: a link works for 10 minutes only), as /workbench does; the
    message says to send /workbench for a new one. Nothing in the bot knows it is tried."""

    def __init__(self, application: CocreateApplication) -> None:
        self.application = application
        self.sent: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def opened(self, user_id: int) -> None:
        """The chat page shows this person's chat (the emulator's `on_open`)."""
        if user_id not in STAFF_IDS or user_id in self.sent:
            return
        self.sent.add(user_id)
        task = asyncio.create_task(self.send(user_id), name="try-sign-in-link")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send(self, user_id: int) -> None:
        """Makes a link and sends it, in the words /workbench uses."""
        resources = self.application.resources
        token = await resources.store.web_sessions.make_link(user_id)
        link = sign_in_link(resources.settings.workbench_url, token)
        text = t(
            DEFAULT_LANGUAGE,
            "workbench.link",
            link=link,
            minutes=int(LINK_TTL.total_seconds() // 60),
        )
        try:
            await self.application.bot.send_message(user_id, text)
        except TelegramError as exc:
            logger.warning("Could not send a sign-in link: %s", exc)

    async def close(self) -> None:
        """Waits for links being sent (the try is stopping)."""
        if self._tasks:
            await asyncio.wait(self._tasks)


def _announce(url: str, workbench: str, data: TryData) -> None:
    """Tells the person at the terminal where to go."""
    members = ", ".join(
        p.name + (" (by SMS)" if p.channel == "sms" else "") for p in PEOPLE if p.role == "member"
    )
    where = (
        f"kept in {data.db}"
        if data.kept
        else f"a throw-away folder, removed when you stop: {data.db.parent}"
    )
    print(
        "cocreate try: the real bot, talking to a stand-in for Telegram on this computer.\n"
        f"  Open {url} in your browser.\n"
        f"  Be {members} (members), {FACILITATOR.name} (facilitator) or "
        f"{ORGANISER.name} (organiser).\n"
        f"  The staff workbench is at {workbench}: open {ORGANISER.name}'s or "
        f"{FACILITATOR.name}'s chat for a link that signs you in (/workbench sends a new one).\n"
        f"  Data: {where}\n"
        "  Press Ctrl-C to stop.",
        flush=True,
    )


async def start_emulator(port: int | None, first_id: int) -> Emulator:
    """The emulator on the port asked for, else on 8080, else on any free port."""
    for candidate in (DEFAULT_PORT, 0) if port is None else (port,):
        emulator = Emulator(
            TOKEN,
            bot_username="cocreate_try_bot",
            bot_first_name="cocreate",
            port=candidate,
            first_id=first_id,
        )
        try:
            return await emulator.start()
        except OSError as exc:
            if port is not None:
                raise PortUnavailable(
                    f"cannot use port {port} ({exc.strerror}): choose another with --port, "
                    "or leave it out"
                ) from None
            if exc.errno != errno.EADDRINUSE or candidate == 0:
                raise
    raise AssertionError("unreachable: port 0 always binds or raises")


async def start_sms_provider() -> SmsProvider:
    """The SMS provider stand-in on a free port, with a made-up account."""
    account = "AC" + secrets.token_hex(16)
    provider = SmsProvider(account, secrets.token_urlsafe(24), number=SMS_NUMBER)
    return await provider.start()


def workbench_socket(settings: Settings) -> socket.socket:
    """The workbench's listening socket: on WEB_PORT if it was set, else on WORKBENCH_PORT,
    else on any free port (on this computer only)."""
    if "web_port" in settings.model_fields_set:
        try:
            return listen("127.0.0.1", settings.web_port)
        except WorkbenchUnavailable as exc:
            raise PortUnavailable(str(exc)) from None
    try:
        return listen("127.0.0.1", WORKBENCH_PORT)
    except WorkbenchUnavailable:
        return listen("127.0.0.1", 0)


def _settings_for(
    settings: Settings, emulator: Emulator, data: TryData, *, web_port: int, sms: SmsProvider
) -> Settings:
    """The settings `cocreate run` would read, pointed at the emulator, the SMS provider
    stand-in and the try's data (never at a real SMS account, whatever the environment says)."""
    return settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(emulator.token),
            "telegram_api_base_url": emulator.base_url,
            "telegram_file_base_url": emulator.file_base_url,
            "database_url": f"sqlite:///{data.db}",
            "media_dir": data.media,
            "organiser_ids": [ORGANISER.id],
            "quiet_hours": "",
            "webhook_url": "",
            "webhook_secret": None,
            "port": None,
            "web_port": web_port,
            "web_listen": "127.0.0.1",
            "web_url": "",
            "sms_provider": "twilio",
            "twilio_account_sid": sms.account_sid,
            "twilio_auth_token": SecretStr(sms.auth_token),
            "sms_from": sms.number,
            "sms_api_base_url": sms.base_url,
            "sms_number_key": SecretStr(secrets.token_urlsafe(32)),
        }
    )


def _has_display() -> bool:
    """Whether a browser can be shown: not in CI, and on Linux only with a display."""
    if os.environ.get("CI"):
        return False
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
