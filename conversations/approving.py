"""Ideas members chose to share, approved by a facilitator before anyone else sees them;
and facilitators' own statements. (Placeholder: built by issue 12's approval work.)"""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler

from conversations.context import CocreateContext


async def show_waiting(update: Update, context: CocreateContext) -> None:
    """Lists the ideas waiting for a facilitator's OK."""
    raise NotImplementedError


async def start_statement(update: Update, context: CocreateContext) -> None:
    """Starts a facilitator's own statement."""
    raise NotImplementedError


def build_handlers() -> list[BaseHandler[Update, CocreateContext, object]]:
    """Approval's buttons and steps."""
    return []
