"""The soak's checks (tests/soak_driver.py `check`) find what they look for: a made-up run
where each thing went wrong once is reported, and the same run with nothing wrong is not."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.catalogue import t
from bot.clock import FakeClock
from emulator import Emulator
from storage.store import Store
from tests.conftest import TOKEN
from tests.soak_driver import (
    Action,
    Findings,
    Life,
    Outcome,
    SoakSettings,
    check,
    check_language,
    last_review,
)

ANN, BO = 500_001, 500_002
SAVED_ANSWER = f"""
    INSERT INTO members (id, telegram_user_id, chat_id, joined_at) VALUES (1, {ANN}, {ANN}, 'x');
    INSERT INTO questions (id, author_id, author_chat_id, text, kind, audience, starts_at,
                           created_at)
        VALUES (1, 9, 9, 'S1T?', 'open', 'everyone', 'x', 'x');
    INSERT INTO question_rounds (id, question_id, due_at) VALUES (1, 1, 'x');
    INSERT INTO answers (round_id, member_id, text, answered_at, updated_at)
        VALUES (1, 1, 'M{ANN}N1Z the bus was late', 'x', 'x');
"""
# Bo's words kept twice (as answers to two rounds).
KEPT_TWICE = f"""
    INSERT INTO members (id, telegram_user_id, chat_id, joined_at) VALUES (2, {BO}, {BO}, 'x');
    INSERT INTO questions (id, author_id, author_chat_id, text, kind, audience, starts_at,
                           created_at)
        VALUES (1, 9, 9, 'S1T?', 'open', 'everyone', 'x', 'x');
    INSERT INTO question_rounds (id, question_id, due_at) VALUES (1, 1, 'x'), (2, 1, 'y');
    INSERT INTO answers (round_id, member_id, text, answered_at, updated_at)
        VALUES (1, 2, 'M{BO}N1Z', 'x', 'x'), (2, 2, 'M{BO}N1Z', 'x', 'x');
"""


async def made_up_run(tmp_path: Path, *, wrong: bool, clock: FakeClock) -> Outcome:
    """Ann chooses English, answers a question and asks for help; Bo presses a button. With
    `wrong`, Bo is never answered, Bo's chat shows Ann's words, Ann's saved answer is not in
    the database while Bo's words are there twice, the help comes in Welsh, the log has a
    traceback, and memory grows."""
    store = await Store.open(tmp_path / "cocreate.db", clock.now)
    await store.close()
    emulator = Emulator(token=TOKEN)  # never started: only its members' chats are used
    state = emulator.state
    ann, bo = emulator.user(ANN), emulator.user(BO)
    actions: list[Action] = []

    def act(user_id: int, said: str | None, kind: str = "text") -> None:
        user = emulator.user(user_id)
        actions.append(Action(user_id, len(actions), kind, said, len(user.messages), 0, 0.0, 0.1))

    act(ANN, "/language", "command")
    state.add_bot_message(state.chat(ANN), kind="text", text=t("en", "language.ask"))
    act(ANN, "English", "word")
    state.add_bot_message(state.chat(ANN), kind="text", text=t("en", "language.set"))
    act(ANN, f"M{ANN}N1Z the bus was late")
    state.add_bot_message(state.chat(ANN), kind="text", text=t("en", "questions.saved", when="x"))
    act(ANN, "/help", "command")
    state.add_bot_message(
        state.chat(ANN), kind="text", text=t("cy" if wrong else "en", "help.text")
    )
    if wrong:  # Bo is shown Ann's words, then presses a button and gets nothing
        state.add_bot_message(state.chat(BO), kind="text", text=f"You said: M{ANN}N1Z")
        act(BO, None, "button")
        with sqlite3.connect(tmp_path / "cocreate.db") as conn:
            conn.executescript(KEPT_TWICE)
    else:
        act(BO, None, "button")
        state.add_bot_message(state.chat(BO), kind="text", text=t("en", "menu.title"))
        with sqlite3.connect(tmp_path / "cocreate.db") as conn:
            conn.executescript(SAVED_ANSWER)
    growth = 3000 if wrong else 0
    life = Life(pid=1, started=0.0, rss=[(i, 100_000 + i * growth) for i in range(20)])
    log = "INFO started\n"
    if wrong:
        log += "ERROR bot.app: A handler failed: KeyError\nTraceback (most recent call last):\n"
    return Outcome(
        settings=SoakSettings(members=2),
        actions=actions,
        staff_flows=0,
        lives=[life],
        log=log,
        db=tmp_path / "cocreate.db",
        chats={ANN: ann, BO: bo},
        seconds=1.0,
    )


async def test_a_run_with_nothing_wrong_passes(tmp_path: Path, clock: FakeClock) -> None:
    findings = check(await made_up_run(tmp_path, wrong=False, clock=clock))
    assert findings.problems == []
    assert findings.figures["answers confirmed"] == 1


async def test_each_thing_gone_wrong_is_reported(tmp_path: Path, clock: FakeClock) -> None:
    problems = check(await made_up_run(tmp_path, wrong=True, clock=clock)).problems
    reported = sorted(problem.split(":")[0] for problem in problems)
    assert reported == [
        "RSS grew more than 15% over the second half of a run",
        "answers or saved stories lost",
        "handler failures in the bot's log",
        "member updates never answered",
        "members' words sent to another member",
        "replies in the other language",
        "words recorded twice",
    ]


def test_a_review_is_its_own_messages_not_a_question_shown_after_it() -> None:
    """A saved idea's words are those of its review (split over several messages if long);
    a facilitator's question shown after it quotes the member's answer, which is not the
    idea's (the long soak once reported an answer as a lost idea part this way)."""
    review = "Here is your idea.\n\nYour idea: M500245N43Z the park"
    more = "Who it would help: M500245N44Z children"  # the rest of a long review
    question = "S10T When is the bus late?\n\nYour answer: M500245N42Z in the evening"
    assert last_review(["M500245N1Z earlier", review, more, question]) == [review, more]


def test_a_question_asked_again_after_a_restart_may_come_before_a_language_change() -> None:
    """Ann asked to change language; the bot was killed after it asked which, and asked again
    (in English) as it restarted, just as she pressed Cymraeg. The question asked again is
    among the replies to her choice, before the Welsh ones: not a reply in the wrong
    language (an overloaded soak once reported it). A reply in English after the change is.
    """

    def action(n: int, label: str | None, said: str | None = None) -> Action:
        kind = "button" if label else "text"
        return Action(ANN, n, kind, said, n, n, 0.0, 0.1, label=label)

    def problems(after_the_change: str) -> list[str]:
        findings = Findings()
        rows = {
            ANN: [
                (action(1, "7. Change language"), [t("en", "language.ask")], 1),
                (
                    action(2, "2. Cymraeg"),
                    [t("en", "language.ask"), t("cy", "language.set"), t("cy", "menu.title")],
                    1,
                ),
                (action(3, None, "help"), [after_the_change], 0),
            ]
        }
        check_language(rows, findings)
        return [problem.split(":")[0] for problem in findings.problems]

    assert problems(t("cy", "help.text")) == []
    assert problems(t("en", "help.text")) == ["replies in the other language"]
