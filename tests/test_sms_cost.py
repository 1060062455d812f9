"""What SMS costs, as facilitators are told: a broadcast's or a question's preview says how
many SMS each SMS member gets and the total (nothing when none is in the audience), and a
delivery report says how many SMS segments went out. The door tells the catalogue which
channel the person it writes to is on.

SMS members are made through the store (their chat ids are from bot.channels.SMS_BASE up);
nothing here needs an SMS to be delivered: their rows are settled through the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from telegram import Update

from bot.catalogue import t, tn
from bot.channels import SMS_BASE
from bot.receiving import CocreateApplication
from bot.segments import segments
from bot.sms_cost import SMS_CHATS, AudienceCost, audience_cost, preview_text, sent_segments
from bot.sms_text import sms_body
from conversations.onboarding import CONSENT_VERSION
from storage.models import Member
from storage.outbox import Outgoing
from storage.store import Store
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
STAFF = 9150
# 68 letters: with the English header (24, and 2 newlines), 94 letters of GSM-7: 1 segment.
# The Welsh header's "tîm" makes the Welsh message UCS-2: 16 + 2 + 68 = 86 units, 2 of 67.
NEWS = "The hall is open late on Fridays now. Bring a friend if you want to."
OPTIONS = [f"Choice {i} is as long!" for i in range(1, 6)]  # 5 choices of 20 letters


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF]}


async def sms_member(store: Store, n: int, language: str = "en") -> Member:
    """A member on SMS who finished joining (as the SMS channel would make them)."""
    chat = SMS_BASE + n
    joined = await store.members.join(
        telegram_user_id=chat,
        chat_id=chat,
        language=language,
        consent_version=CONSENT_VERSION,
        agreed_to=["take_part"],
    )
    await store.members.mark_onboarded(joined.id)
    return joined


async def broadcast_preview(staff: Person, text: str) -> list[str]:
    await staff.says("/broadcast")
    await staff.says(text)
    await staff.taps(t("en", "staff.audience.everyone"))
    return await staff.taps(t("en", "staff.when.now"))


def cost_line(people: int, least: int, most: int, total: int) -> str:
    return preview_text(AudienceCost(people, least, most, total), "en")


def test_the_news_costs_one_sms_in_english_and_two_in_welsh() -> None:
    assert len(NEWS) == 68
    english = f"{t('en', 'broadcast.header')}\n\n{NEWS}"
    welsh = f"{t('cy', 'broadcast.header')}\n\n{NEWS}"
    assert (segments(sms_body(english, "en")), segments(sms_body(welsh, "cy"))) == (1, 2)


def test_the_preview_line_counts_people_sms_each_and_in_all() -> None:
    assert cost_line(1, 2, 2, 2) == " ".join(
        [
            tn("en", "staff.sms.people", 1, count=1),
            tn("en", "staff.sms.each", 2, count=2),
            tn("en", "staff.sms.total", 2, count=2),
        ]
    )
    assert cost_line(1, 2, 2, 2) == (
        "1 person gets it by SMS. It is 2 SMS for each. That is 2 SMS in all."
    )
    assert cost_line(3, 1, 2, 4) == (
        "3 people get it by SMS. It is 1 to 2 SMS for each, by their language. "
        "That is 4 SMS in all."
    )


def test_an_audience_without_sms_members_costs_nothing() -> None:
    assert audience_cost({}, lambda language: ("Hello", None)) is None
    assert audience_cost({"en": 0}, lambda language: ("Hello", None)) is None
    assert audience_cost({"en": 2, "cy": 1}, lambda language: ("Hello", None)) == AudienceCost(
        3, 1, 1, 3
    )


async def test_a_broadcast_preview_says_what_sms_members_get_and_the_total(
    person: MakePerson, store: Store
) -> None:
    ann = person(7301, "Ann")  # on Telegram: not counted
    await join(ann)
    for n, language in ((1, "en"), (2, "en"), (3, "cy")):
        await sms_member(store, n, language)
    stopped = await sms_member(store, 4)  # gets nothing now: not counted
    await store.members.set_stopped(stopped.id, True)
    staff = person(STAFF, "Fran")
    shown = await broadcast_preview(staff, NEWS)
    # Two in English get 1 SMS each, one in Welsh gets 2: 4 in all.
    assert cost_line(3, 1, 2, 4) in shown
    assert shown.index(cost_line(3, 1, 2, 4)) == len(shown) - 2  # just before "Send it?"


async def test_a_broadcast_preview_says_nothing_of_sms_when_nobody_gets_it_by_sms(
    person: MakePerson,
) -> None:
    ann = person(7302, "Ann")
    await join(ann)
    staff = person(STAFF, "Fran")
    shown = await broadcast_preview(staff, NEWS)
    assert not [text for text in shown if "SMS" in text]
    assert shown == [
        t("en", "staff.ask.preview_intro"),
        f"{t('en', 'broadcast.header')}\n\n{NEWS}",
        shown[-1],
    ]


async def test_a_question_preview_counts_the_sms_of_its_choices_line(
    person: MakePerson, store: Store
) -> None:
    await sms_member(store, 5)
    staff = person(STAFF, "Fran")
    await staff.says("/ask")
    await staff.says("Where should the new benches go?")
    await staff.taps(t("en", "staff.kind.choice"))
    await staff.says("\n".join(OPTIONS))
    await staff.taps(t("en", "staff.audience.everyone"))
    await staff.taps(t("en", "staff.when.now"))
    shown = await staff.taps(t("en", "staff.reminder.none"))
    # The question, its hint and "Reply 1 for Choice 1 is as long!, … 6 for Skip.": 224
    # letters of GSM-7, so 2 SMS (tests/test_catalogue_sms.py writes the same one out).
    assert cost_line(1, 2, 2, 2) in shown


async def test_the_delivery_report_says_how_many_sms_segments_went_out(
    person: MakePerson, store: Store, bot: CocreateApplication
) -> None:
    staff = person(STAFF, "Fran")
    await staff.says("/help")  # the staff member's chat is open
    staff.user.messages.clear()
    ann = person(7303, "Ann")
    await join(ann)
    ann_row = await store.members.by_telegram_id(7303)
    assert ann_row is not None
    sam, siân = await sms_member(store, 6, "en"), await sms_member(store, 7, "cy")
    long_news = NEWS * 3  # in English 230 letters: 2 SMS; in Welsh 222 units: 4 of 67
    texts = {lang: f"{t(lang, 'broadcast.header')}\n\n{long_news}" for lang in ("en", "cy")}
    assert [segments(sms_body(texts[lang], lang)) for lang in ("en", "cy")] == [2, 4]
    batch = await store.outbox.enqueue_batch(
        "broadcast",
        None,
        [
            Outgoing(ann_row.id, ann_row.chat_id, texts["en"]),
            Outgoing(sam.id, sam.chat_id, texts["en"]),
            Outgoing(siân.id, siân.chat_id, texts["cy"]),
        ],
        author_chat_id=STAFF,
    )
    # The SMS members' rows as the SMS channel settles them; Ann's goes through Telegram.
    for row in await store.outbox.rows_of(batch):
        if row.chat_id >= SMS_BASE:
            assert await store.outbox.mark_sending(row.id) == "sending"
            await store.outbox.mark_sent(row.id, 1)
    bot.delivery.wake()
    [report] = await staff.user.wait_messages(1, timeout=10)
    assert report.text is not None
    assert t("en", "delivery.report.reached", sent=3, total=3) in report.text
    assert report.text.endswith(t("en", "delivery.report.sms_segments", count=6))


async def test_a_report_without_sms_says_nothing_of_sms(
    person: MakePerson, store: Store, bot: CocreateApplication
) -> None:
    staff = person(STAFF, "Fran")
    await staff.says("/help")
    staff.user.messages.clear()
    ann = person(7304, "Ann")
    await join(ann)
    ann_row = await store.members.by_telegram_id(7304)
    assert ann_row is not None
    await store.outbox.enqueue_batch(
        "broadcast", None, [Outgoing(ann_row.id, ann_row.chat_id, NEWS)], author_chat_id=STAFF
    )
    bot.delivery.wake()
    [report] = await staff.user.wait_messages(1, timeout=10)
    assert report.text is not None and "SMS" not in report.text


# ---- storage: the counts behind both


async def test_sms_members_by_language_and_what_a_batch_sent_them(store: Store) -> None:
    telegram = await store.members.join(
        telegram_user_id=7305,
        chat_id=7305,
        language="en",
        consent_version=CONSENT_VERSION,
        agreed_to=["take_part"],
    )
    await store.members.mark_onboarded(telegram.id)
    sam, siân, sue = (
        await sms_member(store, 8, "en"),
        await sms_member(store, 9, "cy"),
        await sms_member(store, 10, "cy"),
    )
    assert await store.questions.reachable_by_language("everyone", SMS_CHATS) == {"cy": 2, "en": 1}
    assert await store.questions.reachable("everyone") == 4
    markup = {"inline_keyboard": [[{"text": "1. Yes", "callback_data": "x:yes"}]]}
    batch = await store.outbox.enqueue_batch(
        "broadcast",
        None,
        [
            Outgoing(telegram.id, telegram.chat_id, "to Telegram"),
            Outgoing(sam.id, sam.chat_id, "to Sam", markup),
            Outgoing(siân.id, siân.chat_id, "to Siân"),
            Outgoing(sue.id, sue.chat_id, "to Sue, not sent"),
        ],
    )
    for row in await store.outbox.rows_of(batch):
        if row.text != "to Sue, not sent":
            await store.outbox.mark_sending(row.id)
            await store.outbox.mark_sent(row.id, 1)
    sent = await store.outbox.sent_texts(batch, SMS_CHATS)
    assert [(s.text, s.reply_markup, s.language) for s in sent] == [
        ("to Sam", markup, "en"),
        ("to Siân", None, "cy"),
    ]
    # "to Sam\nReply 1 for Yes." is 1; "to Siân" is 1.
    assert sent_segments((s.text, s.reply_markup, s.language) for s in sent) == 2


# ---- the door: texts for the channel of the person written to


async def test_the_door_has_texts_written_for_the_channel_of_each_update(
    bot: CocreateApplication,
) -> None:
    seen: dict[int, str] = {}

    async def dispatch(update: Update) -> None:
        assert update.effective_user is not None
        seen[update.effective_user.id] = t("en", "consent.text")

    async def reask(update: Update) -> None:
        return None

    for n, user_id in enumerate((SMS_BASE + 11, 7306), start=1):
        payload = {
            "update_id": 900_000 + n,
            "message": {
                "message_id": n,
                "date": 1_764_496_800,
                "chat": {"id": user_id, "type": "private", "first_name": "Sam"},
                "from": {"id": user_id, "is_bot": False, "first_name": "Sam"},
                "text": "hello",
            },
        }
        await bot.door.handle(Update.de_json(payload, bot.bot), dispatch, reask)
    assert seen == {
        SMS_BASE + 11: t("en", "consent.text.sms"),
        7306: t("en", "consent.text"),
    }
    assert t("en", "consent.text") != t("en", "consent.text.sms")
