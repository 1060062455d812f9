"""Share an idea: the idea; who it would help; would you help make it happen (a volunteer).

The engine is conversations/sharing.py; this module says what an idea asks.
"""

from __future__ import annotations

from enum import StrEnum

from conversations import flow


class Step(StrEnum):
    """Where a member is in an idea (stored in submissions.step)."""

    IDEA = "idea"
    WHO_IT_HELPS = "who_it_helps"
    VOLUNTEER = flow.VOLUNTEER
    REVIEW = flow.REVIEW
    CHANGE = flow.CHANGE
    CANCEL = flow.CANCEL


FLOW = flow.Flow(
    kind="idea",
    noun="idea",
    parts=(Step.IDEA, Step.WHO_IT_HELPS),
    asks_volunteer=True,
)
