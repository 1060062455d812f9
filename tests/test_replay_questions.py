"""A replayed update asks a one-step question again, and changes nothing.

After a crash the bot replays an update it had applied (conversations/door.py); its reply may
have died with the process. Someone waiting at a one-step question (a facilitator's edited
words, who may see an idea, a reply to a member …) is asked it again, with the same words and
buttons as the first time, by the flow's own asking (conversations/routes.py
`one_step_questions`), and their session and every table stay as they were: a replay changes
nothing (tests/test_exactly_once.py). Before this, they got silence, and their next words were
taken as its answer without their being asked.

Each test drives someone to the question through the emulator, copies the update that took
them there as Telegram sent it, hands it to the bot again as a restart would
(`DurableUpdateQueue.requeue`), and compares.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from telegram import Update

import conversations
from bot.catalogue import t
from bot.receiving import CocreateApplication, DurableUpdateQueue
from conversations import approving, reviewing, routes, sharing
from conversations.machine import FlowHandler
from conversations.pending import PendingQuestion
from conversations.replies import AWAITING, SHARING
from emulator import Emulator, SimUser
from storage.store import Store
from tests.dbs import outbox_settled
from tests.test_approving import member, share_idea, statements
from tests.test_questions import ask, texts
from tests.transcript import Person

MakePerson = Callable[..., Person]
STAFF = 9501
PACKAGE = Path(conversations.__file__).parent


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF]}


# ---- every state a session can be put in can be asked again


def modules() -> dict[str, Any]:
    """Every module of conversations/, imported, by its file's stem."""
    return {
        info.name: importlib.import_module(f"conversations.{info.name}")
        for info in pkgutil.iter_modules([str(PACKAGE)])
    }


def calls_in(tree: ast.AST, name: str) -> list[ast.Call]:
    """The calls of a function or method called `name` in a module's code."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == name)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == name)
        )
    ]


def calls(module: str, name: str) -> list[ast.Call]:
    """The calls of a function or method called `name` in conversations/<module>.py."""
    return calls_in(ast.parse((PACKAGE / f"{module}.py").read_text()), name)


Scope = ast.FunctionDef | ast.AsyncFunctionDef | None


class Waits:
    """Which one-step questions the calls `await_answer(context, X)` of one module can wait
    at, read from its code: X a question's name, a constant, a question object's `.name`, or
    a name given to the function (read at each call of it) or set in it."""

    def __init__(self, module: str, namespace: dict[str, Any]) -> None:
        self.tree = ast.parse((PACKAGE / f"{module}.py").read_text())
        self.namespace = namespace
        self.scope: dict[ast.AST, Scope] = {}
        self._enclose(self.tree, None)

    def _enclose(self, node: ast.AST, scope: Scope) -> None:
        for child in ast.iter_child_nodes(node):
            self.scope[child] = scope
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else scope
            self._enclose(child, inner)

    def names(self) -> set[str]:
        found: set[str] = set()
        for call in calls_in(self.tree, "await_answer"):
            found |= self.values(call.args[1], self.scope[call], 0)
        return found

    def values(self, node: ast.expr, scope: Scope, depth: int) -> set[str]:
        assert depth < 10, ast.unparse(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, ast.IfExp):
            return self.values(node.body, scope, depth) | self.values(node.orelse, scope, depth)
        if isinstance(node, ast.Attribute) and node.attr == "name":
            # A question object's name: every question object is counted on its own.
            return set()
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "awaited":
            return set()  # the question already waited at, again
        assert isinstance(node, ast.Name), f"cannot tell which question: {ast.unparse(node)}"
        if scope is not None:
            params = [a.arg for a in [*scope.args.posonlyargs, *scope.args.args]]
            if node.id in params + [a.arg for a in scope.args.kwonlyargs]:
                return self.given(scope, node.id, params, depth)
            set_here = [
                n.value
                for n in ast.walk(scope)
                if isinstance(n, ast.Assign)
                and any(isinstance(x, ast.Name) and x.id == node.id for x in n.targets)
            ]
            if set_here:
                return set().union(*(self.values(v, scope, depth + 1) for v in set_here))
        value = self.namespace.get(node.id)
        if isinstance(value, PendingQuestion):
            return {value.name}
        assert isinstance(value, str), f"cannot tell which question: {node.id}"
        return {value}

    def given(
        self,
        scope: ast.FunctionDef | ast.AsyncFunctionDef,
        param: str,
        params: list[str],
        depth: int,
    ) -> set[str]:
        """What the calls of the function in this module give as `param`."""
        found: set[str] = set()
        for call in calls_in(self.tree, scope.name):
            given = [k.value for k in call.keywords if k.arg == param]
            index = params.index(param) if param in params else len(call.args)
            given += call.args[index : index + 1]
            for value in given:
                found |= self.values(value, self.scope[call], depth + 1)
        return found


def one_step_names_in_code() -> set[str]:
    """Every one-step question the code can wait at: each question object a module holds
    (and those made per kind of sharing), and each name a flow waits at
    (`await_answer(context, X)`)."""
    names = {question.name for question in sharing.after_questions()}  # made per kind
    for module, imported in modules().items():
        for value in vars(imported).values():
            group = value if isinstance(value, tuple | list) else (value,)
            names |= {item.name for item in group if isinstance(item, PendingQuestion)}
        names |= Waits(module, vars(imported)).names()
    return names


def test_every_one_step_question_can_be_asked_again() -> None:
    """A one-step question added without a way to ask it again fails here: the router reads
    its answer (so it is in `routing`), or a flow waits at it (so it is in the code)."""
    again = routes.one_step_questions()
    words = routes.routing()
    routed = {question.name for question in words.pending} | set(words.takes_text)
    assert routed == set(again)
    in_code = one_step_names_in_code()
    assert {approving.EDIT, sharing.WHO_MAY_SEE.name, reviewing.REPLY} <= in_code  # found
    assert in_code <= set(again)


def test_every_flow_a_session_can_be_in_can_be_asked_again() -> None:
    """Sessions are moved in four places only: a multi-step flow (each registered with its
    states in routes.STEPS), a story or idea (any step, conversations/sharing.py `ask`), and a
    one-step question (above). A new way to move a session fails here until it is added."""
    movers = {
        module
        for module in modules()
        if any(ast.unparse(call.func).endswith("session.go") for call in calls(module, "go"))
    }
    assert movers == {"machine", "steps", "onboarding", "replies"}
    flows = [route for route in routes.build_routes() if isinstance(route, FlowHandler)]
    assert {flow.name for flow in flows} == set(routes.STEPS)
    for flow in flows:
        _, states = routes.STEPS[flow.name]
        assert flow.states is states
        assert set(flow.handlers) <= set(states.__members__)
    assert SHARING not in routes.STEPS and SHARING not in routes.one_step_questions()
    assert AWAITING not in routes.one_step_questions()


# ---- replays, through the bot


def sent(emulator: Emulator, someone: Person, action: Callable[[SimUser], int]) -> dict[str, Any]:
    """Does something in the chat, and returns the update as Telegram sends it to the bot
    (copied before the bot takes it)."""
    update_id = action(someone.user)
    [raw] = [u for u in emulator.state.updates.peek(10_000) if u["update_id"] == update_id]
    return raw


async def handled(bot: CocreateApplication, someone: Person, raw: dict[str, Any]) -> list[Any]:
    """Waits until the update is handled; returns what the bot sent (text and buttons)."""
    await bot.wait_handled(raw["update_id"])
    return [(m.text, m.buttons) for m in someone.user.unread()]


async def replayed(bot: CocreateApplication, someone: Person, raw: dict[str, Any]) -> list[Any]:
    """Hands the bot the same update again, as after a crash before Telegram heard it was
    handled, and before its done-mark (written a moment later) reached the inbox: at start
    it is handled again (its effects and the session were saved); returns what the bot sent."""
    inbox = bot.resources.store.inbox
    await inbox.flush()
    await bot.resources.store.db.execute(
        "UPDATE inbox SET done_at = NULL WHERE update_id = ?", (raw["update_id"],)
    )
    queue = bot.update_queue
    assert isinstance(queue, DurableUpdateQueue)
    await queue.requeue(Update.de_json(raw, bot.bot))
    return await handled(bot, someone, raw)


async def everything(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the inbox (which records the replay itself) and, on
    PostgreSQL, the sending pace (which moves with the question asked again), once what
    was sent before is recorded sent."""
    await outbox_settled(store.db)
    return {
        name: [tuple(r) for r in await store.db.fetch_all(f"SELECT * FROM {name} ORDER BY 1")]
        for name in await store.db.table_names()
        if name not in ("inbox", "send_pace")
    }


async def test_a_facilitator_editing_an_idea_is_asked_for_the_words_again(
    person: MakePerson, store: Store, bot: CocreateApplication, emulator: Emulator
) -> None:
    olu = person(STAFF, "Olu")
    ann = await member(person, 3501, "Ann")
    await share_idea(ann, "A later last bus.")
    await ann.taps("Others, without my name")
    await olu.says("/ideas")
    await olu.taps("Waiting for your OK")
    text, message_id = olu.button("Edit, then approve")
    raw = sent(emulator, olu, lambda u: u.press(text, message_id=message_id))
    asked = await handled(bot, olu, raw)
    assert [said for said, _ in asked] == [t("en", "approving.edit.ask"), "A later last bus."]
    before = await everything(store)

    assert await replayed(bot, olu, raw) == asked  # not silence: the same question
    assert await everything(store) == before  # and nothing changed, the session included

    # The words typed next are the idea's new words, as asked.
    assert await olu.says("A last bus at midnight.") == [
        t("en", "approving.approved"),
        t("en", "approving.none"),
    ]
    [row] = await statements(store)
    assert (row["state"], row["text"]) == ("approved", "A last bus at midnight.")


async def test_a_facilitator_at_a_waiting_idea_or_writing_a_statement_is_asked_again(
    person: MakePerson, store: Store, bot: CocreateApplication, emulator: Emulator
) -> None:
    olu = person(STAFF, "Olu")
    ann = await member(person, 3502, "Ann")
    await share_idea(ann, "Benches by the river.")
    await ann.taps("Others, without my name")
    await olu.says("/ideas")
    text, message_id = olu.button("Waiting for your OK")
    raw = sent(emulator, olu, lambda u: u.press(text, message_id=message_id))
    shown = await handled(bot, olu, raw)
    assert shown[-1][1]  # the idea, with Approve, Edit …
    before = await everything(store)
    assert await replayed(bot, olu, raw) == shown
    assert await everything(store) == before

    await olu.says("/ideas")
    text, message_id = olu.button(t("en", "ideas.desk.add"))
    raw = sent(emulator, olu, lambda u: u.press(text, message_id=message_id))
    asked = await handled(bot, olu, raw)
    assert [said for said, _ in asked] == [t("en", "approving.statement.ask")]
    before = await everything(store)
    assert await replayed(bot, olu, raw) == asked
    assert await everything(store) == before


async def test_a_member_choosing_who_sees_their_idea_is_asked_again(
    person: MakePerson, store: Store, bot: CocreateApplication, emulator: Emulator
) -> None:
    ann = await member(person, 3503, "Ann", named=True)
    await share_idea(ann, "A crossing by the school.")  # saved: "Who may see it?"
    await ann.says("/menu")
    await ann.taps("Share an idea")
    await ann.says("A bench at the bus stop.")
    await ann.taps("Skip")
    await ann.taps("Skip")
    text, message_id = ann.button("Save")
    raw = sent(emulator, ann, lambda u: u.press(text, message_id=message_id))
    saved = await handled(bot, ann, raw)
    assert [said for said, _ in saved] == [t("en", "idea.saved"), t("en", "approving.share.ask")]
    before = await everything(store)

    assert await replayed(bot, ann, raw) == saved[1:]  # the question, with its three buttons
    assert await everything(store) == before

    assert await ann.taps("Others, with my first name") == [
        t("en", "approving.share.named_ok"),
        t("en", "sharing.next"),
    ]
    assert [row["visibility"] for row in await statements(store)] == ["named"]


async def test_a_facilitator_writing_a_reply_and_a_member_answering_back_are_asked_again(
    person: MakePerson, store: Store, bot: CocreateApplication, emulator: Emulator
) -> None:
    staff = person(STAFF, "Fran")
    ann = await member(person, 3504, "Ann")
    await ask(staff, "What would make the park safer?", "In their own words")
    await staff.taps("Send")
    await texts(ann)
    await ann.says("More lights by the gate.")
    await texts(staff)  # the delivery report
    await staff.says("/responses")
    await staff.taps("What would make the park safer?")
    text, message_id = staff.button(t("en", "staff.responses.reply"))
    raw = sent(emulator, staff, lambda u: u.press(text, message_id=message_id))
    asked = await handled(bot, staff, raw)
    found = await store.members.by_telegram_id(ann.user.id)
    assert found is not None
    pseudonym = await store.pseudonyms.of(found.id)
    assert asked == [(t("en", "staff.reply.ask", pseudonym=pseudonym), [])]
    before = await everything(store)

    assert await replayed(bot, staff, raw) == asked
    assert await everything(store) == before

    assert len(await staff.says("Thank you. Which gate?")) == 1  # sent, as asked
    await texts(ann)
    text, message_id = ann.button(t("en", "reply.answer_back"))
    raw = sent(emulator, ann, lambda u: u.press(text, message_id=message_id))
    asked = await handled(bot, ann, raw)
    assert asked == [(t("en", "reply.ask"), [])]
    before = await everything(store)

    assert await replayed(bot, ann, raw) == asked
    assert await everything(store) == before
    assert await ann.says("The north gate.") == [t("en", "reply.passed_on")]


async def test_a_question_about_something_gone_meanwhile_says_go_on_from_the_menu(
    person: MakePerson, store: Store, bot: CocreateApplication, emulator: Emulator
) -> None:
    """Editing an idea that was decided meanwhile: nothing to ask again, so not silence but
    what the flow says of it, and still nothing changes."""
    olu = person(STAFF, "Olu")
    ann = await member(person, 3505, "Ann")
    await share_idea(ann, "A later last bus.")
    await ann.taps("Others, without my name")
    await olu.says("/ideas")
    await olu.taps("Waiting for your OK")
    text, message_id = olu.button("Edit, then approve")
    raw = sent(emulator, olu, lambda u: u.press(text, message_id=message_id))
    await handled(bot, olu, raw)
    [row] = await statements(store)
    assert await store.statements.decline(row["id"], STAFF) is not None  # by someone else
    before = await everything(store)

    [(said, _)] = await replayed(bot, olu, raw)
    assert said == t("en", "approving.gone")
    assert await everything(store) == before


async def test_a_member_choosing_a_language_deleting_or_sharing_more_is_asked_again(
    person: MakePerson, store: Store, bot: CocreateApplication, emulator: Emulator
) -> None:
    ann = await member(person, 3506, "Ann")
    await share_idea(ann, "Free buses on Sundays.")
    text, message_id = ann.button("Others, without my name")
    for act in (
        lambda u: u.press(text, message_id=message_id),  # then "Share one more?"
        lambda u: u.send("/language"),
        lambda u: u.send("/delete"),
    ):
        raw = sent(emulator, ann, act)
        asked = await handled(bot, ann, raw)
        assert asked[-1][1]  # a question with its buttons
        before = await everything(store)
        assert await replayed(bot, ann, raw) == asked[-1:]
        assert await everything(store) == before
    # Asked once more, not deleted twice over: "No" keeps everything.
    assert (await ann.taps(t("en", "delete.no")))[0] == t("en", "delete.kept")
    assert await store.members.by_telegram_id(ann.user.id) is not None
