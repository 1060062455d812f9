"""/stats: facilitators and organisers see who is (and is not) taking part: how many joined,
are active, stopped or cannot be reached; answers and response rate for the latest
questions; and who took part by each "about you" answer, against everyone who joined.

In that breakdown any count from 1 to 9 shows as "fewer than 10" (small-number suppression,
as NHS statistics do), so that no one can be picked out by their age or area. The totals
are not broken down by anything about a person and show in full. Every view goes in the
audit log. Counts come from storage/stats.py; no member, pseudonym or answer is shown.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, filters

from bot.catalogue import t
from conversations import steps
from conversations.context import CocreateContext
from conversations.onboarding import AGE_BANDS
from conversations.replies import language_of
from conversations.staff import staff_only
from storage.models import PREFER_NOT_TO_SAY
from storage.stats import ABOUT_FIELDS, Group

SMALL = 10  # counts from 1 to SMALL - 1 are not shown
LATEST_QUESTIONS = 10
MOST_GROUPS = 20  # typed areas can be many: the rest are counted together


def shown(count: int, lang: str) -> str:
    """A count in a breakdown: "fewer than 10" from 1 to 9."""
    return t(lang, "stats.fewer_than_10") if 0 < count < SMALL else str(count)


def short(text: str, limit: int = 60) -> str:
    """A question cut to fit a line."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def group_name(field: str, answer: str | None, lang: str) -> str:
    """An "about you" answer as staff read it."""
    if answer is None:
        return t(lang, "stats.no_answer")
    if answer == PREFER_NOT_TO_SAY:
        return t(lang, "common.prefer_not")
    if field == "age_band" and answer in AGE_BANDS:
        return t(lang, f"about.age.{answer}")
    return answer


def breakdown(field: str, groups: list[Group], lang: str, question: str) -> str:
    """One "about you" question's groups: who took part, of who joined."""
    lines = [t(lang, f"stats.by.{field}", question=question)]
    if len(groups) > MOST_GROUPS:
        named, rest = groups[: MOST_GROUPS - 1], groups[MOST_GROUPS - 1 :]
        other = Group(
            answer=t(lang, "stats.other"),
            joined=sum(g.joined for g in rest),
            took_part=sum(g.took_part for g in rest),
        )
        groups = [*named, other]
    for group in groups:
        lines.append(
            t(
                lang,
                "stats.group",
                group=group_name(field, group.answer, lang),
                took_part=shown(group.took_part, lang),
                joined=shown(group.joined, lang),
            )
        )
    return "\n".join(lines)


async def show(update: Update, context: CocreateContext) -> None:
    """Sends the counts: members, questions, then one message per "about you" question."""
    user = update.effective_user
    assert user is not None
    lang = await language_of(update, context)
    store = context.store
    members = await store.stats.membership()
    lines = [
        t(lang, "stats.title"),
        t(lang, "stats.joined", count=members.joined),
        t(lang, "stats.active", count=members.active),
        t(lang, "stats.stopped", count=members.stopped),
        t(lang, "stats.unreachable", count=members.unreachable),
        t(lang, "stats.joining", count=members.joining),
        t(lang, "stats.took_part", count=members.took_part),
        "",
        t(lang, "stats.took_part_note"),
    ]
    await steps.send(update, context, "\n".join(lines))

    questions = await store.questions.recent(LATEST_QUESTIONS)
    lines = [t(lang, "stats.questions")] if questions else [t(lang, "stats.no_questions")]
    for question in questions:
        _, answered, sent = await store.questions.counts(question.id)
        if sent:
            rate = round(100 * answered / sent)
            lines.append(
                t(
                    lang,
                    "stats.question",
                    question=short(question.text),
                    answered=answered,
                    sent=sent,
                    rate=rate,
                )
            )
        else:
            lines.append(t(lang, "stats.question.not_sent", question=short(question.text)))
    await steps.send(update, context, "\n".join(lines))

    extra = context.settings.about_extra_question
    for field in ABOUT_FIELDS:
        if field == "extra" and not extra:
            continue
        groups = await store.stats.by_answer(field)
        await steps.send(update, context, breakdown(field, groups, lang, short(extra)))
    await steps.send(update, context, t(lang, "stats.small_note"))
    await store.audit.add(f"telegram:{user.id}", "stats_viewed")


def build_handlers() -> list[BaseHandler[Update, CocreateContext, object]]:
    """/stats, for facilitators and organisers."""
    return [CommandHandler("stats", staff_only(show), filters=filters.UpdateType.MESSAGE)]
