"""Members without Telegram take part by SMS, in the same conversations (issue 15), through
the real bot, its web app served over HTTP, and the provider's stand-in (emulator/sms.py):
joining by the project's code, a story in three texts, a question answered by typing "2", a
broadcast tracked to "delivered", STOP and START, and /delete leaving no trace of the number.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.app import build_application, running
from bot.catalogue import t
from bot.clock import FakeClock
from bot.receiving import CocreateApplication
from bot.settings import Settings
from bot.sms import NumberKey
from bot.web.server import serving
from bot.web.sms import SmsRoutes
from emulator.sms import SmsProvider
from storage.store import Store
from tests.net import free_port
from tests.sms_member import Texter
from tests.test_questions import ask
from tests.transcript import Person, join

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
        "sms_rate": 1000,  # no pacing here (tests/test_sms_parts.py tests the pace)
        **more,
    }


@pytest.fixture
async def routes() -> SmsRoutesBox:
    return SmsRoutesBox()


class SmsRoutesBox:
    """The bot's SMS routes, once the bot fixture has made them."""

    routes: SmsRoutes | None = None


@pytest.fixture
async def bot(
    settings: Settings,
    store: Store,
    clock: FakeClock,
    provider: SmsProvider,
    routes: SmsRoutesBox,
) -> AsyncIterator[CocreateApplication]:
    """The bot with SMS on, as `cocreate run` starts it: the SMS routes are routes of the
    workbench's app, served over HTTP on WEB_PORT."""
    application = build_application(settings, store, clock)
    sms = SmsRoutes.of(application)
    assert sms is not None
    routes.routes = sms
    provider.inbound_url = f"{settings.workbench_url}/sms/inbound"
    async with (
        serving(
            application.resources,
            routes=sms.routes(),
            wake=lambda: application.delivery.wake(),  # the worker running() starts
        ),
        running(application, poll_timeout=1, sms=sms) as app,
    ):
        yield app
        await sms.settled()
        await provider.settled()


async def chat_of(store: Store, number: str) -> int:
    found = await store.sms.by_hash(NumberKey(KEY).hash(number))
    assert found is not None
    return found.chat_id


async def join_by_text(sam: Texter, code: str = "park") -> None:
    """Texts the project's code and goes through joining by typing numbers: agrees, stays
    anonymous, skips "about you"."""
    hello, languages = await sam.texts(code)
    assert hello == f"{t('en', 'start.hello')}\n{t('cy', 'start.hello')}"
    assert languages.endswith("Reply 1 for English, 2 for Cymraeg.")
    [consent] = await sam.choose("English")
    assert consent.startswith(t("en", "consent.text").split("\n")[0])
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
    await sam.choose("Menu")  # (a one-step question still open would take the "2" below)
    [story] = await store.sharing.of_member(member.id)
    assert story.status == "submitted"
    parts = await store.sharing.parts(story.id)
    assert parts["what_happened"].text == "The bus did not stop for my wheelchair."
    assert parts["what_would_help"].text == "A driver who waits."

    # ... and a facilitator's question (asked on Telegram) answered by typing "2".
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
    await staff.user.wait_messages(1, timeout=10)  # the broadcast's report
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
    [news] = [m.text for m in await ann.user.wait_messages(1, timeout=10)]
    assert news is not None and news.endswith("The park opens at nine.")
    await staff.user.wait_messages(1, timeout=10)  # the report: the broadcast is done
    assert sam.unread() == []
    assert await sam.texts("START") == [t("en", "resume.done") + "\nReply 1 for Menu."]
    member = await store.members.by_telegram_id(chat)
    assert member is not None and not member.stopped

    # 5. /delete, typed, leaves no trace of the number anywhere.
    [asking] = await sam.texts("delete")
    assert asking.startswith(t("en", "delete.ask"))
    assert await sam.choose(t("en", "delete.yes")) == [t("en", "delete.done")]
    assert await store.members.by_telegram_id(chat) is None
    await bot.resources.store.inbox.flush()
    traces = (SAM, SAM.removeprefix("+"), SAM[3:], NumberKey(KEY).hash(SAM))
    for table in await store.db.table_names():
        for found in await store.db.fetch_all(f"SELECT * FROM {table}"):
            text = " ".join(str(value) for value in found)
            assert not any(trace in text for trace in traces), table
    assert await store.sms.by_chat(chat) is None
    assert await store.sms.messages_to(chat) == []
