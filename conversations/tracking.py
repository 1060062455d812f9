"""What happened to ideas and question rounds: staff set a status with a public reason, and
the idea's author and supporters (or a round's answerers) are told; /updates for members.

Staff: /ideas → "What happened to ideas" (`show`) starts a staff flow ("track",
conversations/steps.py; the draft lives in the session's data["track"], /cancel works at
every step): choose an idea or a question round (newest first, a page at a time), choose
its new status, write a short reason members will see (required for "Not possible now",
else it can be skipped), see the message and how many people it goes to, and send it.
Buttons carry `trk:<state>:<choice>`. The status and its messages are stored together
(storage/tracker.py) and go out through the outbox as one delivery batch, so quiet hours,
/stop and unreachable members are respected; each person gets one message, in their
language: "You said: … We did: …".

Members: /updates (and "News about ideas" in the menu) lists what changed and why, newest
first, a page at a time (`upd:<offset>` shows the next page): changes to their own ideas, to
ideas approved for everyone or for a project they are in, and to question rounds they were
sent (storage/tracker.py `news_for`).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any, Final

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, filters

from bot.catalogue import long_date, t, tn, writing_to
from conversations import replies, steps
from conversations.choices import Option, keyboard
from conversations.context import CocreateContext
from conversations.machine import END
from conversations.prompts import choice_label
from conversations.replies import (
    answer_unknown_button,
    current_member,
    language_of,
    menu_button,
    say,
    settle_button,
)
from storage.outbox import Outgoing
from storage.questions import Question
from storage.store import Store
from storage.tracker import (
    MAX_REASON,
    NEEDS_REASON,
    SETTABLE,
    Changed,
    Item,
    News,
    ReasonNeeded,
    Recipient,
    Status,
    Told,
    Tracked,
)

DRAFT: Final = "track"
PAGE = 8  # ideas and rounds a page, for staff
NEWS_PAGE = 5  # changes a page of /updates
SHORT = 40  # letters of an idea shown on a button
MAX_SAID = 300  # letters of what someone said, quoted back to them
MAX_ABOUT = 150  # letters of what a change in /updates is about (five fit in one message)
NEWS_PREFIX = "upd"
MARKS = {"idea": "💡", "statement": "📣", "round": "❓"}


class State(IntEnum):
    ITEM = 1
    STATUS = 2
    REASON = 3
    PREVIEW = 4


FLOW = steps.StaffFlow(DRAFT, State, buttons="trk", cancelled="tracking.cancelled")
ask, draft = FLOW.ask, FLOW.draft
MORE = Option("more", "tracking.more")
SKIP = Option("skip", "common.skip")
STATUS_OPTIONS = [Option(status, f"tracking.status.{status}") for status in SETTABLE]
PREVIEW = [Option("send", "staff.send"), Option("cancel", "staff.cancel")]


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _status(lang: str, status: Status) -> str:
    return t(lang, f"tracking.status.{status}")


def label(tracked: Tracked, lang: str) -> str:
    """A button for an idea or round: what it is, its first words and its status now."""
    words = tracked.text or t(lang, "tracking.voice")
    return f"{MARKS[tracked.item.kind]} {_short(words, SHORT)} · {_status(lang, tracked.status)}"


async def show(update: Update, context: CocreateContext) -> None:
    """Lists ideas and rounds to set a status on (the start of the "track" flow)."""
    lang = await language_of(update, context)
    if not await context.store.tracker.items(0, 1):
        await steps.ask(update, context, lang, "tracking.none")
        return
    context.data[DRAFT] = {"page": 0, "lang": lang}
    await ask(update, context, State.ITEM)


# ---- the staff flow's steps


async def item_options(context: CocreateContext) -> list[Option]:
    """The ideas and rounds of the page the staff member is on, and Older ones."""
    d = draft(context)
    page, lang = int(d.get("page", 0)), str(d.get("lang", "en"))
    found = await context.store.tracker.items(page * PAGE, PAGE + 1)
    options = [Option(x.item.key, label=label(x, lang)) for x in found[:PAGE]]
    return [*options, MORE] if len(found) > PAGE else options


async def chosen(context: CocreateContext) -> Tracked | None:
    """The idea or round chosen, if it can still have a status."""
    item = Item.parse(str(draft(context).get("item", "")))
    return await context.store.tracker.get(item) if item is not None else None


@FLOW.choice(State.ITEM, "tracking.pick", item_options)
async def on_item(update: Update, context: CocreateContext, got: Option, lang: str) -> int:
    """Keeps the idea or round chosen (or shows older ones) and asks its new status."""
    d = draft(context)
    if got.key == MORE.key:
        d["page"] = int(d.get("page", 0)) + 1
        return await ask(update, context, State.ITEM)
    d["item"] = got.key
    if await chosen(context) is None:
        await steps.ask(update, context, lang, "tracking.gone")
        return await ask(update, context, State.ITEM)
    return await ask(update, context, State.STATUS)


async def ask_status(update: Update, context: CocreateContext, lang: str) -> None:
    """Says what was chosen and its status now, and asks the new one."""
    tracked = await chosen(context)
    words = _short((tracked.text if tracked else None) or t(lang, "tracking.voice"), MAX_SAID)
    status = _status(lang, tracked.status if tracked else "new")
    prefix = FLOW.prefix(State.STATUS)
    await steps.ask(
        update,
        context,
        lang,
        "tracking.which_status",
        STATUS_OPTIONS,
        prefix,
        text=words,
        status=status,
    )


@FLOW.choice(State.STATUS, ask_status, STATUS_OPTIONS)
async def on_status(update: Update, context: CocreateContext, got: Option, lang: str) -> int:
    """Keeps the new status and asks why."""
    draft(context)["status"] = got.key
    return await ask(update, context, State.REASON)


def _needs_reason(context: CocreateContext) -> bool:
    return draft(context).get("status") in NEEDS_REASON


async def ask_reason(update: Update, context: CocreateContext, lang: str) -> None:
    """Asks for the public reason: with Skip, unless the status needs one."""
    if _needs_reason(context):
        await steps.ask(update, context, lang, "tracking.reason_needed")
        return
    prefix = FLOW.prefix(State.REASON)
    await steps.ask(update, context, lang, "tracking.reason", [SKIP], prefix)


@FLOW.step(State.REASON, ask_reason, [SKIP])
async def on_reason(update: Update, context: CocreateContext, got: steps.Answer, lang: str) -> int:
    """Keeps the reason (or none, where that is allowed) and shows the preview."""
    if got.stale or (got.option is None and not got.text):
        return await FLOW.bad(update, context, State.REASON, lang)
    reason = None if got.option is not None else got.text
    if reason is None and _needs_reason(context):
        await steps.ask(update, context, lang, "tracking.reason_needed")
        return State.REASON
    if reason is not None and len(reason) > MAX_REASON:
        await replies.send(
            update, context, tn(lang, "tracking.reason_too_long", MAX_REASON, most=MAX_REASON)
        )
        return State.REASON
    draft(context)["reason"] = reason
    return await ask(update, context, State.PREVIEW)


async def preview(update: Update, context: CocreateContext, lang: str) -> None:
    """Shows the message as its first recipient will see it, and how many it goes to."""
    tracked = await chosen(context)
    if tracked is None:
        await steps.ask(update, context, lang, "tracking.gone")
        return
    d = draft(context)
    status, reason = d.get("status", "looking"), d.get("reason")
    example, count = await preview_of(context.store, tracked, status, reason, lang)
    await replies.send(update, context, t(lang, "tracking.preview_intro"))
    await replies.send(update, context, example)
    prefix = FLOW.prefix(State.PREVIEW)
    summary = tn(lang, "tracking.summary", count, count=count)
    await replies.send(update, context, summary, keyboard(PREVIEW, lang, prefix))


@FLOW.choice(State.PREVIEW, preview, PREVIEW)
async def on_preview(update: Update, context: CocreateContext, got: Option, lang: str) -> int:
    """Sets the status and tells everyone concerned, or cancels."""
    if got.key == "cancel":
        return await FLOW.cancel(update, context)
    d: dict[str, Any] = context.data.pop(DRAFT, {})
    context.session.end()  # done: before anything is sent (see machine.py)
    user = update.effective_user
    assert user is not None
    item = Item.parse(str(d.get("item", "")))
    tracked = await context.store.tracker.get(item) if item is not None else None
    if item is None or tracked is None:
        await steps.ask(update, context, lang, "tracking.gone")
        return END
    status: Status = d.get("status", "looking")
    count = await context.store.tracker.reachable(item)
    try:
        changed = await set_status(
            context.store, item, status, d.get("reason"), by=user.id, lang=lang
        )
    except ReasonNeeded:
        context.data[DRAFT] = d
        return await ask(update, context, State.REASON)
    if changed is None:
        await steps.ask(update, context, lang, "tracking.same")
        return END
    if changed.batch_id is None:
        await steps.ask(update, context, lang, "tracking.saved_nobody")
    else:
        await replies.send(update, context, tn(lang, "tracking.saved", count, count=count))
        context.delivery.wake()
    return END


# ---- setting a status, from the chat or the workbench (bot/web/pages/tracker.py)


async def preview_of(
    store: Store, tracked: Tracked, status: Status, reason: str | None, lang: str
) -> tuple[str, int]:
    """The message a change would send, as its first recipient would see it (in `lang`), and
    how many of those told can get it now."""
    question = await question_of(store, tracked.item)
    recipients = await store.tracker.recipients(tracked.item)
    example = recipients[0] if recipients else _nobody(tracked, lang)
    message = told(example, question, status, reason, lang)
    return message, await store.tracker.reachable(tracked.item)


async def set_status(
    store: Store,
    item: Item,
    status: Status,
    reason: str | None,
    *,
    by: int,
    lang: str,
    via: str | None = None,
) -> Changed | None:
    """Sets a status and queues "You said: … We did: …" to each person told, in their
    language, as one delivery batch in the same transaction (storage/tracker.py `change`);
    the staff member `by` (a Telegram id) gets its delivery report in `lang`. Audited.

    None if it changes nothing; raises ReasonNeeded (and ValueError) as `change` does. The
    caller wakes the sender, if it can (else it sends within its poll interval)."""
    question = await question_of(store, item)

    def tell(recipients: Sequence[Recipient]) -> list[Outgoing]:
        return [
            Outgoing(r.member_id, r.chat_id, told_to(r), words_of=r.words_of) for r in recipients
        ]

    def told_to(r: Recipient) -> str:
        with writing_to(r.chat_id):  # in the words for their channel
            return told(r, question, status, reason, r.language)

    changed = await store.tracker.change(
        item,
        status,
        reason,
        changed_by=by,
        tell=tell,
        author_chat_id=by,
        author_language=lang,
    )
    if changed is None:
        return None
    extra = {"via": via} if via else {}
    await store.audit.add(
        f"telegram:{by}",
        "status_changed",
        change=changed.change.id,
        item=item.kind,
        id=item.id,
        status=status,
        batch=changed.batch_id,
        told=changed.told,
        **extra,
    )
    return changed


# ---- the message each person gets


async def question_of(store: Store, item: Item) -> Question | None:
    """A round's question (None for an idea)."""
    if item.kind != "round":
        return None
    round_ = await store.questions.round(item.id)
    return await store.questions.get(round_.question_id) if round_ else None


def _nobody(tracked: Tracked, lang: str) -> Recipient:
    """Stands in for a recipient in the preview when nobody would be told yet."""
    role: Told = "answered" if tracked.item.kind == "round" else "supporter"
    return Recipient(0, 0, lang, role, tracked.text)


def did(status: str, reason: str | None, lang: str) -> str:
    """What we did, in member's words, and why."""
    words = t(lang, f"tracking.did.{status}")
    return f"{words}\n{t(lang, 'tracking.why', reason=reason)}" if reason else words


def said(recipient: Recipient, question: Question | None, lang: str) -> str:
    """What the member said: their idea, the approved statement they agreed with, or their
    answer (a choice's label)."""
    words = recipient.text
    if recipient.role == "answered" and recipient.choice is not None and question is not None:
        words = choice_label(question, recipient.choice, lang)
    return _short(words, MAX_SAID) if words else t(lang, "tracking.your_voice")


def told(
    recipient: Recipient, question: Question | None, status: str, reason: str | None, lang: str
) -> str:
    """The "You said: … We did: …" message to one person, in their language."""
    values: dict[str, object] = {
        "said": said(recipient, question, lang),
        "did": did(status, reason, lang),
    }
    if recipient.role == "answered":
        values["question"] = _short(question.text, MAX_SAID) if question else ""
    return t(lang, f"tracking.told.{recipient.role}", **values)


# ---- /updates, for members


def news_text(news: News, lang: str, tz: Any) -> str:
    """One change as a member reads it: when, what about, what we did and why."""
    words = _short(news.text, MAX_ABOUT) if news.text else t(lang, "tracking.your_voice")
    if news.about == "round":
        about = t(lang, "tracking.updates.round", text=words)
    elif news.own:
        about = t(lang, "tracking.updates.own", text=words)
    else:
        about = t(lang, "tracking.updates.idea", text=words)
    when = long_date(news.change.changed_at.astimezone(tz).date(), lang)
    return f"{when}\n{about}\n{did(news.change.status, news.change.reason, lang)}"


async def show_news(update: Update, context: CocreateContext, offset: int = 0) -> None:
    """Shows a page of the member's news, newest first."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    lang = member.language
    found = await context.store.tracker.news_for(member.id, offset, NEWS_PAGE + 1)
    if not found:
        key = "tracking.updates.none" if offset == 0 else "tracking.updates.end"
        await say(update, context, key, language=lang, reply_markup=menu_button(lang))
        return
    page = found[:NEWS_PAGE]
    lines = [t(lang, "tracking.updates.title") if offset == 0 else ""]
    lines += [news_text(news, lang, context.settings.tz) for news in page]
    buttons: list[list[InlineKeyboardButton]] = []
    if len(found) > NEWS_PAGE:
        more = t(lang, "tracking.updates.more")
        data = f"{NEWS_PREFIX}:{offset + NEWS_PAGE}"
        buttons.append([InlineKeyboardButton(more, callback_data=data)])
    buttons += [list(row) for row in menu_button(lang).inline_keyboard]
    text = "\n\n".join(line for line in lines if line)
    await replies.send(update, context, text, InlineKeyboardMarkup(buttons))


async def show_updates(update: Update, context: CocreateContext) -> None:
    """/updates: what happened to ideas and questions, newest first."""
    await show_news(update, context)


async def on_more_news(update: Update, context: CocreateContext) -> None:
    """Shows the next page of news."""
    query = update.callback_query
    assert query is not None
    if await current_member(update, context) is None:
        await answer_unknown_button(update, context)
        return
    await settle_button(update)
    offset = (query.data or "").partition(":")[2]
    await show_news(update, context, int(offset) if offset.isdigit() else 0)


def build_handlers() -> list[BaseHandler[Update, CocreateContext, Any]]:
    """The tracker's steps (for staff; opened from /ideas, so no command of its own), and
    /updates with its "Show more" button (for members)."""
    flow = FLOW.build_handler()
    flow.entry_points = []  # the flow starts at `show`, from the /ideas desk
    return [
        flow,
        CommandHandler("updates", show_updates, filters=filters.UpdateType.MESSAGE),
        CallbackQueryHandler(on_more_news, pattern=rf"^{NEWS_PREFIX}:\d+$"),
    ]
