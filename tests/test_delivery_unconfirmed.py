"""A delivery report names the members nobody is sure got the message, and its author may send
it to them again (knowing some may get it twice). Through the running bot and the emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.catalogue import t
from bot.receiving import CocreateApplication
from emulator import Emulator
from storage.outbox import Outgoing
from storage.store import Store
from tests.transcript import Person

STAFF = 9300
MEMBERS = range(9301, 9306)
TEXT = "Can you help at the fun day?"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF], "quiet_hours": ""}


async def test_the_report_names_the_unconfirmed_and_sends_again_on_request(
    bot: CocreateApplication,
    store: Store,
    emulator: Emulator,
    person: Callable[..., Person],
) -> None:
    members = []
    for user_id in MEMBERS:
        emulator.open_chat(user_id)
        members.append(
            await store.members.join(
                telegram_user_id=user_id,
                chat_id=user_id,
                language="en",
                consent_version="1",
                agreed_to=["stories"],
            )
        )
    emulator.open_chat(STAFF)

    def copies(user_id: int) -> int:
        return sum(1 for m in emulator.user(user_id).messages if m.text == TEXT)

    fran = person(STAFF, "Fran")
    batch_id = await store.outbox.enqueue_batch(
        "broadcast", 1, [Outgoing(m.id, m.chat_id, TEXT) for m in members], author_chat_id=STAFF
    )
    # As after a crash: two requests had left, and nobody knows if they arrived.
    rows = await store.outbox.rows_of(batch_id)
    for row in rows[1:3]:
        assert await store.outbox.mark_sending(row.id) == "sending"
        await store.outbox.mark_unconfirmed(row.id, "interrupted")
    bot.delivery.wake()

    [report] = await fran.user.wait_messages(1, timeout=5)
    names = [await store.pseudonyms.of(m.id) for m in members[1:3]]
    assert report.text == "\n".join(
        [
            t("en", "delivery.report.done"),
            t("en", "delivery.report.reached", sent=3, total=5),
            t("en", "delivery.report.unconfirmed", count=2),
            t("en", "delivery.report.unconfirmed_names", names=", ".join(names)),
        ]
    )
    assert "User 930" not in (report.text or ""), "pseudonyms, never names"
    assert [copies(u) for u in MEMBERS] == [1, 0, 0, 1, 1]

    # Someone who is not staff cannot press it (as if the button were old).
    ann = person(MEMBERS[0], "Ann")
    await ann.does(lambda user: user.press_callback(f"unconfirmed:{batch_id}"))
    assert await store.outbox.unconfirmed_members(batch_id) == [m.id for m in members[1:3]]

    button = t("en", "delivery.send_again", count=2)
    assert "twice" in button
    assert await fran.taps(button) == [t("en", "delivery.sent_again", count=2)]
    [again] = await fran.user.wait_messages(1, timeout=5)
    assert again.text == "\n".join(
        [t("en", "delivery.report.done"), t("en", "delivery.report.reached", sent=5, total=5)]
    )
    assert not again.buttons
    assert [copies(u) for u in MEMBERS] == [1, 1, 1, 1, 1]
    # Once only: the button is gone, and pressing an old copy of it sends nothing.
    await fran.does(lambda user: user.press_callback(f"unconfirmed:{batch_id}"))
    assert fran.user.messages[-1].text == t("en", "delivery.sent_again_none")
    assert [copies(u) for u in MEMBERS] == [1, 1, 1, 1, 1]
