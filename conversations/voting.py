"""See others' ideas: a member weighs approved ideas one at a time; /myvotes.

"See others' ideas" (the menu, or its typed words) shows one idea: its text, "from <first
name>" if its author shared it with their name, "from the team" for a facilitator's. The
member answers Agree, Disagree, Not sure, Skip or Stop, by button or typed (1 to 5, or the
words). After a vote they see what people think so far (no count from 1 to 9: under 10
voters, nothing but "not enough votes yet"), then the next idea. Every 5 votes they are
offered to add their own idea, or the menu. /myvotes lists their votes, newest first, a page
at a time; picking one (button or number) lets them change it.

The idea being weighed is kept in the session (`vote`), the page of /myvotes too (`myvotes`).
Buttons carry the idea: `vote:<id>:<choice>`, `revote:<id>:<choice>`, `myvotes:<id>` and
`myvotes:page:<offset>`. A button for an idea the member may not see (not approved, not in
their projects: old or forged) changes nothing and is answered as an unknown button.
Tables: through storage/votes.py only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, filters

from bot.catalogue import t
from conversations import replies, sharing
from conversations.choices import Option, button_text, keyboard, match, number
from conversations.context import CocreateContext
from conversations.pending import PendingQuestion
from conversations.replies import (
    answer_unknown_button,
    await_answer,
    awaited,
    current_member,
    leave_answering,
    leave_question,
    menu_button,
    quoted,
    remember_prompt,
    say,
    send_menu,
    settle_button,
    show_menu,
)
from storage.models import Member
from storage.votes import ALL, COUNTED, VOTERS, Choice, MyVote, Statement, Tally, hidden_in_result

logger = logging.getLogger(__name__)

VOTE, REVOTE, MINE = "vote", "revote", "myvotes"
EVERY = 5  # votes between offers to add one's own idea
PAGE = 5  # votes a page of /myvotes
LABELS: dict[str, str] = {
    "agree": "voting.agree",
    "disagree": "voting.disagree",
    "unsure": "voting.unsure",
    "skip": "voting.skip",
    "stop": "voting.stop",
    "keep": "voting.keep",
}
VOTE_OPTIONS = [Option(key, LABELS[key]) for key in ("agree", "disagree", "unsure", "skip", "stop")]
REVOTE_OPTIONS = [Option(key, LABELS[key]) for key in ("agree", "disagree", "unsure", "keep")]
_BUTTON = re.compile(r"^(vote|revote):(\d+):(\w+)$")


def _keyboard(
    prefix: str, statement_id: int, options: Sequence[Option], lang: str
) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    button_text(i, o, lang), callback_data=f"{prefix}:{statement_id}:{o.key}"
                )
            ]
            for i, o in enumerate(options, start=1)
        ]
    )


async def _send_quoted(
    update: Update,
    context: CocreateContext,
    texts: list[str],
    markup: InlineKeyboardMarkup | None,
) -> None:
    """Sends a text split to fit Telegram, the buttons under its last part."""
    shown = None
    for i, text in enumerate(texts):
        shown = await replies.send(update, context, text, markup if i == len(texts) - 1 else None)
    remember_prompt(context, shown)


def idea_text(statement: Statement, lang: str, key: str = "voting.idea") -> list[str]:
    """An idea as members see it: who it is from (a named author, or the team), and its words."""
    if statement.visibility == "named" and statement.author:
        return quoted(lang, f"{key}.named", statement.text, name=statement.author)
    if statement.visibility == "team":
        return quoted(lang, f"{key}.team", statement.text)
    return quoted(lang, key, statement.text)


async def _send_first(update: Update, context: CocreateContext, first: Sequence[str]) -> None:
    for text in first:
        await replies.send(update, context, text)


async def show_next(update: Update, context: CocreateContext, *, first: Sequence[str] = ()) -> None:
    """Shows the member the next idea to weigh (fewest votes first), or says none are left.
    `first`: texts to send before it, once the member is moved there (a vote's result)."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    statement = await context.store.votes.next_for(member.id)
    if statement is None:
        leave_question(context)
        context.data.pop("vote", None)
        lang = member.language
        await _send_first(update, context, first)
        await say(
            update, context, "voting.none_left", language=lang, reply_markup=menu_button(lang)
        )
        return
    await show_idea(update, context, member, statement, first=first)


async def show_idea(
    update: Update,
    context: CocreateContext,
    member: Member,
    statement: Statement,
    *,
    first: Sequence[str] = (),
) -> None:
    """Asks what the member thinks of one idea, and waits for the answer."""
    lang = member.language
    markup = _keyboard(VOTE, statement.id, VOTE_OPTIONS, lang)
    await_answer(context, VOTE)
    context.data["vote"] = statement.id
    leave_answering(context)
    await _send_first(update, context, first)
    await _send_quoted(update, context, idea_text(statement, lang), markup)


def result_text(tally: Tally, lang: str) -> str:
    """What people think of an idea so far, for a member who just voted on it."""
    hidden = hidden_in_result(tally)
    if tally.voters < 10 or (ALL, 0, VOTERS) in hidden:
        return t(lang, "voting.result.not_yet")
    lines = [t(lang, "voting.result", voters=tally.voters)]
    for choice in COUNTED:
        label = t(lang, LABELS[choice])
        if (ALL, 0, choice) in hidden:
            lines.append(t(lang, "voting.result.few", choice=label))
        else:
            count, share = tally.count(choice), tally.share(choice)
            lines.append(t(lang, "voting.result.line", choice=label, count=count, share=share))
    return "\n".join(lines)


async def vote(
    update: Update, context: CocreateContext, statement_id: int, choice: str, *, again: bool
) -> None:
    """Does what the member chose for an idea: stores the vote (or skip) and shows the result
    and the next idea; or stops; or, when changing a vote, keeps it."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    lang = member.language
    if choice == "stop":
        context.data.pop("vote", None)
        await say(update, context, "voting.stopped", language=lang)
        await send_menu(update, context, member)
        return
    if choice == "keep":
        kept = [t(lang, "voting.kept")]
        await show_mine(update, context, context.data.get("myvotes", 0), first=kept)
        return
    votes = context.store.votes
    statement = await votes.open_to(member.id, statement_id)
    if statement is None or choice not in LABELS:
        await show_next(update, context, first=[t(lang, "voting.gone")])
        return
    picked: Choice = "skip"
    for known in ("agree", "disagree", "unsure"):
        if known == choice:
            picked = known
    recorded = await votes.record(member.id, statement.id, picked)
    if picked == "skip":
        await show_next(update, context)
        return
    # The member moves on before anything is sent (see conversations/machine.py): the result
    # goes with what comes next.
    result = [result_text(await votes.tally(statement.id), lang)]
    if again:
        changed = [t(lang, "voting.changed"), *result]
        await show_mine(update, context, context.data.get("myvotes", 0), first=changed)
    elif recorded == "new" and (given := await votes.counted(member.id)) % EVERY == 0:
        context.data.pop("vote", None)
        await_answer(context, MORE.name)
        leave_answering(context)
        markup = keyboard(MORE.options, lang, MORE.name)
        await _send_first(update, context, result)
        shown = await say(
            update, context, "voting.five", language=lang, reply_markup=markup, count=given
        )
        remember_prompt(context, shown)
    else:
        await show_next(update, context, first=result)


class IdeaQuestion(PendingQuestion):
    """A question about one idea (vote on it, or change a vote): typed answers go to the idea
    kept in the session; buttons name the idea themselves."""

    def __init__(self, name: str, options: Sequence[Option]) -> None:
        super().__init__(name, options, self._answer)

    async def _answer(self, update: Update, context: CocreateContext, option: Option) -> None:
        statement_id = context.data.get("vote")
        if not isinstance(statement_id, int):
            await show_menu(update, context)
            return
        await vote(update, context, statement_id, option.key, again=self.name == REVOTE)

    async def ask_again(self, update: Update, context: CocreateContext, language: str) -> None:
        """Says typed words were not one of the choices, and asks about the idea again."""
        await say(update, context, "bad.choice", language=language)
        member = await current_member(update, context)
        statement_id = context.data.get("vote")
        statement = None
        if member is not None and isinstance(statement_id, int):
            statement = await context.store.votes.open_to(member.id, statement_id)
        if member is None or statement is None:
            await show_next(update, context)
        elif self.name == REVOTE:
            await ask_change(update, context, member, statement)
        else:
            await show_idea(update, context, member, statement)

    async def on_button(self, update: Update, context: CocreateContext) -> None:
        """Answers from a button, which names the idea; a button for an idea the member may
        not see changes nothing."""
        query = update.callback_query
        assert query is not None
        found = _BUTTON.match(query.data or "")
        member = await current_member(update, context)
        option = None
        if found is not None:
            option = next((o for o in self.options if o.key == found.group(3)), None)
        statement = None
        if found is not None and member is not None and option is not None:
            statement = await context.store.votes.open_to(member.id, int(found.group(2)))
        if statement is None or option is None:
            await answer_unknown_button(update, context)
            return
        await settle_button(update)
        leave_question(context)
        context.data["vote"] = statement.id
        await vote(update, context, statement.id, option.key, again=self.name == REVOTE)

    def handler(self) -> BaseHandler[Update, CocreateContext, None]:
        """The handler for this question's buttons."""
        return CallbackQueryHandler(self.on_button, pattern=rf"^{self.name}:\d+:\w+$")


QUESTION = IdeaQuestion(VOTE, VOTE_OPTIONS)
CHANGE = IdeaQuestion(REVOTE, REVOTE_OPTIONS)


async def after_five(update: Update, context: CocreateContext, option: Option) -> None:
    """Goes on after the offer made every 5 votes: more ideas, one's own idea, or the menu."""
    if option.key == "more":
        await show_next(update, context)
    elif option.key == "idea":
        await sharing.starter("idea")(update, context)
    else:
        await show_menu(update, context)


MORE = PendingQuestion(
    "vote_more",
    [
        Option("more", "voting.more"),
        Option("idea", "voting.add_idea"),
        Option("menu", "menu.button"),
    ],
    after_five,
)


# ---- /myvotes


def _said(choice: str, lang: str) -> str:
    if choice == "skip":
        return t(lang, "voting.mine.skipped")
    return t(lang, "voting.mine.said", choice=t(lang, LABELS[choice]))


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def mine_options(page: Sequence[MyVote], offset: int, total: int) -> list[Option]:
    """A page's choices: each vote (by the idea's first words), then More and Menu."""
    options = [Option(str(v.statement_id), label=_short(v.text)) for v in page]
    if total > PAGE:
        options.append(Option("page", "voting.mine.more"))
    options.append(Option("menu", "menu.button"))
    return options


async def show_mine(
    update: Update, context: CocreateContext, offset: int = 0, *, first: Sequence[str] = ()
) -> None:
    """Lists the member's votes, newest first, a page at a time, each to tap and change.
    `first`: texts to send before it, once the member is moved there (a changed vote)."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    lang = member.language
    page, total = await context.store.votes.mine(member.id, offset, PAGE)
    if not page and offset:
        offset = 0
        page, total = await context.store.votes.mine(member.id, offset, PAGE)
    if not page:
        leave_question(context)
        await _send_first(update, context, first)
        await say(
            update, context, "voting.mine.none", language=lang, reply_markup=menu_button(lang)
        )
        return
    lines = [t(lang, "voting.mine.title", first=offset + 1, last=offset + len(page), total=total)]
    for i, mine in enumerate(page, start=1):
        lines += [
            "",
            t(lang, "voting.mine.item", number=i, text=mine.text),
            _said(mine.choice, lang),
        ]
    texts = replies.split_text("", "\n".join(lines))
    nxt = offset + PAGE if offset + PAGE < total else 0
    buttons = []
    for i, option in enumerate(mine_options(page, offset, total), start=1):
        data = {"page": f"{MINE}:page:{nxt}", "menu": replies.MENU_BUTTON}.get(
            option.key, f"{MINE}:{option.key}"
        )
        buttons.append([InlineKeyboardButton(button_text(i, option, lang), callback_data=data)])
    await_answer(context, MINE)
    context.data["myvotes"] = offset
    leave_answering(context)
    await _send_first(update, context, first)
    await _send_quoted(update, context, texts, InlineKeyboardMarkup(buttons))


async def ask_change(
    update: Update, context: CocreateContext, member: Member, statement: Statement
) -> None:
    """Shows one of the member's ideas with their vote, and asks what they think now."""
    lang = member.language
    choice = await context.store.votes.choice_of(member.id, statement.id)
    if choice is None or choice == "skip":
        texts = idea_text(statement, lang, "voting.change.skipped")
    else:
        said = t(lang, LABELS[choice])
        texts = quoted(lang, "voting.change", statement.text, choice=said)
    markup = _keyboard(REVOTE, statement.id, REVOTE_OPTIONS, lang)
    await_answer(context, REVOTE)
    context.data["vote"] = statement.id
    await _send_quoted(update, context, texts, markup)


async def pick_mine(update: Update, context: CocreateContext, key: str) -> None:
    """Does what a /myvotes choice says: another page, the menu, or change one vote."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    if key == "menu":
        await send_menu(update, context, member)
        return
    if key.startswith("page:"):
        await show_mine(update, context, number(key.partition(":")[2]) or 0)
        return
    statement_id = number(key)
    statement = None
    if statement_id is not None:
        statement = await context.store.votes.open_to(member.id, statement_id)
    if statement is None:
        await answer_unknown_button(update, context)
        return
    await ask_change(update, context, member, statement)


class MineQuestion(PendingQuestion):
    """/myvotes's page: its choices are read again from the database for typed answers."""

    def __init__(self) -> None:
        super().__init__(MINE, [], self._unused)

    async def _unused(self, update: Update, context: CocreateContext, option: Option) -> None:
        raise AssertionError("MineQuestion answers through typed() and on_button()")

    async def typed(self, update: Update, context: CocreateContext, text: str, lang: str) -> bool:
        """Answers from typed words: a vote's number, More or Menu."""
        member = await current_member(update, context)
        if member is None:
            return False
        offset = context.data.get("myvotes", 0)
        page, total = await context.store.votes.mine(member.id, offset, PAGE)
        option = match(text, mine_options(page, offset, total), lang)
        if option is None:
            return False
        leave_question(context)
        if option.key == "page":
            nxt = offset + PAGE if offset + PAGE < total else 0
            await pick_mine(update, context, f"page:{nxt}")
        else:
            await pick_mine(update, context, option.key)
        return True

    async def ask_again(self, update: Update, context: CocreateContext, language: str) -> None:
        """Says typed words were not one of the choices, and shows the page again."""
        await_answer(context, MINE)  # before anything is sent: the door commits at each send
        await say(update, context, "bad.choice", language=language)
        await show_mine(update, context, context.data.get("myvotes", 0))

    async def on_button(self, update: Update, context: CocreateContext) -> None:
        """A vote's button, or More."""
        query = update.callback_query
        assert query is not None
        key = (query.data or "").partition(":")[2]
        if key.startswith("page:"):
            await settle_button(update)
            leave_question(context)
            await pick_mine(update, context, key)
            return
        member = await current_member(update, context)
        statement_id = number(key)
        statement = None
        if member is not None and statement_id is not None:
            statement = await context.store.votes.open_to(member.id, statement_id)
        if member is None or statement is None:
            await answer_unknown_button(update, context)
            return
        await settle_button(update)
        leave_question(context)
        await ask_change(update, context, member, statement)

    def handler(self) -> BaseHandler[Update, CocreateContext, None]:
        """The handler for the page's buttons."""
        return CallbackQueryHandler(self.on_button, pattern=rf"^{MINE}:(\d+|page:\d+)$")


MINE_QUESTION = MineQuestion()


async def reask(update: Update, context: CocreateContext) -> bool:
    """After a restart replayed an update already applied: asks again what the member was
    asked here (the idea, the change of a vote, the page of /myvotes, the offer after 5
    votes); False if they were asked nothing here."""
    question = awaited(context)
    member = await current_member(update, context)
    if member is None or question not in {q.name for q in QUESTIONS}:
        return False
    statement_id = context.data.get("vote")
    statement = None
    if question in (VOTE, REVOTE) and isinstance(statement_id, int):
        statement = await context.store.votes.open_to(member.id, statement_id)
    if question == MINE:
        await show_mine(update, context, context.data.get("myvotes", 0))
    elif question == REVOTE and statement is not None:
        await ask_change(update, context, member, statement)
    elif question == VOTE and statement is not None:
        await show_idea(update, context, member, statement)
    elif question == MORE.name:
        await_answer(context, MORE.name)
        markup = keyboard(MORE.options, member.language, MORE.name)
        given = await context.store.votes.counted(member.id)
        await say(update, context, "voting.five", reply_markup=markup, count=given)
    else:
        await show_next(update, context)
    return True


# One-step questions of this flow, for the router (typed answers) and their buttons.
QUESTIONS: tuple[PendingQuestion, ...] = (QUESTION, CHANGE, MINE_QUESTION, MORE)


# What the menu's "See others' ideas" does (its typed words and number too), and /myvotes.
ACTIONS: dict[str, Callable[[Update, CocreateContext], Coroutine[Any, Any, None]]] = {
    "vote": show_next,
    "myvotes": show_mine,
}


def build_handlers() -> list[BaseHandler[Update, CocreateContext, object]]:
    """/myvotes. (The buttons of voting's questions are registered with the other one-step
    questions, QUESTIONS, by conversations/routes.py's routing, which also reads their typed
    answers.)"""
    return [CommandHandler("myvotes", show_mine, filters=filters.UpdateType.MESSAGE)]
