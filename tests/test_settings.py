"""Settings come from the environment, then .env, then defaults, with the names in the README."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import MissingToken, MissingWebhookSecret, Settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_those_of_the_design(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith(("TELEGRAM_", "DATABASE_", "ORGANISER", "QUIET", "WEBHOOK", "ABOUT_")):
            monkeypatch.delenv(name)
    s = Settings(_env_file=None)
    assert s.telegram_api_base_url == "https://api.telegram.org/bot"
    assert s.telegram_file_base_url == "https://api.telegram.org/file/bot"
    assert s.database_url == "sqlite:///data/cocreate.db"
    assert s.media_dir == Path("data/media")
    assert s.organiser_ids == []
    assert s.timezone == "Europe/London"
    assert s.quiet is not None and str(s.quiet[0]) == "21:00:00"
    assert not s.webhook_mode
    assert s.webhook_listen == "127.0.0.1"  # behind a reverse proxy, not open to the world
    assert s.log_level == "INFO"
    with pytest.raises(MissingToken, match="@BotFather"):
        s.token()


def test_environment_beats_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "TELEGRAM_BOT_TOKEN=123:from-dotenv\nORGANISER_IDS=1, 2,3\nQUIET_HOURS=\n"
        "TIMEZONE=Europe/Paris\nABOUT_AREAS=North, South\n"
    )
    monkeypatch.setenv("TIMEZONE", "UTC")
    s = Settings(_env_file=env_file)
    assert s.token() == "123:from-dotenv"
    assert s.organiser_ids == [1, 2, 3]
    assert s.quiet is None
    assert s.timezone == "UTC"
    assert s.about_areas == ["North", "South"]
    assert "from-dotenv" not in repr(s)  # secrets hide themselves


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ORGANISER_IDS", "12,abc"),
        ("TIMEZONE", "Mars/Olympus"),
        ("QUIET_HOURS", "late"),
        ("LOG_LEVEL", "LOUD"),
        ("WEBHOOK_LISTEN", "everywhere"),
        ("WEBHOOK_SECRET", "has spaces and / slashes"),
        ("WEBHOOK_SECRET", "x" * 257),
        ("CHAT_INTERVAL", "0"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def _cocreate(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_webhook_mode_needs_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("WEBHOOK"):
            monkeypatch.delenv(name)
    assert Settings(_env_file=None).webhook_token() is None  # polling needs none
    hook = "https://bot.example.org/telegram"
    with pytest.raises(MissingWebhookSecret, match="WEBHOOK_SECRET"):
        Settings(_env_file=None, webhook_url=hook).webhook_token()
    with pytest.raises(MissingWebhookSecret):
        Settings(_env_file=None, webhook_url=hook, webhook_secret="  ").webhook_token()
    s = Settings(_env_file=None, webhook_url=hook, webhook_secret="Ab_9-z", webhook_listen="::")
    assert s.webhook_token() == "Ab_9-z" and s.webhook_listen == "::"


def test_run_in_webhook_mode_without_a_secret_refuses_in_one_sentence(tmp_path: Path) -> None:
    result = _cocreate(
        ["run"],
        tmp_path,
        TELEGRAM_BOT_TOKEN="123:abc",
        TELEGRAM_API_BASE_URL="http://127.0.0.1:9/bot",  # never reached
        WEBHOOK_URL="https://bot.example.org/telegram",
        WEBHOOK_SECRET="",
    )
    assert result.returncode == 2
    assert result.stderr.startswith("cocreate: Webhook mode needs a secret")
    assert len(result.stderr.strip().splitlines()) == 1


def test_run_without_token_says_how_to_get_one(tmp_path: Path) -> None:
    result = _cocreate(["run"], tmp_path)
    assert result.returncode != 0
    assert "@BotFather" in result.stderr and "TELEGRAM_BOT_TOKEN" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_bad_setting_is_named_in_one_sentence(tmp_path: Path) -> None:
    result = _cocreate(["run"], tmp_path, TIMEZONE="Nowhere/Land", TELEGRAM_BOT_TOKEN="1:x")
    assert result.returncode == 2
    assert result.stderr.startswith("cocreate: TIMEZONE is not valid")


def test_env_example_lists_every_setting_and_loads_as_is() -> None:
    example = (ROOT / ".env.example").read_text()
    for field in Settings.model_fields:
        assert f"{field.upper()}=" in example, field
    s = Settings(_env_file=ROOT / ".env.example")
    assert s.port is None and s.webhook_secret is None and s.telegram_bot_token is None
