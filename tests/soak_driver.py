"""The soak: many simulated members do random things at once, a facilitator asks questions
and broadcasts meanwhile, and the bot (`cocreate run`, a subprocess on the emulator) is
SIGKILLed and restarted on the same database now and then. Then `check` says what went wrong:

- a handler failed (the bot's log has "A handler failed" or a Traceback);
- a member's update got no answer (no bot message or callback answer in that chat before
  the member's next action, which waits up to `reply_timeout` for one);
- a member saw another member's words (every text a member types carries a marker naming
  them), or a reply came in the other language;
- an answer or a saved story was lost, or recorded twice (each marker is in at most one row);
- `PRAGMA integrity_check` / `foreign_key_check` are not clean;
- the bot's resident memory grew over the second half of a run.

One driver for both tests/test_soak.py (about a minute) and bench/soak.py (ten minutes).
Every random choice comes from one seeded generator per member, so a seed replays the same
choices (the timing, and so the interleaving, still varies).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.catalogue import LANGUAGES, catalogue
from emulator import Emulator, SimUser
from emulator.state import wait_until as wait_for_signal
from tests.conftest import TOKEN
from tests.media_samples import png, voice
from tests.test_process import BotProcess, wait_until

MARKER = re.compile(r"M(\d+)N(\d+)Z")  # a member's words: M<user id>N<sequence>Z
STAFF_MARKER = re.compile(r"S(\d+)T")  # the facilitator's words
STAFF_ID = 490_000
FIRST_MEMBER = 500_001
COMMANDS = (
    "/start",
    "/menu",
    "/help",
    "/language",
    "/questions",
    "/mydata",
    "/stop",
    "/resume",
    "/delete",
    "/cancel",
)
# Typed words that steer a flow (without a marker: they are not content).
WORDS = (
    "menu", "help", "skip", "back", "stop", "resume", "yes", "no", "save", "cancel",
    "1", "2", "3", "4", "English", "Cymraeg", "questions", "language", "hello", "?",
)  # fmt: skip
# Plain words for content; none of them is a safeguarding word.
VOCAB = (
    "the bus was late again and the stop has no roof "
    "our park needs more benches and lights near the gate "
    "the clinic moved to a new street far from the station "
    "my neighbour helps me with shopping on Tuesdays "
    "a library open in the evening would be good for us "
    "the lift at the flats was broken for a week"
).split()
ODD = (
    "مرحبا بكم في الحديقة",  # Arabic, right to left
    "שלום עולם",  # Hebrew
    "\u202eelbat eht\u202c",  # right-to-left override
    "zero\u200bwidth\u200c\u200djoin\ufeffer",
    "👩\u200d👩\u200d👧\u200d👦 🏳️\u200d🌈 👍🏽 🇬🇧",
    "e\u0301\u0301\u0301 Z\u0336\u0337a\u0338\u0335l\u0334g\u0489o\u0489",
    "ctrl \x01\x02\x07\x08\x0b\x0c\x1b\x7f end",
    "nul\x00here",
    "line\u2028sep\u2029para",
    "𝕄𝕒𝕥𝕙 𝟙𝟚𝟛 \U0010fffd \ufffe",
    "\t  spaces   and\ttabs \r\n",
    "Ⅻ ﷽ ꧁꧂ ᚠᛇᚻ",
)


@dataclass
class SoakSettings:
    """What one soak does."""

    members: int = 300
    duration: float = 600.0  # seconds of random actions
    kill_every: float = 120.0  # SIGKILL and restart the bot this often
    seed: int = 1
    staff_every: float = 20.0  # the facilitator starts an /ask or a /broadcast this often
    reply_timeout: float = 60.0  # a member waits this long for an answer before moving on
    think: tuple[float, float] = (0.3, 3.0)  # a member's pause between actions (seconds)
    rss_every: float = 1.0
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the bot


@dataclass
class Action:
    """One update a member sent, and where their chat stood when they sent it."""

    user_id: int
    update_id: int
    kind: str
    said: str | None  # the text or caption, if any
    messages_before: int  # the chat's bot messages when it was sent
    answers_before: int  # the chat's callback answers when it was sent
    at: float
    answered_in: float | None = None  # seconds to the first answer, if one came in time
    label: str | None = None  # the button pressed, if any


@dataclass
class Life:
    """One run of the bot process, from start to kill: its RSS samples (seconds, kB)."""

    pid: int
    started: float
    rss: list[tuple[float, int]] = field(default_factory=list)
    ended: float | None = None


@dataclass
class Outcome:
    """What a soak did, for `check` and the figures."""

    settings: SoakSettings
    actions: list[Action]
    staff_flows: int
    lives: list[Life]
    log: str
    db: Path
    chats: dict[int, SimUser]
    seconds: float


def marked(user_id: int, seq: int, rng: random.Random, words: int) -> str:
    """Content words with the member's marker first."""
    return f"M{user_id}N{seq}Z " + " ".join(rng.choice(VOCAB) for _ in range(words))


class Member:
    """A simulated member doing random things, one at a time, waiting for each answer."""

    def __init__(self, user: SimUser, seed: int, soak: Soak) -> None:
        self.user = user
        self.rng = random.Random(seed)
        self.soak = soak
        self.seq = 0
        self.seen_data: list[str] = []  # callback data of every button shown so far
        self.label: str | None = None
        # How keen: the chance of pressing one of the buttons just shown, when there are some.
        self.keen = self.rng.uniform(0.4, 0.9)

    def text(self, words: int) -> str:
        self.seq += 1
        return marked(self.user.id, self.seq, self.rng, words)

    async def live(self, until: float) -> None:
        rng = self.rng
        while time.monotonic() < until:
            await asyncio.sleep(rng.uniform(*self.soak.settings.think))
            await self.act()

    def remember_buttons(self) -> None:
        for message in self.user.messages[-5:]:
            for row in message.callback_data:
                for data in row:
                    if data is not None and data not in self.seen_data:
                        self.seen_data.append(data)

    def current_keyboard(self) -> tuple[int, list[str]] | None:
        for message in reversed(self.user.messages):
            if message.deleted:
                continue
            if message.keyboard_kind in ("inline", "reply"):
                labels = [label for row in message.buttons for label in row]
                return message.message_id, labels
        return None

    def choose(self) -> str:
        last = self.user.last_message
        if last is not None and is_bulk(last.text) and self.rng.random() < self.keen:
            return "text"  # a question from the facilitator: answer it in words
        keyboard = self.current_keyboard()
        if keyboard is not None and self.rng.random() < self.keen:
            # A step that takes words offers Skip: people mostly type there.
            skippable = any(("Skip" in label or "Hepgor" in label) for label in keyboard[1])
            return "text" if skippable and self.rng.random() < 0.6 else "button"
        if (last is None or "/start" in (last.text or "")) and self.rng.random() < self.keen:
            return "start"  # as the bot says to
        kinds = (
            ("button", 36), ("stale", 6), ("command", 14), ("word", 10), ("text", 14),
            ("odd", 4), ("long", 3), ("sticker", 3), ("voice", 3), ("photo", 3), ("edit", 1),
        )  # fmt: skip
        return self.rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]

    def perform(self, kind: str) -> tuple[str, int, str | None]:
        """Does one thing; returns what it was, the update id and the words sent, if any."""
        user, rng = self.user, self.rng
        if kind == "start":
            return kind, user.send("/start"), "/start"
        if kind == "button":
            keyboard = self.current_keyboard()
            if keyboard is not None:
                message_id, labels = keyboard
                label = rng.choice(labels)
                with contextlib.suppress(LookupError):  # a button with no callback (a URL)
                    self.label = label
                    return kind, user.press(label, message_id=message_id), None
            kind = "word"
        if kind == "stale" and self.seen_data:
            older = [m.message_id for m in user.messages[:-1] if not m.deleted]
            if older:
                data = rng.choice([*self.seen_data, "ans:999999:1", "bogus", "x" * 64])
                return kind, user.press_callback(data, message_id=rng.choice(older)), None
            kind = "command"
        if kind == "stale":
            kind = "command"
        if kind == "command":
            command = rng.choice(COMMANDS)
            if command == "/delete" and rng.random() < 0.7:
                command = "/menu"  # deleting everything is rarer than the rest
            if command == "/start" and rng.random() < 0.2:
                command = "/start no-such-project"
            return kind, user.send(command), command
        if kind == "word":
            word = rng.choice(WORDS)
            return kind, user.send(word), word
        if kind == "text":
            said = self.text(rng.randint(2, 40))
            return kind, user.send(said), said
        if kind == "odd":
            said = f"{self.text(1)} {rng.choice(ODD)} {rng.choice(ODD)}"
            return kind, user.send(said), said
        if kind == "long":
            said = self.text(1)
            said = (said + " " + "".join(rng.choice(ODD) + " " for _ in range(400)))[:4096]
            return kind, user.send(said), said
        if kind == "sticker":
            return kind, user.send_sticker(rng.choice("😀👍🎉🙈")), None
        if kind == "voice":
            caption = self.text(3) if rng.random() < 0.3 else None
            return kind, user.send_voice(voice(rng.randint(1, 3)), caption=caption), caption
        if kind == "photo":
            caption = self.text(3) if rng.random() < 0.5 else None
            return kind, user.send_photo(png(), caption=caption), caption
        if kind == "edit" and user.last_sent_id is not None:
            with contextlib.suppress(ValueError, LookupError):  # a sticker cannot be edited
                said = self.text(2)
                return kind, user.edit(user.last_sent_id, said), said
        said = self.text(3)
        return "text", user.send(said), said

    async def act(self) -> None:
        user = self.user
        self.remember_buttons()
        kind = self.choose()
        self.label = None
        messages, answers = len(user.messages), len(user.callback_answers)
        kind, update_id, said = self.perform(kind)
        action = Action(user.id, update_id, kind, said, messages, answers, time.monotonic())
        action.label = self.label
        self.soak.actions.append(action)
        chat = self.soak.emulator.state.chat(user.id)

        def answered() -> bool:
            if len(chat.callback_answers) > answers:
                return True
            texts = [m.text for m in chat.bot_messages]
            return any(is_reply(texts[i], texts) for i in range(messages, len(texts)))

        settings = self.soak.settings
        if await wait_for_chat(self.soak.emulator, user.id, answered, settings.reply_timeout):
            action.answered_in = time.monotonic() - action.at
            # The rest of a reply of several messages, so that it is not taken for the
            # answer to what the member does next.
            await quiet(self.soak.emulator, user.id)


async def quiet(emulator: Emulator, user_id: int, gap: float = 0.5, most: float = 5.0) -> None:
    """Waits until the bot has sent nothing to the chat for `gap` seconds (at most `most`)."""
    chat = emulator.state.chat(user_id)
    until = time.monotonic() + most
    while time.monotonic() < until:
        seen = len(chat.bot_messages)

        def more(seen: int = seen) -> bool:
            return len(chat.bot_messages) > seen

        if not await wait_for_signal(chat.changed, more, gap):
            return


def is_bulk(text: str | None) -> bool:
    """A question or broadcast from the facilitator (not an answer to the member)."""
    return text is not None and STAFF_MARKER.search(text) is not None


def is_reply(text: str | None, chat: list[str | None]) -> bool:
    """Whether a bot message looks like an answer to the member while the soak runs: not a
    question or broadcast, unless it was shown twice (the outbox delivers each once, so one of
    them came from /questions). `check` knows exactly, from the outbox's message ids."""
    found = STAFF_MARKER.search(text or "")
    if found is None:
        return True
    return sum(found.group(0) in (other or "") for other in chat) >= 2


async def wait_for_chat(
    emulator: Emulator, user_id: int, predicate: Callable[[], bool], timeout: float
) -> bool:
    """Waits until something in the chat makes `predicate` true; False on timeout."""
    chat = emulator.state.chat(user_id)
    return await wait_for_signal(chat.changed, predicate, timeout)


class Staff:
    """The facilitator: now and then an /ask (open, or yes or no) or a /broadcast, by typing
    each step's number, as people do."""

    def __init__(self, user: SimUser, rng: random.Random, soak: Soak) -> None:
        self.user = user
        self.rng = rng
        self.soak = soak
        self.flows = 0

    async def step(self, said: str) -> None:
        before = len(self.user.messages)
        self.user.send(said)
        chat = self.soak.emulator.state.chat(self.user.id)
        await wait_for_chat(
            self.soak.emulator,
            self.user.id,
            lambda: len(chat.bot_messages) > before,
            self.soak.settings.reply_timeout,
        )
        await asyncio.sleep(0.2)  # the rest of a reply of several messages

    async def live(self, until: float) -> None:
        # The first once a quarter of the time has gone, when some members have joined.
        await asyncio.sleep(self.soak.settings.duration / 4)
        while time.monotonic() < until:
            self.flows += 1
            words = f"S{self.flows}T " + " ".join(self.rng.choice(VOCAB) for _ in range(8))
            await self.step("/cancel")
            kind = self.rng.choices(("open", "yesno", "broadcast"), (5, 2, 3))[0]
            if kind == "broadcast":
                steps = ["/broadcast", words + ".", "1", "1", "1"]
            else:  # to everyone, now, no reminder, send
                steps = ["/ask", words + "?", "1" if kind == "open" else "4", "1", "1", "1", "1"]
            for said in steps:
                await self.step(said)
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.soak.settings.staff_every)


class Soak:
    """Runs the soak against one emulator and one bot process in `folder`."""

    def __init__(self, folder: Path, emulator: Emulator, settings: SoakSettings) -> None:
        self.folder = folder
        self.emulator = emulator
        self.settings = settings
        self.actions: list[Action] = []
        self.lives: list[Life] = []
        self.bot = BotProcess(
            folder,
            emulator,
            ORGANISER_IDS=str(STAFF_ID),
            QUIET_HOURS="",
            **settings.env,
        )

    async def run(self) -> Outcome:
        """Members act until the time is up, then the bot finishes everything and stops."""
        s = self.settings
        started = time.monotonic()
        await self.start_bot()
        rng = random.Random(s.seed)
        staff = Staff(self.emulator.user(STAFF_ID, first_name="Fran"), rng, self)
        members = [
            Member(self.emulator.user(FIRST_MEMBER + i), rng.randrange(2**32), self)
            for i in range(s.members)
        ]
        until = time.monotonic() + s.duration
        sampler = asyncio.create_task(self.sample_rss())
        try:
            async with asyncio.TaskGroup() as tasks:
                for member in members:
                    tasks.create_task(member.live(until))
                tasks.create_task(staff.live(until))
                tasks.create_task(self.kill_now_and_then(until))
            # Whatever is still queued (answers to the last actions, a broadcast) goes out.
            await wait_until(self.settled, timeout=s.reply_timeout * 3)
            await asyncio.sleep(1.0)
            assert await self.bot.terminate() == 0, "the bot did not stop cleanly"
            self.lives[-1].ended = time.monotonic()
        finally:
            sampler.cancel()
            if self.bot.proc is not None and self.bot.proc.returncode is None:
                await self.bot.kill()
        return Outcome(
            settings=s,
            actions=self.actions,
            staff_flows=staff.flows,
            lives=self.lives,
            log=self.bot.log.read_text(errors="replace"),
            db=self.bot.db,
            chats={m.user.id: m.user for m in members},
            seconds=time.monotonic() - started,
        )

    def settled(self) -> bool:
        """Every update handled and nothing left to send."""
        with sqlite3.connect(self.bot.db) as conn:
            queued = conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE status IN ('queued', 'sending')"
            ).fetchone()[0]
        return self.bot.unfinished() == 0 and queued == 0

    async def start_bot(self) -> None:
        await self.bot.start()
        assert self.bot.proc is not None
        self.lives.append(Life(self.bot.proc.pid, time.monotonic()))

    async def kill_now_and_then(self, until: float) -> None:
        while True:
            await asyncio.sleep(min(self.settings.kill_every, max(0.0, until - time.monotonic())))
            if time.monotonic() >= until:
                return
            await self.bot.kill()
            self.lives[-1].ended = time.monotonic()
            await self.start_bot()

    async def sample_rss(self) -> None:
        while True:
            life = self.lives[-1]
            kb = rss_kb(life.pid)
            if kb is not None and life.ended is None:
                life.rss.append((time.monotonic() - life.started, kb))
            await asyncio.sleep(self.settings.rss_every)


def rss_kb(pid: int) -> int | None:
    """Resident memory of a process in kB (Linux), or None once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else None


# ---- afterwards: what must hold


@dataclass
class Findings:
    """What `check` found: problems (empty when all is well) and figures to print."""

    problems: list[str] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)

    def problem(self, what: str, examples: list[str]) -> None:
        if examples:
            shown = "\n    ".join(examples[:8])
            self.problems.append(f"{what}: {len(examples)}\n    {shown}")


def fragments(text: str) -> list[str]:
    """The fixed pieces of a catalogue text (between its {placeholders}), by line."""
    pieces = re.split(r"\{[^}]*\}|\n", text)
    return [p.strip() for p in pieces if len(p.strip()) >= 12]


class Languages:
    """Tells the language of a bot message from catalogue texts only one language has."""

    def __init__(self) -> None:
        texts = catalogue()._texts
        self.only: dict[str, list[str]] = {}
        for lang in LANGUAGES:
            others = [v for other in LANGUAGES if other != lang for v in texts[other].values()]
            found = {
                piece
                for value in texts[lang].values()
                for piece in fragments(value)
                if not any(piece in other for other in others)
            }
            self.only[lang] = sorted(found)

    def of(self, text: str) -> set[str]:
        return {lang for lang, pieces in self.only.items() if any(p in text for p in pieces)}


def said_by(key: str, text: str | None) -> bool:
    """Whether a bot message is the catalogue text `key` (in any language)."""
    if not text:
        return False
    for lang in LANGUAGES:
        first = [p for p in re.split(r"\{[^}]*\}", t_raw(lang, key)) if p.strip()]
        if first and first[0].strip() in text:
            return True
    return False


def t_raw(lang: str, key: str) -> str:
    texts = catalogue()._texts
    return texts.get(lang, {}).get(key) or texts["en"][key]


def sent_by_outbox(db: Path) -> set[tuple[int, int]]:
    """(chat, message id) of every message the outbox delivered: questions, broadcasts."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT chat_id, telegram_message_id FROM outbox WHERE telegram_message_id IS NOT NULL"
        ).fetchall()
    return {(int(chat), int(message)) for chat, message in rows}


def windows(
    outcome: Outcome, outbox: set[tuple[int, int]]
) -> dict[int, list[tuple[Action, list[str], int]]]:
    """Each member's actions with the texts of the bot's replies that followed each one,
    before the next (not what the outbox delivered meanwhile), and how many callback answers
    came in that time."""
    by_member: dict[int, list[Action]] = {}
    for action in outcome.actions:
        by_member.setdefault(action.user_id, []).append(action)
    found: dict[int, list[tuple[Action, list[str], int]]] = {}
    for user_id, actions in by_member.items():
        user = outcome.chats[user_id]
        messages = user.messages
        answers = len(user.callback_answers)
        rows = []
        for i, action in enumerate(actions):
            nxt = actions[i + 1] if i + 1 < len(actions) else None
            end_m = nxt.messages_before if nxt else len(messages)
            end_a = nxt.answers_before if nxt else answers
            replies = [
                m.text or ""
                for m in messages[action.messages_before : end_m]
                if (user_id, m.message_id) not in outbox
            ]
            rows.append((action, replies, end_a - action.answers_before))
        found[user_id] = rows
    return found


def check(outcome: Outcome) -> Findings:
    """Everything the soak must leave true (see the module docstring)."""
    findings = Findings()
    check_log(outcome, findings)
    rows = windows(outcome, sent_by_outbox(outcome.db))
    check_answered(rows, findings)
    check_private(outcome, findings)
    check_language(rows, findings)
    check_records(outcome, rows, findings)
    check_database(outcome, findings)
    check_memory(outcome, findings)
    return findings


def check_log(outcome: Outcome, findings: Findings) -> None:
    lines = outcome.log.splitlines()
    bad = [
        f"line {i + 1}: {line[:200]}"
        for i, line in enumerate(lines)
        if "A handler failed" in line or "Traceback" in line
    ]
    findings.problem("handler failures in the bot's log", bad)
    findings.figures["log lines"] = len(lines)
    findings.figures["warnings logged"] = sum(" WARNING " in line for line in lines)


def check_answered(
    rows: dict[int, list[tuple[Action, list[str], int]]], findings: Findings
) -> None:
    unanswered = []
    times = []
    for actions in rows.values():
        for action, texts, answers in actions:
            if answers or texts:
                if action.answered_in is not None:
                    times.append(action.answered_in)
                continue
            unanswered.append(
                f"member {action.user_id} update {action.update_id} ({action.kind} "
                f"{(action.said or action.label or '')[:30]!r}): no answer"
            )
    findings.problem("member updates never answered", unanswered)
    times.sort()
    total = sum(len(a) for a in rows.values())
    findings.figures["member updates"] = total
    findings.figures["answered"] = total - len(unanswered)
    if times:
        findings.figures["answer p50 s"] = round(times[len(times) // 2], 3)
        findings.figures["answer p95 s"] = round(times[int(len(times) * 0.95)], 3)
        findings.figures["answer max s"] = round(times[-1], 3)


def check_private(outcome: Outcome, findings: Findings) -> None:
    """A member's marker reaches only their own chat."""
    leaks = []
    for user_id, user in outcome.chats.items():
        seen = [m.text or "" for m in user.messages] + [m.text or "" for m in user.edits]
        seen += [str(a.get("text") or "") for a in user.callback_answers]
        for text in seen:
            for match in MARKER.finditer(text):
                if int(match.group(1)) != user_id:
                    leaks.append(f"chat {user_id} got {match.group(0)}: {text[:80]!r}")
    findings.problem("members' words sent to another member", leaks)


LANGUAGE_WORDS = {"/language", "language", "english", "cymraeg", "1", "2"}


def check_language(
    rows: dict[int, list[tuple[Action, list[str], int]]], findings: Findings
) -> None:
    """Replies come in the language the member chose (the language of the replies to the
    step where they chose it, or after /start, /language or joining)."""
    languages = Languages()
    wrong = []
    for actions in rows.values():
        lang: str | None = None
        previous: list[str] = []
        for action, texts, _ in actions:
            said = (action.said or "").strip().lower()
            asked = any(  # the language question was the last thing shown
                said_by(key, text)
                for text in previous[-1:]
                for key in ("start.choose_language", "language.ask")
            )
            may_change = (
                asked
                or any(name in (action.label or "") for name in ("English", "Cymraeg"))
                or action.kind == "stale"
                or said.startswith(("/start", "/delete"))
                or said in LANGUAGE_WORDS
            )
            shown = [(text, languages.of(text)) for text in texts if not is_bulk(text)]
            shown = [(text, found) for text, found in shown if len(found) == 1]
            # Where the language may change, the replies show which, once: until then they may
            # still be in the old one (the bot asking again where the member was, after a
            # restart, before it handled their choice). Some show none: a custom question.
            may_switch = may_change
            if may_change and not shown:
                lang = None
            for text, found in shown:
                (in_text,) = found
                if lang is None:
                    lang = in_text
                elif in_text != lang and may_switch:
                    lang, may_switch = in_text, False
                elif in_text != lang:
                    wrong.append(
                        f"member {action.user_id} (chose {lang}) after {action.kind} "
                        f"{said[:20]!r}{action.label!r}: {text[:60]!r} (before: "
                        f"{[x[:30] for x in previous[-3:]]})"
                    )
            if any(said_by(k, x) for x in texts for k in ("delete.done", "consent.declined")):
                lang = None
            previous = (previous + texts)[-3:] if texts else previous
    findings.problem("replies in the other language", wrong)


def check_records(
    outcome: Outcome, rows: dict[int, list[tuple[Action, list[str], int]]], findings: Findings
) -> None:
    """What a member was told was saved is in the database once; nothing is there twice."""
    expect_answers: dict[int, list[str]] = {}  # member → markers, oldest first
    expect_shared: dict[int, set[str]] = {}
    # An answer saved later to the same question replaces the one before: the question (its
    # staff marker, S<n>T) of each answer kept, and where each member answered it anew.
    asked_by: dict[str, tuple[int, str | None]] = {}  # marker → (its action, its question)
    answered_at: dict[int, list[tuple[int, str | None]]] = {}  # member → (action, question)
    for user_id, actions in rows.items():
        history: list[str] = []
        for index, (action, texts, _) in enumerate(actions):
            if any(said_by(k, x) for x in texts for k in ("delete.done", "consent.declined")):
                expect_answers[user_id] = []
                expect_shared[user_id] = set()
            mark = MARKER.search(action.said or "")
            if any(said_by("questions.saved", x) for x in texts):
                asked = last_question(history)
                answered_at.setdefault(user_id, []).append((index, asked))
                if mark:
                    expect_answers.setdefault(user_id, []).append(mark.group(0))
                    asked_by[mark.group(0)] = (index, asked)
            saved = ("story.saved", "idea.saved", "idea.saved_volunteer")
            if any(said_by(k, x) for x in texts for k in saved):
                review = last_review(history)
                expect_shared.setdefault(user_id, set()).update(
                    m.group(0) for text in review for m in MARKER.finditer(text)
                )
            history.extend(texts)

    with sqlite3.connect(outcome.db) as conn:
        answers = conn.execute(
            "SELECT a.text, m.telegram_user_id FROM answers a JOIN members m ON m.id = a.member_id"
        ).fetchall()
        parts = conn.execute(
            "SELECT p.text, m.telegram_user_id, s.status FROM submission_parts p"
            " JOIN submissions s ON s.id = p.submission_id JOIN members m ON m.id = s.member_id"
        ).fetchall()
        findings.figures["members in the database"] = conn.execute(
            "SELECT COUNT(*) FROM members"
        ).fetchone()[0]
    findings.figures["answers in the database"] = len(answers)
    findings.figures["story and idea parts in the database"] = len(parts)
    where: dict[str, list[tuple[str, int, str]]] = {}
    for text, owner in answers:
        for m in MARKER.finditer(text or ""):
            where.setdefault(m.group(0), []).append(("answer", owner, "answer"))
    for text, owner, status in parts:
        for m in MARKER.finditer(text or ""):
            where.setdefault(m.group(0), []).append(("part", owner, status))
    twice = [f"{marker}: {found}" for marker, found in where.items() if len(found) > 1]
    findings.problem("words recorded twice", twice)
    wrong_owner = [
        f"{marker} kept for member {owner}"
        for marker, found in where.items()
        for _, owner, _ in found
        if owner_of(marker) != owner
    ]
    findings.problem("words kept for the wrong member", wrong_owner)
    lost = []
    answered = {  # member → the sequence numbers of their words kept as answers
        owner: {
            sequence(m)
            for m, found in where.items()
            if owner_of(m) == owner and any(k == "answer" for k, _, _ in found)
        }
        for owner in expect_answers
    }
    for user_id, markers in expect_answers.items():
        for marker in markers:
            kept = any(k == "answer" for k, _, _ in where.get(marker, []))
            index, question = asked_by.get(marker, (-1, None))
            replaced = any(n > sequence(marker) for n in answered[user_id]) or any(
                later > index and again == question and question is not None
                for later, again in answered_at.get(user_id, [])
            )  # changed later (by words, or by a photo or voice note to the same question)
            if not kept and not replaced:
                lost.append(f"member {user_id}'s answer {marker}")
    for user_id, parts_saved in expect_shared.items():
        for marker in sorted(parts_saved):
            if not any(k == "part" and s == "submitted" for k, _, s in where.get(marker, [])):
                lost.append(f"member {user_id}'s saved story or idea {marker}")
    findings.problem("answers or saved stories lost", lost)
    findings.figures["answers confirmed"] = sum(len(m) for m in expect_answers.values())
    findings.figures["stories and ideas saved (marked parts)"] = sum(
        len(m) for m in expect_shared.values()
    )


def owner_of(marker: str) -> int:
    """The member whose words carry this marker."""
    found = MARKER.fullmatch(marker)
    assert found is not None
    return int(found.group(1))


def sequence(marker: str) -> int:
    """The place of the marked words among everything the member typed."""
    found = MARKER.fullmatch(marker)
    assert found is not None
    return int(found.group(2))


QUESTION = re.compile(r"S\d+T")  # a facilitator's words: S<sequence>T


def last_question(history: list[str]) -> str | None:
    """The facilitator's question shown last (its marker), if any: a question's message
    starts with its words, where news quotes them after a heading."""
    for text in reversed(history):
        found = QUESTION.match(text)
        if found is not None:
            return found.group(0)
    return None


def last_review(history: list[str]) -> list[str]:
    """The messages of the newest review of a story or idea (with any continuation)."""
    heads = [
        fragments(t_raw(lang, k))[0] for lang in LANGUAGES for k in ("story.review", "idea.review")
    ]
    for i in range(len(history) - 1, -1, -1):
        if any(history[i].startswith(head) for head in heads):
            # A facilitator's question shown meanwhile is not part of it, though it may
            # quote the member's answer ("Your answer: …").
            return [text for text in history[i:] if not is_bulk(text)]
    return []


def check_database(outcome: Outcome, findings: Findings) -> None:
    with sqlite3.connect(outcome.db) as conn:
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        foreign = [str(r) for r in conn.execute("PRAGMA foreign_key_check")]
        unfinished = conn.execute("SELECT COUNT(*) FROM inbox WHERE done_at IS NULL").fetchone()[0]
    if integrity != ["ok"]:
        findings.problem("PRAGMA integrity_check", integrity)
    findings.problem("PRAGMA foreign_key_check", foreign)
    if unfinished:
        findings.problem("updates left unfinished in the inbox", [str(unfinished)])


def check_memory(outcome: Outcome, findings: Findings, limit: float = 0.15) -> None:
    """Within each run of the bot, RSS grows at most `limit` over the second half."""
    grew = []
    figures = []
    for life in outcome.lives:
        if len(life.rss) < 10:
            continue
        length = life.rss[-1][0]
        second = [kb for at, kb in life.rss if at >= length / 2]
        growth = max(second) / second[0] - 1
        figures.append(f"{life.rss[0][1] // 1024}→{second[0] // 1024}→{max(second) // 1024} MB")
        if growth > limit:
            grew.append(
                f"pid {life.pid}: {second[0]} kB → {max(second)} kB over {length / 2:.0f} s"
            )
    findings.figures["RSS per run (first, half-way, peak of second half)"] = figures
    findings.problem(f"RSS grew more than {limit:.0%} over the second half of a run", grew)


async def soak(folder: Path, settings: SoakSettings) -> Outcome:
    """One soak on a fresh emulator, the bot's files in `folder`."""
    async with Emulator(token=TOKEN) as emulator:
        return await Soak(folder, emulator, settings).run()


def figures(outcome: Outcome, findings: Findings) -> str:
    """The figures of a soak, one a line."""
    s = outcome.settings
    kinds: dict[str, int] = {}
    for action in outcome.actions:
        kinds[action.kind] = kinds.get(action.kind, 0) + 1
    lines = [
        f"seed {s.seed}: {s.members} members for {s.duration:.0f} s, "
        f"SIGKILL every {s.kill_every:.0f} s ({len(outcome.lives) - 1} kills), "
        f"{outcome.staff_flows} facilitator flows, {outcome.seconds:.0f} s in all",
        f"updates by kind: {dict(sorted(kinds.items()))}",
        f"member updates a second: {len(outcome.actions) / s.duration:.1f}",
        *(f"{name}: {value}" for name, value in findings.figures.items()),
    ]
    return "\n".join(lines)


def transcript(outcome: Outcome, user_id: int) -> str:
    """What one member did and what the bot sent back, in order (to look into a problem)."""
    messages = outcome.chats[user_id].messages
    actions = [a for a in outcome.actions if a.user_id == user_id]
    lines = [f"member {user_id}:"]
    for i, action in enumerate(actions):
        end = actions[i + 1].messages_before if i + 1 < len(actions) else len(messages)
        lines.append(f"> {action.update_id} {action.kind} {action.label or action.said!r:.70}")
        for message in messages[action.messages_before : end]:
            buttons = f" {message.buttons}" if message.buttons else ""
            lines.append(f"  < {(message.text or '')!r:.90}{buttons}")
    return "\n".join(lines)


def transcripts(outcome: Outcome, findings: Findings, most: int = 3) -> str:
    """The transcripts of the first few members named in the problems."""
    named = []
    for problem in findings.problems:
        for found in re.finditer(r"member (\d+)", problem):
            user_id = int(found.group(1))
            if user_id in outcome.chats and user_id not in named:
                named.append(user_id)
    return "\n\n".join(transcript(outcome, user_id) for user_id in named[:most])
