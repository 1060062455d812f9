"""The menu: what a member can do, shown as numbered buttons (replies.send_menu), and what each
button, or its typed number or word, does (conversations/everyday.py's actions).
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from conversations import sharing
from conversations.choices import match
from conversations.context import CocreateContext
from conversations.everyday import ACTIONS, Action
from conversations.replies import menu_options, settle_button, show_menu
from storage import kinds
from storage.models import Member

PREFIX = "menu"


def action(key: str) -> Action | None:
    """What a menu option does: an everyday action, or starting a kind of sharing (its key is
    the kind's noun in storage/kinds.py)."""
    kind = kinds.by_noun(key)
    return sharing.starter(kind.key) if kind is not None else ACTIONS.get(key)


async def on_menu_button(update: Update, context: CocreateContext) -> None:
    """Does what a menu button says."""
    query = update.callback_query
    assert query is not None
    await settle_button(update)
    chosen = action((query.data or "").partition(":")[2])
    await (chosen or show_menu)(update, context)


async def typed_choice(
    update: Update, context: CocreateContext, member: Member, text: str, lang: str
) -> bool:
    """Does what a typed menu choice (its number or words) says; False if it is none."""
    option = match(text, menu_options(member), lang)
    chosen = action(option.key) if option is not None else None
    if chosen is None:
        return False
    await chosen(update, context)
    return True


def build_handlers() -> list[BaseHandler[Update, CocreateContext, None]]:
    """The menu's buttons."""
    return [CallbackQueryHandler(on_menu_button, pattern=rf"^{PREFIX}:")]
