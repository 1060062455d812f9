"""Logging set-up: levels, a filter that keeps secrets out of every line, and the libraries'
loggers kept above the level where they write what members said.

At DEBUG, python-telegram-bot logs every update and every message it sends, and aiosqlite
every SQL statement with its values: members' words, names and Telegram ids. So those
loggers never go below INFO, whatever LOG_LEVEL says; cocreate's own lines never hold them.
"""

from __future__ import annotations

import logging

from telegram.error import RetryAfter

logger = logging.getLogger(__name__)

# The lowest level each library may log at. httpx logs every request URL at INFO, and the
# URL holds the token; apscheduler logs every run of the scheduler's one-minute tick at INFO.
LIBRARIES = {
    "telegram": logging.INFO,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "aiosqlite": logging.INFO,
    "apscheduler": logging.WARNING,
    "aiohttp": logging.INFO,
    "tornado": logging.INFO,
}
# ptb's rate limiter reports each 429 as an ERROR with a traceback before it re-raises it to
# the code that handles it (bot/delivery.py, or on_error in bot/app.py), which logs it itself.
RATE_LIMITER = "telegram.ext.AIORateLimiter"


class RedactSecrets(logging.Filter):
    """Replaces each secret in a record's final text with "[hidden]"."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = message
        for secret in self._secrets:
            hidden = hidden.replace(secret, "[hidden]")
        if hidden != message:
            record.msg, record.args = hidden, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            for secret in self._secrets:
                record.exc_text = record.exc_text.replace(secret, "[hidden]")
        return True


class HandledRetryAfter(logging.Filter):
    """Drops ptb's report of a 429 it passes on: whoever handles it logs it, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], RetryAfter))


def configure(level: str, secrets: list[str]) -> None:
    """Sends logs to stderr at `level`, with secrets hidden and the libraries tamed."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    tame_libraries(level)
    logger.debug("Logging at DEBUG; the libraries' loggers stay at INFO or above")


def tame_libraries(level: str) -> None:
    """Keeps each library's logger at its floor (or `level`, if higher), and drops ptb's
    duplicate report of a handled 429."""
    wanted = logging.getLevelNamesMapping()[level.upper()]
    for name, floor in LIBRARIES.items():
        logging.getLogger(name).setLevel(max(floor, wanted))
    limiter = logging.getLogger(RATE_LIMITER)
    if not any(isinstance(f, HandledRetryAfter) for f in limiter.filters):
        limiter.addFilter(HandledRetryAfter())
