"""/stats: facilitators and organisers see who is (and is not) taking part: how many joined,
are active, stopped or cannot be reached; answers and response rate for the latest
questions; and who took part by each "about you" answer, against everyone who joined.

So that no one can be picked out, any count from 1 to 9 is hidden, and so is any count that
would let a hidden one be worked out by subtraction (secondary suppression, as ONS and NHS
statistics do): totals, question lines and each breakdown alike. Hidden counts show as "*".
storage/stats.py says which counts to hide (the rule is in storage/suppression.py). Every
view goes in the audit log. No member, pseudonym or answer is shown.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, filters

from bot.catalogue import t
from conversations import replies
from conversations.context import CocreateContext
from conversations.replies import language_of
from conversations.staff import staff_only
from storage.models import AGE_BANDS, PREFER_NOT_TO_SAY
from storage.stats import (
    ABOUT_FIELDS,
    JOINED,
    TOOK_PART,
    Group,
    StatsKey,
    hidden_in_question,
    hidden_in_stats,
)

LATEST_QUESTIONS = 10
MOST_GROUPS = 20  # typed areas can be many: the rest are counted together
MEMBERSHIP_LINES = (  # (text, count) in the order shown
    ("stats.joined", "joined"),
    ("stats.active", "active"),
    ("stats.stopped", "stopped"),
    ("stats.unreachable", "unreachable"),
    ("stats.joining", "joining"),
    ("stats.took_part", "took_part"),
)


def shown(count: int, hidden: bool, lang: str) -> str:
    """A count as staff see it: "*" when it is hidden."""
    return t(lang, "stats.hidden") if hidden else str(count)


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


def top_groups(groups: list[Group], lang: str) -> list[Group]:
    """The groups as shown: past MOST_GROUPS, the smallest are counted together."""
    if len(groups) <= MOST_GROUPS:
        return groups
    named, rest = groups[: MOST_GROUPS - 1], groups[MOST_GROUPS - 1 :]
    other = Group(
        answer=t(lang, "stats.other"),
        joined=sum(g.joined for g in rest),
        took_part=sum(g.took_part for g in rest),
    )
    return [*named, other]


def breakdown(
    field: str, groups: list[Group], hidden: frozenset[StatsKey], lang: str, question: str
) -> str:
    """One "about you" question's groups: who took part, of who joined."""
    lines = [t(lang, f"stats.by.{field}", question=question)]
    for i, group in enumerate(groups):
        lines.append(
            t(
                lang,
                "stats.group",
                group=group_name(field, group.answer, lang),
                took_part=shown(group.took_part, (field, i, TOOK_PART) in hidden, lang),
                joined=shown(group.joined, (field, i, JOINED) in hidden, lang),
            )
        )
    return "\n".join(lines)


async def show(update: Update, context: CocreateContext) -> None:
    """Sends the counts: members, questions, then one message per "about you" question."""
    user = update.effective_user
    assert user is not None
    lang = await language_of(update, context)
    store = context.store
    extra = context.settings.about_extra_question
    fields = [field for field in ABOUT_FIELDS if field != "extra" or extra]
    overview = await store.stats.overview(fields)
    members = overview.membership
    breakdowns = {field: top_groups(overview.breakdowns[field], lang) for field in fields}
    hidden = hidden_in_stats(members, breakdowns)
    lines = [t(lang, "stats.title")]
    for key, name in MEMBERSHIP_LINES:
        lines.append(t(lang, key, count=shown(getattr(members, name), name in hidden, lang)))
    lines += ["", t(lang, "stats.took_part_note")]
    # Kept before the figures go, with this update (see bot/receiving.py): kept after the
    # first message, it would be lost to a kill before the next commit.
    await store.audit.add(f"telegram:{user.id}", "stats_viewed")
    await replies.send(update, context, "\n".join(lines))

    questions = await store.questions.recent(LATEST_QUESTIONS)
    lines = [t(lang, "stats.questions")] if questions else [t(lang, "stats.no_questions")]
    for question in questions:
        _, answered, sent = await store.answers.counts(question.id)
        if not sent:
            lines.append(t(lang, "stats.question.not_sent", question=short(question.text)))
            continue
        secret = hidden_in_question(answered, sent)
        counts = {
            "question": short(question.text),
            "answered": shown(answered, "answered" in secret, lang),
            "sent": shown(sent, "sent" in secret, lang),
        }
        if secret:  # the rate would give a hidden count away
            lines.append(t(lang, "stats.question.no_rate", **counts))
        else:
            lines.append(t(lang, "stats.question", rate=round(100 * answered / sent), **counts))
    await replies.send(update, context, "\n".join(lines))

    for field, groups in breakdowns.items():
        await replies.send(update, context, breakdown(field, groups, hidden, lang, short(extra)))
    await replies.send(update, context, t(lang, "stats.small_note"))


def build_handlers() -> list[BaseHandler[Update, CocreateContext, object]]:
    """/stats, for facilitators and organisers."""
    return [CommandHandler("stats", staff_only(show), filters=filters.UpdateType.MESSAGE)]
