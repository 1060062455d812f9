"""Small pieces shared by the staff's step-by-step flows (/ask, /broadcast, /export): the
conversation they all are, asking a step with numbered buttons, and reading the answer as a
button press or typed words."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.catalogue import t
from conversations.choices import Option, from_callback, keyboard, match
from conversations.context import CocreateContext
from conversations.machine import END, FlowHandler
from conversations.replies import chat_of, language_of, settle_button
from conversations.staff import staff_only
from storage.roles import FACILITATOR, Role

Step = Callable[[Update, CocreateContext], Coroutine[Any, Any, int]]
DraftKey = Literal["ask", "broadcast", "export"]  # where each staff flow keeps its draft


def staff_conversation(
    *,
    command: str,
    button_prefix: str,
    start: Step,
    states: Mapping[Any, Step],
    cancel: Step,
    role: Role = FACILITATOR,
) -> FlowHandler:
    """A flow (named after its command) for staff with `role`, its state kept in the database:
    at each state, its buttons (`<button_prefix>:…`) and typed words go to that state's
    handler; /cancel ends it. Every handler is behind the one permission guard."""
    new_messages = filters.UpdateType.MESSAGE
    by_state: dict[Enum, list[BaseHandler[Update, CocreateContext, object]]] = {}
    for state, handler in states.items():
        guarded = staff_only(handler, role)
        by_state[state] = [
            CallbackQueryHandler(guarded, pattern=rf"^{button_prefix}:"),
            MessageHandler(new_messages & ~filters.COMMAND, guarded),
        ]
    return FlowHandler(
        command,
        type(next(iter(states))),
        entry_points=[CommandHandler(command, staff_only(start, role), filters=new_messages)],
        handlers=by_state,
        fallbacks=[CommandHandler("cancel", staff_only(cancel, role), filters=new_messages)],
    )


@dataclass(frozen=True)
class Answer:
    """What came back at a step: a chosen option, typed words, or a button from elsewhere."""

    option: Option | None
    text: str | None
    stale: bool = False


async def send(
    update: Update,
    context: CocreateContext,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Sends a message to the person behind the update."""
    chat_id = chat_of(update)
    assert chat_id is not None
    await context.bot.send_message(chat_id, text, reply_markup=markup)


async def ask(
    update: Update,
    context: CocreateContext,
    lang: str,
    key: str,
    options: Sequence[Option] = (),
    prefix: str = "",
    **values: object,
) -> None:
    """Sends a step's question (a catalogue key) with its buttons."""
    markup = keyboard(options, lang, prefix) if options else None
    await send(update, context, t(lang, key, **values), markup)


async def give_up(
    update: Update, context: CocreateContext, draft_key: DraftKey, text_key: str
) -> int:
    """Drops a flow's draft, says so (catalogue `text_key`) and ends the conversation."""
    context.data.pop(draft_key, None)
    context.session.end()
    await ask(update, context, await language_of(update, context), text_key)
    return END


async def read(update: Update, prefix: str, options: Sequence[Option], lang: str) -> Answer:
    """Reads a button press (of this step) or typed words."""
    query = update.callback_query
    if query is not None:
        option = from_callback(query.data or "", options, prefix)
        await settle_button(update, chosen=option is not None)
        return Answer(option, None, stale=option is None)
    message = update.effective_message
    text = message.text if message is not None else None
    if text is None:
        return Answer(None, None)
    return Answer(match(text, options, lang), text.strip())
