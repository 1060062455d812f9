"""Share an idea: the idea; who it would help; would you help make it happen (a volunteer).

The engine is conversations/sharing.py; this module names its steps; storage/kinds.py
says what an idea asks.
"""

from __future__ import annotations

from enum import StrEnum

from conversations import flow
from storage import kinds


class Step(StrEnum):
    """Where a member is in an idea (stored in submissions.step)."""

    IDEA = "idea"
    WHO_IT_HELPS = "who_it_helps"
    VOLUNTEER = flow.VOLUNTEER
    REVIEW = flow.REVIEW
    CHANGE = flow.CHANGE
    CANCEL = flow.CANCEL


# What it asks is defined once, in the list of kinds (storage/kinds.py).
FLOW = kinds.IDEA
