"""Every flow, registered in one place, in the order ptb offers each update to them.

Order matters: the first handler that accepts an update takes it. Every update has already
passed the one door (conversations/door.py): safeguarding, marking reachable, the person's
session read from the database. Then, top to bottom:
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from conversations import (
    agreement,
    answering,
    approving,
    asking,
    broadcasting,
    everyday,
    exporting,
    idea_desk,
    language,
    menu,
    my_data,
    onboarding,
    prompts,
    reviewing,
    roles,
    router,
    safeguarding,
    scheduled,
    sharing,
    stats,
    tracking,
    unconfirmed,
    voting,
    workbench,
)
from conversations.context import CocreateContext
from conversations.replies import (
    SHARING,
    active_draft,
    answer_unknown_button,
    awaited,
    current_member,
    menu_button,
    say,
)
from storage import kinds

Handler = BaseHandler[Update, CocreateContext, Any]


def routing() -> router.Routing:
    """Where words outside a multi-step flow go (conversations/router.py), built with the
    kinds of sharing in storage/kinds.py as they are now."""
    starts = {kind.noun: sharing.starter(kind.key) for kind in kinds.KINDS}
    return router.Routing(
        # Everyday words, and the menu's choices (a kind of sharing is chosen by its noun;
        # "See others' ideas" is voting's).
        actions={**everyday.ACTIONS, **starts, **voting.ACTIONS, "updates": tracking.show_updates},
        # One-step questions answered by a choice (their buttons are handled by each one).
        pending=(
            language.QUESTION,
            my_data.QUESTION,
            *sharing.after_questions(),
            *voting.QUESTIONS,
        ),
        # One-step questions answered by any words.
        takes_text={
            reviewing.REPLY: (reviewing.take_reply, "answer"),
            reviewing.ANSWER_BACK: (reviewing.take_answer_back, "reply"),
            approving.CHOOSE: (approving.take_choice, "statement"),
            approving.EDIT: (approving.take_edit, "statement"),
            approving.SUMMARY: (approving.take_summary, "statement"),
            approving.STATEMENT: (approving.take_statement, "statement"),
        },
    )


def build_routes() -> list[Handler]:
    """The handlers of every flow, in order."""
    words = routing()
    return [
        # 1. Joining: /start, then each step of onboarding while someone is in it.
        onboarding.build_handler(),
        # 2. Staff's step-by-step flows (while someone is in one, it takes their words),
        #    then staff commands and buttons. Each is behind the one permission guard.
        asking.build_handler(),
        broadcasting.build_handler(),
        exporting.build_handler(),
        *reviewing.build_handlers(),
        *scheduled.build_handlers(),
        *unconfirmed.build_handlers(),
        *roles.build_handlers(),
        *stats.build_handlers(),
        *workbench.build_handlers(),
        *idea_desk.build_handlers(
            {
                "wait": approving.show_waiting,
                "add": approving.start_statement,
                "agree": agreement.show,
                "status": tracking.show,
            }
        ),
        *approving.build_handlers(),
        *agreement.build_handlers(),
        *tracking.build_handlers(),
        # 3. Everyday commands and the menu's buttons.
        *everyday.build_handlers(),
        *menu.build_handlers(words.actions),
        *voting.build_handlers(),
        # 4. Buttons inside a story or idea, and on a facilitator's question.
        CallbackQueryHandler(sharing.on_button, pattern=rf"^{sharing.PREFIX}:"),
        CallbackQueryHandler(answering.on_button, pattern=rf"^{prompts.PREFIX}:"),
        # 5. "Read it" on a safeguarding alert (staff only).
        *safeguarding.build_handlers(not_allowed=answer_unknown_button),
        # 6. One-step questions' buttons, then every other message, routed by the person's
        #    session: a story part, an answer, a typed menu choice.
        *router.build_handlers(words),
        # 7. What nobody took: unknown commands, edited messages, old buttons.
        *router.build_fallbacks(),
    ]


# Multi-step flows whose current step can be asked again, by flow name.
AskStep = Callable[[Update, CocreateContext, Any], Awaitable[int]]
STEPS: dict[str, tuple[AskStep, type[Enum]]] = {
    onboarding.NAME: (onboarding.ask, onboarding.State),
    "ask": (asking.ask, asking.State),
    "broadcast": (broadcasting.ask, broadcasting.State),
    "export": (exporting.ask, exporting.State),
    "track": (tracking.ask, tracking.State),
}


# One-step questions (conversations/replies.py `await_answer`), by name: how each is asked
# again after a replay, by its own flow, with the same words and buttons as the first time.
# Asking again leaves the session as it is (a replay changes nothing). False: there is
# nothing left to ask (what it was about is gone). Every question the router reads an answer
# to is here (tests/test_replay_questions.py).
AskAgain = Callable[[Update, CocreateContext], Awaitable[bool]]


def one_step_questions() -> dict[str, AskAgain]:
    """Every one-step question a session can wait at, and how it is asked again."""
    return {
        language.QUESTION.name: language.reask,
        my_data.QUESTION.name: my_data.reask,
        **{question.name: sharing.reask for question in sharing.after_questions()},
        **{question.name: voting.reask for question in voting.QUESTIONS},
        reviewing.REPLY: reviewing.reask,
        reviewing.ANSWER_BACK: reviewing.reask,
        **{question: approving.reask for question in approving.QUESTIONS},
    }


async def reask(update: Update, context: CocreateContext) -> bool:
    """Asks again where the person is, after a restart replayed an update already applied:
    its effects are kept (not applied twice), but its reply may never have reached them.
    At a one-step question with nothing left to ask, or in no flow, a word that changes
    nothing, so that nobody is left with silence."""
    session = context.session
    question = awaited(context)
    if question is not None:
        again = one_step_questions().get(question)
        if again is None or not await again(update, context):
            await say_back(update, context)
        return True
    if session.flow is None:
        await say_back(update, context)
        return True
    if session.flow in STEPS and session.state is not None:
        ask, states = STEPS[session.flow]
        if session.state in states.__members__:
            await ask(update, context, states[session.state])
            return True
    elif session.flow == SHARING:
        member = await current_member(update, context)
        draft = await active_draft(context, member) if member else None
        if draft is not None:
            await sharing.ask(update, context, draft)
            return True
    return False


async def say_back(update: Update, context: CocreateContext) -> None:
    """After a restart, with nothing to ask again: they go on from the menu."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
    else:
        lang = member.language
        await say(update, context, "restart.back", reply_markup=menu_button(lang))
