"""ptb persistence in SQLite: conversation states and user_data, written through at once.

Tables: conversations, user_data. ptb calls these methods from Application.update_persistence;
cocreate calls that after every update (bot/receiving.py), so a kill -9 never loses a step.
Values must be JSON-serialisable: keep user_data to plain strings, numbers and lists.
"""

from __future__ import annotations

import json
from typing import Any

from telegram.ext import BasePersistence, PersistenceInput
from telegram.ext._utils.types import CDCData, ConversationDict, ConversationKey

from storage.db import Database

UserData = dict[Any, Any]


class SQLitePersistence(BasePersistence[UserData, dict[Any, Any], dict[Any, Any]]):
    """Stores ptb conversation states and user_data in the cocreate database."""

    def __init__(self, db: Database) -> None:
        super().__init__(
            store_data=PersistenceInput(
                bot_data=False, chat_data=False, user_data=True, callback_data=False
            ),
            update_interval=60,
        )
        self._db = db

    async def get_user_data(self) -> dict[int, UserData]:
        rows = await self._db.fetch_all("SELECT user_id, data FROM user_data")
        return {int(r["user_id"]): json.loads(r["data"]) for r in rows}

    async def update_user_data(self, user_id: int, data: UserData) -> None:
        if not data:
            await self.drop_user_data(user_id)
            return
        await self._db.execute(
            "INSERT INTO user_data (user_id, data) VALUES (?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET data = excluded.data",
            (user_id, json.dumps(data)),
        )

    async def drop_user_data(self, user_id: int) -> None:
        await self._db.execute("DELETE FROM user_data WHERE user_id = ?", (user_id,))

    async def refresh_user_data(self, user_id: int, user_data: UserData) -> None:
        """Nothing to refresh: the in-memory copy is always the newest."""

    async def get_conversations(self, name: str) -> ConversationDict:
        rows = await self._db.fetch_all(
            "SELECT key, state FROM conversations WHERE name = ?", (name,)
        )
        return {tuple(json.loads(r["key"])): json.loads(r["state"]) for r in rows}

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        if new_state is None:
            await self._db.execute(
                "DELETE FROM conversations WHERE name = ? AND key = ?", (name, json.dumps(key))
            )
            return
        await self._db.execute(
            "INSERT INTO conversations (name, key, state) VALUES (?, ?, ?)"
            " ON CONFLICT (name, key) DO UPDATE SET state = excluded.state",
            (name, json.dumps(key), json.dumps(new_state)),
        )

    # cocreate keeps no chat_data, bot_data or callback_data: the database holds that state.
    async def get_chat_data(self) -> dict[int, dict[Any, Any]]:
        return {}

    async def update_chat_data(self, chat_id: int, data: dict[Any, Any]) -> None:
        """Not stored."""

    async def drop_chat_data(self, chat_id: int) -> None:
        """Not stored."""

    async def refresh_chat_data(self, chat_id: int, chat_data: dict[Any, Any]) -> None:
        """Not stored."""

    async def get_bot_data(self) -> dict[Any, Any]:
        return {}

    async def update_bot_data(self, data: dict[Any, Any]) -> None:
        """Not stored."""

    async def refresh_bot_data(self, bot_data: dict[Any, Any]) -> None:
        """Not stored."""

    async def get_callback_data(self) -> CDCData | None:
        return None

    async def update_callback_data(self, data: CDCData) -> None:
        """Not stored."""

    async def flush(self) -> None:
        """Nothing buffered: every write went straight to the database."""
