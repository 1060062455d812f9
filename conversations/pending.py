"""One-step questions asked outside a conversation ("Which language?", "Delete it all?").

Buttons carry `<name>:<option key>`; a typed answer is read while the person's session is
at this question (replies.await_answer). A button acts only while its question is the one
awaited, so a button left on an old message can never act later.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from conversations.choices import Option, from_callback, keyboard, match
from conversations.context import CocreateContext
from conversations.replies import (
    await_answer,
    awaited,
    leave_question,
    say,
    settle_button,
    show_menu,
)

Answer = Callable[[Update, CocreateContext, Option], Coroutine[Any, Any, None]]


class PendingQuestion:
    """A question with choices, answered by a button or by typing."""

    def __init__(self, name: str, options: Sequence[Option], on_answer: Answer) -> None:
        self.name = name
        self.options = list(options)
        self._on_answer = on_answer

    async def ask(self, update: Update, context: CocreateContext, key: str, language: str) -> None:
        """Sends the question (catalogue text `key`) with its buttons and waits for it."""
        await_answer(context, self.name)
        markup = keyboard(self.options, language, self.name)
        await say(update, context, key, language=language, reply_markup=markup)

    async def ask_again(self, update: Update, context: CocreateContext, language: str) -> None:
        """Says typed words were not one of the choices, with the buttons again under it."""
        await self.ask(update, context, "bad.choice", language)

    async def typed(self, update: Update, context: CocreateContext, text: str, lang: str) -> bool:
        """Answers from typed words; False if they are not one of the choices."""
        option = match(text, self.options, lang)
        if option is None:
            return False
        leave_question(context)
        await self._on_answer(update, context, option)
        return True

    async def on_button(self, update: Update, context: CocreateContext) -> None:
        """Answers from a button, or says the button is old."""
        query = update.callback_query
        assert query is not None
        option = from_callback(query.data or "", self.options, self.name)
        current = awaited(context) == self.name
        await settle_button(update, chosen=current and option is not None)
        if option is None or not current:
            leave_question(context)  # before anything is sent: the door commits at each send
            await say(update, context, "bad.old_button")
            await show_menu(update, context)
            return
        leave_question(context)
        await self._on_answer(update, context, option)

    def handler(self) -> BaseHandler[Update, CocreateContext, None]:
        """The handler for this question's buttons."""
        return CallbackQueryHandler(self.on_button, pattern=rf"^{self.name}:")
