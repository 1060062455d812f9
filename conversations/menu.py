"""The menu: what a member can do, shown as numbered buttons (replies.send_menu), and what each
button, or its typed number or word, does (conversations/everyday.py's actions).
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from conversations.choices import match
from conversations.context import CocreateContext
from conversations.everyday import ACTIONS
from conversations.replies import menu_options, settle_button, show_menu
from storage.models import Member

PREFIX = "menu"


async def on_menu_button(update: Update, context: CocreateContext) -> None:
    """Does what a menu button says."""
    query = update.callback_query
    assert query is not None
    await settle_button(update)
    action = ACTIONS.get((query.data or "").partition(":")[2])
    await (action or show_menu)(update, context)


async def typed_choice(
    update: Update, context: CocreateContext, member: Member, text: str, lang: str
) -> bool:
    """Does what a typed menu choice (its number or words) says; False if it is none."""
    option = match(text, menu_options(member), lang)
    if option is None:
        return False
    await ACTIONS[option.key](update, context)
    return True


def build_handlers() -> list[BaseHandler[Update, CocreateContext, None]]:
    """The menu's buttons."""
    return [CallbackQueryHandler(on_menu_button, pattern=rf"^{PREFIX}:")]
