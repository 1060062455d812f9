"""Every member-facing text fits 2 SMS segments, in English and Welsh, as an SMS member gets it:
filled with long but realistic values, with its buttons written out ("Reply 1 for …") where it
is sent with known choices, and in its SMS variant (`<key>.sms`) where it has one.

What is bounded is filled at its worst: numbers, dates, names, button labels. What someone
wrote (an idea, a question, the team's "we did") is filled with a short realistic sentence:
it costs what it costs, and this check is about the catalogue's own words around it.
Staff texts are not checked: staff use Telegram (their chat id is their Telegram user id).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest

from bot.catalogue import (
    LANGUAGES,
    SMS_VARIANT,
    catalogue,
    load,
    long_date,
    recipient_channel,
    t,
)
from bot.segments import Cost, cost
from bot.sms_text import sms_body
from conversations.choices import Option, keyboard
from conversations.onboarding import CONSENT_OPTIONS, LANGUAGE_OPTIONS, NAMING_OPTIONS
from conversations.prompts import render
from conversations.replies import menu_options
from storage.models import Member
from storage.questions import Question
from tests.test_catalogue import CATALOGUE, PLACEHOLDER

MOST_SEGMENTS = 2

# Parts of the catalogue only staff (or printed pages, or Telegram's command list) see ...
STAFF_GROUPS = frozenset(
    {
        "staff",
        "approving",
        "delivery",
        "export",
        "stats",
        "roles",
        "invite",
        "workbench",
        "command",
        "poster",
        "agreement",
        "tracking",
        "safeguarding",
        "reply",
        "ideas",
    }
)
# ... and, inside those parts, the texts members get.
MEMBER_TEXTS_IN_STAFF_GROUPS = (
    "approving.author.",
    "approving.share.",
    "approving.summary.yes",
    "approving.summary.no",
    "approving.summary.thanks_",
    "approving.statement.added",
    "tracking.told.",
    "tracking.updates.",
    "tracking.why",
    "tracking.did.",
    "tracking.voice",
    "tracking.your_voice",
    "safeguarding.help",
    "reply.already",
    "reply.answer_back",
    "reply.ask",
    "reply.from_team",
    "reply.passed_on",
)

# Pieces of the buttons' line, checked as part of every text sent with buttons.
PIECES = frozenset({"sms.reply_with", "sms.choice"})
# Someone's words: a short realistic sentence (see the module docstring).
IDEA = "More benches by the river path."
QUESTION = "Where should the new benches go?"
DID = "We put four benches by the river."
# Bounded values, at their longest.
NAME = "Llanfairpwllgwyngyll Youth Forum"  # a project's or a member's name
LABEL = "Twenty letters long!"  # a choice of 20 characters
WHEN = datetime(2026, 9, 30, 18, 0, tzinfo=UTC)  # "Wednesday 30 September 2026, 18:00"


def fills(language: str) -> dict[str, object]:
    """A value for every placeholder a member-facing text has."""
    return {
        "count": 999,
        "name": NAME,
        "text": IDEA,
        "question": QUESTION,
        "said": IDEA,
        "did": DID,
        "reason": "The council needs a month to say yes.",
        "answer": LABEL,
        "choice": LABEL,
        "label": LABEL,
        "parts": f"{t(language, 'idea.label.idea')}: {IDEA}",
        "when": long_date(WHEN.date(), language),
        "until": long_date(WHEN.date(), language),
        "agreed": long_date(date(2026, 9, 30), language),
        "seconds": 300,
        "mb": 20,
        "number": 88,
        "max": 1000,
        "most": 300,
        "hours": 168,
        "total": 999,
        "first": 999,
        "last": 999,
        "voters": 9999,
        "share": 100,
        "language_name": t(language, f"language.{language}"),
        "answers": 999,
        "shared": "".join(
            t(language, f"{noun}.mydata", count=999) + "\n" for noun in ("idea", "story")
        )
        + t(language, "mydata.votes", count=999)
        + "\n",
        "status": t(language, "tracking.status.not_possible"),
    }


def member(stopped: bool) -> Member:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return Member(1, 1, 1, "en", None, at, None, at if stopped else None, None)


def choice_question(kind: str) -> Question:
    """A question with 5 choices of 20 letters each (or a scale, or yes/no)."""
    options = tuple(f"Choice {i} is as long!" for i in range(1, 6)) if kind == "choice" else ()
    assert all(len(o) == 20 for o in options)
    return Question(
        0, 1, 1, "en", QUESTION, kind, options, "everyone", "once", WHEN, None, "draft", WHEN
    )


def options(*keys: str) -> list[Option]:
    return [Option(key.rsplit(".", 1)[-1], key) for key in keys]


# Texts sent with known buttons: each key's buttons, as the flows make them.
BUTTONS: dict[str, Callable[[], Sequence[Option]]] = {
    "menu.title": lambda: max(
        (menu_options(member(stopped)) for stopped in (False, True)),
        key=lambda found: sum(len(t("cy", o.label_key or "")) for o in found),
    ),
    "consent.text": lambda: CONSENT_OPTIONS,
    "language.ask": lambda: LANGUAGE_OPTIONS,
    "naming.ask": lambda: NAMING_OPTIONS,
    "delete.ask": lambda: options("delete.yes", "delete.no"),
    "idea.volunteer": lambda: options(
        "idea.volunteer.yes", "idea.volunteer.no", "idea.volunteer.maybe"
    ),
    "approving.share.ask": lambda: options(
        "approving.share.team", "approving.share.anonymous", "approving.share.named"
    ),
    "approving.author.summary": lambda: options("approving.summary.yes", "approving.summary.no"),
    "idea.review": lambda: options("sharing.save", "sharing.change", "sharing.cancel"),
    "story.review": lambda: options("sharing.save", "sharing.change", "sharing.cancel"),
    "idea.cancel_ask": lambda: options("sharing.discard_yes", "sharing.discard_no"),
    "story.cancel_ask": lambda: options("sharing.discard_yes", "sharing.discard_no"),
    "sharing.next": lambda: options("idea.another", "sharing.menu"),
}


def staff_only(key: str) -> bool:
    if key.split(".", 1)[0] not in STAFF_GROUPS:
        return False
    return not any(key == p or key.startswith(p) for p in MEMBER_TEXTS_IN_STAFF_GROUPS)


def member_keys() -> list[str]:
    """Every member-facing text (not typed words, not SMS variants: those stand in for
    their text)."""
    return sorted(
        key
        for key in catalogue().keys("en")
        if not key.endswith((".words", SMS_VARIANT)) and not staff_only(key) and key not in PIECES
    )


def as_sms(language: str, key: str) -> Iterator[tuple[str, str]]:
    """(name, SMS body) for each way the text is sent: each plural form, with its buttons."""
    cat = catalogue()
    values = fills(language)
    token = recipient_channel.set("sms")
    try:
        if key in cat.plural_keys(language):
            bodies = [
                (f"{key}[{n}]", cat.plural(language, key, n, **values)) for n in (1, 2, 3, 6, 999)
            ]
        else:
            text = cat.text(language, key, **values)
            if key == "start.choose_language":  # asked in both languages at once
                text = "\n".join(cat.text(lang, key) for lang in LANGUAGES)
                buttons: Sequence[Option] = LANGUAGE_OPTIONS
            else:
                buttons = BUTTONS.get(key, lambda: [])()
            markup = keyboard(buttons, language, "x").to_dict() if buttons else None
            bodies = [(key, sms_body(text, language, markup=markup))]
    finally:
        recipient_channel.reset(token)
    yield from bodies


def questions_as_sms(language: str) -> Iterator[tuple[str, str]]:
    """A question as a member gets it: 5 choices of 20 letters, a scale, yes or no."""
    for kind in ("choice", "scale", "yesno", "open"):
        token = recipient_channel.set("sms")
        try:
            text, markup = render(choice_question(kind), 7, language)
            yield f"question:{kind}", sms_body(text, language, markup=markup.to_dict())
        finally:
            recipient_channel.reset(token)


def over(language: str) -> dict[str, Cost]:
    found: dict[str, Cost] = {}
    for key in member_keys():
        for name, body in as_sms(language, key):
            if (c := cost(body)).segments > MOST_SEGMENTS:
                found[name] = c
    for name, body in questions_as_sms(language):
        if (c := cost(body)).segments > MOST_SEGMENTS:
            found[name] = c
    return found


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_member_text_fits_two_sms_segments(language: str) -> None:
    assert over(language) == {}


def test_the_check_writes_out_the_buttons_of_the_texts_sent_with_choices() -> None:
    for language in LANGUAGES:
        [(_, menu)] = as_sms(language, "menu.title")
        assert t(language, "sms.choice", number=10, label=t(language, "menu.delete")) in menu
        [(_, consent)] = as_sms(language, "consent.text")
        assert t(language, "sms.choice", number=1, label=t(language, "consent.agree")) in consent
        [(_, choosing)] = as_sms(language, "start.choose_language")
        assert t(language, "sms.choice", number=2, label=t(language, "language.cy")) in choosing
        asked = dict(questions_as_sms(language))["question:choice"]
        assert t(language, "sms.choice", number=5, label="Choice 5 is as long!") in asked
        assert t(language, "sms.choice", number=6, label=t(language, "common.skip")) in asked


def test_the_check_knows_staff_texts_from_members_texts() -> None:
    keys = set(member_keys())
    for staff in ("staff.broadcast.summary", "delivery.report.done", "approving.approve"):
        assert staff not in keys
    for members in ("menu.title", "consent.text", "tracking.told.author", "safeguarding.help"):
        assert members in keys
    assert not any(key.endswith(SMS_VARIANT) for key in keys)


def test_a_welsh_circumflex_or_an_emoji_halves_what_fits() -> None:
    # 134 units in 2 segments once one letter is outside GSM-7; 306 in GSM-7.
    assert cost("a" * 306).segments == 2
    assert cost("ŵ" + "a" * 133).segments == 2
    assert cost("ŵ" + "a" * 134).segments == 3
    assert cost("🙂" + "a" * 132).segments == 2  # an emoji takes 2 units


# ---- SMS variants


def variants(language: str) -> dict[str, str]:
    cat = catalogue()
    return {
        key: cat.text(language, key)
        for key in cat.keys(language)
        if key.endswith(SMS_VARIANT) and key not in cat.plural_keys(language)
    }


def test_sms_variants_stand_in_for_a_text_only_on_sms() -> None:
    found = variants("en")
    assert found, "no SMS variants"
    for key, text in found.items():
        base = key.removesuffix(SMS_VARIANT)
        assert base in catalogue().keys("en"), key
        values = dict.fromkeys(PLACEHOLDER.findall(text), "X")
        assert t("en", base, **values) != text  # Telegram members get the text itself
        token = recipient_channel.set("sms")
        try:
            assert t("en", base, **values) == text.format(**values)
        finally:
            recipient_channel.reset(token)


def test_sms_variants_live_in_their_own_file() -> None:
    for language in LANGUAGES:
        path = CATALOGUE / language / "sms_variants.po"
        in_file = set(re.findall(r'^msgid "(.+)"$', path.read_text(), re.MULTILINE))
        assert in_file == set(variants(language)), language
        assert set(variants("cy")) <= catalogue().fuzzy["cy"]


def test_a_variant_is_only_taken_in_the_texts_own_language(tmp_path: Any) -> None:
    for language in LANGUAGES:
        shipped = (CATALOGUE / language / "sms.po").read_text()
        header = shipped[: shipped.index("\n\n", shipped.index('msgid ""')) + 2]
        body = f'msgid "a.b"\nmsgstr "{language} long"\n'
        if language == "en":
            body += '\nmsgid "a.b.sms"\nmsgstr "en short"\n\nmsgid "a.c"\nmsgstr "en c"\n'
            body += '\nmsgid "a.c.sms"\nmsgstr "en c short"\n'
        (tmp_path / language).mkdir()
        (tmp_path / language / "x.po").write_text(header + body)
    probe = load(tmp_path)
    token = recipient_channel.set("sms")
    try:
        sms = [probe.text(lang, key) for lang in LANGUAGES for key in ("a.b", "a.c")]
    finally:
        recipient_channel.reset(token)
    assert sms == ["en short", "en c short", "cy long", "en c short"]
    assert [probe.text("cy", "a.b"), probe.text("en", "a.c")] == ["cy long", "en c"]
