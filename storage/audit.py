"""The audit log: who did what, when. Table: audit_log. Never holds a message's content."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from storage.db import Database, Row
from storage.models import AuditEntry
from storage.times import from_db, to_db


class AuditLog:
    """Appends and reads audit entries."""

    def __init__(self, db: Database, now: Callable[[], datetime]) -> None:
        self._db, self._now = db, now

    async def add(self, actor: str, action: str, **detail: Any) -> None:
        """Appends one entry."""
        await self._db.execute(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)",
            (to_db(self._now()), actor, action, json.dumps(detail, sort_keys=True)),
        )

    async def entries(self) -> list[AuditEntry]:
        """Every entry, oldest first."""
        rows = await self._db.fetch_all("SELECT * FROM audit_log ORDER BY id")
        return [_entry(r) for r in rows]

    async def newest(self, offset: int = 0, limit: int = 50) -> list[AuditEntry]:
        """A page of entries, newest first (the workbench's audit page)."""
        rows = await self._db.fetch_all(
            "SELECT * FROM audit_log ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset)
        )
        return [_entry(r) for r in rows]


def _entry(r: Row) -> AuditEntry:
    return AuditEntry(
        id=r["id"], at=from_db(r["at"]), actor=r["actor"], action=r["action"], detail=r["detail"]
    )
