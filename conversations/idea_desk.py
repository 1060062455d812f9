"""/ideas: the facilitators' desk for ideas members share and weigh.

It shows four buttons, each handed to the module that does it:
- "Waiting for your OK": ideas members chose to share, to approve (perhaps edited) or
  decline, and voice ideas to summarise (conversations/approving.py);
- "Add a statement": a facilitator's own short statement for members to weigh
  (conversations/approving.py);
- "Where people agree": each idea's votes, by "about you" group, and the common ground
  (conversations/agreement.py);
- "What happened": set what became of an idea or a question round, with a public reason,
  told to its author and supporters (conversations/tracking.py).

Buttons: `ideas:wait`, `ideas:add`, `ideas:agree`, `ideas:status`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, filters

from bot.catalogue import t
from conversations import agreement, approving, replies, tracking
from conversations.context import CocreateContext
from conversations.replies import language_of, settle_button
from conversations.staff import staff_only

PREFIX = "ideas"
Section = Callable[[Update, CocreateContext], Awaitable[object]]
# Each button: its key (callback data `ideas:<key>`), its label, what it does.
SECTIONS: tuple[tuple[str, str, Section], ...] = (
    ("wait", "ideas.desk.wait", approving.show_waiting),
    ("add", "ideas.desk.add", approving.start_statement),
    ("agree", "ideas.desk.agree", agreement.show),
    ("status", "ideas.desk.status", tracking.show),
)


async def show_desk(update: Update, context: CocreateContext) -> None:
    """The desk: what a facilitator can do with ideas, one button each."""
    lang = await language_of(update, context)
    buttons = [
        [InlineKeyboardButton(t(lang, label), callback_data=f"{PREFIX}:{key}")]
        for key, label, _ in SECTIONS
    ]
    await replies.send(update, context, t(lang, "ideas.desk"), InlineKeyboardMarkup(buttons))


async def on_button(update: Update, context: CocreateContext) -> None:
    """Opens the section a desk button names."""
    query = update.callback_query
    assert query is not None
    await settle_button(update)
    key = (query.data or "").partition(":")[2]
    for name, _, section in SECTIONS:
        if name == key:
            await section(update, context)
            return
    await show_desk(update, context)


def build_handlers() -> list[BaseHandler[Update, CocreateContext, object]]:
    """/ideas and the desk's buttons, for facilitators and organisers."""
    keys = "|".join(key for key, _, _ in SECTIONS)
    return [
        CommandHandler("ideas", staff_only(show_desk), filters=filters.UpdateType.MESSAGE),
        CallbackQueryHandler(staff_only(on_button), pattern=rf"^{PREFIX}:({keys})$"),
    ]
