"""Changing language after joining: /language, the menu's "Change language", typed names.

Also each chat's command menu (the "/" list in Telegram): in the language the member chose,
not the one their Telegram app is set to.
"""

from __future__ import annotations

import logging

from telegram import BotCommandScopeChat, Update
from telegram.error import TelegramError

from bot.catalogue import LANGUAGES
from conversations.choices import Option
from conversations.commands import member_commands, show_staff_menu
from conversations.context import CocreateContext
from conversations.pending import PendingQuestion
from conversations.replies import chat_of, current_member, say, send_menu

logger = logging.getLogger(__name__)


async def show_commands(update: Update, context: CocreateContext, language: str) -> None:
    """Sets this chat's command menu in `language`: the member commands bot/app.py published
    for it, and the staff commands too for organisers and facilitators."""
    chat_id, user = chat_of(update), update.effective_user
    if chat_id is None or user is None:
        return
    bot = context.bot
    try:
        role = await context.store.roles.role_of(user.id)
        if role is not None:
            await show_staff_menu(bot, chat_id, role, language)
            return
        await bot.set_my_commands(member_commands(language), scope=BotCommandScopeChat(chat_id))
    except TelegramError as exc:  # the menu is a convenience: the language is stored anyway
        logger.warning("Could not set a chat's command menu: %s", exc)


async def choose(update: Update, context: CocreateContext, option: Option) -> None:
    """Stores the chosen language, confirms in it, and shows the menu."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    await context.store.members.set_language(member.id, option.key)
    await show_commands(update, context, option.key)
    member = await current_member(update, context)
    assert member is not None
    await say(update, context, "language.set", language=option.key)
    await send_menu(update, context, member)


QUESTION = PendingQuestion("lang", [Option(code, f"language.{code}") for code in LANGUAGES], choose)


async def ask(update: Update, context: CocreateContext, language: str) -> None:
    """Asks which language to use."""
    await QUESTION.ask(update, context, "language.ask", language)


async def reask(update: Update, context: CocreateContext) -> bool:
    """After a restart replayed an update already applied: asks again which language to use,
    leaving the member's session as it is. False for someone who is not a member."""
    member = await current_member(update, context)
    if member is None:
        return False
    await ask(update, context, member.language)
    return True
