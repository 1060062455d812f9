"""Changing language after joining: /language, the menu's "Change language", typed names."""

from __future__ import annotations

from telegram import Update

from bot.catalogue import LANGUAGES
from conversations.choices import Option
from conversations.context import CocreateContext
from conversations.pending import PendingQuestion
from conversations.replies import current_member, say, send_menu


async def choose(update: Update, context: CocreateContext, option: Option) -> None:
    """Stores the chosen language, confirms in it, and shows the menu."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    await context.store.members.set_language(member.id, option.key)
    member = await current_member(update, context)
    assert member is not None
    await say(update, context, "language.set", language=option.key)
    await send_menu(update, context, member)


QUESTION = PendingQuestion("lang", [Option(code, f"language.{code}") for code in LANGUAGES], choose)


async def ask(update: Update, context: CocreateContext, language: str) -> None:
    """Asks which language to use."""
    await QUESTION.ask(update, context, "language.ask", language)
