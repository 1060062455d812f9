"""Typed answers pick the same option as the button: by number, label or word."""

from __future__ import annotations

import pytest

from conversations.choices import Option, from_callback, keyboard, match, normalise

OPTIONS = [Option("agree", "consent.agree"), Option("not_now", "consent.not_now")]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("1", "agree"),
        (" 2 ", "not_now"),
        ("1.", "agree"),
        ("Yes, I agree", "agree"),
        ("  yes, i AGREE!!  ", "agree"),
        ("YES", "agree"),
        ("not now.", "not_now"),
        ("Not   Now", "not_now"),
        ("«no»", "not_now"),
        ("3", None),
        ("0", None),
        ("maybe", None),
        ("", None),
        ("🙂", None),
    ],
)
def test_typed_answers_match_options(typed: str, expected: str | None) -> None:
    option = match(typed, OPTIONS, "en")
    assert (option.key if option else None) == expected


def test_welsh_words_and_english_words_both_work_for_a_welsh_member() -> None:
    assert match("ie", OPTIONS, "cy") == OPTIONS[0]
    assert match("yes", OPTIONS, "cy") == OPTIONS[0]
    assert match("Dim nawr", OPTIONS, "cy") == OPTIONS[1]


def test_given_labels_match_without_catalogue() -> None:
    areas = [Option("a0", label="North Cardiff"), Option("a1", label="Barry")]
    assert match("barry", areas, "en") == areas[1]
    assert match("north cardiff.", areas, "cy") == areas[0]


def test_normalise_folds_case_space_and_edge_punctuation() -> None:
    assert normalise("  Hello,   World!?  ") == "hello, world"
    assert normalise("שלום!") == "שלום"


def test_keyboard_numbers_buttons_and_callbacks_name_their_step() -> None:
    markup = keyboard(OPTIONS, "en", "onb:2")
    rows = markup.inline_keyboard
    assert [r[0].text for r in rows] == ["1. Yes, I agree", "2. Not now"]
    assert [r[0].callback_data for r in rows] == ["onb:2:agree", "onb:2:not_now"]
    assert from_callback("onb:2:agree", OPTIONS, "onb:2") == OPTIONS[0]
    assert from_callback("onb:1:agree", OPTIONS, "onb:2") is None  # an older step's button
    assert from_callback("onb:2:forged", OPTIONS, "onb:2") is None
