"""Ideas members chose to share, approved by a facilitator before anyone else sees them;
and facilitators' own statements. Reached from /ideas (conversations/idea_desk.py).

A facilitator sees one waiting idea at a time (never one with a safeguarding flag) with
Approve / Edit then approve / Decline / Next, or, for an idea with no words of its own (a
voice note), Write a summary / Decline / Next. Edited words, a summary and a statement are
typed: the facilitator's session then waits at a one-step question (conversations/routes.py
`takes_text`), data["statement"] holding the idea (0: a new statement). The author hears,
through the outbox, that their idea was approved (with the edited words if edited), or is
asked whether a summary is right (Yes / No, buttons or typed). /cancel (or CANCEL typed) at
any of the facilitator's questions ends it, and nothing changes (`cancel`, called by the
everyday /cancel in conversations/everyday.py).

Buttons: `approve:<statement id>:<ok|edit|sum|no|next>` (staff; checked again on the server,
so a member's forged one is refused as an unknown button and changes nothing) and
`summary:<statement id>:<yes|no>` (the author). Audit: statement_approved, statement_edited,
statement_declined, statement_summarised, statement_added, summary_approved,
summary_refused; ids only, never words.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from telegram import InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.catalogue import t, tn, writing_to
from conversations import replies
from conversations.choices import Option, from_callback, keyboard, match, number
from conversations.context import CocreateContext
from conversations.replies import (
    PROMPT,
    answer_unknown_button,
    await_answer,
    awaited,
    chat_of,
    current_member,
    language_of,
    leave_question,
    menu_button,
    quoted,
    say,
    settle_button,
    split_text,
    typed_command,
)
from conversations.staff import acting_staff, staff_only
from storage import kinds
from storage.models import Member
from storage.outbox import Outgoing
from storage.statements import SUMMARY_BATCH, Statement, Waiting

logger = logging.getLogger(__name__)

PREFIX = "approve"
AUTHOR_PREFIX = "summary"
# One-step questions a facilitator answers by typing (their session waits at one).
CHOOSE = "approve_choose"  # a typed choice at a waiting idea
EDIT = "approve_edit"  # the idea's words as members will see them
SUMMARY = "approve_summary"  # a summary of an idea with no words of its own
STATEMENT = "statement"  # a facilitator's own statement
QUESTIONS = (CHOOSE, EDIT, SUMMARY, STATEMENT)
MAX_TEXT = 500  # letters in an edited idea or a summary
MAX_STATEMENT = 300  # letters in a facilitator's own statement

APPROVE = Option("ok", "approving.approve")
EDIT_OPTION = Option("edit", "approving.edit")
SUMMARISE = Option("sum", "approving.summarise")
DECLINE = Option("no", "approving.decline")
NEXT = Option("next", "approving.next")
YES = Option("yes", "approving.summary.yes")
NO = Option("no", "approving.summary.no")
AUTHOR_OPTIONS = [YES, NO]


def options_for(waiting: Waiting) -> list[Option]:
    """What a facilitator can do with a waiting idea."""
    if waiting.needs_summary:
        return [SUMMARISE, DECLINE, NEXT]
    return [APPROVE, EDIT_OPTION, DECLINE, NEXT]


def actor(update: Update) -> str:
    """Who acted, as the audit log names staff."""
    user = update.effective_user
    return f"telegram:{user.id if user else 0}"


def user_id(update: Update) -> int:
    """The Telegram id of the person behind the update."""
    user = update.effective_user
    assert user is not None
    return user.id


async def cancel(update: Update, context: CocreateContext) -> bool:
    """/cancel while a facilitator is at one of approval's questions: ends it, and nothing
    changes. False (and nothing said) for anyone else, who gets the everyday /cancel."""
    if awaited(context) not in QUESTIONS:
        return False
    leave_question(context)
    context.data.pop("statement", None)
    if await acting_staff(update, context) is None:
        return False
    await say_cancelled(update, context, await language_of(update, context))
    return True


async def say_cancelled(update: Update, context: CocreateContext, lang: str) -> None:
    """Says the question was ended and nothing was changed."""
    context.data.pop("statement", None)
    await replies.send(update, context, t(lang, "approving.cancelled"))


# ---- staff: the waiting ideas


async def show_waiting(update: Update, context: CocreateContext) -> None:
    """Lists the ideas waiting for a facilitator's OK: the first one, with what to do."""
    await show_next(update, context, 0)


async def show_next(
    update: Update, context: CocreateContext, after: int, *, first: Sequence[str] = ()
) -> None:
    """Shows the waiting idea after `after` (from the first again at the end), or says none
    is waiting. `first`: texts to send before it, once the facilitator is moved there (what
    was done with the last one): a kill after a send keeps no move made after it."""
    lang = await language_of(update, context)
    waiting = await context.store.statements.next_waiting(after)
    if waiting is None:
        leave_question(context)
        for text in first:
            await replies.send(update, context, text)
        await replies.send(update, context, t(lang, "approving.none"))
        return
    await show(update, context, waiting, lang, first=first)


async def show(
    update: Update,
    context: CocreateContext,
    waiting: Waiting,
    lang: str,
    *,
    first: Sequence[str] = (),
) -> None:
    """One waiting idea: who may see it, its words (or its files), and the buttons. The
    facilitator may also type a choice's number or word."""
    statement = waiting.statement
    count = await context.store.statements.count_waiting()
    lines = [tn(lang, "approving.waiting", count, count=count)]
    if statement.visibility == "named":
        author = await context.store.members.get(waiting.member_id)
        name = author.display_name if author and author.display_name else "?"
        lines.append(t(lang, "approving.how.named", name=name))
    else:
        lines.append(t(lang, "approving.how.anonymous"))
    if waiting.needs_summary and "voice" in waiting.media_kinds:
        lines.append(tn(lang, "approving.voice", waiting.seconds, seconds=waiting.seconds))
    words = waiting.idea or ""
    if waiting.who_it_helps:
        label = t(lang, f"{kinds.IDEA.noun}.label.{kinds.IDEA.parts[1]}")
        words = f"{words}\n\n{label}: {waiting.who_it_helps}".strip()
    await_answer(context, CHOOSE)  # before anything is sent (see conversations/machine.py)
    context.data["statement"] = statement.id
    for text in first:
        await replies.send(update, context, text)
    await send_files(update, context, waiting)
    markup = keyboard(options_for(waiting), lang, f"{PREFIX}:{statement.id}")
    *first, last = split_text("\n".join(lines) + "\n\n", words)
    for piece in first:
        await replies.send(update, context, piece)
    await replies.send(update, context, last, markup)


async def send_files(update: Update, context: CocreateContext, waiting: Waiting) -> None:
    """Sends the facilitator the files of the idea part (a voice note to listen to)."""
    chat_id = chat_of(update)
    if chat_id is None:
        return
    for kind, file_id in zip(waiting.media_kinds, waiting.media_file_ids, strict=True):
        try:
            if kind == "voice":
                await context.bot.send_voice(chat_id, file_id)
            elif kind == "photo":
                await context.bot.send_photo(chat_id, file_id)
            elif kind == "audio":
                await context.bot.send_audio(chat_id, file_id)
            else:
                await context.bot.send_document(chat_id, file_id)
        except TelegramError as exc:  # the file is too old to send again: the words still go
            logger.warning(
                "Could not show a %s of statement %s: %s", kind, waiting.statement.id, exc
            )


async def on_button(update: Update, context: CocreateContext) -> None:
    """A facilitator's button at a waiting idea. What it names is checked again here: a
    decided, flagged or unknown idea is answered as old, and nothing changes."""
    query = update.callback_query
    assert query is not None
    _, ident, key = [*(query.data or "").split(":"), "", "", ""][:3]
    statement_id = number(ident)
    waiting = await context.store.statements.find_waiting(statement_id) if statement_id else None
    option = (
        from_callback(query.data or "", options_for(waiting), f"{PREFIX}:{ident}")
        if waiting
        else None
    )
    await settle_button(update, chosen=option is not None)
    lang = await language_of(update, context)
    if waiting is None or option is None:
        if key == NEXT.key and statement_id:
            await show_next(update, context, statement_id)
            return
        gone = [t(lang, "approving.gone")]
        await show_next(update, context, statement_id or 0, first=gone)
        return
    await act(update, context, waiting, option, lang)


async def take_choice(
    update: Update, context: CocreateContext, statement_id: int, text: str
) -> bool:
    """A choice typed at a waiting idea (its number or word); False if it is not one."""
    if await acting_staff(update, context) is None:
        return False
    lang = await language_of(update, context)
    if typed_command(text, lang) == "cancel":  # CANCEL typed: not the words
        await say_cancelled(update, context, lang)
        return True
    waiting = await context.store.statements.find_waiting(statement_id)
    if waiting is None:
        return False
    option = match(text, options_for(waiting), lang)
    if option is None and typed_command(text, lang) is not None:
        return False  # MENU, HELP … still work
    if option is None:
        await replies.send(update, context, t(lang, "staff.not_understood"))
        await show(update, context, waiting, lang)
        return True
    await act(update, context, waiting, option, lang)
    return True


async def act(
    update: Update, context: CocreateContext, waiting: Waiting, option: Option, lang: str
) -> None:
    """Does what the facilitator chose at a waiting idea."""
    statement = waiting.statement
    if option.key == NEXT.key:
        await show_next(update, context, statement.id)
    elif option.key == APPROVE.key:
        made = await context.store.statements.approve(statement.id, user_id(update))
        await approved(update, context, statement.id, made, lang)
    elif option.key == DECLINE.key:
        if await context.store.statements.decline(statement.id, user_id(update)) is None:
            said = t(lang, "approving.gone")
        else:
            await context.store.audit.add(
                actor(update), "statement_declined", statement=statement.id
            )
            said = t(lang, "approving.declined")
        await show_next(update, context, statement.id, first=[said])
    else:  # Edit then approve, or Write a summary: the words come next
        question = EDIT if option.key == EDIT_OPTION.key else SUMMARY
        await ask_words(update, context, waiting, question, lang)


async def ask_words(
    update: Update, context: CocreateContext, waiting: Waiting, question: str, lang: str
) -> None:
    """Asks for an idea's edited words (EDIT) or a summary of it (SUMMARY), with its words
    to copy and change."""
    await_answer(context, question)
    context.data["statement"] = waiting.statement.id
    key = "approving.edit.ask" if question == EDIT else "approving.summary.ask"
    await replies.send(update, context, t(lang, key))
    if waiting.idea:  # to copy and change
        for piece in split_text("", waiting.idea):
            await replies.send(update, context, piece)


async def approved(
    update: Update,
    context: CocreateContext,
    statement_id: int,
    made: Statement | None,
    lang: str,
) -> None:
    """Tells the author and the facilitator that an idea was approved; shows the next."""
    if made is None:
        said = t(lang, "approving.gone")
    else:
        action = "statement_edited" if made.edited else "statement_approved"
        await context.store.audit.add(actor(update), action, statement=made.id)
        author = await author_of(context, made)
        if author is not None:
            key = "approving.author.edited" if made.edited else "approving.author.approved"
            with writing_to(author.chat_id):
                pieces = quoted(author.language, key, made.text or "")
            await tell(context, author, "approved", made.id, pieces)
        said = t(lang, "approving.approved")
    await show_next(update, context, statement_id, first=[said])


async def staff_words(
    update: Update, context: CocreateContext, text: str, question: str, statement_id: int, most: int
) -> tuple[str, str] | None:
    """A facilitator's typed words for one of the questions here, with their language; None
    if this answered them already: CANCEL typed, or words that do not fit (asked again)."""
    lang = await language_of(update, context)
    if typed_command(text, lang) == "cancel":  # CANCEL typed: not the words
        await say_cancelled(update, context, lang)
        return None
    words = text.strip()
    if not words or len(words) > most:
        await_answer(context, question)  # before anything is sent (see machine.py)
        context.data["statement"] = statement_id
        await replies.send(update, context, tn(lang, "staff.ask.text_bad.letters", most, max=most))
        return None
    return lang, words


async def take_edit(update: Update, context: CocreateContext, statement_id: int, text: str) -> bool:
    """Approves an idea with the facilitator's words, and tells its author."""
    if await acting_staff(update, context) is None:
        return False
    got = await staff_words(update, context, text, EDIT, statement_id, MAX_TEXT)
    if got is None:
        return True
    lang, words = got
    made = await context.store.statements.approve(statement_id, user_id(update), words)
    await approved(update, context, statement_id, made, lang)
    return True


async def take_summary(
    update: Update, context: CocreateContext, statement_id: int, text: str
) -> bool:
    """Keeps a facilitator's summary of an idea and asks its author whether it is right."""
    if await acting_staff(update, context) is None:
        return False
    got = await staff_words(update, context, text, SUMMARY, statement_id, MAX_TEXT)
    if got is None:
        return True
    lang, words = got
    made = await context.store.statements.summarise(statement_id, user_id(update), words)
    if made is None:
        said = t(lang, "approving.gone")
    else:
        await context.store.audit.add(actor(update), "statement_summarised", statement=made.id)
        author = await author_of(context, made)
        if author is not None:
            with writing_to(author.chat_id):
                pieces = quoted(author.language, "approving.author.summary", words)
                markup = keyboard(AUTHOR_OPTIONS, author.language, f"{AUTHOR_PREFIX}:{made.id}")
            await tell(context, author, SUMMARY_BATCH, made.id, pieces, markup)
        said = t(lang, "approving.summary_sent")
    await show_next(update, context, statement_id, first=[said])
    return True


# ---- staff: their own statements


async def start_statement(update: Update, context: CocreateContext) -> None:
    """Starts a facilitator's own statement: asks for its words."""
    await ask_statement(update, context, await language_of(update, context))


async def ask_statement(update: Update, context: CocreateContext, lang: str) -> None:
    """Asks for the words of a facilitator's own statement."""
    await_answer(context, STATEMENT)
    context.data["statement"] = 0
    await replies.send(update, context, t(lang, "approving.statement.ask"))


async def take_statement(update: Update, context: CocreateContext, _: int, text: str) -> bool:
    """Keeps a facilitator's own statement: members may weigh it at once."""
    if await acting_staff(update, context) is None:
        return False
    got = await staff_words(update, context, text, STATEMENT, 0, MAX_STATEMENT)
    if got is None:
        return True
    lang, words = got
    made = await context.store.statements.add_own(words, user_id(update))
    await context.store.audit.add(actor(update), "statement_added", statement=made.id)
    await replies.send(update, context, t(lang, "approving.statement.added"))
    return True


async def reask(update: Update, context: CocreateContext) -> bool:
    """After a restart replayed an update already applied: asks the facilitator again the
    question they are at, as it was first asked (the waiting idea and its buttons, or what
    to type), leaving their session as it is; an idea decided meanwhile is said to be gone.
    False if they are no longer staff."""
    question = awaited(context)
    statement_id = context.data.get("statement")
    if question not in QUESTIONS or not isinstance(statement_id, int):
        return False
    if await acting_staff(update, context) is None:
        return False
    lang = await language_of(update, context)
    if question == STATEMENT:
        await ask_statement(update, context, lang)
        return True
    waiting = await context.store.statements.find_waiting(statement_id)
    if waiting is None:  # what they type next is told the same (take_choice, take_edit …)
        await replies.send(update, context, t(lang, "approving.gone"))
    elif question == CHOOSE:
        await show(update, context, waiting, lang)
    else:
        await ask_words(update, context, waiting, question, lang)
    return True


# ---- the author


async def author_of(context: CocreateContext, statement: Statement) -> Member | None:
    """The member who shared the idea, if they are still a member."""
    if statement.submission_id is None:
        return None
    submission = await context.store.sharing.get(statement.submission_id)
    return await context.store.members.get(submission.member_id) if submission else None


async def tell(
    context: CocreateContext,
    author: Member,
    kind: str,
    statement_id: int,
    pieces: list[str],
    markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Queues a message to the author in the outbox (quiet hours, /stop and unreachable
    apply there); buttons go on its last piece."""
    messages = [
        Outgoing(
            author.id,
            author.chat_id,
            piece,
            markup.to_dict() if markup is not None and i == len(pieces) - 1 else None,
        )
        for i, piece in enumerate(pieces)
    ]
    await context.store.outbox.enqueue_batch(kind, statement_id, messages)
    context.delivery.wake()


async def on_summary_button(update: Update, context: CocreateContext) -> None:
    """The author's Yes or No to a summary of their idea."""
    query = update.callback_query
    assert query is not None
    member = await current_member(update, context)
    ident = (query.data or "").split(":")[1:2]
    statement_id = number(ident[0]) if ident else None
    option = (
        from_callback(query.data or "", AUTHOR_OPTIONS, f"{AUTHOR_PREFIX}:{statement_id}")
        if statement_id
        else None
    )
    if member is None or statement_id is None or option is None:
        await answer_unknown_button(update, context)
        return
    statement = await context.store.statements.get(statement_id)
    if statement is None or statement.state != "summary":
        await answer_unknown_button(update, context)
        return
    if not await answer_summary(update, context, member, statement_id, option):
        await answer_unknown_button(update, context)


async def take_typed(update: Update, context: CocreateContext, member: Member) -> bool:
    """A typed Yes or No to a summary of the member's idea, when that question is the newest
    thing they were asked; False otherwise."""
    message = update.effective_message
    text = message.text if message is not None else None
    if text is None:
        return False
    found = await context.store.statements.summary_asked(member.id)
    if found is None:
        return False
    statement, asked = found
    if asked < int(context.data.get(PROMPT, 0)):
        return False  # the menu came after it: typed words go there
    option = match(text, AUTHOR_OPTIONS, member.language)
    if option is None:
        return False
    return await answer_summary(update, context, member, statement.id, option)


async def answer_summary(
    update: Update, context: CocreateContext, member: Member, statement_id: int, option: Option
) -> bool:
    """Yes: other members may see the summary. No: it goes back to the team to write again.
    False if it is not the member's or no summary waits for them."""
    agree = option.key == YES.key
    made = await context.store.statements.answer_summary(statement_id, member.id, agree=agree)
    if made is None:
        return False
    await settle_button(update)
    action = "summary_approved" if agree else "summary_refused"
    await context.store.audit.add("author", action, statement=made.id)
    lang = member.language
    key = "approving.summary.thanks_yes" if agree else "approving.summary.thanks_no"
    await say(update, context, key, language=lang, reply_markup=menu_button(lang))
    return True


def build_handlers() -> list[BaseHandler[Update, CocreateContext, object]]:
    """Approval's buttons: the facilitators' (guarded), and the author's Yes or No."""
    return [
        CallbackQueryHandler(staff_only(on_button), pattern=rf"^{PREFIX}:"),
        CallbackQueryHandler(on_summary_button, pattern=rf"^{AUTHOR_PREFIX}:"),
    ]
