"""The home of a member who is not in the middle of a flow: the menu and the everyday commands.

Commands: /menu, /help, /language, /stop, /resume, /cancel, /delete, and the same as typed
words (MENU, HELP, STOP …). Also what to say to anything else: unknown commands, stickers
and the like, edited messages, buttons from old messages, people who have not started.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from conversations import language, my_data
from conversations.choices import match
from conversations.context import CocreateContext
from conversations.replies import (
    current_member,
    language_of,
    menu_options,
    say,
    settle_button,
    show_menu,
    typed_command,
)

Action = Callable[[Update, CocreateContext], Coroutine[Any, Any, None]]
NEW_MESSAGES = filters.UpdateType.MESSAGE


async def show_help(update: Update, context: CocreateContext) -> None:
    """Explains what the bot is for and what can be typed."""
    await say(update, context, "help.text")
    if await current_member(update, context) is None:
        await say(update, context, "bad.not_started")


async def stop(update: Update, context: CocreateContext) -> None:
    """Stops questions to the member; what they shared is kept."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
    elif member.stopped:
        await say(update, context, "stop.already")
    else:
        await context.store.members.set_stopped(member.id, True)
        await say(update, context, "stop.done")


async def resume(update: Update, context: CocreateContext) -> None:
    """Lets questions reach the member again."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
    elif not member.stopped:
        await say(update, context, "resume.not_stopped")
    else:
        await context.store.members.set_stopped(member.id, False)
        await say(update, context, "resume.done")


async def cancel(update: Update, context: CocreateContext) -> None:
    """Drops any question the member was being asked."""
    context.data.pop("awaiting", None)
    member = await current_member(update, context)
    await say(update, context, "cancel.nothing" if member else "bad.not_started")


async def change_language(update: Update, context: CocreateContext) -> None:
    """Asks a member which language to use."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    await language.ask(update, context, member.language)


PENDING = (language.QUESTION, my_data.QUESTION)
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
}


async def on_menu_button(update: Update, context: CocreateContext) -> None:
    """Does what a menu button says."""
    query = update.callback_query
    assert query is not None
    await settle_button(update)
    action = ACTIONS.get((query.data or "").partition(":")[2])
    await (action or show_menu)(update, context)


async def on_text(update: Update, context: CocreateContext) -> None:
    """Reads typed words outside a flow: an awaited answer, a menu number, or a command word."""
    message = update.effective_message
    assert message is not None and message.text is not None
    text = message.text
    member = await current_member(update, context)
    lang = await language_of(update, context)
    awaiting = context.data.get("awaiting")
    for question in PENDING:
        if member is not None and awaiting == question.name:
            if await question.typed(update, context, text, lang):
                return
    context.data.pop("awaiting", None)
    command = typed_command(text, lang)
    if command is not None:
        await ACTIONS[command](update, context)
        return
    if member is None:
        await say(update, context, "bad.not_started")
        return
    option = match(text, menu_options(member), lang)
    if option is not None:
        await ACTIONS[option.key](update, context)
        return
    await say(update, context, "bad.idle")


def _command(name: str, action: Action) -> CommandHandler[CocreateContext, None]:
    return CommandHandler(name, action, filters=NEW_MESSAGES)


def build_handlers() -> list[BaseHandler[Update, CocreateContext, None]]:
    """The menu, its buttons and the everyday commands."""
    return [
        _command("menu", show_menu),
        _command("help", show_help),
        _command("stop", stop),
        _command("resume", resume),
        _command("cancel", cancel),
        _command("language", change_language),
        _command("delete", my_data.ask),
        CallbackQueryHandler(on_menu_button, pattern=r"^menu:"),
        *(question.handler() for question in PENDING),
        MessageHandler(NEW_MESSAGES & filters.TEXT & ~filters.COMMAND, on_text),
    ]


async def on_unknown_command(update: Update, context: CocreateContext) -> None:
    """Answers a command the bot does not have."""
    await say(update, context, "bad.unknown_command")


async def on_other_message(update: Update, context: CocreateContext) -> None:
    """Answers a sticker, location, contact or file sent outside a flow."""
    member = await current_member(update, context)
    await say(update, context, "bad.idle_media" if member else "bad.not_started")


async def on_edited(update: Update, context: CocreateContext) -> None:
    """Edits to old messages are not read: say so, rather than stay silent."""
    await say(update, context, "bad.edited")


async def on_unknown_button(update: Update, context: CocreateContext) -> None:
    """A button the bot no longer expects (old, forged, or from someone who never started)."""
    await settle_button(update)
    if await current_member(update, context) is not None:
        await say(update, context, "bad.old_button")
    await show_menu(update, context)


def build_fallbacks() -> list[BaseHandler[Update, CocreateContext, None]]:
    """Answers to everything no flow took; registered last."""
    return [
        MessageHandler(NEW_MESSAGES & filters.COMMAND, on_unknown_command),
        MessageHandler(filters.UpdateType.EDITED, on_edited),
        MessageHandler(NEW_MESSAGES, on_other_message),
        CallbackQueryHandler(on_unknown_button),
    ]
