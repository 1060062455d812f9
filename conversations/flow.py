"""What a sharing flow is: the parts it asks for, and the steps every flow has after them."""

from __future__ import annotations

from dataclasses import dataclass

# Steps every story and idea has once its parts are given; `CANCEL` is stored as
# "cancel>{step}" so that "No, keep going" returns to where the member was.
VOLUNTEER = "volunteer"
REVIEW = "review"
CHANGE = "change"
CANCEL = "cancel"


@dataclass(frozen=True)
class Flow:
    """One kind of sharing: what is stored, its catalogue prefix, and what it asks."""

    kind: str  # submissions.kind
    noun: str  # catalogue prefix, e.g. "story" → story.what_happened
    parts: tuple[str, ...]
    asks_volunteer: bool

    def order(self) -> list[str]:
        """The steps in the order they are first asked."""
        return [*self.parts, *([VOLUNTEER] if self.asks_volunteer else []), REVIEW]
