"""Plain typed values returned by the repositories."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The age bands "about you" offers (conversations/onboarding.py), also /stats' groups.
AGE_BANDS = ("under_18", "18_24", "25_34", "35_49", "50_64", "65_plus")
PREFER_NOT_TO_SAY = "prefer_not_to_say"


@dataclass(frozen=True)
class Project:
    id: int
    code: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Member:
    id: int
    telegram_user_id: int
    chat_id: int
    language: str
    display_name: str | None
    joined_at: datetime
    onboarded_at: datetime | None
    stopped_at: datetime | None
    unreachable_at: datetime | None

    @property
    def onboarded(self) -> bool:
        return self.onboarded_at is not None

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None


@dataclass(frozen=True)
class ConsentReceipt:
    id: int
    member_id: int | None
    consent_version: str
    language: str
    agreed_to: tuple[str, ...]
    agreed_at: datetime
    withdrawn_at: datetime | None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    detail: str
