"""/responses: a facilitator reads the latest answers to a question, a page at a time, with
counts per option; each open answer has a Reply button. The reply reaches the member from
the bot; the member may answer back once, and that reaches the facilitator. Neither sees
the other's Telegram name or id: the facilitator sees a pseudonym, the member "the team".
An answer back goes to the private chat of the facilitator who replied while they are on the
team; once their role has ended it goes to an organiser instead (the member is told, as
always, that it was passed to the team). A member's words may be as long as Telegram allows:
every view that quotes them splits the text over several messages, buttons on the last.

Buttons: `resp:q:<question id>:<offset>` (a page), `resp:reply:<answer id>` (staff),
`back:<reply id>` (the member's "Answer back"). Typed replies are read while
While a reply or an answer back is being written, the person's session waits at the one-step
question "reply" (data["answer"]) or "answerback" (data["reply"]).
"""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, filters

from bot.catalogue import t, tn, writing_to
from conversations import replies, steps
from conversations.choices import Option
from conversations.context import CocreateContext
from conversations.prompts import choice_label, options_of
from conversations.replies import (
    await_answer,
    awaited,
    current_member,
    language_of,
    menu_button,
    quoted,
    say,
    settle_button,
    split_text,
)
from conversations.staff import ORGANISER, acting_staff, staff_only
from storage.answers import Answer
from storage.models import Member
from storage.outbox import Outgoing
from storage.questions import Question
from storage.replies import Reply
from storage.store import Store

logger = logging.getLogger(__name__)

REPLY = "reply"  # the one-step question: a facilitator's words back to an answer
ANSWER_BACK = "answerback"  # the one-step question: a member's words back to a reply

PAGE = 5
MAX_REPLY = 2000
PICKER = 8  # questions offered by /responses
LOOK_BACK = 40  # recent questions looked at to find them


async def sent_questions(context: CocreateContext) -> list[Question]:
    """The newest questions that reached someone (not ones still waiting to be sent)."""
    found = []
    for question in await context.store.questions.recent(LOOK_BACK):
        _, _, sent = await context.store.answers.counts(question.id)
        if sent:
            found.append(question)
        if len(found) == PICKER:
            break
    return found


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


async def list_questions(update: Update, context: CocreateContext) -> None:
    """/responses: which question's answers to read."""
    lang = await language_of(update, context)
    questions = await sent_questions(context)
    if not questions:
        await steps.ask(update, context, lang, "staff.responses.none")
        return
    paged = [Option(f"{q.id}:0", label=_short(q.text)) for q in questions]
    await steps.ask(update, context, lang, "staff.responses.pick", paged, "resp:q")


async def on_page(update: Update, context: CocreateContext) -> None:
    """Shows counts, then a page of answers with Reply buttons."""
    query = update.callback_query
    assert query is not None
    await settle_button(update)
    lang = await language_of(update, context)
    _, _, qid, offset = [*(query.data or "").split(":"), "", "", "", ""][:4]
    question = await context.store.questions.get(int(qid)) if qid.isdigit() else None
    if question is None:
        await steps.ask(update, context, lang, "staff.responses.none")
        return
    start = int(offset) if offset.isdigit() else 0
    answers = await context.store.answers.to_question(question.id, start, PAGE + 1)
    # Named before anything is sent: a new pseudonym is kept, and kept after the first message
    # it would be lost to a kill before the next commit (see bot/receiving.py).
    names = await context.store.pseudonyms.of_many(a.member_id for a in answers[:PAGE])
    if start == 0:
        per_choice, answered, sent = await context.store.answers.counts(question.id)
        lines = [
            t(lang, "staff.responses.header", question=question.text, sent=sent, answered=answered)
        ]
        for option in options_of(question):
            lines.append(f"{option.text(lang)}: {per_choice.get(option.key, 0)}")
        for piece in split_text("", "\n".join(lines)):
            await replies.send(update, context, piece)
    if not answers and start == 0:
        await steps.ask(update, context, lang, "staff.responses.no_answers")
        return
    for answer in answers[:PAGE]:
        pseudonym = names[answer.member_id]
        parts = [choice_label(question, answer.choice, lang)] if answer.choice else []
        parts += [t(lang, f"sharing.media.{k}") for k in answer.media_kinds]
        parts += [answer.text] if answer.text else []
        markup = None
        if question.kind == "open":
            button = InlineKeyboardButton(
                t(lang, "staff.responses.reply"), callback_data=f"resp:reply:{answer.id}"
            )
            markup = InlineKeyboardMarkup([[button]])
        # A long answer takes several messages; its button goes on the last.
        *first, last = split_text(f"{pseudonym}: ", " ".join(parts))
        for piece in first:
            await replies.send(update, context, piece)
        await replies.send(update, context, last, markup)
    if len(answers) > PAGE:
        more = Option(f"{question.id}:{start + PAGE}", "staff.responses.more")
        await steps.ask(update, context, lang, "staff.responses.more_intro", [more], "resp:q")


async def on_reply_button(update: Update, context: CocreateContext) -> None:
    """Asks the facilitator for their reply to one answer."""
    query = update.callback_query
    assert query is not None
    await settle_button(update)
    lang = await language_of(update, context)
    answer_id = (query.data or "").rpartition(":")[2]
    answer = await context.store.answers.get(int(answer_id)) if answer_id.isdigit() else None
    if answer is None:
        await steps.ask(update, context, lang, "staff.responses.gone")
        return
    await ask_reply(update, context, answer, lang)


async def ask_reply(update: Update, context: CocreateContext, answer: Answer, lang: str) -> None:
    """Asks the facilitator for their words back to one answer, and waits for them."""
    await_answer(context, REPLY)
    context.data["answer"] = answer.id
    pseudonym = await context.store.pseudonyms.of(answer.member_id)
    await steps.ask(update, context, lang, "staff.reply.ask", pseudonym=pseudonym)


async def relay_reply(
    store: Store,
    answer: Answer,
    member: Member,
    staff_id: int,
    staff_chat_id: int,
    text: str,
    **audit: object,
) -> Reply:
    """Records a staff member's reply to an answer and queues it for the member, with their
    "Answer back" button; the caller wakes the sender. Used by the chat (`take_reply`) and by
    the workbench's Questions page, so a reply reaches the member the same way from both."""
    round_ = await store.questions.round(answer.round_id)
    question = await store.questions.get(round_.question_id) if round_ else None
    reply = await store.replies.create(answer.id, staff_id, staff_chat_id, text)
    with writing_to(member.chat_id):  # in the words for their channel
        back = InlineKeyboardButton(
            t(member.language, "reply.answer_back"), callback_data=f"back:{reply.id}"
        )
        body = t(member.language, "reply.from_team", question=question.text if question else "")
    await store.outbox.enqueue_batch(
        "reply",
        reply.id,
        [
            Outgoing(
                member.id,
                member.chat_id,
                f"{body}\n\n{text}",
                InlineKeyboardMarkup([[back]]).to_dict(),
            )
        ],
    )
    await store.audit.add(f"telegram:{staff_id}", "reply_sent", answer=answer.id, **audit)
    return reply


async def take_reply(update: Update, context: CocreateContext, answer_id: int, text: str) -> bool:
    """Sends the facilitator's reply to the member, through the outbox."""
    user = update.effective_user
    if user is None or await acting_staff(update, context) is None:
        return False
    lang = await language_of(update, context)
    answer = await context.store.answers.get(answer_id)
    member = await context.store.members.get(answer.member_id) if answer else None
    if answer is None or member is None:
        await steps.ask(update, context, lang, "staff.responses.gone")
        return True
    if len(text) > MAX_REPLY:
        await_answer(context, REPLY)  # before anything is sent (see machine.py)
        context.data["answer"] = answer_id
        await replies.send(
            update,
            context,
            tn(lang, "staff.ask.text_bad.letters", MAX_REPLY, max=MAX_REPLY),
        )
        return True
    await relay_reply(context.store, answer, member, user.id, user.id, text)
    context.delivery.wake()
    pseudonym = await context.store.pseudonyms.of(member.id)
    await steps.ask(update, context, lang, "staff.reply.sent", pseudonym=pseudonym)
    return True


async def on_answer_back_button(update: Update, context: CocreateContext) -> None:
    """The member's "Answer back": asks for their one answer."""
    query = update.callback_query
    assert query is not None
    await settle_button(update)
    member = await current_member(update, context)
    reply_id = (query.data or "").rpartition(":")[2]
    reply = await context.store.replies.get(int(reply_id)) if reply_id.isdigit() else None
    answer = await context.store.answers.get(reply.answer_id) if reply else None
    if member is None or reply is None or answer is None or answer.member_id != member.id:
        await say(update, context, "bad.old_button")
        return
    if reply.member_text is not None:
        await say(update, context, "reply.already", language=member.language)
        return
    await ask_answer_back(update, context, member, reply)


async def ask_answer_back(
    update: Update, context: CocreateContext, member: Member, reply: Reply
) -> None:
    """Asks the member for their one answer back to a reply, and waits for it."""
    await_answer(context, ANSWER_BACK)
    context.data["reply"] = reply.id
    await say(update, context, "reply.ask", language=member.language)


async def reask(update: Update, context: CocreateContext) -> bool:
    """After a restart replayed an update already applied: asks again for the reply or the
    answer back the person was asked for, as it was first asked, leaving their session as
    it is; an answer gone meanwhile is said to be gone. False if there is none to ask (no
    longer staff; the reply is gone or answered back)."""
    question = awaited(context)
    if question == REPLY:
        if await acting_staff(update, context) is None:
            return False
        lang = await language_of(update, context)
        answer_id = context.data.get("answer")
        answer = await context.store.answers.get(answer_id) if isinstance(answer_id, int) else None
        if answer is None:  # as take_reply says to what they type next
            await steps.ask(update, context, lang, "staff.responses.gone")
        else:
            await ask_reply(update, context, answer, lang)
        return True
    if question == ANSWER_BACK:
        member = await current_member(update, context)
        reply_id = context.data.get("reply")
        reply = await context.store.replies.get(reply_id) if isinstance(reply_id, int) else None
        if member is None or reply is None or reply.member_text is not None:
            return False
        await ask_answer_back(update, context, member, reply)
        return True
    return False


async def take_answer_back(
    update: Update, context: CocreateContext, reply_id: int, text: str
) -> bool:
    """Passes the member's one answer back to the facilitator who replied."""
    member = await current_member(update, context)
    reply = await context.store.replies.get(reply_id)
    answer = await context.store.answers.get(reply.answer_id) if reply else None
    if member is None or reply is None or answer is None or answer.member_id != member.id:
        return False
    if not await context.store.replies.answer_back(reply.id, text):
        await say(update, context, "reply.already", language=member.language)
        return True
    pseudonym = await context.store.pseudonyms.of(member.id)
    key = "staff.reply.answered_back"
    to = await context.store.roles.staff_chat(reply.staff_id)
    if to is None:  # their role has ended: an organiser reads it instead
        key = "staff.reply.answered_back_instead"
        organisers = [r for r in await context.store.roles.staff() if r.role == ORGANISER]
        to = organisers[0].chat_id if organisers else None
    if to is None:  # no one on the team now: it stays stored with the reply
        logger.warning("An answer back to reply %s has no one to go to", reply.id)
    else:
        staff = await context.store.members.by_telegram_id(to)
        staff_lang = staff.language if staff else "en"
        pieces = quoted(staff_lang, key, text, pseudonym=pseudonym)
        await context.store.outbox.enqueue_batch(
            "reply", reply.id, [Outgoing(None, to, piece, words_of=member.id) for piece in pieces]
        )
        context.delivery.wake()
    await say(
        update,
        context,
        "reply.passed_on",
        language=member.language,
        reply_markup=menu_button(member.language),
    )
    return True


def build_handlers() -> list[BaseHandler[Update, CocreateContext, object]]:
    """/responses and its buttons (facilitators), and the member's "Answer back"."""
    return [
        CommandHandler("responses", staff_only(list_questions), filters=filters.UpdateType.MESSAGE),
        CallbackQueryHandler(staff_only(on_page), pattern=r"^resp:q:"),
        CallbackQueryHandler(staff_only(on_reply_button), pattern=r"^resp:reply:"),
        CallbackQueryHandler(on_answer_back_button, pattern=r"^back:"),
    ]
