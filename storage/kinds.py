"""The one list of sharing kinds: what members can share (a story, an idea …) and what each asks.

A kind is defined here once. Everything else reads this list: the flow that asks the parts
(conversations/sharing.py), the menu, /mydata, the export's part columns, retention's counts,
safeguarding's "Read it" label, and the check on submissions.kind (the table has no CHECK on
it: `check_kind` is the check). Adding a kind: one `Kind` below, plus its catalogue texts in
every language (`catalogue_keys` lists them; tests/test_kinds.py checks they are there).
See README, "Adding a flow".

Data only: storage imports this, so it must not import conversations or ptb.
"""

from __future__ import annotations

from dataclasses import dataclass

# Steps every kind has once its parts are given; `CANCEL` is stored as "cancel>{step}" so that
# "No, keep going" returns to where the member was.
VOLUNTEER = "volunteer"
REVIEW = "review"
CHANGE = "change"
CANCEL = "cancel"
STEPS = (VOLUNTEER, REVIEW, CHANGE, CANCEL)


@dataclass(frozen=True)
class Kind:
    """One kind of sharing: what is stored, its catalogue prefix, and what it asks."""

    key: str  # submissions.kind, and the key of its export rows' "kind" column
    noun: str  # catalogue prefix ("story" → story.what_happened) and its menu option's key
    plural: str  # its key in /mydata's file and in retention's counts ("stories")
    parts: tuple[str, ...]  # the parts it asks, in order; each is an export column too
    asks_volunteer: bool  # asks "would you help make it happen?" after the parts

    @property
    def kind(self) -> str:
        """The key (the name conversations/sharing.py has always used)."""
        return self.key

    def order(self) -> list[str]:
        """The steps in the order they are first asked."""
        return [*self.parts, *([VOLUNTEER] if self.asks_volunteer else []), REVIEW]

    def catalogue_keys(self) -> list[str]:
        """The catalogue texts this kind needs, in every language."""
        own = ("review", "saved", "cancel_ask", "resume", "another", "mydata")
        return [
            f"menu.{self.noun}",
            *(f"{self.noun}.{part}" for part in self.parts),
            *(f"{self.noun}.label.{part}" for part in self.parts),
            *(f"{self.noun}.{text}" for text in own),
            f"sharing.paused.{self.key}",
        ]


STORY = Kind(
    key="experience",
    noun="story",
    plural="stories",
    parts=("what_happened", "how_it_affected", "what_would_help"),
    asks_volunteer=False,
)
IDEA = Kind(
    key="idea",
    noun="idea",
    plural="ideas",
    parts=("idea", "who_it_helps"),
    asks_volunteer=True,
)

# Every kind, in menu order. Add new kinds at the end: the export adds their parts' columns
# after the columns it already has (README, "Exports": columns are a contract).
KINDS: tuple[Kind, ...] = (STORY, IDEA)


def all_kinds() -> tuple[Kind, ...]:
    """Every kind, read when asked (so a test may add one)."""
    return KINDS


def find(key: str) -> Kind | None:
    """The kind stored as `key` in submissions.kind, if it is in the list."""
    return next((kind for kind in all_kinds() if kind.key == key), None)


def by_key(key: str) -> Kind:
    """The kind stored as `key` in submissions.kind; KeyError if there is none."""
    kind = find(key)
    if kind is None:
        raise KeyError(f"no sharing kind {key!r}")
    return kind


def by_noun(noun: str) -> Kind | None:
    """The kind whose catalogue prefix (and menu option) is `noun`, if any."""
    return next((kind for kind in all_kinds() if kind.noun == noun), None)


def check_kind(key: str) -> str:
    """`key` if it is a kind in the list (what the table's CHECK used to say); else ValueError."""
    if find(key) is None:
        raise ValueError(f"{key!r} is not a sharing kind")
    return key


def part_names() -> tuple[str, ...]:
    """Every kind's parts, in list order, each once (the export's part columns)."""
    return tuple(dict.fromkeys(part for kind in all_kinds() for part in kind.parts))
