"""A kill between a Bot API call and the next commit loses nothing (bot/receiving.py,
storage/db.py `after_commit`).

Each update is one unit of work; a commit point before a call marks it applied, and a replay
of an applied update only asks the person again. So a write made after a call is lost if
the process dies before the next commit. Here the process "dies" while Telegram takes its
time over one call (the call took effect, its answer never came back): the task handling the
update is cancelled, which rolls back what was not committed, as a SIGKILL would, and leaves
the update unfinished in the inbox. A new application on the same database then replays it,
as the restart does. What the update wrote must be there once, and the person asked once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from bot.app import build_application, running
from bot.catalogue import t
from bot.clock import FakeClock
from bot.receiving import CocreateApplication
from bot.settings import Settings
from emulator import Emulator, SimUser
from storage.outbox import Outgoing
from storage.store import Store
from tests.media_samples import png
from tests.test_process import wait_until
from tests.test_voting import statement, voters
from tests.transcript import NOT_STARTED, Person, join

STAFF = 7103


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"organiser_ids": [STAFF]}


class Restarts:
    """The bot on a store of its own, which can be killed while a call is on its way, and
    started again (a new store too: with PostgreSQL, a new process to the others)."""

    def __init__(self, settings: Settings, database_url: str, clock: FakeClock) -> None:
        self.settings, self.database_url, self.clock = settings, database_url, clock
        self._running: contextlib.AbstractAsyncContextManager[CocreateApplication] | None = None
        self.app: CocreateApplication | None = None
        self.store: Store | None = None

    async def start(self) -> CocreateApplication:
        self.store = await Store.open_url(self.database_url, self.clock.now)
        application = build_application(self.settings, self.store, self.clock)
        self._running = running(application, poll_timeout=1)
        self.app = await self._running.__aenter__()
        return self.app

    async def stop(self) -> None:
        if self._running is not None:
            running_, self._running, self.app = self._running, None, None
            await running_.__aexit__(None, None, None)
        if self.store is not None:
            store, self.store = self.store, None
            process = store.coordination.process
            await store.close()
            if process is not None:  # PostgreSQL: gone once its connection is gone
                await wait_until_gone(self.database_url, process)

    def person(self, user: SimUser) -> Person:
        assert self.app is not None
        return Person(user, self.app)

    async def kill_during(
        self,
        emulator: Emulator,
        method: str,
        act: Callable[[], int],
        took_effect: Callable[[], bool],
        chat_id: int | None = None,
    ) -> int:
        """Does `act` (a press, a message), and dies while Telegram answers the first call to
        `method` (for `chat_id`) slowly (`took_effect` says when it has); then starts again,
        which replays the update. Returns its id, handled."""
        assert self.app is not None and self.store is not None
        fault = emulator.faults.add(method, delay=60, chat_id=chat_id, accept_first=True)
        update_id = act()
        await wait_until(took_effect)
        name = f"Application:{self.app.bot.id}:process_concurrent_update"
        [handling] = [task for task in asyncio.all_tasks() if task.get_name() == name]
        handling.cancel()  # kill -9: what was not committed is gone
        with contextlib.suppress(asyncio.CancelledError):
            await handling
        fault.released.set()
        await self.stop()
        app = await self.start()  # replays what was left unfinished
        await app.wait_handled(update_id)
        assert self.store is not None
        await self.store.inbox.flush()  # the done-marks left for a moment later
        assert await self.store.inbox.unfinished() == []
        return update_id


async def wait_until_gone(database_url: str, process: int) -> None:
    """Waits until a PostgreSQL backend has ended (it leaves pg_stat_activity)."""
    conn = await asyncpg.connect(database_url)
    try:
        for _ in range(1000):
            if not await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", process
            ):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"backend {process} did not end")
    finally:
        await conn.close()


@pytest.fixture
async def bots(
    settings: Settings, database_url: str, clock: FakeClock, store: Store
) -> AsyncIterator[Restarts]:
    """The bot (beside the test's `store`, which sets up and checks)."""
    restarts = Restarts(settings, database_url, clock)
    await restarts.start()
    yield restarts
    await restarts.stop()


def answered(user: SimUser) -> Callable[[], bool]:
    """Whether the button has been answered once more than now."""
    before = len(user.callback_answers)
    return lambda: len(user.callback_answers) > before


def sent(user: SimUser) -> Callable[[], bool]:
    """Whether one more message has reached the member than now."""
    before = len(user.messages)
    return lambda: len(user.messages) > before


async def test_a_vote_by_button_is_kept_when_the_process_dies_answering_the_button(
    bots: Restarts, emulator: Emulator, store: Store
) -> None:
    # The button's answer used to be a commit point, made before the vote was written: it
    # marked the update applied, so the kill lost the vote (the replay only asked again).
    first = await statement(store, "Buses should run after 11 pm")
    second = await statement(store, "More lights in the park")
    ann = bots.person(emulator.user(7101, first_name="Ann"))
    await join(ann)
    shown = await ann.taps(t("en", "menu.vote"))
    assert shown[-1] == t("en", "voting.idea.team", text="Buses should run after 11 pm")
    text, message_id = ann.button(t("en", "voting.agree"))
    await bots.kill_during(
        emulator,
        "answerCallbackQuery",
        lambda: ann.user.press(text, message_id=message_id),
        answered(ann.user),
    )
    rows = await store.db.fetch_all("SELECT statement_id, choice FROM votes")
    assert [(r["statement_id"], r["choice"]) for r in rows] == [(first, "agree")]
    # Asked once, after the restart, about the next idea (the vote is not asked again).
    asked = [m.text or "" for m in ann.user.unread()]
    assert asked == [t("en", "voting.idea.team", text="More lights in the park")]
    session = await store.sessions.get(7101)
    assert session.data.get("vote") == second


async def test_consent_given_by_button_is_kept_when_the_process_dies_answering_it(
    bots: Restarts, emulator: Emulator, store: Store
) -> None:
    ben = bots.person(emulator.user(7102, first_name="Ben"))
    await ben.says("/start")
    await ben.taps("English")
    assert ben.user.messages[-1].text == t("en", "consent.text")
    text, message_id = ben.button(t("en", "consent.agree"))
    await bots.kill_during(
        emulator,
        "answerCallbackQuery",
        lambda: ben.user.press(text, message_id=message_id),
        answered(ben.user),
    )
    member = await store.members.by_telegram_id(7102)
    assert member is not None  # joined once; consent is not asked for again
    receipts = await store.db.fetch_all("SELECT id FROM consent_receipts")
    assert len(receipts) == 1
    assert [m.text for m in ben.user.unread()] == [t("en", "naming.ask")]


async def test_a_facilitators_choice_in_ask_is_kept_when_the_process_dies_answering_it(
    bots: Restarts, emulator: Emulator, store: Store
) -> None:
    cat = bots.person(emulator.user(STAFF, first_name="Cat"))
    await cat.says("/ask")
    await cat.says("Is the park safe at night?")
    assert cat.user.messages[-1].text == t("en", "staff.ask.kind")
    text, message_id = cat.button(t("en", "staff.kind.open"))
    await bots.kill_during(
        emulator,
        "answerCallbackQuery",
        lambda: cat.user.press(text, message_id=message_id),
        answered(cat.user),
    )
    session = await store.sessions.get(STAFF)
    assert (session.flow, session.state) == ("ask", "AUDIENCE")
    assert session.data["ask"]["kind"] == "open"
    assert [m.text for m in cat.user.unread()] == [t("en", "staff.ask.audience")]


async def test_a_typed_vote_moves_the_member_on_before_its_result_is_sent(
    bots: Restarts, emulator: Emulator, store: Store
) -> None:
    # The result, then the next idea: the member used to be moved to the next idea only
    # after the result was sent, which marked the update applied. A kill just then left them
    # at no question: the restart said "welcome back" instead of showing the next idea.
    first = await statement(store, "Buses should run after 11 pm")
    second = await statement(store, "More lights in the park")
    dee = bots.person(emulator.user(7104, first_name="Dee"))
    await join(dee)
    await dee.says("see others' ideas")
    await bots.kill_during(
        emulator, "sendMessage", lambda: dee.user.send("agree"), sent(dee.user), 7104
    )
    rows = await store.db.fetch_all("SELECT statement_id, choice FROM votes")
    assert [(r["statement_id"], r["choice"]) for r in rows] == [(first, "agree")]
    assert [m.text for m in dee.user.unread()] == [
        t("en", "voting.result.not_yet"),  # Telegram had it when the process died
        t("en", "voting.idea.team", text="More lights in the park"),  # asked again, once
    ]
    session = await store.sessions.get(7104)
    assert session.data.get("vote") == second


async def test_risky_words_keep_their_flag_and_story_part_when_the_process_dies_sending_help(
    bots: Restarts, emulator: Emulator, store: Store
) -> None:
    # The help used to go first, marking the update applied before the flag, the staff's
    # alert and the story part were written: a kill just then lost all three.
    eve = bots.person(emulator.user(7105, first_name="Eve"))
    await join(eve)
    await eve.taps(t("en", "menu.story"))
    words = "I want to end my life, the bus never comes."
    await bots.kill_during(
        emulator, "sendMessage", lambda: eve.user.send(words), sent(eve.user), 7105
    )
    flags = await store.db.fetch_all("SELECT id FROM safeguarding_flags")
    assert len(flags) == 1
    alerts = await store.db.fetch_all(
        "SELECT o.chat_id FROM outbox AS o JOIN delivery_batches AS b ON b.id = o.batch_id"
        " WHERE b.kind = 'alert'"
    )
    assert [r["chat_id"] for r in alerts] == [STAFF]
    parts = await store.db.fetch_all("SELECT part, text FROM submission_parts")
    assert [(r["part"], r["text"]) for r in parts] == [("what_happened", words)]
    got = [m.text for m in eve.user.unread()]
    # Help reached her before the kill, and again after it (the process cannot know it did);
    # then the story's next question, once.
    assert got[:2] == [t("en", "safeguarding.help")] * 2
    assert got[2:] == [t("en", "story.how_it_affected")]


async def test_a_photo_with_risky_words_is_kept_when_the_process_dies_fetching_it(
    bots: Restarts, emulator: Emulator, store: Store
) -> None:
    # The flag is written at the door, before the photo is fetched: getFile, which tells no
    # one anything, used to commit it there and mark the update applied, so a kill during
    # the download lost the photo and the story part (and the help had gone before both).
    fay = bots.person(emulator.user(7106, first_name="Fay"))
    await join(fay)
    await fay.taps(t("en", "menu.story"))
    words = "I want to end my life."
    calls = len(emulator.calls)
    await bots.kill_during(
        emulator,
        "getFile",
        lambda: fay.user.send_photo(png(), caption=words),
        lambda: any(method == "getfile" for method, _ in emulator.calls[calls:]),
    )
    flags = await store.db.fetch_all("SELECT id FROM safeguarding_flags")
    assert len(flags) == 1
    parts = await store.db.fetch_all("SELECT part, text FROM submission_parts")
    assert [(r["part"], r["text"]) for r in parts] == [("what_happened", words)]
    media = await store.db.fetch_all("SELECT part, kind FROM media")
    assert [(r["part"], r["kind"]) for r in media] == [("what_happened", "photo")]
    # Nothing was said before the kill: the replay ran the update as if for the first time.
    assert [m.text for m in fay.user.unread()] == [
        t("en", "safeguarding.help"),
        t("en", "story.how_it_affected"),
    ]


async def test_a_language_chosen_during_a_broadcast_is_not_held_up_by_it(
    bots: Restarts, emulator: Emulator, store: Store
) -> None:
    # Choosing a language writes it, then sets the chat's command menu: a quiet call, no
    # commit point, made while the write is not committed (SQLite's one writer is held).
    # Waiting there for a turn among the broadcast's messages would wait for one whose turn
    # came first, which waits to commit its 'sending' mark: for ever.
    gwen = bots.person(emulator.user(7107, first_name="Gwen"))
    await join(gwen)
    members = await voters(store, 20_000, 200)
    messages = [Outgoing(m, 20_000 + i, "The hall opens on Sunday.") for i, m in enumerate(members)]
    await store.outbox.enqueue_batch("broadcast", None, messages)
    assert bots.app is not None
    bots.app.delivery.wake()
    await wait_until(lambda: len(emulator.calls_to("sendMessage")) > 20)  # under way
    await gwen.says("/language")
    async with asyncio.timeout(15):
        replies = await gwen.taps("Cymraeg")
    assert replies[0] == t("cy", "language.set")
    member = await store.members.by_telegram_id(7107)
    assert member is not None and member.language == "cy"
    await wait_until(lambda: len(emulator.calls_to("sendMessage")) >= len(members), timeout=60)


async def test_not_now_replayed_after_a_kill_answers_in_both_languages(
    bots: Restarts, emulator: Emulator, store: Store
) -> None:
    # "Not now" forgets everything, the language chosen too; a replay (the process died as
    # the reply left) has nothing to ask again and no language: it says how to begin in
    # both, never in English alone to someone who chose Welsh.
    dai = bots.person(emulator.user(7104, first_name="Dai"))
    await dai.says("/start")
    await dai.taps("Cymraeg")
    assert dai.user.messages[-1].text == t("cy", "consent.text")
    text, message_id = dai.button(t("cy", "consent.not_now"))
    await bots.kill_during(
        emulator,
        "sendMessage",
        lambda: dai.user.press(text, message_id=message_id),
        sent(dai.user),
        chat_id=7104,
    )
    assert [m.text for m in dai.user.unread()][-1] == NOT_STARTED
    assert await store.members.by_telegram_id(7104) is None
