"""One state machine for every multi-step flow, kept in the database.

A flow declares its states once, as an enum class, and is registered as a `FlowHandler`:
its entry points start it, the handlers of the state a person is at take their next update,
and its fallbacks (/cancel …) work at every state. A callback returns the next state (a
member of the flow's enum), `END` to leave the flow, or None to stay where it is.

Where a person is lives in their session (storage/sessions.py, `context.session`), which the
one door (conversations/door.py) reads per update and saves with the update's effects. Nothing
is kept in memory between updates, unlike ptb's ConversationHandler, so a restart resumes at
the same step and several processes can share the database (python-telegram-bot #5225,
#5123, #4452).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, Final

from telegram import Update
from telegram.ext import Application, BaseHandler

from conversations.context import CURRENT_SESSION, CocreateContext

END: Final = -1  # the same value as ptb's ConversationHandler.END
Handler = BaseHandler[Update, CocreateContext, Any]


async def _never(update: Update, context: CocreateContext) -> None:
    """Not called: a FlowHandler hands each update to one of its own handlers."""


class FlowHandler(BaseHandler[Update, CocreateContext, None]):
    """A multi-step flow whose current state is read from the person's session."""

    def __init__(
        self,
        name: str,
        states: type[Enum],
        *,
        entry_points: Sequence[Handler],
        handlers: Mapping[Any, Sequence[Handler]],
        fallbacks: Sequence[Handler] = (),
        allow_reentry: bool = True,
    ) -> None:
        super().__init__(_never)
        self.name = name
        self.states = states
        self.entry_points = list(entry_points)
        self.handlers = {states(state).name: list(found) for state, found in handlers.items()}
        self.fallbacks = list(fallbacks)
        self.allow_reentry = allow_reentry

    def check_update(self, update: object) -> tuple[Handler, object] | None:
        """The handler (and its check result) that takes this update, if this flow takes it."""
        if not isinstance(update, Update):
            return None
        session = CURRENT_SESSION.get()
        active = (
            session is not None and session.flow == self.name and session.state in self.handlers
        )
        candidates: list[Handler] = []
        if not active or self.allow_reentry:
            candidates += self.entry_points
        if active:
            assert session is not None and session.state is not None
            candidates += [*self.handlers[session.state], *self.fallbacks]
        for handler in candidates:
            check = handler.check_update(update)
            if check is not None and check is not False:
                return handler, check
        return None

    async def handle_update(  # type: ignore[override]
        self,
        update: Update,
        application: Application[Any, CocreateContext, Any, Any, Any, Any],
        check_result: tuple[Handler, object],
        context: CocreateContext,
    ) -> None:
        """Runs the chosen handler and moves the person to the state it returns."""
        handler, check = check_result
        new_state = await handler.handle_update(update, application, check, context)
        session = context.session
        if new_state is None:
            return
        if new_state == END:
            if session.flow == self.name:  # unless the callback moved them to another flow
                session.end()
            return
        session.go(self.name, self.states(new_state).name)
