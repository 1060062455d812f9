"""The menu: what a member can do, shown as numbered buttons (replies.send_menu), and what each
button, or its typed number or word, does: the actions conversations/routes.py hands in
(conversations/everyday.py's, and starting each kind of sharing by its noun).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from conversations.choices import match
from conversations.context import CocreateContext
from conversations.replies import menu_options, settle_button, show_menu
from storage.models import Member

PREFIX = "menu"
Action = Callable[[Update, CocreateContext], Coroutine[Any, Any, None]]
Actions = Mapping[str, Action]


async def typed_choice(
    update: Update, context: CocreateContext, member: Member, text: str, lang: str, actions: Actions
) -> bool:
    """Does what a typed menu choice (its number or words) says; False if it is none."""
    option = match(text, menu_options(member), lang)
    chosen = actions.get(option.key) if option is not None else None
    if chosen is None:
        return False
    await chosen(update, context)
    return True


def build_handlers(actions: Actions) -> list[BaseHandler[Update, CocreateContext, None]]:
    """The menu's buttons, each doing its action."""

    async def on_menu_button(update: Update, context: CocreateContext) -> None:
        """Does what a menu button says."""
        query = update.callback_query
        assert query is not None
        await settle_button(update)
        action = actions.get((query.data or "").partition(":")[2])
        await (action or show_menu)(update, context)

    return [CallbackQueryHandler(on_menu_button, pattern=rf"^{PREFIX}:")]
