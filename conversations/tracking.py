"""What happened to ideas and question rounds: statuses with public reasons, told to
authors and supporters; /updates for members. (Placeholder: built by issue 12's tracker work.)"""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler

from conversations.context import CocreateContext


async def show(update: Update, context: CocreateContext) -> None:
    """Lists ideas and rounds to set a status on."""
    raise NotImplementedError


def build_handlers() -> list[BaseHandler[Update, CocreateContext, object]]:
    """The tracker's buttons and steps, and /updates."""
    return []
