"""A question due while the bot was down goes out as the bot starts, not a tick later."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.app import build_application, running
from bot.clock import FakeClock
from emulator import Emulator
from storage.store import Store
from tests.conftest import make_settings

ANN = 7301
STAFF = 7300


async def test_a_round_due_during_downtime_is_sent_right_after_start(
    tmp_path: Path, emulator: Emulator, store: Store, clock: FakeClock
) -> None:
    emulator.open_chat(ANN)
    ann = await store.members.join(
        telegram_user_id=ANN,
        chat_id=ANN,
        language="en",
        consent_version="1",
        agreed_to=["stories"],
    )
    await store.members.mark_onboarded(ann.id)
    # Due at 09:30; the bot was down and starts at 10:00 (the clock does not move after).
    await store.questions.create(
        author_id=STAFF,
        author_chat_id=STAFF,
        author_language="en",
        text="Shall we meet in the library?",
        kind="yesno",
        options=[],
        audience="everyone",
        repeat="once",
        starts_at=clock.now() - timedelta(minutes=30),
        reminder_hours=None,
    )
    settings = make_settings(tmp_path, emulator, quiet_hours="")
    application = build_application(settings, store, clock)
    async with running(application, poll_timeout=1):
        # No tick is waited for and no one calls run_due: starting is enough.
        [question] = await emulator.user(ANN).wait_messages(1, timeout=5)
    assert (question.text or "").startswith("Shall we meet in the library?")
