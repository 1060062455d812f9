"""Small pieces shared by the facilitators' step-by-step flows (/ask, /broadcast …): ask a
step with numbered buttons, and read the answer as a button press or typed words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telegram import InlineKeyboardMarkup, Update

from bot.catalogue import t
from conversations.choices import Option, from_callback, keyboard, match
from conversations.context import CocreateContext
from conversations.replies import chat_of, settle_button


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


async def read(update: Update, prefix: str, options: Sequence[Option], lang: str) -> Answer:
    """Reads a button press (of this step) or typed words."""
    query = update.callback_query
    if query is not None:
        await settle_button(update)
        option = from_callback(query.data or "", options, prefix)
        return Answer(option, None, stale=option is None)
    message = update.effective_message
    text = message.text if message is not None else None
    if text is None:
        return Answer(None, None)
    return Answer(match(text, options, lang), text.strip())
