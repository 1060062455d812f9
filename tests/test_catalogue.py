"""The catalogue: every language has every key (and every plural form), placeholders agree,
English reads at age 9, and a number picks the right plural form."""

from __future__ import annotations

import re
import statistics
from datetime import UTC, datetime
from pathlib import Path

import pytest
import textstat

from bot.catalogue import LANGUAGES, Catalogue, catalogue, load, t, tn
from conversations.choices import normalise
from conversations.replies import menu_options
from storage.models import Member

# Names of languages are shown in their own language; they are not sentences to grade.
NOT_PROSE = {"language.en", "language.cy"}
# A button label of one or two words is not prose: Flesch-Kincaid gives "Everything" grade 20
# (it counts syllables per word and per sentence, so one long word swings it wildly).
MIN_WORDS_TO_GRADE = 3
PLACEHOLDER = re.compile(r"\{(\w+)\}")
CATALOGUE = Path(__file__).resolve().parents[1] / "bot" / "catalogue"
COMMAND = re.compile(r"(?<!\w)/[a-z]+")
# A quoted "group.name" literal in the code: how handlers name catalogue texts.
KEY_LITERAL = re.compile(r"\"([a-z_]+\.[a-z_0-9.]+)\"")
# A plural text named in a call of tn(language, "key", n, ...).
PLURAL_CALL = re.compile(r"\btn\(\s*[\w.]+,\s*\"([a-z_]+\.[a-z_0-9.]+)\"")
# How many plural forms each language has (its Plural-Forms header).
NPLURALS = {"en": 2, "cy": 6}
# Welsh: the form for 0, 1, 2, 3 and 6 is its own; every other number takes the last.
WELSH_FORM = {0: 0, 1: 1, 2: 2, 3: 3, 4: 5, 5: 5, 6: 4, 7: 5, 10: 5, 11: 5, 100: 5}


def every_form(cat: Catalogue, language: str, key: str) -> tuple[str, ...]:
    """A text as it stands in the catalogue: one form, or each plural form."""
    if key in cat.plural_keys(language):
        return cat.forms(language, key)
    return (cat.text(language, key),)


def english_messages() -> dict[str, str]:
    """Every English sentence to grade; a plural text gives one per form ("key[0]" …)."""
    cat = catalogue()
    found: dict[str, str] = {}
    for key in sorted(cat.keys("en")):
        if key.endswith(".words") or key in NOT_PROSE:
            continue
        forms = every_form(cat, "en", key)
        for i, text in enumerate(forms):
            if len(text.split()) >= MIN_WORDS_TO_GRADE:
                found[key if len(forms) == 1 else f"{key}[{i}]"] = text
    return found


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_every_key_is_in_every_language(language: str) -> None:
    cat = catalogue()
    assert cat.keys("en") - cat.keys(language) == set(), f"missing in {language}"
    assert cat.keys(language) - cat.keys("en") == set(), f"only in {language}"
    assert cat.plural_keys(language) == cat.plural_keys("en"), "plural in one language only"


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_and_commands_match_english(language: str) -> None:
    cat = catalogue()
    for key in cat.keys("en"):
        english = every_form(cat, "en", key)
        wanted = set(PLACEHOLDER.findall(english[-1]))
        commands = set(COMMAND.findall(english[-1]))
        for other in (*english, *every_form(cat, language, key)):
            assert set(PLACEHOLDER.findall(other)) == wanted, key
            assert commands <= set(COMMAND.findall(other)), key


def test_every_plural_text_has_every_form_in_every_language() -> None:
    cat = catalogue()
    assert cat.nplurals == NPLURALS
    assert cat.plural_keys("en"), "no text changes with a number"
    for language in LANGUAGES:
        for key in cat.plural_keys(language):
            forms = cat.forms(language, key)
            assert len(forms) == NPLURALS[language], (language, key)
            assert all(form.strip() for form in forms), (language, key)
    # Every Welsh plural text is a draft, marked for review.
    assert cat.plural_keys("cy") <= cat.fuzzy["cy"]


def test_welsh_picks_the_form_for_0_1_2_3_6_and_the_rest(tmp_path: Path) -> None:
    # The Plural-Forms headers of the shipped files, with forms that say which they are.
    for language in LANGUAGES:
        shipped = (CATALOGUE / language / "export.po").read_text()
        start = shipped.index('msgid ""')
        header = shipped[start : shipped.index("\n\n", start) + 2]
        forms = "".join(
            f'msgstr[{i}] "form {i}: {{n}} things"\n' for i in range(NPLURALS[language])
        )
        # A text with only two forms: in Welsh, English is used instead.
        (tmp_path / language).mkdir()
        (tmp_path / language / "test.po").write_text(
            f'{header}msgid "test.things"\nmsgid_plural "test.things"\n{forms}\n'
            f'msgid "test.partial"\nmsgid_plural "test.partial"\n'
            f'msgstr[0] "{language}: {{n}} thing"\nmsgstr[1] "{language}: {{n}} things"\n'
        )
    probe = load(tmp_path)
    assert probe.plural_keys("cy") == {"test.things"}
    assert probe.plural("cy", "test.partial", 2, n=2) == "en: 2 things"
    assert {n: probe.plural("cy", "test.things", n, n=n) for n in WELSH_FORM} == {
        n: f"form {i}: {n} things" for n, i in WELSH_FORM.items()
    }
    assert [probe.plural("en", "test.things", n, n=n) for n in (0, 1, 2)] == [
        "form 1: 0 things",
        "form 0: 1 things",
        "form 1: 2 things",
    ]
    # The shipped catalogue picks the same way, for every plural text.
    cat = catalogue()
    for key in cat.plural_keys("cy"):
        shipped_forms = cat.forms("cy", key)
        for n, i in WELSH_FORM.items():
            values = dict.fromkeys(PLACEHOLDER.findall(shipped_forms[i]), n)
            assert tn("cy", key, n, **values) == shipped_forms[i].format(**values), (key, n)
    assert tn("en", "export.ready", 1, rows=1).startswith("Here is your file. It has 1 response.")
    assert "It has 2 responses." in tn("en", "export.ready", 2, rows=2)


def test_plural_and_other_texts_each_have_their_own_lookup() -> None:
    with pytest.raises(KeyError, match="use tn"):
        t("en", "export.ready", rows=2)
    with pytest.raises(KeyError, match="use t"):
        tn("en", "export.making", 2)


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


def menu_keys() -> list[str]:
    """Every option the menu can show (Stop for some members, Resume for others), as
    conversations/replies.py lists them, so that no new one is left out."""
    keys: dict[str, None] = {}
    for stopped in (None, datetime(2026, 1, 1, tzinfo=UTC)):
        member = Member(1, 1, 1, "en", None, datetime(2026, 1, 1, tzinfo=UTC), None, stopped, None)
        keys.update((o.label_key, None) for o in menu_options(member) if o.label_key)
    return list(keys)


def test_the_menu_check_covers_every_menu_option() -> None:
    keys = menu_keys()
    for key in ("menu.idea", "menu.story", "menu.vote", "menu.updates", "menu.resume"):
        assert key in keys


def test_typed_words_never_choose_two_options_of_one_question() -> None:
    cat = catalogue()
    groups = [
        ["consent.agree", "consent.not_now"],
        ["naming.anonymous", "naming.named"],
        ["delete.yes", "delete.no"],
        menu_keys(),
    ]
    for language in LANGUAGES:
        for group in groups:
            seen: dict[str, str] = {}
            for key in group:  # its typed words, and its label in the language and English
                for word in {*cat.words(language, key), t(language, key), t("en", key)}:
                    assert seen.setdefault(normalise(word), key) == key, (language, word)


def test_every_key_the_code_names_is_in_the_catalogue() -> None:
    root = Path(__file__).resolve().parents[1]
    named: list[str] = []
    plural_calls: list[str] = []
    for folder in ("bot", "conversations"):
        for source in (root / folder).rglob("*.py"):
            if "emulator" in source.parts:
                continue
            code = source.read_text()
            named += KEY_LITERAL.findall(code)
            plural_calls += PLURAL_CALL.findall(code)
    assert named, "the scan found no keys at all"
    cat = catalogue()
    keys, plurals = cat.keys("en"), cat.plural_keys("en")
    assert {k for k in set(named) - keys if f"{k}.words" not in keys} == set()
    # A plural text is named only in tn(...), and tn(...) names only plural texts.
    assert set(plural_calls) <= plurals
    assert sorted(k for k in named if k in plurals) == sorted(plural_calls)


@pytest.mark.parametrize("language", LANGUAGES)
def test_help_names_what_members_can_do_with_ideas(language: str) -> None:
    help_text = t(language, "help.text")
    for named in ("/myvotes", "/updates", t(language, "menu.vote"), "MENU", "/delete"):
        assert named in help_text, named
