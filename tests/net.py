"""Network helpers for the tests."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
