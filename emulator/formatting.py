"""Text formatting as Telegram does it: parse_mode parsing and automatic entities.

Telegram turns `parse_mode` markup into plain text plus entities (offsets in UTF-16 code
units) and rejects malformed markup with "Bad Request: can't parse entities: ...". The
emulator does the same, so a bot that forgets to escape a member's name fails in tests the
way it would fail in production. Member messages get `bot_command` entities the way the
Telegram clients create them, because ptb's `filters.COMMAND` reads the entity, not the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FormatError", "bot_command_entities", "parse_text", "utf16_len"]

Entity = dict[str, Any]


class FormatError(Exception):
    """Markup Telegram would refuse; the message is the part after "can't parse entities: "."""


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    # Telegram reports markup errors at UTF-8 byte offsets.
    return len(text[:index].encode("utf-8"))


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _is_ascii_word_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def bot_command_entities(text: str) -> list[Entity]:
    """Find `/command` and `/command@bot` the way Telegram marks them in a member's text."""
    entities: list[Entity] = []
    i = text.find("/")
    while i != -1:
        start = i
        prev = text[i - 1] if i > 0 else ""
        i += 1
        if prev and (_is_word_char(prev) or prev in "/<>"):
            i = text.find("/", i)
            continue
        j = i
        while j < len(text) and _is_ascii_word_char(text[j]):
            j += 1
        valid = 1 <= j - i <= 64
        if valid and j < len(text) and text[j] == "@":
            k = j + 1
            while k < len(text) and _is_ascii_word_char(text[k]):
                k += 1
            valid = 3 <= k - j - 1 <= 32
            j = k
        following = text[j] if j < len(text) else ""
        if valid and not (following and (_is_word_char(following) or following in "/<>")):
            entities.append(
                {
                    "type": "bot_command",
                    "offset": utf16_len(text[:start]),
                    "length": utf16_len(text[start:j]),
                }
            )
        i = text.find("/", max(j, i))
    return entities


def parse_text(text: str, parse_mode: str | None) -> tuple[str, list[Entity]]:
    """Return the plain text and entities Telegram would store for `text` in `parse_mode`."""
    mode = (parse_mode or "").strip().lower()
    if not mode:
        return text, []
    if mode == "html":
        return _HtmlParser(text).parse()
    if mode == "markdownv2":
        return _MarkdownV2Parser(text).parse()
    if mode == "markdown":
        return _parse_legacy_markdown(text)
    raise ValueError(f"unsupported parse_mode {parse_mode!r}")


@dataclass
class _Output:
    """Plain text being built, with its length kept in UTF-16 units for entity offsets."""

    parts: list[str] = field(default_factory=list)
    pos: int = 0
    entities: list[Entity] = field(default_factory=list)

    def add(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.pos += utf16_len(chunk)

    def entity(self, kind: str, start: int, **extra: Any) -> None:
        # Telegram drops empty entities instead of failing.
        if self.pos > start:
            entity = {"type": kind, "offset": start, "length": self.pos - start}
            self.entities.append({**entity, **extra})

    def result(self) -> tuple[str, list[Entity]]:
        entities = sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), entities


# ---------------------------------------------------------------- HTML

_HTML_SIMPLE = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
}
_HTML_TAGS = {*_HTML_SIMPLE, "a", "span", "tg-emoji", "blockquote"}
_HTML_ENTITY = re.compile(r"&(#[xX][0-9a-fA-F]{1,8}|#[0-9]{1,8}|lt|gt|amp|quot);")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _decode_entity(ref: str) -> str | None:
    if ref in _NAMED:
        return _NAMED[ref]
    code = int(ref[2:], 16) if ref[1] in "xX" else int(ref[1:])
    if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
        return chr(code)
    return None


def _unescape(value: str) -> str:
    def replace(match: re.Match[str]) -> str:
        decoded = _decode_entity(match.group(1))
        return match.group(0) if decoded is None else decoded

    return _HTML_ENTITY.sub(replace, value)


@dataclass
class _OpenTag:
    name: str
    attrs: dict[str, str]
    start: int
    language: str | None = None


class _HtmlParser:
    """Telegram's HTML subset: a strict tag stack, only the supported tags and entities."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.out = _Output()
        self.stack: list[_OpenTag] = []

    def parse(self) -> tuple[str, list[Entity]]:
        text, i = self.text, 0
        while i < len(text):
            ch = text[i]
            if ch == "&":
                match = _HTML_ENTITY.match(text, i)
                decoded = _decode_entity(match.group(1)) if match else None
                if match and decoded is not None:
                    self.out.add(decoded)
                    i = match.end()
                else:
                    self.out.add("&")  # Telegram keeps an unknown '&' as it is
                    i += 1
            elif ch != "<":
                j = i
                while j < len(text) and text[j] not in "<&":
                    j += 1
                self.out.add(text[i:j])
                i = j
            elif text.startswith("</", i):
                i = self._end_tag(i)
            else:
                i = self._start_tag(i)
        if self.stack:
            raise FormatError(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1].name}"'
            )
        return self.out.result()

    def _start_tag(self, begin: int) -> int:
        text = self.text
        j = begin + 1
        while j < len(text) and not text[j].isspace() and text[j] != ">":
            j += 1
        if j >= len(text):
            raise FormatError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        name = text[begin + 1 : j].lower()
        if name not in _HTML_TAGS:
            raise FormatError(
                f'Unsupported start tag "{name}" at byte offset {_byte_offset(text, begin)}'
            )
        attrs: dict[str, str] = {}
        while True:
            while j < len(text) and text[j].isspace():
                j += 1
            if j >= len(text):
                raise FormatError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
            if text[j] == ">":
                break
            k = j
            while k < len(text) and not text[k].isspace() and text[k] not in "=>":
                k += 1
            attr = text[j:k].lower()
            while k < len(text) and text[k].isspace():
                k += 1
            value = ""
            if k < len(text) and text[k] == "=":
                k += 1
                while k < len(text) and text[k].isspace():
                    k += 1
                if k < len(text) and text[k] in "\"'":
                    end = text.find(text[k], k + 1)
                    if end == -1:
                        raise FormatError(
                            f"Unclosed start tag at byte offset {_byte_offset(text, begin)}"
                        )
                    value, k = text[k + 1 : end], end + 1
                else:
                    end = k
                    while end < len(text) and not text[end].isspace() and text[end] != ">":
                        end += 1
                    value, k = text[k:end], end
            attrs[attr] = _unescape(value)
            j = k
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise FormatError('Tag "span" must have class "tg-spoiler"')
        self.stack.append(_OpenTag(name, attrs, self.out.pos))
        return j + 1

    def _end_tag(self, begin: int) -> int:
        text = self.text
        if not self.stack:
            raise FormatError(f"Unexpected end tag at byte offset {_byte_offset(text, begin)}")
        j = begin + 2
        while j < len(text) and not text[j].isspace() and text[j] != ">":
            j += 1
        name = text[begin + 2 : j].lower()
        while j < len(text) and text[j].isspace():
            j += 1
        if j >= len(text) or text[j] != ">":
            raise FormatError(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
        tag = self.stack.pop()
        if name and name != tag.name:
            raise FormatError(
                f"Unmatched end tag at byte offset {_byte_offset(text, begin)}, "
                f'expected "</{tag.name}>", found "</{name}>"'
            )
        self._close(tag)
        return j + 1

    def _close(self, tag: _OpenTag) -> None:
        out = self.out
        if tag.name == "a":
            href = tag.attrs.get("href", "")
            if href:
                out.entity("text_link", tag.start, url=href)
        elif tag.name == "span":
            out.entity("spoiler", tag.start)
        elif tag.name == "tg-emoji":
            out.entity("custom_emoji", tag.start, custom_emoji_id=tag.attrs.get("emoji-id", ""))
        elif tag.name == "blockquote":
            kind = "expandable_blockquote" if "expandable" in tag.attrs else "blockquote"
            out.entity(kind, tag.start)
        elif tag.name == "code":
            language = tag.attrs.get("class", "")
            parent = self.stack[-1] if self.stack else None
            # <pre><code class="language-x"> is one pre entity with a language.
            if parent and parent.name == "pre" and language.startswith("language-"):
                parent.language = language.removeprefix("language-")
            else:
                out.entity("code", tag.start)
        elif tag.name == "pre":
            extra = {"language": tag.language} if tag.language else {}
            out.entity("pre", tag.start, **extra)
        else:
            out.entity(_HTML_SIMPLE[tag.name], tag.start)


# ---------------------------------------------------------------- MarkdownV2

_MDV2_RESERVED = "_*[]()~`>#+-=|{}.!"
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
    "code": "Code",
    "pre": "Pre",
}


@dataclass
class _OpenMark:
    kind: str
    start: int  # UTF-16 position in the output
    byte: int  # byte offset of the mark in the input, for error messages
    language: str | None = None  # for ```language pre blocks


class _MarkdownV2Parser:
    """Telegram's MarkdownV2: every reserved character outside markup must be escaped."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.out = _Output()
        self.stack: list[_OpenMark] = []
        self.quote_start: int | None = None

    def _error_reserved(self, ch: str) -> FormatError:
        return FormatError(
            f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
        )

    def parse(self) -> tuple[str, list[Entity]]:
        text, out, i = self.text, self.out, 0
        while i < len(text):
            ch = text[i]
            top = self.stack[-1] if self.stack else None
            at_line_start = i == 0 or text[i - 1] == "\n"
            if ch == "\\":
                if i + 1 < len(text) and 0 < ord(text[i + 1]) <= 126:
                    out.add(text[i + 1])
                    i += 2
                    continue
                raise self._error_reserved("\\")
            if top and top.kind in ("code", "pre"):
                i = self._inside_code(i, top)
                continue
            if ch == "\n":
                out.add(ch)
                i += 1
                if self.quote_start is not None and not text.startswith(">", i):
                    out.pos -= 1  # the quote ends before its last line break
                    out.entity("blockquote", self.quote_start)
                    out.pos += 1
                    self.quote_start = None
                continue
            if ch not in _MDV2_RESERVED:
                out.add(ch)
                i += 1
                continue
            if ch == ">" and at_line_start:
                if self.quote_start is None:
                    self.quote_start = out.pos
                i += 1
                continue
            i = self._mark(i, top)
        if self.stack:
            mark = self.stack[-1]
            raise FormatError(
                f"Can't find end of {_MDV2_NAMES[mark.kind]} entity at byte offset {mark.byte}"
            )
        if self.quote_start is not None:
            out.entity("blockquote", self.quote_start)
        return out.result()

    def _inside_code(self, i: int, top: _OpenMark) -> int:
        text, out = self.text, self.out
        fence = "```" if top.kind == "pre" else "`"
        if text.startswith(fence, i):
            self.stack.pop()
            if top.kind == "pre" and top.language:
                out.entity("pre", top.start, language=top.language)
            else:
                out.entity(top.kind, top.start)
            return i + len(fence)
        out.add(text[i])
        return i + 1

    def _open(self, kind: str, i: int) -> None:
        for mark in self.stack:
            if mark.kind == kind:
                raise FormatError(
                    f"Can't find end of {_MDV2_NAMES[kind]} entity at byte offset {mark.byte}"
                )
        self.stack.append(_OpenMark(kind, self.out.pos, _byte_offset(self.text, i)))

    def _close_top(self) -> None:
        mark = self.stack.pop()
        self.out.entity(mark.kind, mark.start)

    def _mark(self, i: int, top: _OpenMark | None) -> int:
        text = self.text
        ch = text[i]
        two = text[i : i + 2]
        if ch == "_":
            if top and top.kind == "underline" and two == "__":
                self._close_top()
                return i + 2
            if top and top.kind == "italic":
                self._close_top()
                return i + 1
            if two == "__":
                self._open("underline", i)
                return i + 2
            self._open("italic", i)
            return i + 1
        simple = {"*": "bold", "~": "strikethrough"}
        if ch in simple:
            if top and top.kind == simple[ch]:
                self._close_top()
            else:
                self._open(simple[ch], i)
            return i + 1
        if two == "||":
            if top and top.kind == "spoiler":
                self._close_top()
            else:
                self._open("spoiler", i)
            return i + 2
        if ch == "`":
            if text.startswith("```", i):
                end = text.find("\n", i + 3)
                header = text[i + 3 : end] if end != -1 else ""
                self._open("pre", i)
                if end != -1 and header and not any(c.isspace() for c in header):
                    self.stack[-1].language = header
                    return end + 1
                return i + 3
            self._open("code", i)
            return i + 1
        if ch == "[" or two == "![":
            kind = "custom_emoji" if ch == "!" else "text_link"
            self._open(kind, i)
            return i + (2 if ch == "!" else 1)
        if ch == "]" and top and top.kind in ("text_link", "custom_emoji"):
            return self._close_link(i, top)
        raise self._error_reserved(ch)

    def _close_link(self, i: int, top: _OpenMark) -> int:
        text = self.text
        self.stack.pop()
        if not text.startswith("(", i + 1):
            return i + 1  # [text] without a URL is just text
        j, url = i + 2, []
        while j < len(text) and text[j] != ")":
            if text[j] == "\\" and j + 1 < len(text):
                j += 1
            url.append(text[j])
            j += 1
        if j >= len(text):
            raise FormatError(f"Can't find end of a URL at byte offset {_byte_offset(text, i + 1)}")
        target = "".join(url)
        if top.kind == "custom_emoji":
            self.out.entity("custom_emoji", top.start, custom_emoji_id=target.rpartition("id=")[2])
        else:
            self.out.entity("text_link", top.start, url=target)
        return j + 1


# ---------------------------------------------------------------- legacy Markdown


def _parse_legacy_markdown(text: str) -> tuple[str, list[Entity]]:
    """Telegram's legacy Markdown: *bold* _italic_ `code` ```pre``` [text](url), no nesting."""
    out, i = _Output(), 0
    kinds = {"*": "bold", "_": "italic", "`": "code"}
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "_*`[":
            out.add(text[i + 1])
            i += 2
            continue
        if ch not in "_*`[":
            out.add(ch)
            i += 1
            continue
        unclosed = FormatError(
            f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
        )
        if text.startswith("```", i):
            end = text.find("```", i + 3)
            if end == -1:
                raise unclosed
            start = out.pos
            out.add(text[i + 3 : end])
            out.entity("pre", start)
            i = end + 3
        elif ch == "[":
            close = text.find("]", i + 1)
            if close == -1:
                raise unclosed
            start = out.pos
            out.add(text[i + 1 : close])
            i = close + 1
            if text.startswith("(", i):
                end = text.find(")", i)
                if end == -1:
                    raise unclosed
                out.entity("text_link", start, url=text[i + 1 : end])
                i = end + 1
        else:
            end = text.find(ch, i + 1)
            if end == -1:
                raise unclosed
            start = out.pos
            out.add(text[i + 1 : end])
            out.entity(kinds[ch], start)
            i = end + 1
    return out.result()
