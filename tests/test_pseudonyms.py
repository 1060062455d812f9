"""Pseudonyms: one per member, never shared by two, short enough to read aloud, and stable."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import sqlite3
from pathlib import Path

from bot.clock import FakeClock
from storage.migrations import MIGRATIONS
from storage.sharing import PSEUDONYM_ALPHABET, derive_pseudonym
from storage.store import Store

# "P-" and seven characters with no look-alikes (no 0/O, 1/I/L).
NAME = re.compile(r"^P-[2-9A-HJKMNP-Z]{7}$")


async def add_members(store: Store, n: int, first_user: int = 10_000) -> list[int]:
    async with store.db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO members (telegram_user_id, chat_id, joined_at) VALUES (?, ?, ?)",
            [(first_user + i, first_user + i, "2026-11-30T10:00:00+00:00") for i in range(n)],
        )
    rows = await store.db.fetch_all(
        "SELECT id FROM members WHERE telegram_user_id >= ? ORDER BY id", (first_user,)
    )
    return [int(r["id"]) for r in rows]


async def test_twenty_thousand_members_get_twenty_thousand_names(store: Store) -> None:
    ids = await add_members(store, 20_000)
    names = await store.pseudonyms.of_many(ids)
    assert len(names) == 20_000 and len(set(names.values())) == 20_000
    assert all(NAME.match(name) for name in names.values())
    # The same names next time, one at a time or all together.
    assert await store.pseudonyms.of(ids[0]) == names[ids[0]]
    assert await store.pseudonyms.of(ids[-1]) == names[ids[-1]]
    assert await store.pseudonyms.of_many(ids[:100]) == {i: names[i] for i in ids[:100]}


async def test_a_name_already_taken_is_never_given_again(store: Store) -> None:
    [ann, bo] = await add_members(store, 2)
    ann_name = await store.pseudonyms.of(ann)
    # Force a collision: the name Bo would be given first is already someone else's.
    bo_first = await first_choice(store, bo)
    async with store.db.transaction() as conn:
        await conn.execute("INSERT INTO pseudonyms (name, member_id) VALUES (?, NULL)", (bo_first,))
    bo_name = await store.pseudonyms.of(bo)
    assert NAME.match(bo_name) and bo_name not in (bo_first, ann_name)
    assert await store.pseudonyms.of(bo) == bo_name


async def test_an_erased_members_name_is_not_given_to_the_next_member(store: Store) -> None:
    [ann] = await add_members(store, 1)
    ann_name = await store.pseudonyms.of(ann)
    await store.erase_member(ann)
    # SQLite gives the next member the highest id again, so the same first choice (and so
    # may a copied database on PostgreSQL, whose ids were given explicitly).
    async with store.db.transaction() as conn:
        await conn.execute(
            "INSERT INTO members (id, telegram_user_id, chat_id, joined_at) VALUES (?, ?, ?, ?)",
            (ann, 20_000, 20_000, "2026-11-30T10:00:00+00:00"),
        )
    cy = ann
    assert await store.pseudonyms.of(cy) != ann_name
    unlinked = await store.db.fetch_all(
        "SELECT member_id FROM pseudonyms WHERE name = ?", (ann_name,)
    )
    assert [r["member_id"] for r in unlinked] == [None]


async def test_members_from_before_keep_the_name_they_were_shown(
    tmp_path: Path, clock: FakeClock
) -> None:
    # A database at the schema before names were stored, with one member and the key.
    path = tmp_path / "old.db"
    key = "ab" * 32
    with sqlite3.connect(path) as conn:
        for version, sql in enumerate(MIGRATIONS[:5], start=1):
            conn.executescript(f"{sql}\nPRAGMA user_version = {version};")
        conn.executemany(
            "INSERT INTO members (telegram_user_id, chat_id, joined_at) VALUES (?, ?, 'x')",
            [(1, 1), (2, 2)],
        )
        conn.execute("INSERT INTO app_secrets (name, value) VALUES ('pseudonym_key', ?)", (key,))
    conn.close()
    digest = hmac.new(bytes.fromhex(key), b"1", hashlib.sha256).digest()
    shown_before = "P-" + base64.b32encode(digest).decode()[:5]

    store = await Store.open(path, clock.now)
    try:
        assert await store.pseudonyms.of(1) == shown_before
        assert await store.pseudonyms.of_many([1]) == {1: shown_before}
        # Member 2 leaves; the next member gets id 2 again, but not member 2's old name.
        await store.erase_member(2)
        [newcomer] = await add_members(store, 1)
        assert newcomer == 2
        assert NAME.match(await store.pseudonyms.of(newcomer))
        left = await store.db.fetch_all("SELECT name, member_id FROM pseudonyms ORDER BY name")
        assert {(r["name"], r["member_id"]) for r in left} == {
            (shown_before, 1),
            (await store.pseudonyms.of(newcomer), newcomer),
        }
    finally:
        await store.close()


async def first_choice(store: Store, member_id: int) -> str:
    """The name a member is offered first (derived from the key, as the store does)."""
    row = await store.db.fetch_one("SELECT value FROM app_secrets WHERE name = 'pseudonym_key'")
    assert row is not None
    return derive_pseudonym(bytes.fromhex(row["value"]), member_id)


def test_names_are_short_enough_to_read_aloud() -> None:
    assert not set("0O1IL") & set(PSEUDONYM_ALPHABET)
    name = derive_pseudonym(b"k" * 32, 42)
    assert NAME.match(name) and len(name) == 9
