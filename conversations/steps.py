"""The one way to write a staff step-by-step flow (/ask, /broadcast, /export), and the small
pieces the staff's messages share: asking with numbered buttons, reading the answer as a
button press or typed words.

A flow module declares its `State` enum once and makes a `StaffFlow` of it. The flow gives
start, /cancel, "not understood", asking a step and the handler; the module registers what
each state asks and what it does with the answer (`@FLOW.choice`, `@FLOW.step`), or one of
the steps the flows share (`FLOW.text`, `FLOW.audience`, `FLOW.when`), named by the state
that comes next. So a flow module says only what is particular to it:

    FLOW = StaffFlow("ask", State, buttons="ask", cancelled="staff.ask.cancelled")
    FLOW.text(State.TEXT, "staff.ask.text", MAX_TEXT, then=State.KIND)

    @FLOW.choice(State.KIND, "staff.ask.kind", KINDS)
    async def on_kind(update, context, kind, lang) -> int:
        ...

As everywhere (conversations/machine.py), a step moves the person before it sends anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any, Generic, Literal, TypedDict, TypeVar

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.catalogue import long_datetime, t, tn
from conversations import audiences
from conversations.choices import Option, from_callback, keyboard, match
from conversations.context import CocreateContext
from conversations.machine import END, FlowHandler
from conversations.replies import language_of, send, settle_button
from conversations.staff import staff_only
from conversations.when import (
    next_daily,
    next_weekly,
    parse_at,
    parse_time,
    parse_weekly,
    quiet_until,
)
from storage.roles import FACILITATOR, Role
from storage.times import from_db, to_db

Step = Callable[[Update, CocreateContext], Coroutine[Any, Any, int]]
# The staff flows: each one's command, its name in the session, and where its draft is kept
# (context.data[name]). A session left in one ends with the role (storage/roles.STAFF_FLOWS).
FlowName = Literal["ask", "broadcast", "export", "track"]
S = TypeVar("S", bound=IntEnum)


@dataclass(frozen=True)
class Answer:
    """What came back at a step: a chosen option, typed words, or a button from elsewhere."""

    option: Option | None
    text: str | None
    stale: bool = False


class Authored(TypedDict):
    """Who wrote a draft, and its words and audience: what every stored draft starts with."""

    author_id: int
    author_chat_id: int
    author_language: str
    text: str
    audience: str


# A step's buttons: fixed, or read when asked (the projects, the recent questions …).
Options = Sequence[Option] | Callable[[CocreateContext], Awaitable[Sequence[Option]]]
# What a step asks: a catalogue key, or a message of its own (a preview).
Prompt = str | Callable[[Update, CocreateContext, str], Awaitable[None]]
# What a step does with its answer (and the staff member's language); returns the next state.
TakeAnswer = Callable[[Update, CocreateContext, Answer, str], Awaitable[int]]
TakeOption = Callable[[Update, CocreateContext, Option, str], Awaitable[int]]


@dataclass(frozen=True)
class _Step:
    prompt: Prompt
    options: Options
    take: TakeAnswer


class StaffFlow(Generic[S]):
    """A staff flow, its state kept in the database: /<name> starts it at the first state,
    each state asks its question and reads its buttons (`<buttons>:<state>:<choice>`) or typed
    words, /cancel drops the draft and says `cancelled`. Everything is behind the one
    permission guard for `role`. Where `back_to` is given, a part changed from there
    (draft["changing"]) goes back there rather than on."""

    def __init__(
        self,
        name: FlowName,
        states: type[S],
        *,
        buttons: str,
        cancelled: str,
        role: Role = FACILITATOR,
        back_to: S | None = None,
    ) -> None:
        self.name = name
        self.states = states
        self.buttons = buttons
        self.cancelled = cancelled
        self.role = role
        self.back_to = back_to
        self.steps: dict[S, _Step] = {}
        self.at_field = ""  # where `when` keeps the time chosen

    # The flow's moves.

    def prefix(self, state: S) -> str:
        """What a button of this state's carries before its choice."""
        return f"{self.buttons}:{state.value}"

    def draft(self, context: CocreateContext) -> dict[str, Any]:
        """What the staff member has chosen so far."""
        found = context.data.setdefault(self.name, {})
        assert isinstance(found, dict)
        return found

    async def ask(self, update: Update, context: CocreateContext, state: S) -> int:
        """Asks the question of a step and waits there."""
        context.session.go(self.name, state.name)  # before anything is sent (see machine.py)
        lang = await language_of(update, context)
        step = self.steps[state]
        if isinstance(step.prompt, str):
            options = await self._options(step, context)
            await ask(update, context, lang, step.prompt, options, self.prefix(state))
        else:
            await step.prompt(update, context, lang)
        return state

    async def after(self, update: Update, context: CocreateContext, state: S) -> int:
        """Goes on to `state`, or back to `back_to` when changing one part."""
        if self.back_to is not None and self.draft(context).get("changing"):
            return await self.ask(update, context, self.back_to)
        return await self.ask(update, context, state)

    async def bad(self, update: Update, context: CocreateContext, state: S, lang: str) -> int:
        """Says the answer was not understood and asks again."""
        await ask(update, context, lang, "staff.not_understood")
        return await self.ask(update, context, state)

    async def offer(
        self,
        update: Update,
        context: CocreateContext,
        lang: str,
        here: S,
        there: S,
        choices: Callable[[CocreateContext], Awaitable[Sequence[Option]]],
        none: str,
    ) -> int:
        """Asks `there`, whose buttons are `choices`; with none to choose from, says `none`
        and asks `here` again."""
        if not await choices(context):
            await ask(update, context, lang, none)
            return await self.ask(update, context, here)
        return await self.ask(update, context, there)

    async def start(self, update: Update, context: CocreateContext) -> int:
        """Starts again with an empty draft."""
        context.data[self.name] = {}
        return await self.ask(update, context, next(iter(self.states)))

    async def cancel(self, update: Update, context: CocreateContext) -> int:
        """Drops the draft, says so and ends the flow; nothing is sent or made."""
        context.data.pop(self.name, None)
        context.session.end()
        await ask(update, context, await language_of(update, context), self.cancelled)
        return END

    def build_handler(self) -> FlowHandler:
        """The conversation, persisted under the flow's name; for staff with its role only."""
        missing = [state.name for state in self.states if state not in self.steps]
        assert not missing, f"/{self.name} has no step for {missing}"
        new_messages = filters.UpdateType.MESSAGE
        by_state: dict[Any, list[BaseHandler[Update, CocreateContext, object]]] = {}
        for state in self.states:
            guarded = staff_only(self._handler(state), self.role)
            by_state[state] = [
                CallbackQueryHandler(guarded, pattern=rf"^{self.buttons}:"),
                MessageHandler(new_messages & ~filters.COMMAND, guarded),
            ]
        start, cancel = staff_only(self.start, self.role), staff_only(self.cancel, self.role)
        return FlowHandler(
            self.name,
            self.states,
            entry_points=[CommandHandler(self.name, start, filters=new_messages)],
            handlers=by_state,
            fallbacks=[CommandHandler("cancel", cancel, filters=new_messages)],
        )

    # Declaring the steps.

    def step(
        self, state: S, prompt: Prompt, options: Options = ()
    ) -> Callable[[TakeAnswer], TakeAnswer]:
        """Registers a step whose answer is taken as read: a button, or any typed words."""

        def register(take: TakeAnswer) -> TakeAnswer:
            self.steps[state] = _Step(prompt, options, take)
            return take

        return register

    def choice(
        self, state: S, prompt: Prompt, options: Options
    ) -> Callable[[TakeOption], TakeOption]:
        """Registers a step that takes one of its options (pressed or typed); anything else
        is not understood."""

        def register(take: TakeOption) -> TakeOption:
            async def chosen(
                update: Update, context: CocreateContext, got: Answer, lang: str
            ) -> int:
                if got.option is None:
                    return await self.bad(update, context, state, lang)
                return await take(update, context, got.option, lang)

            self.steps[state] = _Step(prompt, options, chosen)
            return take

        return register

    def text(self, state: S, prompt: str, most: int, *, then: S) -> None:
        """A step that keeps typed words (up to `most` letters) as draft["text"]."""

        @self.step(state, prompt)
        async def take(update: Update, context: CocreateContext, got: Answer, lang: str) -> int:
            if not got.text or len(got.text) > most:
                await send(update, context, tn(lang, "staff.ask.text_bad.letters", most, max=most))
                return state
            self.draft(context)["text"] = got.text
            return await self.after(update, context, then)

    def audience(
        self,
        state: S,
        options: Sequence[Option],
        *,
        project: S,
        tag: S,
        question: S | None = None,
        then: S,
    ) -> None:
        """Who gets it (draft["audience"]): everyone, or a project, a tag or those who answered
        a question, each asked at its own state."""

        def keep(kind: str) -> TakeOption:
            """Keeps the audience `<kind>:<the option chosen>` and goes on."""

            async def take(update: Update, context: CocreateContext, got: Option, _: str) -> int:
                self.draft(context)["audience"] = f"{kind}:{got.key}"
                return await self.after(update, context, then)

            return take

        @self.choice(state, "staff.ask.audience", options)
        async def choose(update: Update, context: CocreateContext, got: Option, lang: str) -> int:
            projects, questions = audiences.project_options, audiences.question_options
            if got.key == "project":
                none = "staff.ask.no_projects"
                return await self.offer(update, context, lang, state, project, projects, none)
            if got.key == "tag":
                return await self.ask(update, context, tag)
            if got.key == "answered" and question is not None:
                none = "staff.responses.none"
                return await self.offer(update, context, lang, state, question, questions, none)
            self.draft(context)["audience"] = "everyone"
            return await self.after(update, context, then)

        self.choice(project, "staff.ask.project", audiences.project_options)(keep("project"))
        if question is not None:
            prompt = "staff.broadcast.question"
            self.choice(question, prompt, audiences.question_options)(keep("answered"))

        @self.step(tag, "staff.ask.tag")
        async def word(update: Update, context: CocreateContext, got: Answer, lang: str) -> int:
            if not got.text or len(got.text) > audiences.MAX_TAG:
                return await self.bad(update, context, tag, lang)
            self.draft(context)["audience"] = f"tag:{got.text}"
            return await self.after(update, context, then)

    def when(
        self, state: S, prompt: str, options: Sequence[Option], *, at: S, then: S, field: str
    ) -> None:
        """When it goes out: now, or (asked at `at`) once at a date and time, daily at a time
        or weekly on a day at a time. Keeps draft["repeat"] and the first time, draft[field]."""
        self.at_field = field

        @self.choice(state, prompt, options)
        async def choose(update: Update, context: CocreateContext, got: Option, _: str) -> int:
            d = self.draft(context)
            d["repeat"] = got.key
            if got.key == "now":
                d.pop(field, None)
                return await self.after(update, context, then)
            return await self.ask(update, context, at)

        async def ask_at(update: Update, context: CocreateContext, lang: str) -> None:
            repeat = self.draft(context).get("repeat", "once")
            await ask(update, context, lang, f"staff.ask.at.{repeat}")

        @self.step(at, ask_at)
        async def take(update: Update, context: CocreateContext, got: Answer, lang: str) -> int:
            d = self.draft(context)
            now, tz, text = context.clock.now(), context.settings.tz, got.text or ""
            repeat = d.get("repeat", "once")
            when: datetime | None = None
            if repeat == "once":
                when = parse_at(text, now, tz)
                if when is not None and when <= now:
                    await ask(update, context, lang, "staff.ask.at_past")
                    return at
            elif repeat == "daily":
                time = parse_time(text)
                when = next_daily(now, time, tz) if time else None
            else:
                weekly = parse_weekly(text)
                when = next_weekly(now, weekly[0], weekly[1], tz) if weekly else None
            if when is None:
                return await self.bad(update, context, at, lang)
            d[field] = to_db(when)
            return await self.after(update, context, then)

    # What the flows that send something say.

    def when_text(self, context: CocreateContext, d: dict[str, Any], lang: str) -> str:
        """When it goes out, in words (quiet hours hold it: say until when)."""
        if d.get("repeat") == "now" or not d.get(self.at_field):
            held = quiet_until(context.clock.now(), context.settings)
            if held is not None:
                return t(lang, "staff.when.held_now", until=long_datetime(held, lang))
            return t(lang, "staff.when.is_now")
        start = from_db(str(d[self.at_field])).astimezone(context.settings.tz)
        formatted = long_datetime(start, lang)
        repeat = d.get("repeat", "once")
        held = quiet_until(start, context.settings)
        if held is None:
            return t(lang, f"staff.when.is_{repeat}", when=formatted)
        if repeat == "once":
            return t(lang, "staff.when.held_once", when=formatted, until=long_datetime(held, lang))
        until = t(lang, "staff.when.held_repeat", until=held.strftime("%H:%M"))
        return f"{t(lang, f'staff.when.is_{repeat}', when=formatted)} {until}"

    async def summary(
        self,
        update: Update,
        context: CocreateContext,
        lang: str,
        state: S,
        key: str,
        options: Sequence[Option],
        **values: object,
    ) -> None:
        """Asks at the preview `state`: who gets it, how many and when (catalogue `key`, with
        `values`), with the preview's buttons."""
        d = self.draft(context)
        audience = str(d.get("audience", "everyone"))
        await ask(
            update,
            context,
            lang,
            key,
            options,
            self.prefix(state),
            audience=await audiences.describe(context, audience, lang),
            count=await audiences.size(context, audience),
            when=self.when_text(context, d, lang),
            **values,
        )

    def authored(self, update: Update, d: dict[str, Any], lang: str) -> Authored:
        """Who finished the flow (in their private chat, whose id is theirs), and the draft's
        words and audience."""
        user, chat = update.effective_user, update.effective_chat
        assert user is not None and chat is not None
        return Authored(
            author_id=user.id,
            author_chat_id=user.id,
            author_language=lang,
            text=str(d.get("text", "")),
            audience=str(d.get("audience", "everyone")),
        )

    def first_time(self, context: CocreateContext, d: dict[str, Any]) -> datetime:
        """When it goes out (first): the time chosen, or now."""
        at = d.get(self.at_field)
        return from_db(str(at)) if at else context.clock.now()

    async def stored(
        self, update: Update, context: CocreateContext, lang: str, d: dict[str, Any], now: str
    ) -> int:
        """Says the draft is stored: going now (catalogue `now`; held by quiet hours: until
        when), or at its time; then lets the scheduler send what is due."""
        sending_now = not d.get(self.at_field)
        held = quiet_until(context.clock.now(), context.settings) if sending_now else None
        if held is not None:
            await ask(update, context, lang, "staff.ask.held", until=long_datetime(held, lang))
        else:
            key = now if sending_now else "staff.ask.scheduled"
            await ask(update, context, lang, key, when=self.when_text(context, d, lang))
        await context.scheduler.run_due()
        return END

    async def _options(self, step: _Step, context: CocreateContext) -> Sequence[Option]:
        return step.options if isinstance(step.options, Sequence) else await step.options(context)

    def _handler(self, state: S) -> Step:
        step = self.steps[state]

        async def handle(update: Update, context: CocreateContext) -> int:
            lang = await language_of(update, context)
            got = await read(update, self.prefix(state), await self._options(step, context), lang)
            return await step.take(update, context, got, lang)

        return handle


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
        option = from_callback(query.data or "", options, prefix)
        await settle_button(update, chosen=option is not None)
        return Answer(option, None, stale=option is None)
    message = update.effective_message
    text = message.text if message is not None else None
    if text is None:
        return Answer(None, None)
    return Answer(match(text, options, lang), text.strip())
