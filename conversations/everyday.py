"""The everyday commands a member can use anywhere: /help, /stop, /resume, /cancel, /language,
/mydata, /delete, /questions (and the same as typed words: HELP, STOP …), and starting a story
or an idea. Each is one action; conversations/menu.py offers them as buttons too.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, filters

from conversations import answering, approving, language, my_data, sharing
from conversations.context import CocreateContext
from conversations.replies import (
    SHARING,
    active_draft,
    current_member,
    menu_button,
    pause_draft,
    say,
    show_menu,
)

Action = Callable[[Update, CocreateContext], Coroutine[Any, Any, None]]
NEW_MESSAGES = filters.UpdateType.MESSAGE


async def show_help(update: Update, context: CocreateContext) -> None:
    """Explains what the bot is for and what can be typed; then asks again what was asked."""
    await say(update, context, "help.text")
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    if context.session.flow == SHARING:  # the story or idea they are telling goes on
        await context.ask_again(update)


async def stop(update: Update, context: CocreateContext) -> None:
    """Stops questions to the member; what they shared is kept."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    await pause_draft(update, context, member)
    back = menu_button(member.language)
    if member.stopped:
        await say(update, context, "stop.already", reply_markup=back)
    else:
        await context.store.members.set_stopped(member.id, True)
        await say(update, context, "stop.done", reply_markup=back)


async def resume(update: Update, context: CocreateContext) -> None:
    """Lets questions reach the member again."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
    elif not member.stopped and member.unreachable_at is None:
        await say(update, context, "resume.not_stopped", reply_markup=menu_button(member.language))
    else:
        await context.store.members.set_stopped(member.id, False)
        await say(update, context, "resume.done", reply_markup=menu_button(member.language))


async def cancel(update: Update, context: CocreateContext) -> None:
    """Stops what the member is doing: a story or idea (after asking), or a question; or
    what a facilitator is typing for an idea (conversations/approving.py)."""
    if await approving.cancel(update, context):
        return
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    draft = await active_draft(context, member)
    if draft is not None:
        await sharing.ask_to_cancel(update, context, draft)
        return
    context.session.end()
    await say(update, context, "cancel.nothing", reply_markup=menu_button(member.language))


async def change_language(update: Update, context: CocreateContext) -> None:
    """Asks a member which language to use."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    await language.ask(update, context, member.language)


# What each everyday word does, whether typed, sent as /command or chosen from the menu (the
# menu's kinds of sharing come from storage/kinds.py: see menu.action).
ACTIONS: dict[str, Action] = {
    "menu": show_menu,
    "back": show_menu,
    "skip": show_menu,
    "help": show_help,
    "stop": stop,
    "resume": resume,
    "cancel": cancel,
    "language": change_language,
    "delete": my_data.ask,
    "mydata": my_data.send_my_data,
    "questions": answering.list_open,
}
COMMANDS = ("menu", "help", "stop", "resume", "cancel", "language", "mydata", "questions", "delete")


def build_handlers() -> list[BaseHandler[Update, CocreateContext, None]]:
    """The everyday commands."""
    return [CommandHandler(name, ACTIONS[name], filters=NEW_MESSAGES) for name in COMMANDS]
