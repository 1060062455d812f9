"""Words and things a member sends outside any multi-step flow, and what to say to the rest.

A message that is not a command goes, in this order, to: the one-step question the person was
just asked (language, delete, share another?, a reply or answer back) unless a facilitator's
question reached them after it, the story or idea they are telling, the facilitator's
question they were just sent, a typed everyday word (MENU,
HELP …), a typed menu choice. Also what to say to anything else: unknown commands, stickers
and the like outside a flow, edited messages, old buttons, people who have not started.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, MessageHandler, filters

from conversations import answering, approving, menu, sharing
from conversations.context import CocreateContext
from conversations.pending import PendingQuestion
from conversations.replies import (
    active_draft,
    answer_unknown_button,
    answer_unknown_command,
    awaited,
    current_member,
    language_of,
    leave_question,
    menu_button,
    say,
    typed_command,
)

NEW_MESSAGES = filters.UpdateType.MESSAGE
TakeText = Callable[[Update, CocreateContext, int, str], Awaitable[bool]]


@dataclass(frozen=True)
class Routing:
    """Where the router hands words on (given by conversations/routes.py, which knows every
    flow, so this module imports none of those it hands to)."""

    actions: menu.Actions  # everyday words (MENU, HELP …) and menu choices
    pending: Sequence[PendingQuestion]  # one-step questions answered by a choice
    # One-step questions answered by any words (a facilitator's reply, a member's answer
    # back): the taker, and the session data key holding what it answers.
    takes_text: Mapping[str, tuple[TakeText, Literal["answer", "reply", "statement"]]]


async def on_message(update: Update, context: CocreateContext, routing: Routing) -> None:
    """Routes a message that is not a command (see the module docstring for the order)."""
    message = update.effective_message
    assert message is not None
    text = message.text
    member = await current_member(update, context)
    lang = await language_of(update, context)
    question = awaited(context)
    if question is not None and member and await answering.came_after(context, member):
        leave_question(context)  # a facilitator's question came after it: that one is answered
        question = None
    if text is not None and question is not None:
        for pending in routing.pending:
            if (
                member
                and question == pending.name
                and await pending.typed(update, context, text, lang)
            ):
                return
        if question in routing.takes_text:
            take, key = routing.takes_text[question]
            ident = context.data.get(key)
            leave_question(context)
            if isinstance(ident, int) and await take(update, context, ident, text):
                return
    leave_question(context)
    if member is not None:
        draft = await active_draft(context, member)
        if draft is not None:
            await sharing.on_input(update, context, member, draft)
            return
        if await answering.take_typed(update, context, member):
            return
        if await approving.take_typed(update, context, member):  # Yes or No to a summary
            return
    if text is None:
        if member is None:
            await say(update, context, "bad.not_started")
        else:
            await say(update, context, "bad.idle_media", reply_markup=menu_button(lang))
        return
    command = typed_command(text, lang)
    if command is not None:
        await routing.actions[command](update, context)
        return
    if member is None:
        await say(update, context, "bad.not_started")
        return
    if await menu.typed_choice(update, context, member, text, lang, routing.actions):
        return
    asked = next((q for q in routing.pending if q.name == question), None)
    if asked is not None:  # a one-step question is still open: its buttons again
        await asked.ask_again(update, context, lang)
        return
    await say(update, context, "bad.idle", reply_markup=menu_button(lang))


async def on_edited(update: Update, context: CocreateContext) -> None:
    """Edits to old messages are not read: say so, rather than stay silent."""
    lang = await language_of(update, context)
    await say(update, context, "bad.edited", reply_markup=menu_button(lang))


def build_handlers(routing: Routing) -> list[BaseHandler[Update, CocreateContext, None]]:
    """The buttons of one-step questions, then the message router."""

    async def route(update: Update, context: CocreateContext) -> None:
        """Routes a message that is not a command."""
        await on_message(update, context, routing)

    return [
        *(question.handler() for question in routing.pending),
        MessageHandler(NEW_MESSAGES & ~filters.COMMAND, route),
    ]


def build_fallbacks() -> list[BaseHandler[Update, CocreateContext, None]]:
    """Answers to everything no flow took; registered last."""
    return [
        MessageHandler(NEW_MESSAGES & filters.COMMAND, answer_unknown_command),
        MessageHandler(filters.UpdateType.EDITED, on_edited),
        CallbackQueryHandler(answer_unknown_button),
    ]
