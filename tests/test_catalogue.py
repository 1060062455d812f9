"""The catalogue: every language has every key, placeholders agree, English reads at age 9."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pytest
import textstat

from bot.catalogue import LANGUAGES, catalogue

# Names of languages are shown in their own language; they are not sentences to grade.
NOT_PROSE = {"language.en", "language.cy"}
# A button label of one or two words is not prose: Flesch-Kincaid gives "Everything" grade 20
# (it counts syllables per word and per sentence, so one long word swings it wildly).
MIN_WORDS_TO_GRADE = 3
PLACEHOLDER = re.compile(r"\{(\w+)\}")
COMMAND = re.compile(r"(?<!\w)/[a-z]+")
# A quoted "group.name" literal in the code: how handlers name catalogue texts.
KEY_LITERAL = re.compile(r"\"([a-z_]+\.[a-z_0-9.]+)\"")


def english_messages() -> dict[str, str]:
    cat = catalogue()
    return {
        key: cat.text("en", key)
        for key in sorted(cat.keys("en"))
        if not key.endswith(".words")
        and key not in NOT_PROSE
        and len(cat.text("en", key).split()) >= MIN_WORDS_TO_GRADE
    }


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_every_key_is_in_every_language(language: str) -> None:
    cat = catalogue()
    assert cat.keys("en") - cat.keys(language) == set(), f"missing in {language}"
    assert cat.keys(language) - cat.keys("en") == set(), f"only in {language}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_and_commands_match_english(language: str) -> None:
    cat = catalogue()
    for key in cat.keys("en"):
        english, other = cat.text("en", key), cat.text(language, key)
        assert set(PLACEHOLDER.findall(english)) == set(PLACEHOLDER.findall(other)), key
        assert set(COMMAND.findall(english)) <= set(COMMAND.findall(other)), key


def test_welsh_draft_is_marked_for_review_by_a_native_speaker() -> None:
    cat = catalogue()
    assert cat.fuzzy["en"] == set()
    # Every Welsh entry stays marked until reviewed; a reviewed one drops its flag.
    assert cat.fuzzy["cy"] <= cat.keys("cy")
    assert cat.fuzzy["cy"], "the Welsh draft has not been reviewed yet, so it must be marked"


def test_english_reads_at_reading_age_nine() -> None:
    grades = {key: textstat.flesch_kincaid_grade(text) for key, text in english_messages().items()}
    too_hard = {key: g for key, g in grades.items() if g > 6}
    assert too_hard == {}, f"Flesch-Kincaid grade above 6: {too_hard}"
    assert statistics.median(grades.values()) <= 4


def test_typed_words_never_choose_two_options_of_one_question() -> None:
    cat = catalogue()
    groups = [
        ["consent.agree", "consent.not_now"],
        ["naming.anonymous", "naming.named"],
        ["delete.yes", "delete.no"],
        ["menu.language", "menu.help", "menu.stop", "menu.resume", "menu.delete"],
    ]
    for language in LANGUAGES:
        for group in groups:
            seen: dict[str, str] = {}
            for key in group:
                for word in cat.words(language, key):
                    assert seen.setdefault(word.casefold(), key) == key, (language, word)


def test_every_key_the_code_names_is_in_the_catalogue() -> None:
    root = Path(__file__).resolve().parents[1]
    named: set[str] = set()
    for folder in ("bot", "conversations"):
        for source in (root / folder).rglob("*.py"):
            if "emulator" in source.parts:
                continue
            named |= set(KEY_LITERAL.findall(source.read_text()))
    assert named, "the scan found no keys at all"
    keys = catalogue().keys("en")
    assert {k for k in named - keys if f"{k}.words" not in keys} == set()
