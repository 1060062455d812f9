"""Share your story: what happened; how it affected you; what would have made it better.

The engine is conversations/sharing.py; this module names its steps; storage/kinds.py
says what a story asks.
"""

from __future__ import annotations

from enum import StrEnum

from conversations import flow
from storage import kinds


class Step(StrEnum):
    """Where a member is in a story (stored in submissions.step)."""

    WHAT_HAPPENED = "what_happened"
    HOW_IT_AFFECTED = "how_it_affected"
    WHAT_WOULD_HELP = "what_would_help"
    REVIEW = flow.REVIEW
    CHANGE = flow.CHANGE
    CANCEL = flow.CANCEL


# What it asks is defined once, in the list of kinds (storage/kinds.py).
FLOW = kinds.STORY
