"""Where people agree (from /ideas, for facilitators and organisers): each approved idea's
votes (agree, disagree, not sure) as counts and shares, in all and by each "about you"
group; and first, the "Common ground": the ideas that at least 60% agree with in every group
with at least 10 voters (Polis's consensus; storage/votes.py `common_ground`).

So that no one can be picked out, counts follow the /stats rule (storage/suppression.py):
any count from 1 to 9 shows as "*", and so does any count that would give one away by
subtraction (an idea's counts and every group's are tied together, storage/votes.py
`hidden_in_result`). A share is shown only beside a count that is shown. Long output is
split over messages. Every view goes in the audit log.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler

from bot.catalogue import t
from conversations import replies
from conversations.context import CocreateContext
from conversations.replies import language_of
from conversations.stats import group_name, short
from storage.stats import ABOUT_FIELDS
from storage.votes import (
    ALL,
    COUNTED,
    VOTERS,
    GroupTally,
    Result,
    ResultKey,
    Tally,
    common_ground,
    hidden_in_result,
)

MOST_GROUPS = 10  # groups shown per "about you" question, for each idea: the rest together


def top_groups(groups: list[GroupTally], lang: str) -> list[GroupTally]:
    """The groups as shown: past MOST_GROUPS, the smallest are counted together."""
    if len(groups) <= MOST_GROUPS:
        return groups
    named, rest = groups[: MOST_GROUPS - 1], groups[MOST_GROUPS - 1 :]
    other = GroupTally(t(lang, "stats.other"), sum((g.tally for g in rest), Tally()))
    return [*named, other]


def counts(
    tally: Tally, where: tuple[str, int], hidden: frozenset[ResultKey], lang: str
) -> dict[str, str]:
    """One line's counts as shown: "*" if hidden, else the count and its share of voters."""
    shown: dict[str, str] = {}
    for what in (*COUNTED, VOTERS):
        count = tally.count(what)
        if (*where, what) in hidden:
            shown[what] = t(lang, "stats.hidden")
        elif what == VOTERS or (*where, VOTERS) in hidden:
            shown[what] = str(count)
        else:
            shown[what] = t(lang, "agreement.share", count=count, share=tally.share(what))
    return shown


def idea_lines(
    number: int, result: Result, lang: str, question: str, fields: list[str]
) -> list[str]:
    """One idea's text, its counts in all, and by each "about you" question's groups."""
    breakdowns = {f: top_groups(result.breakdowns.get(f, []), lang) for f in fields}
    hidden = hidden_in_result(result.tally, breakdowns)
    lines = [t(lang, "agreement.idea", number=number, text=result.statement.text)]
    if not result.tally.voters:
        return [*lines, t(lang, "agreement.no_votes")]
    lines.append(t(lang, "agreement.counts", **counts(result.tally, (ALL, 0), hidden, lang)))
    for field, groups in breakdowns.items():
        lines.append(t(lang, f"agreement.by.{field}", question=question))
        for i, group in enumerate(groups):
            name = group_name(field, group.answer, lang)
            shown = counts(group.tally, (field, i), hidden, lang)
            lines.append(t(lang, "agreement.group", group=name, **shown))
    return lines


async def show(update: Update, context: CocreateContext) -> None:
    """Shows where people agree: the common ground first, then every idea's counts."""
    user = update.effective_user
    assert user is not None
    lang = await language_of(update, context)
    extra = context.settings.about_extra_question
    fields = [field for field in ABOUT_FIELDS if field != "extra" or extra]
    results = await context.store.votes.results(fields)
    blocks: list[str] = [t(lang, "agreement.title")]
    if not results:
        blocks.append(t(lang, "agreement.none"))
    else:
        common = [r for r in results if common_ground(r.tally, r.breakdowns)]
        if common:
            items = [t(lang, "agreement.common.item", text=r.statement.text) for r in common]
            blocks.append("\n".join([t(lang, "agreement.common"), *items]))
        else:
            blocks.append(t(lang, "agreement.common.none"))
        for number, result in enumerate(results, start=1):
            blocks.append("\n".join(idea_lines(number, result, lang, short(extra), fields)))
    # Kept before the results go, with this update (see bot/receiving.py): kept after the
    # first message, it would be lost to a kill before the next commit.
    await context.store.audit.add(f"telegram:{user.id}", "agreement_viewed", ideas=len(results))
    for text in replies.split_text("", "\n\n".join(blocks)):
        await replies.send(update, context, text)


def build_handlers() -> list[BaseHandler[Update, CocreateContext, object]]:
    """The results' buttons: none (the desk's button opens them; nothing else to press)."""
    return []
