"""A one-minute soak (tests/soak_driver.py): members doing random things while a facilitator
asks and broadcasts and the bot is SIGKILLed every 20 seconds; nothing may go wrong.

A failure prints its seed: SOAK_SEED=<seed> replays the same choices.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.soak_driver import SoakSettings, check, figures, soak, transcripts

pytestmark = pytest.mark.process


@pytest.mark.long(order=2)
async def test_a_minute_of_random_members_with_kills_leaves_nothing_wrong(tmp_path: Path) -> None:
    seed = int(os.environ.get("SOAK_SEED") or random.randrange(1_000_000))
    print(f"soak seed {seed} (replay: SOAK_SEED={seed})")
    settings = SoakSettings(
        members=int(os.environ.get("SOAK_MEMBERS", "40")),
        duration=60.0,
        kill_every=20.0,
        seed=seed,
        staff_every=10.0,
        reply_timeout=30.0,
        # Telegram's overall rate (30 a second) would let little happen in a minute.
        env={"BROADCAST_RATE": "1000"},
    )
    outcome = await soak(tmp_path, settings)
    findings = check(outcome)
    print(figures(outcome, findings))
    if findings.problems:
        print("\n".join(findings.problems))
        print(transcripts(outcome, findings))
    assert not findings.problems, f"seed {seed}:\n" + "\n".join(findings.problems)
