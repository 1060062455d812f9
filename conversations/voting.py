"""See others' ideas: a member weighs approved ideas one at a time; /myvotes.
(Placeholder: built by issue 12's voting work.)"""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler

from conversations.context import CocreateContext


async def show_next(update: Update, context: CocreateContext) -> None:
    """Shows the member the next idea to weigh."""
    raise NotImplementedError


def build_handlers() -> list[BaseHandler[Update, CocreateContext, object]]:
    """Voting's buttons, and /myvotes."""
    return []
