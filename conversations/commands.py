"""The Telegram command menus: every chat has the member commands (`MEMBER_COMMANDS`, which
bot/app.py publishes per language at start); a staff member's own chat also has their staff
commands, in their language, and gets the member menu back when their role ends.
"""

from __future__ import annotations

import logging

from telegram import Bot, BotCommand, BotCommandScopeChat
from telegram.error import TelegramError

from bot.catalogue import DEFAULT_LANGUAGE, t
from storage.roles import ORGANISER, Role
from storage.store import Store

logger = logging.getLogger(__name__)

MEMBER_COMMANDS = (
    "start",
    "menu",
    "help",
    "language",
    "questions",
    "updates",
    "mydata",
    "myvotes",
    "stop",
    "resume",
    "delete",
    "cancel",
)
FACILITATOR_COMMANDS = ("ask", "broadcast", "responses", "ideas", "scheduled", "stats", "workbench")
ORGANISER_COMMANDS = (*FACILITATOR_COMMANDS, "export", "invite", "roles")


def staff_commands(role: Role) -> tuple[str, ...]:
    """The commands a role adds to the member's ones."""
    return ORGANISER_COMMANDS if role == ORGANISER else FACILITATOR_COMMANDS


def member_commands(language: str) -> list[BotCommand]:
    """The member command menu in a language."""
    return [BotCommand(c, t(language, f"command.{c}")) for c in MEMBER_COMMANDS]


def command_list(role: Role, language: str) -> str:
    """The staff commands as lines of text: "/ask – Ask members a question"."""
    return "\n".join(f"/{c} – {t(language, f'command.{c}')}" for c in staff_commands(role))


# ---- command menus


async def menu_language(store: Store, user_id: int) -> str:
    """The language of someone's command menu: theirs if they are a member, else English."""
    member = await store.members.by_telegram_id(user_id)
    return member.language if member else DEFAULT_LANGUAGE


async def show_staff_menu(bot: Bot, chat_id: int, role: Role, language: str) -> None:
    """Sets one chat's command menu to the member commands and the role's staff commands."""
    staff = [BotCommand(c, t(language, f"command.{c}")) for c in staff_commands(role)]
    await bot.set_my_commands(
        [*member_commands(language), *staff], scope=BotCommandScopeChat(chat_id)
    )


async def show_member_menu(bot: Bot, chat_id: int) -> None:
    """Gives a chat the member command menu again (the one every chat has by default)."""
    await bot.delete_my_commands(scope=BotCommandScopeChat(chat_id))


async def register_staff_menus(bot: Bot, store: Store) -> None:
    """At start: staff menus for every active staff member; member menus for former staff."""
    for role in await store.roles.everyone():
        try:
            if role.active:
                language = await menu_language(store, role.telegram_user_id)
                await show_staff_menu(bot, role.chat_id, role.role, language)
            else:
                await show_member_menu(bot, role.chat_id)
        except TelegramError as exc:  # someone who never opened the bot, or blocked it
            logger.warning("Could not set the command menu of a staff chat: %s", exc)
