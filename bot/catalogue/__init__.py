"""The catalogue: every member-facing sentence, by key, in each language (gettext .po files).

`<language>/<part>.po`: one file per part of the bot (members.po, sharing.po …), so that
each part's texts sit together; a key lives in exactly one part. English (`en/`) is the
source. Welsh (`cy/`) is a first draft: entries marked `#, fuzzy` wait for review by a
native Welsh speaker and are used meanwhile. Keys ending in `.words` are not shown: they
list typed words that also choose a button (comma-separated).
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from pathlib import Path

from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po

LANGUAGES: tuple[str, ...] = ("en", "cy")
DEFAULT_LANGUAGE = "en"
_HERE = Path(__file__).parent


class Catalogue:
    """Texts by language and key."""

    def __init__(self, texts: dict[str, dict[str, str]], fuzzy: dict[str, set[str]]) -> None:
        self._texts = texts
        self.fuzzy = fuzzy

    def text(self, language: str, key: str, /, **values: object) -> str:
        """The text for a key in a language, falling back to English, filled with values."""
        texts = self._texts.get(language) or self._texts[DEFAULT_LANGUAGE]
        template = texts.get(key) or self._texts[DEFAULT_LANGUAGE][key]
        return template.format(**values) if values else template

    def keys(self, language: str) -> set[str]:
        """Every key the language has a text for."""
        return set(self._texts.get(language, {}))

    def words(self, language: str, key: str) -> list[str]:
        """Typed words that choose the option `key`, in this language and in English."""
        found: list[str] = []
        for lang in dict.fromkeys((language, DEFAULT_LANGUAGE)):
            raw = self._texts.get(lang, {}).get(f"{key}.words", "")
            found.extend(w.strip() for w in raw.split(",") if w.strip())
        return found


def load(folder: Path = _HERE) -> Catalogue:
    """Reads every language's .po file."""
    texts: dict[str, dict[str, str]] = {}
    fuzzy: dict[str, set[str]] = {}
    for language in LANGUAGES:
        texts[language] = {}
        fuzzy[language] = set()
        for path in sorted((folder / language).glob("*.po")):
            with path.open("rb") as fh:
                catalog = read_po(fh, locale=language)
            for message in catalog:
                if not message.id or not message.string:
                    continue
                key, string = str(message.id), str(message.string)
                if key in texts[language]:
                    raise ValueError(f"{key!r} is in two files of {folder / language}")
                texts[language][key] = string
                if message.fuzzy:
                    fuzzy[language].add(key)
    return Catalogue(texts, fuzzy)


@cache
def catalogue() -> Catalogue:
    """The catalogue shipped with cocreate, read once on first use."""
    return load()


# Dates and times are written the British way ("7 December 2026") for English.
_BABEL_LOCALES = {"en": "en_GB", "cy": "cy_GB"}


def babel_locale(language: str) -> str:
    """The Babel locale for formatting dates in a language."""
    return _BABEL_LOCALES.get(language, language)


def long_date(when: date, language: str) -> str:
    """ "7 December 2026", in the language."""
    return format_date(when, format="long", locale=babel_locale(language))


def long_datetime(when: datetime, language: str) -> str:
    """ "Monday 7 December 2026, 18:00" (in the time zone `when` carries)."""
    return format_datetime(when, "EEEE d MMMM y, HH:mm", locale=babel_locale(language))


def t(language: str, key: str, /, **values: object) -> str:
    """Shorthand for `catalogue().text(...)`."""
    return catalogue().text(language, key, **values)
