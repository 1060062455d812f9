"""The catalogue: every member-facing sentence, by key, in each language (gettext .po files).

`<language>/<part>.po`: one file per part of the bot (members.po, sharing.po …), so that
each part's texts sit together; a key lives in exactly one part. English (`en/`) is the
source. Welsh (`cy/`) is a first draft: entries marked `#, fuzzy` wait for review by a
native Welsh speaker and are used meanwhile. Keys ending in `.words` are not shown: they
list typed words that also choose a button (comma-separated).

A text whose words change with a number ("1 response", "2 responses") is a plural entry:
`msgid_plural` repeats the key, and there is one `msgstr[i]` per plural form of the
language, as its `Plural-Forms` header says (English has 2; Welsh has 6, for 0, 1, 2, 3, 6
and the rest). `tn` picks the form through Babel's `ngettext`; `t` is for the other texts.

A text too long for SMS (at most 2 segments: bot/segments.py) that cannot be cut for
Telegram members without loss has an SMS variant, `<key>.sms`, in sms_variants.po. It is
used while `recipient_channel` says the person written to is on SMS: conversations/door.py
sets it for each update from a member, from their chat id (bot/channels.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from functools import cache, lru_cache
from io import BytesIO
from pathlib import Path

from babel.dates import format_date, format_datetime
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from bot.channels import Channel, channel_of

LANGUAGES: tuple[str, ...] = ("en", "cy")
DEFAULT_LANGUAGE = "en"
_HERE = Path(__file__).parent
SMS_VARIANT = ".sms"  # `<key>.sms`: the text as an SMS member gets it
# The channel of the person the texts being written are for: "telegram" or "sms".
recipient_channel: ContextVar[Channel] = ContextVar("recipient_channel", default="telegram")


class Catalogue:
    """Texts by language and key; plural texts have one form per plural form of the language."""

    def __init__(
        self,
        texts: dict[str, dict[str, str]],
        fuzzy: dict[str, set[str]],
        plurals: dict[str, Translations] | None = None,
        forms: dict[str, dict[str, tuple[str, ...]]] | None = None,
        nplurals: dict[str, int] | None = None,
    ) -> None:
        self._texts = texts
        self.fuzzy = fuzzy
        self._plurals = plurals or {}
        self._forms = forms or {}
        self.nplurals = nplurals or {}

    def text(self, language: str, key: str, /, **values: object) -> str:
        """The text for a key in a language, falling back to English, filled with values."""
        if key in self._forms.get(DEFAULT_LANGUAGE, {}):
            raise KeyError(f"{key!r} changes with a number: use tn()")
        texts = self._texts.get(language) or self._texts[DEFAULT_LANGUAGE]
        if key not in texts:
            texts = self._texts[DEFAULT_LANGUAGE]
        template = texts[key]
        if recipient_channel.get() == "sms":  # its SMS variant, in the same language
            template = texts.get(key + SMS_VARIANT) or template
        return template.format(**values) if values else template

    def plural(self, language: str, key: str, n: int, /, **values: object) -> str:
        """The form of a plural text for the number n (Babel's ngettext, with the language's
        Plural-Forms), falling back to English, filled with values."""
        if key not in self._forms.get(language, {}):
            language = DEFAULT_LANGUAGE
        if key not in self._forms[DEFAULT_LANGUAGE]:
            raise KeyError(f"{key!r} is not a plural text: use t()")
        template = self._plurals[language].ngettext(key, key, n)
        return template.format(**values)

    def keys(self, language: str) -> set[str]:
        """Every key the language has a text for, plural or not."""
        return set(self._texts.get(language, {})) | set(self._forms.get(language, {}))

    def plural_keys(self, language: str) -> set[str]:
        """The keys of the texts that change with a number."""
        return set(self._forms.get(language, {}))

    def forms(self, language: str, key: str) -> tuple[str, ...]:
        """Every form of a plural text, in the order of the language's Plural-Forms."""
        return self._forms[language][key]

    def words(self, language: str, key: str) -> list[str]:
        """Typed words that choose the option `key`, in this language and in English."""
        found: list[str] = []
        for lang in dict.fromkeys((language, DEFAULT_LANGUAGE)):
            raw = self._texts.get(lang, {}).get(f"{key}.words", "")
            found.extend(w.strip() for w in raw.split(",") if w.strip())
        return found


def _translations(catalog: Catalog) -> Translations:
    """A .po file's texts as Babel Translations (via an in-memory .mo), for ngettext. Fuzzy
    entries are used: the Welsh draft is used until it is reviewed."""
    buffer = BytesIO()
    write_mo(buffer, catalog, use_fuzzy=True)
    buffer.seek(0)
    return Translations(buffer)


def load(folder: Path = _HERE) -> Catalogue:
    """Reads every language's .po file."""
    texts: dict[str, dict[str, str]] = {}
    fuzzy: dict[str, set[str]] = {}
    plurals: dict[str, Translations] = {}
    forms: dict[str, dict[str, tuple[str, ...]]] = {}
    nplurals: dict[str, int] = {}
    for language in LANGUAGES:
        texts[language], fuzzy[language], forms[language] = {}, set(), {}
        rule = ""  # every file of a language has the same Plural-Forms
        for path in sorted((folder / language).glob("*.po")):
            with path.open("rb") as fh:
                catalog = read_po(fh, locale=language)
            if rule and catalog.plural_forms != rule:
                raise ValueError(f"{path}: Plural-Forms is not {rule!r}")
            rule, nplurals[language] = catalog.plural_forms, catalog.num_plurals
            for message in catalog:
                if not message.id or not message.string:
                    continue
                if isinstance(message.id, tuple):
                    key, strings = str(message.id[0]), tuple(str(s) for s in message.string)
                    if not all(strings):  # a form is missing: English is used instead
                        continue
                else:
                    key, strings = str(message.id), (str(message.string),)
                if key in texts[language] or key in forms[language]:
                    raise ValueError(f"{key!r} is in two files of {folder / language}")
                if isinstance(message.id, tuple):
                    forms[language][key] = strings
                else:
                    texts[language][key] = strings[0]
                if message.fuzzy:
                    fuzzy[language].add(key)
            if any(message.pluralizable for message in catalog if message.id):
                found = _translations(catalog)
                plurals[language] = plurals[language].merge(found) if language in plurals else found
    return Catalogue(texts, fuzzy, plurals, forms, nplurals)


@cache
def catalogue() -> Catalogue:
    """The catalogue shipped with cocreate, read once on first use."""
    return load()


# Dates and times are written the British way ("7 December 2026") for English.
_BABEL_LOCALES = {"en": "en_GB", "cy": "cy_GB"}


def babel_locale(language: str) -> str:
    """The Babel locale for formatting dates in a language."""
    return _BABEL_LOCALES.get(language, language)


@lru_cache(maxsize=1024)
def long_date(when: date, language: str) -> str:
    """ "7 December 2026", in the language (the same few dates are written again and again:
    when a question closes, in every "saved" reply)."""
    return format_date(when, format="long", locale=babel_locale(language))


def long_datetime(when: datetime, language: str) -> str:
    """ "Monday 7 December 2026, 18:00" (in the time zone `when` carries)."""
    return format_datetime(when, "EEEE d MMMM y, HH:mm", locale=babel_locale(language))


def t(language: str, key: str, /, **values: object) -> str:
    """Shorthand for `catalogue().text(...)`."""
    return catalogue().text(language, key, **values)


def tn(language: str, key: str, n: int, /, **values: object) -> str:
    """Shorthand for `catalogue().plural(...)`: the form of `key` for the number n."""
    return catalogue().plural(language, key, n, **values)


@contextmanager
def writing_to(chat_id: int) -> Iterator[None]:
    """Texts looked up inside are for the person with this chat id: on SMS, SMS variants."""
    token = recipient_channel.set(channel_of(chat_id))
    try:
        yield
    finally:
        recipient_channel.reset(token)
