"""What a message costs its SMS members, in SMS segments: for a facilitator's preview (each
person's count and the audience's total) and for a delivery report (the segments sent).

An SMS member gets the message as one plain text, its buttons written out
(bot/sms_text.py `sms_body`), in their language: languages can cost differently (a Welsh
circumflex makes the whole text UCS-2, 70 characters a segment instead of 160). Nothing here
reads the database: storage counts the SMS members of an audience by language
(`Questions.reachable_by_language`) and lists what a batch sent to SMS chats
(`Outbox.sent_texts`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.catalogue import t, tn, writing_to
from bot.channels import NEXT_BASE, SMS_BASE
from bot.segments import segments
from bot.sms_text import sms_body

SMS_CHATS = (SMS_BASE, NEXT_BASE)  # the chat ids of SMS members: [first, end)

Markup = Mapping[str, Any] | None
# The message as a member in this language gets it: its text and buttons (Bot API JSON).
Message = Callable[[str], tuple[str, Markup]]


def message_segments(text: str, language: str, markup: Markup = None) -> int:
    """The SMS segments one message costs an SMS member in this language."""
    with writing_to(SMS_BASE):  # the texts an SMS member gets (the catalogue's SMS variants)
        return segments(sms_body(text, language, markup=markup))


@dataclass(frozen=True)
class AudienceCost:
    """What a message costs the SMS members of an audience: `least` and `most` SMS one
    person gets (the same unless languages differ), and the `total` for all of them."""

    people: int
    least: int
    most: int
    total: int


def audience_cost(people_by_language: Mapping[str, int], message: Message) -> AudienceCost | None:
    """The cost of a message to the SMS members of an audience, counted by language; None
    when it has no SMS member."""
    each: dict[str, int] = {}
    for language, people in people_by_language.items():
        if people > 0:
            with writing_to(SMS_BASE):
                text, markup = message(language)
            each[language] = message_segments(text, language, markup)
    if not each:
        return None
    return AudienceCost(
        people=sum(people_by_language[language] for language in each),
        least=min(each.values()),
        most=max(each.values()),
        total=sum(people_by_language[language] * n for language, n in each.items()),
    )


def preview_text(cost: AudienceCost, language: str) -> str:
    """ "2 people get it by SMS. It is 1 SMS for each. That is 2 SMS in all." """
    each = (
        tn(language, "staff.sms.each", cost.most, count=cost.most)
        if cost.least == cost.most
        else tn(language, "staff.sms.each_range", cost.most, least=cost.least, count=cost.most)
    )
    return " ".join(
        (
            tn(language, "staff.sms.people", cost.people, count=cost.people),
            each,
            tn(language, "staff.sms.total", cost.total, count=cost.total),
        )
    )


def sent_segments(sent: Iterable[tuple[str, Markup, str]]) -> int:
    """The SMS segments messages sent to SMS members took: (text, buttons, language) each."""
    return sum(message_segments(text, language, markup) for text, markup, language in sent)


def report_line(sent: int, language: str) -> str:
    """The delivery report's line on the SMS segments it took."""
    return t(language, "delivery.report.sms_segments", count=sent)
