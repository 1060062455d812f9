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

Buttons: `ideas:wait`, `ideas:add`, `ideas:agree`, `ideas:status`. What each one opens is
handed in by conversations/routes.py (`build_handlers`), which knows every flow: the desk
imports none of them, so the flows it opens may stand on the staff-flow machinery
(conversations/steps.py) and the desk stays a floor below them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, filters

from bot.catalogue import t
from conversations import replies
from conversations.context import CocreateContext
from conversations.replies import language_of, settle_button
from conversations.staff import staff_only

PREFIX = "ideas"
Section = Callable[[Update, CocreateContext], Awaitable[object]]
# Each button: its key (callback data `ideas:<key>`) and its label. What it does is handed in.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("wait", "ideas.desk.wait"),
    ("add", "ideas.desk.add"),
    ("agree", "ideas.desk.agree"),
    ("status", "ideas.desk.status"),
)


async def show_desk(update: Update, context: CocreateContext) -> None:
    """The desk: what a facilitator can do with ideas, one button each."""
    lang = await language_of(update, context)
    buttons = [
        [InlineKeyboardButton(t(lang, label), callback_data=f"{PREFIX}:{key}")]
        for key, label in SECTIONS
    ]
    await replies.send(update, context, t(lang, "ideas.desk"), InlineKeyboardMarkup(buttons))


def build_handlers(
    opens: Mapping[str, Section],
) -> list[BaseHandler[Update, CocreateContext, object]]:
    """/ideas and the desk's buttons, for facilitators and organisers; `opens` says what each
    button's key opens."""
    assert set(opens) == {key for key, _ in SECTIONS}, "every desk button opens something"

    async def on_button(update: Update, context: CocreateContext) -> None:
        """Opens the section a desk button names."""
        query = update.callback_query
        assert query is not None
        await settle_button(update)
        section = opens.get((query.data or "").partition(":")[2])
        await (section or show_desk)(update, context)

    keys = "|".join(key for key, _ in SECTIONS)
    return [
        CommandHandler("ideas", staff_only(show_desk), filters=filters.UpdateType.MESSAGE),
        CallbackQueryHandler(staff_only(on_button), pattern=rf"^{PREFIX}:({keys})$"),
    ]
