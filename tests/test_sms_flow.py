"""Members without Telegram take part by SMS, in the same conversations (issue 15), through
the real bot, its web app served over HTTP, and the provider's stand-in (emulator/sms.py):
joining by the project's code, a story in three texts, a question answered by typing "2", a
broadcast tracked to "delivered", STOP and START, and /delete leaving no trace of the number.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import build_application, prune_inbox, running
from bot.catalogue import t, writing_to
from bot.clock import FakeClock
from bot.receiving import CocreateApplication, DurableUpdateQueue
from bot.settings import Settings
from bot.sms import NumberKey
from bot.sms_text import sms_body
from bot.web.server import serving
from bot.web.sms import SmsRoutes, text_update, twiml
from conversations.context import CocreateContext
from emulator.sms import SmsProvider
from storage.export_rows import ExportFilter
from storage.inbox import Inbox
from storage.sms import SMS_BASE
from storage.store import Store
from tests.dbs import outbox_settled
from tests.net import free_port
from tests.sms_member import Texter
from tests.test_questions import ask
from tests.transcript import Person, holds_trace, join

STAFF = 9300
SID = "AC" + "0123456789abcdef" * 2
TOKEN = "provider-auth-token"
KEY = "a long random text to seal the numbers"
NUMBER = "+447700900000"
SAM = "+447700900123"
MakePerson = Callable[..., Person]


@pytest.fixture
async def provider() -> AsyncIterator[SmsProvider]:
    async with SmsProvider(account_sid=SID, auth_token=TOKEN, number=NUMBER) as stand_in:
        yield stand_in


@pytest.fixture
def settings_overrides(provider: SmsProvider) -> dict[str, Any]:
    return sms_settings(provider.base_url, free_port())


def sms_settings(base_url: str, port: int, **more: Any) -> dict[str, Any]:
    """Settings with SMS on, through a provider at `base_url`, the web app on `port`."""
    return {
        "organiser_ids": [STAFF],
        "web_port": port,
        "sms_provider": "twilio",
        "twilio_account_sid": SID,
        "twilio_auth_token": TOKEN,
        "sms_from": NUMBER,
        "sms_number_key": KEY,
        "sms_api_base_url": base_url,
        "sms_rate": 1000,  # no pacing here (tests/test_sms_adapter.py tests the pace)
        **more,
    }


@pytest.fixture
async def routes() -> SmsRoutesBox:
    return SmsRoutesBox()


class SmsRoutesBox:
    """The bot's SMS routes, once the bot fixture has made them."""

    routes: SmsRoutes | None = None


@asynccontextmanager
async def served(
    settings: Settings, store: Store, clock: FakeClock, provider: SmsProvider
) -> AsyncIterator[tuple[CocreateApplication, SmsRoutes]]:
    """The bot with SMS on, as `cocreate run` starts it: the SMS routes are routes of the
    workbench's app, served over HTTP on WEB_PORT, where the provider posts texts."""
    application = build_application(settings, store, clock)
    sms = SmsRoutes.of(application)
    assert sms is not None
    provider.inbound_url = f"{settings.workbench_url}/sms/inbound"
    async with (
        serving(
            application.resources,
            routes=sms.routes(),
            wake=lambda: application.delivery.wake(),  # the worker running() starts
        ),
        running(application, poll_timeout=1, sms=sms) as app,
    ):
        yield app, sms
        await sms.settled()
        await provider.settled()


@pytest.fixture
async def bot(
    settings: Settings,
    store: Store,
    clock: FakeClock,
    provider: SmsProvider,
    routes: SmsRoutesBox,
) -> AsyncIterator[CocreateApplication]:
    async with served(settings, store, clock, provider) as (app, sms):
        routes.routes = sms
        yield app


async def chat_of(store: Store, number: str) -> int:
    found = await store.sms.by_hash(NumberKey(KEY).hash(number))
    assert found is not None
    return found.chat_id


async def sam_joined(
    bot: CocreateApplication, store: Store, provider: SmsProvider
) -> tuple[Texter, int]:
    """Sam, who joined project PARK by text, and his chat id."""
    await store.projects.add("PARK", "The park")
    sam = Texter(provider, bot, SAM)
    await join_by_text(sam)
    return sam, await chat_of(store, SAM)


async def join_by_text(sam: Texter, code: str = "park") -> None:
    """Texts the project's code and goes through joining by typing numbers: agrees, stays
    anonymous, skips "about you"."""
    hello, languages = await sam.texts(code)
    assert hello == f"{t('en', 'start.hello')}\n{t('cy', 'start.hello')}"
    assert languages.endswith("Reply 1 for English, 2 for Cymraeg.")
    [consent] = await sam.choose("English")
    assert consent.startswith(t("en", "consent.text.sms").split("\n")[0])
    assert consent.endswith("Reply 1 for Yes, I agree, 2 for Not now.")
    joined = await sam.choose(t("en", "consent.agree"))
    assert joined[0] == t("en", "project.joined", name="The park")
    await sam.choose(t("en", "naming.anonymous"))
    for _ in range(3):  # age, area, the organiser's question
        last = await sam.choose(t("en", "common.skip"))
    assert last[0] == t("en", "onboarding.done")


async def broadcast(staff: Person, words: str) -> None:
    """A facilitator tells all members something, now."""
    assert await staff.says("/broadcast") == [t("en", "staff.broadcast.text")]
    await staff.says(words)
    await staff.taps("All members")
    await staff.taps("Now")
    assert await staff.taps("Send") == [t("en", "staff.broadcast.sending")]


async def test_an_sms_member_joins_shares_answers_gets_news_stops_starts_and_is_deleted(
    bot: CocreateApplication,
    store: Store,
    provider: SmsProvider,
    person: MakePerson,
    routes: SmsRoutesBox,
    settings: Settings,
    tmp_path: Path,
    clock: FakeClock,
) -> None:
    await store.projects.add("PARK", "The park")
    sam = Texter(provider, bot, SAM)
    staff = person(STAFF, "Fran")

    # 1. Sam joins by texting the code on the poster, and consents, all by typing.
    await join_by_text(sam)
    chat = await chat_of(store, SAM)
    member = await store.members.by_telegram_id(chat)
    assert member is not None and member.chat_id == chat
    assert [p.code for p in await store.members.projects_of(member.id)] == ["PARK"]

    # 2. A story in three texts, saved by typing its number.
    assert await sam.choose("Share your story") == [
        t("en", "story.what_happened") + "\nReply 1 for Skip, 2 for Stop."
    ]
    await sam.texts("The bus did not stop for my wheelchair.")
    await sam.texts("I was late for my appointment.")
    [review] = await sam.texts("A driver who waits.")
    assert "A driver who waits." in review
    assert await sam.choose("Save") == [
        t("en", "story.saved"),
        t("en", "sharing.next") + "\nReply 1 for Share one more story, 2 for Menu.",
    ]
    # "Share one more?" stays open: the "2" below answers the question that came after it.
    [story] = await store.sharing.of_member(member.id)
    assert story.status == "submitted"
    parts = await store.sharing.parts(story.id)
    assert parts["what_happened"].text == "The bus did not stop for my wheelchair."
    assert parts["what_would_help"].text == "A driver who waits."

    # ... and a facilitator's question (asked on Telegram) a minute later, answered by typing "2".
    clock.advance(timedelta(minutes=1))
    await ask(staff, "Is the path too dark?", "Yes or no")
    await staff.taps("Send")
    [question] = await sam.wait()
    assert question.startswith("Is the path too dark?")
    assert question.endswith("Reply 1 for Yes, 2 for No, 3 for Skip.")
    [saved] = await sam.texts("2")
    assert saved.startswith("Thank you. We have saved your answer.")
    [asked] = await store.questions.recent(1)
    per_choice, answered, _ = await store.answers.counts(asked.id)
    assert per_choice == {"no": 1} and answered == 1
    await staff.user.wait_messages(1, timeout=10)  # the question's report

    # 3. A broadcast reaches Sam, and its delivery is tracked to "delivered".
    await broadcast(staff, "We have put in three new lights.")
    [news] = await sam.wait()
    assert news == f"{t('en', 'broadcast.header')}\n\nWe have put in three new lights."
    [report] = await staff.user.wait_messages(1, timeout=10)  # the broadcast's report
    assert t("en", "delivery.report.sms_segments", count=1) in (report.text or "")
    await provider.settled()
    [texted] = [sms for sms in provider.sent_to(SAM) if sms.body == news]
    assert provider.statuses(texted.sid) == ["sent", "delivered"]
    sent = [m for m in await store.sms.messages_to(chat) if m.sid == texted.sid]
    assert [(m.status, m.segments) for m in sent] == [("delivered", 1)]
    row = await store.db.fetch_one("SELECT chat_id FROM outbox WHERE id = ?", (sent[0].outbox_id,))
    assert row is not None and row["chat_id"] == chat  # linked to its outbox row

    # 4. STOP stops everything at once, with one reply; START brings Sam back.
    replies = await sam.texts("Stop")
    assert routes.routes is not None
    await routes.routes.settled()
    assert [*replies, *sam.unread()] == [t("en", "sms.stopped")]  # not /stop's own reply
    member = await store.members.by_telegram_id(chat)
    assert member is not None and member.stopped
    ann = person(7301, "Ann")  # on Telegram
    await join(ann)
    await broadcast(staff, "The park opens at nine.")
    [told] = await ann.user.wait_messages(1, timeout=10)
    assert (told.text or "").endswith("The park opens at nine.")
    await staff.user.wait_messages(1, timeout=10)  # the report: the broadcast is done
    assert sam.unread() == []
    assert await sam.texts("START") == [t("en", "resume.done") + "\nReply 1 for Menu."]
    member = await store.members.by_telegram_id(chat)
    assert member is not None and not member.stopped

    # The number is shown to no one and exported nowhere: staff see a pseudonym as for anyone.
    traces = (SAM, SAM.removeprefix("+"), SAM[3:], NumberKey(KEY).hash(SAM))
    await staff.says("/responses")
    assert not any(trace in (m.text or "") for m in staff.user.messages for trace in traces)
    out = tmp_path / "export"
    out.mkdir()
    for fmt, name in (("csv", "a.csv"), ("json", "a.jsonl"), ("xlsx", "a.xlsx")):
        await store.responses.export(fmt, out / name, ExportFilter(), settings.tz, actor="test")
    exported = list(out.iterdir())
    assert exported
    for path in exported:
        data = path.read_bytes()
        if path.suffix == ".xlsx":
            data = b"".join(zipfile.ZipFile(path).read(n) for n in zipfile.ZipFile(path).namelist())
        assert not any(trace.encode() in data for trace in (*traces, str(chat))), path.name

    # 5. /delete, typed, leaves no trace of the number anywhere.
    [asking] = await sam.texts("delete")
    assert asking.startswith(t("en", "delete.ask"))
    # (The erasure takes the text's sms_inbound row too, so `texts` may not find its update
    # to wait for: wait for the reply.)
    done = await sam.choose(t("en", "delete.yes")) or await sam.wait()
    assert done == [t("en", "delete.done")]
    assert await store.members.by_telegram_id(chat) is None
    await bot.resources.store.inbox.flush()
    for table in await store.db.table_names():
        for found in await store.db.fetch_all(f"SELECT * FROM {table}"):
            text = " ".join(str(value) for value in found)
            assert not any(holds_trace(text, trace) for trace in traces), table
    assert await store.sms.by_chat(chat) is None
    assert await store.sms.messages_to(chat) == []


# ---- what comes in


async def everything(store: Store) -> dict[str, list[str]]:
    """Every row of every table, as text (with the inbox's done-marks written first, and
    what was sent before recorded sent)."""
    await store.inbox.flush()
    await outbox_settled(store.db)
    tables: dict[str, list[str]] = {}
    for table in sorted(await store.db.table_names()):
        rows = await store.db.fetch_all(f"SELECT * FROM {table}")
        tables[table] = sorted(repr(tuple(row)) for row in rows)
    return tables


def post_of(provider: SmsProvider, number: str, body: str) -> dict[str, str]:
    """The form the provider posts for a text (as its last one, with a new sid and body)."""
    form = dict(provider.received[-1].form)
    sid = "SM" + "f" * 32
    form.update(From=number, Body=body, MessageSid=sid, SmsMessageSid=sid, SmsSid=sid)
    return form


async def test_unsigned_and_forged_posts_are_refused_and_change_nothing(
    bot: CocreateApplication, store: Store, provider: SmsProvider
) -> None:
    sam, chat = await sam_joined(bot, store, provider)
    [sent] = (await store.sms.messages_to(chat))[-1:]
    await provider.settled()
    before = await everything(store)
    assert provider.inbound_url is not None
    join = post_of(provider, "+447700900555", "PARK")
    help_ = post_of(provider, SAM, "HELP")
    status_url = f"{bot.resources.settings.workbench_url}/sms/status?m={sent.id}"
    failed = {"MessageSid": str(sent.sid), "MessageStatus": "failed", "AccountSid": SID}
    for url, form in (
        (provider.inbound_url, join),
        (provider.inbound_url, help_),
        (status_url, failed),
    ):
        assert (await provider.post_unsigned(url, form))[0] == 403
        assert (await provider.post_forged(url, form))[0] == 403
    assert await everything(store) == before
    assert provider.sent_to("+447700900555") == [] and sam.unread() == []
    # Signed as the provider signs, the same post is taken.
    status, _ = await provider.text("+447700900555", "PARK")
    assert status == 200
    assert await store.sms.by_hash(NumberKey(KEY).hash("+447700900555")) is not None


async def test_a_new_number_texting_anything_but_a_code_gets_one_reply_and_is_not_kept(
    bot: CocreateApplication, store: Store, provider: SmsProvider
) -> None:
    await store.projects.add("PARK", "The park")
    before = await everything(store)
    hint = f"{t('en', 'sms.text_the_code')}\n{t('cy', 'sms.text_the_code')}"
    status, answer = await provider.text(SAM, "Hello, what is this?")
    assert status == 200 and answer == str(twiml_of(hint))
    status, answer = await provider.text(SAM, "STOP")
    assert status == 200 and answer == str(twiml_of())  # STOP: not even that
    assert await everything(store) == before
    assert provider.sent_to(SAM) == []  # nothing through the REST API: no record of it
    assert [reply.body for reply in provider.replies_to(SAM)] == [hint]  # the TwiML's one
    # The code, in any case, starts joining that project.
    sam = Texter(provider, bot, SAM)
    hello, _ = await sam.texts(" Park ")
    assert hello == f"{t('en', 'start.hello')}\n{t('cy', 'start.hello')}"


def twiml_of(*texts: str) -> str:
    return bytes(twiml(*texts).body).decode()


async def test_a_retried_post_is_handled_once(
    bot: CocreateApplication, store: Store, provider: SmsProvider
) -> None:
    sam, _ = await sam_joined(bot, store, provider)
    helped = await sam.texts("help")
    assert helped[0] == sms_body(t("en", "help.text.sms"), "en")
    status, _ = await provider.repost_last(SAM)  # the provider never got our answer: again
    assert status == 200
    sid = provider.received_from(SAM)[-1].sid
    update_id = await sam.update_id(sid)
    rows = await store.db.fetch_all("SELECT * FROM inbox WHERE update_id = ?", (update_id,))
    assert len(rows) == 1
    await sam.texts("menu")  # handled after the repost: a second HELP would show by now
    assert [text for text in sam.received if text == helped[0]] == [helped[0]]


async def test_a_photo_or_voice_note_gets_a_kind_word_and_its_words_are_handled(
    bot: CocreateApplication, store: Store, provider: SmsProvider, routes: SmsRoutesBox
) -> None:
    sam, _ = await sam_joined(bot, store, provider)
    assert routes.routes is not None
    photo = await sam.texts("", media=["image/jpeg"])
    await routes.routes.settled()
    assert [*photo, *sam.unread()] == [t("en", "sms.no_media")]
    menu = await sam.texts("Menu", media=["audio/amr"])
    await routes.routes.settled()
    menu += sam.unread()
    assert sorted(menu) == sorted(
        [t("en", "sms.no_media"), next(m for m in sam.received if m.startswith("What would"))]
    )


async def test_yes_starts_again_only_after_stop(
    bot: CocreateApplication, store: Store, provider: SmsProvider, routes: SmsRoutesBox
) -> None:
    sam, chat = await sam_joined(bot, store, provider)
    stopped = await sam.texts("QUIT")
    assert routes.routes is not None
    await routes.routes.settled()
    assert [*stopped, *sam.unread()] == [t("en", "sms.stopped")]
    known = await store.sms.by_chat(chat)
    assert known is not None and known.stopped
    await sam.texts("what?")  # handled, but nothing is texted to a number that said STOP
    assert sam.unread() == []
    assert await sam.texts("Yes") == [t("en", "resume.done") + "\nReply 1 for Menu."]
    known = await store.sms.by_chat(chat)
    assert known is not None and not known.stopped


async def test_a_text_recorded_but_not_handled_before_a_crash_is_handled_at_start(
    settings: Settings, store: Store, clock: FakeClock, provider: SmsProvider
) -> None:
    # As if the last process died after recording the text (and answering 200) but before
    # handling it: the next start handles it.
    await store.projects.add("PARK", "The park")
    keys = NumberKey(KEY)
    known = await store.sms.add(keys.hash(SAM), keys.seal(SAM))
    update_id, fresh = await store.sms.inbound_id("SM" + "1" * 32, known.chat_id)
    assert fresh and update_id > SMS_BASE
    date = int(clock.now().timestamp())
    payload = json.dumps(text_update(update_id, known.chat_id, "/start PARK", date))
    await Inbox(store.db, clock.now).record(update_id, payload, known.chat_id)
    async with served(settings, store, clock, provider) as (app, _):
        await app.wait_handled(update_id)
        sam = Texter(provider, app, SAM)
        hello, languages = sam.unread()
        assert hello == f"{t('en', 'start.hello')}\n{t('cy', 'start.hello')}"
        assert languages.endswith("Reply 1 for English, 2 for Cymraeg.")
        # A Telegram update id below the SMS one is not taken for handled.
        queue = app.update_queue
        assert isinstance(queue, DurableUpdateQueue)
        assert queue.taken(update_id) and not queue.taken(10_000)
    assert await store.inbox.unfinished() == []


async def test_a_text_whose_update_id_was_kept_before_a_crash_is_recorded_when_posted_again(
    bot: CocreateApplication, store: Store, provider: SmsProvider
) -> None:
    # The process that took the post kept its update id, then died before recording the
    # update (so it never answered 200): the provider's retry records it under that id.
    sam, chat = await sam_joined(bot, store, provider)
    form = post_of(provider, SAM, "help")
    kept, fresh = await store.sms.inbound_id(form["MessageSid"], chat)
    assert fresh
    assert provider.inbound_url is not None
    signature = provider.sign(provider.inbound_url, form)
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            provider.inbound_url, data=form, headers={"X-Twilio-Signature": signature}
        )
    assert answer.status_code == 200
    await bot.wait_handled(kept)
    assert sam.unread()[0] == sms_body(t("en", "help.text.sms"), "en")
    assert await sam.update_id(form["MessageSid"]) == kept


async def test_an_sms_member_has_no_first_name_to_use_and_stays_anonymous(
    bot: CocreateApplication, store: Store, provider: SmsProvider
) -> None:
    await store.projects.add("PARK", "The park")
    sam = Texter(provider, bot, SAM)
    await sam.texts("PARK")
    await sam.choose("English")
    await sam.choose(t("en", "consent.agree"))
    named = await sam.choose(t("en", "naming.named"))
    assert named[0] == t("en", "naming.anonymous_ok")
    member = await store.members.by_telegram_id(await chat_of(store, SAM))
    assert member is not None and member.display_name is None


async def test_texts_posted_before_the_bot_has_started_are_refused_for_later(
    settings: Settings, store: Store, clock: FakeClock, provider: SmsProvider
) -> None:
    # The web app is up before the bot has started (and replayed what was left): a text
    # posted then gets 503, so the provider tries again, and nothing is kept.
    await store.projects.add("PARK", "The park")
    application = build_application(settings, store, clock)
    sms = SmsRoutes.of(application)
    assert sms is not None
    provider.inbound_url = f"{settings.workbench_url}/sms/inbound"
    before = await everything(store)
    async with serving(application.resources, routes=sms.routes()):
        status, _ = await provider.text(SAM, "PARK")
    assert status == 503
    assert await everything(store) == before
    assert provider.sent_to(SAM) == []


async def test_not_now_forgets_the_number_and_a_join_left_unfinished_is_forgotten_later(
    bot: CocreateApplication, store: Store, provider: SmsProvider, clock: FakeClock
) -> None:
    """Someone who texts the code and then says "Not now" is told how to come back, and
    their number is gone at once; someone who stops halfway through joining is forgotten by
    the daily sweep once the inbox forgets their texts."""
    await store.projects.add("PARK", "The park")
    sam = Texter(provider, bot, SAM)
    await sam.texts("park")
    [consent] = await sam.choose("English")
    assert consent.endswith("Reply 1 for Yes, I agree, 2 for Not now.")
    assert await sam.choose(t("en", "consent.not_now")) == [t("en", "consent.declined")]
    assert await store.sms.by_hash(NumberKey(KEY).hash(SAM)) is None
    tables = await everything(store)
    traces = (SAM, SAM.removeprefix("+"), NumberKey(KEY).hash(SAM))
    assert not any(trace in row for rows in tables.values() for row in rows for trace in traces)

    other = "+447700900777"
    bo = Texter(provider, bot, other)
    await bo.texts("park")  # ... and never answers
    assert await store.sms.by_hash(NumberKey(KEY).hash(other)) is not None
    await prune_inbox(CocreateContext(bot))
    assert await store.sms.by_hash(NumberKey(KEY).hash(other)) is not None  # still joining
    await store.sessions.forget(bo_chat := await chat_of(store, other))  # gave up: session gone
    clock.advance(timedelta(days=3))
    await prune_inbox(CocreateContext(bot))
    assert await store.sms.by_chat(bo_chat) is None


async def test_a_new_number_in_crisis_gets_help_at_once_and_nothing_is_kept(
    bot: CocreateApplication, store: Store, provider: SmsProvider
) -> None:
    before = await everything(store)
    status, answer = await provider.text(SAM, "I want to end my life")
    assert status == 200
    hint = f"{t('en', 'sms.text_the_code')}\n{t('cy', 'sms.text_the_code')}"
    with writing_to(SMS_BASE):
        helped = [t("en", "safeguarding.help"), t("cy", "safeguarding.help")]
    assert answer == twiml_of(*helped, hint)
    assert await everything(store) == before
