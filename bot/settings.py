"""Settings, read once: the environment, then `.env`, then the defaults below.

The names are a contract (docs/architecture.md): scripts outside the code set them.
"""

from __future__ import annotations

import re
from datetime import time
from ipaddress import ip_address
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from telegram.constants import FloodLimit

QuietHours = tuple[time, time]
# New messages a second Telegram takes from a bot across all chats: free, and the most with
# allow_paid_broadcast (Telegram's paid broadcasts).
FREE_RATE = int(FloodLimit.MESSAGES_PER_SECOND)  # 30
PAID_RATE = int(FloodLimit.PAID_MESSAGES_PER_SECOND)  # 1,000
# What Telegram accepts as a webhook's secret_token.
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _split(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


class Settings(BaseSettings):
    """Everything cocreate can be told from outside."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_file_base_url: str = "https://api.telegram.org/file/bot"
    database_url: str = "sqlite:///data/cocreate.db"
    media_dir: Path = Path("data/media")
    organiser_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    timezone: str = "Europe/London"
    quiet_hours: str = "21:00-08:00"
    # Webhook mode (WEBHOOK_URL set) needs the secret, so that only Telegram can post updates.
    # `cocreate run` takes them on the workbench's WEB_LISTEN:WEB_PORT (one app, one port);
    # WEBHOOK_LISTEN and PORT are for ptb's own webhook server (`running` without a workbench).
    webhook_url: str = ""
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "127.0.0.1"
    port: int | None = None
    # The staff workbench (bot/web/): served on WEB_LISTEN:WEB_PORT; WEB_URL is the address
    # sign-in links point at (a reverse proxy's public https one), by default the local one.
    web_port: int = Field(default=8080, ge=1, le=65535)
    web_listen: str = "127.0.0.1"
    web_url: str = ""
    log_level: str = "INFO"
    # "About you": the area choices (empty: members type their area) and one question the
    # organiser defines (empty: not asked), with its choices (empty: a typed answer).
    about_areas: Annotated[list[str], NoDecode] = Field(default_factory=list)
    about_extra_question: str = ""
    about_extra_options: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Files members send: larger ones are refused kindly (Telegram lets bots fetch 20 MB).
    media_max_mb: int = Field(default=20, ge=1, le=2000)
    # Safeguarding: phrases that suggest a risk to life or safety (comma-separated; empty:
    # the catalogue's English and Welsh list), and the help to send (empty: the catalogue's).
    safeguarding_words: Annotated[list[str], NoDecode] = Field(default_factory=list)
    safeguarding_help: str = ""
    # Questions: one due while the bot was down is still sent within this many hours (else
    # its author is told); a round takes answers for this many days (or until the next round).
    question_grace_hours: int = Field(default=24, ge=0)
    question_open_days: int = Field(default=7, ge=1)
    # Retention: stories, ideas and answers (and their files) older than this many days are
    # deleted by a daily job. None (empty): kept until a member deletes them.
    retention_days: int | None = Field(default=None, ge=1)
    # Bot API calls a second, every call counted and evenly paced (bot/budget.py). Above
    # FREE_RATE (30, Telegram's free limit), up to PAID_RATE, the outbox's messages go as
    # Telegram's paid broadcasts (allow_paid_broadcast, charged in Stars: README). One chat
    # may get `chat_burst` new messages at once, then one every `chat_interval` seconds
    # (Telegram allows about one a second); a broadcast reaches a chat no sooner than
    # `chat_interval` after the chat's last message.
    broadcast_rate: int = Field(default=FREE_RATE, ge=1, le=PAID_RATE)
    chat_burst: int = Field(default=20, ge=1)
    chat_interval: float = Field(default=1.0, gt=0, le=60)
    # Several processes on one PostgreSQL (README, Outgrowing one machine): every this many
    # seconds each process tries to take over a role (polling, the scheduler) whose leader
    # died, and takes up what a dead process left (its updates, its unconfirmed sends).
    leader_retry: float = Field(default=5.0, gt=0, le=25)
    # SMS (README, SMS): members without Telegram text a number. Empty: no SMS. "twilio":
    # Twilio's API, or a provider that copies it at SMS_API_BASE_URL.
    sms_provider: Literal["", "twilio"] = ""
    twilio_account_sid: str = ""
    twilio_auth_token: SecretStr | None = None
    sms_from: str = ""  # the number members text, as +447700900123
    sms_rate: float = Field(default=1.0, gt=0, le=1000)  # texts a second (a long code: 1)
    sms_api_base_url: str = "https://api.twilio.com"
    # Seals members' phone numbers in the database (a dump does not show them): any long
    # random text, kept outside the database. Changing it makes the stored numbers unreadable.
    sms_number_key: SecretStr | None = None

    @field_validator("organiser_ids", mode="before")
    @classmethod
    def _parse_ids(cls, value: object) -> list[int]:
        try:
            return [int(part) for part in _split(value)]
        except ValueError as exc:
            raise ValueError("ORGANISER_IDS must be Telegram user ids separated by commas") from exc

    @field_validator("about_areas", "about_extra_options", "safeguarding_words", mode="before")
    @classmethod
    def _parse_list(cls, value: object) -> list[str]:
        return _split(value)

    @field_validator(
        "port", "webhook_secret", "telegram_bot_token", "retention_days", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("twilio_auth_token", "sms_number_key", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check_sms(self) -> Settings:
        if self.sms_provider != "twilio":
            return self
        missing = [
            name
            for name, value in (
                ("TWILIO_ACCOUNT_SID", self.twilio_account_sid),
                ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
                ("SMS_FROM", self.sms_from),
                ("SMS_NUMBER_KEY", self.sms_number_key),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"SMS_PROVIDER=twilio needs {', '.join(missing)}")
        if not re.fullmatch(r"\+[1-9]\d{6,14}", self.sms_from):
            raise ValueError(
                f"SMS_FROM must be a number such as +447700900123, got {self.sms_from!r}"
            )
        key = self.sms_number_key
        if key is not None and len(key.get_secret_value()) < 16:
            raise ValueError("SMS_NUMBER_KEY must be at least 16 characters of random text")
        return self

    @property
    def sms_on(self) -> bool:
        """Whether members can take part by SMS."""
        return self.sms_provider != ""

    @field_validator("webhook_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not SECRET_TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError("WEBHOOK_SECRET must be 1 to 256 letters, digits, _ or -")
        return value

    @field_validator("webhook_listen", "web_listen")
    @classmethod
    def _check_listen(cls, value: str, info: ValidationInfo) -> str:
        try:
            return str(ip_address(value.strip()))
        except ValueError as exc:
            name = str(info.field_name).upper()
            raise ValueError(
                f"{name} must be an IP address such as 127.0.0.1, got {value!r}"
            ) from exc

    @field_validator("web_url")
    @classmethod
    def _check_web_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"WEB_URL must start with https:// or http://, got {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"TIMEZONE {value!r} is not a known time zone") from exc
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _check_quiet(cls, value: str) -> str:
        parse_quiet_hours(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def quiet(self) -> QuietHours | None:
        return parse_quiet_hours(self.quiet_hours)

    @property
    def paid_broadcasts(self) -> bool:
        """Whether the outbox sends with allow_paid_broadcast (BROADCAST_RATE above 30)."""
        return self.broadcast_rate > FREE_RATE

    @property
    def workbench_url(self) -> str:
        """Where sign-in links point: WEB_URL, or the workbench on this computer."""
        return self.web_url or f"http://127.0.0.1:{self.web_port}"

    @property
    def workbench_https(self) -> bool:
        """Whether staff reach the workbench over https (its cookie is then Secure)."""
        return self.workbench_url.startswith("https://")

    @property
    def webhook_mode(self) -> bool:
        return bool(self.webhook_url)

    def one_port_problem(self) -> str | None:
        """In webhook mode `cocreate run` serves the webhook and the workbench as one app on
        WEB_LISTEN:WEB_PORT: a PORT or WEBHOOK_LISTEN set to something else is a mistake."""
        if not self.webhook_mode:
            return None
        if self.port is not None and self.port != self.web_port:
            return (
                f"PORT is {self.port} but WEB_PORT is {self.web_port}: in webhook mode the "
                "webhook and the workbench share one port, WEB_PORT; leave PORT out"
            )
        given = "webhook_listen" in self.model_fields_set
        if given and self.webhook_listen != self.web_listen:
            return (
                f"WEBHOOK_LISTEN is {self.webhook_listen} but WEB_LISTEN is {self.web_listen}: "
                "in webhook mode the webhook and the workbench share one address, WEB_LISTEN; "
                "leave WEBHOOK_LISTEN out"
            )
        return None

    def token(self) -> str:
        """The bot token; raises MissingToken when none is set."""
        if self.telegram_bot_token is None or not self.telegram_bot_token.get_secret_value():
            raise MissingToken()
        return self.telegram_bot_token.get_secret_value()

    def webhook_token(self) -> str | None:
        """The webhook's secret token (None when polling); raises MissingWebhookSecret when
        webhook mode has none, since anyone could then post forged updates."""
        if not self.webhook_mode:
            return None
        if self.webhook_secret is None or not self.webhook_secret.get_secret_value():
            raise MissingWebhookSecret()
        return self.webhook_secret.get_secret_value()


class MissingToken(RuntimeError):
    """No TELEGRAM_BOT_TOKEN was given."""

    def __init__(self) -> None:
        super().__init__(
            "No bot token: in Telegram, message @BotFather, send /newbot, and put the token "
            "it gives you in TELEGRAM_BOT_TOKEN (in the environment or in .env)."
        )


class MissingWebhookSecret(RuntimeError):
    """WEBHOOK_URL was given without WEBHOOK_SECRET."""

    def __init__(self) -> None:
        super().__init__(
            "Webhook mode needs a secret: set WEBHOOK_SECRET (1 to 256 letters, digits, _ or -) "
            "so that only Telegram can send the bot updates, or leave WEBHOOK_URL empty to poll."
        )


def parse_quiet_hours(value: str) -> QuietHours | None:
    """Parses "21:00-08:00" into (start, end); empty means no quiet hours."""
    value = value.strip()
    if not value:
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in value.split("-"))
    except ValueError as exc:
        raise ValueError(f"QUIET_HOURS must look like 21:00-08:00, got {value!r}") from exc
    return start, end
