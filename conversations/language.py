"""Changing language after joining: /language, the menu's "Change language", typed names.

Buttons carry `lang:<code>`; a typed answer is read while user_data["awaiting"] is "language".
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.catalogue import LANGUAGES
from conversations.choices import Option, from_callback, keyboard, match
from conversations.context import CocreateContext
from conversations.replies import current_member, say, send_menu, settle_button

PREFIX = "lang"
OPTIONS = [Option(code, f"language.{code}") for code in LANGUAGES]


async def ask(update: Update, context: CocreateContext, language: str) -> None:
    """Asks which language to use."""
    context.data["awaiting"] = "language"
    await say(
        update,
        context,
        "language.ask",
        language=language,
        reply_markup=keyboard(OPTIONS, language, PREFIX),
    )


async def choose(update: Update, context: CocreateContext, option: Option) -> None:
    """Stores the chosen language, confirms in it, and shows the menu."""
    context.data.pop("awaiting", None)
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    await context.store.members.set_language(member.id, option.key)
    member = await current_member(update, context)
    assert member is not None
    await say(update, context, "language.set", language=option.key)
    await send_menu(update, context, member)


async def typed(update: Update, context: CocreateContext, text: str, language: str) -> bool:
    """Reads a typed language name or number; False if it is not one."""
    option = match(text, OPTIONS, language)
    if option is None:
        return False
    await choose(update, context, option)
    return True


async def on_button(update: Update, context: CocreateContext) -> None:
    """Sets the language from a button."""
    query = update.callback_query
    assert query is not None
    option = from_callback(query.data or "", OPTIONS, PREFIX)
    await settle_button(update)
    if option is not None:
        await choose(update, context, option)


def build_handlers() -> list[BaseHandler[Update, CocreateContext, None]]:
    """The language buttons (the command itself is routed by the menu)."""
    return [CallbackQueryHandler(on_button, pattern=rf"^{PREFIX}:")]
