"""Where people agree: each idea's votes, by group, and the common ground.
(Placeholder: built by issue 12's voting work.)"""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler

from conversations.context import CocreateContext


async def show(update: Update, context: CocreateContext) -> None:
    """Shows where people agree."""
    raise NotImplementedError


def build_handlers() -> list[BaseHandler[Update, CocreateContext, object]]:
    """The results' buttons."""
    return []
