"""Words and things a member sends outside any multi-step flow, and what to say to the rest.

A message that is not a command goes, in this order, to: the one-step question the person was
just asked (language, delete, share another?, a reply or answer back), the story or idea they
are telling, the facilitator's question they were just sent, a typed everyday word (MENU,
HELP …), a typed menu choice. Also what to say to anything else: unknown commands, stickers
and the like outside a flow, edited messages, old buttons, people who have not started.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, MessageHandler, filters

from conversations import answering, language, menu, my_data, reviewing, sharing
from conversations.context import CocreateContext
from conversations.everyday import ACTIONS
from conversations.pending import PendingQuestion
from conversations.replies import (
    active_draft,
    awaited,
    current_member,
    language_of,
    leave_question,
    menu_button,
    say,
    settle_button,
    show_menu,
    typed_command,
)

NEW_MESSAGES = filters.UpdateType.MESSAGE


def pending_questions() -> list[PendingQuestion]:
    """One-step questions answered by a choice (their buttons are handled by each question);
    "Share one more?" of every kind in storage/kinds.py."""
    return [language.QUESTION, my_data.QUESTION, *sharing.after_questions()]


# One-step questions answered by any words: a facilitator's reply, a member's answer back.
TakeText = Callable[[Update, CocreateContext, int, str], Awaitable[bool]]
AWAITING_TEXT: dict[str, tuple[TakeText, str]] = {
    reviewing.REPLY: (reviewing.take_reply, "answer"),
    reviewing.ANSWER_BACK: (reviewing.take_answer_back, "reply"),
}


async def on_message(update: Update, context: CocreateContext) -> None:
    """Routes a message that is not a command (see the module docstring for the order)."""
    message = update.effective_message
    assert message is not None
    text = message.text
    member = await current_member(update, context)
    lang = await language_of(update, context)
    question = awaited(context)
    if text is not None and question is not None:
        for pending in pending_questions():
            if (
                member
                and question == pending.name
                and await pending.typed(update, context, text, lang)
            ):
                return
        if question in AWAITING_TEXT:
            take, key = AWAITING_TEXT[question]
            ident = context.data.get("answer") if key == "answer" else context.data.get("reply")
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
    if text is None:
        if member is None:
            await say(update, context, "bad.not_started")
        else:
            await say(update, context, "bad.idle_media", reply_markup=menu_button(lang))
        return
    command = typed_command(text, lang)
    if command is not None:
        await ACTIONS[command](update, context)
        return
    if member is None:
        await say(update, context, "bad.not_started")
        return
    if await menu.typed_choice(update, context, member, text, lang):
        return
    asked = next((q for q in pending_questions() if q.name == question), None)
    if asked is not None:  # a one-step question is still open: its buttons again
        await asked.ask_again(update, context, lang)
        return
    await say(update, context, "bad.idle", reply_markup=menu_button(lang))


async def on_unknown_command(update: Update, context: CocreateContext) -> None:
    """Answers a command the bot does not have."""
    lang = await language_of(update, context)
    await say(update, context, "bad.unknown_command", reply_markup=menu_button(lang))


async def on_edited(update: Update, context: CocreateContext) -> None:
    """Edits to old messages are not read: say so, rather than stay silent."""
    lang = await language_of(update, context)
    await say(update, context, "bad.edited", reply_markup=menu_button(lang))


async def on_unknown_button(update: Update, context: CocreateContext) -> None:
    """A button the bot no longer expects (old, forged, or from someone who never started)."""
    await settle_button(update, chosen=False)
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    await say(update, context, "bad.old_button")
    draft = await active_draft(context, member)
    if draft is not None:  # carry on where they are, rather than leave the story
        await sharing.ask(update, context, draft)
    else:
        await show_menu(update, context)


def build_handlers() -> list[BaseHandler[Update, CocreateContext, None]]:
    """The buttons of one-step questions, then the message router."""
    return [
        *(question.handler() for question in pending_questions()),
        MessageHandler(NEW_MESSAGES & ~filters.COMMAND, on_message),
    ]


def build_fallbacks() -> list[BaseHandler[Update, CocreateContext, None]]:
    """Answers to everything no flow took; registered last."""
    return [
        MessageHandler(NEW_MESSAGES & filters.COMMAND, on_unknown_command),
        MessageHandler(filters.UpdateType.EDITED, on_edited),
        CallbackQueryHandler(on_unknown_button),
    ]
