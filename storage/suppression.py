"""Small-number suppression: which counts to hide so that no one can be picked out.

The rule, as ONS and NHS statistics apply it:

1. Primary: any count from 1 to 9 is hidden.
2. Secondary: a hidden count must not be worked out by subtraction. Counts are tied
   together by sums (a total and the counts that add up to it: everyone who joined, and how
   many are active, stopped …). If exactly one count of a sum is hidden, the others give it
   away, so one more is hidden: the smallest shown part above 0 (the "next smallest"), or
   the total when no part is left to hide. This repeats until every sum has no hidden
   count, or at least two; a count hidden for one sum can make another sum need one more.

0 is shown as 0: it counts no one, so it picks no one out. Nor is a 0 hidden to cover
another count; the shown 0s simply take part in the subtraction, so a hidden count is never
0, and "*" always stands for someone.

Counts are named by keys of any kind; the caller says which sums tie them together. A count
that is not shown but can be worked out (such as "joined but did not take part", joined
minus took part) is a count of its own, in its sum, so that it is protected too.

Each sum is checked on its own, but tests/test_stats.py also solves all the sums of the
/stats page together, on random projects: no hidden count is fixed by them. What this does
not do: reason from ranges (a hidden count is from 1 to 9, or at least 10), or from counts
shown at another time. It is pure: no database, no text.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

THRESHOLD = 10  # counts from 1 to THRESHOLD - 1 are hidden

K = TypeVar("K", bound=Hashable)


def hidden_counts(
    counts: Mapping[K, int],
    sums: Iterable[tuple[K, Sequence[K]]] = (),
    *,
    threshold: int = THRESHOLD,
) -> frozenset[K]:
    """The keys of the counts to hide. `sums` lists (total, parts): counts[total] is the sum
    of counts[part] for its parts, as the reader can see."""
    ties = list(sums)
    hidden = {key for key, count in counts.items() if 0 < count < threshold}
    changed = True
    while changed:
        changed = False
        for total, parts in ties:
            if sum(key in hidden for key in (total, *parts)) != 1:
                continue
            shown = [(counts[p], i, p) for i, p in enumerate(parts) if p not in hidden]
            above_zero = [item for item in shown if item[0] > 0]
            # When the one hidden count is the total, the parts add up to it, so one is above 0.
            extra = min(above_zero)[2] if above_zero else total
            if extra not in hidden:  # (only when the sum does not add up)
                hidden.add(extra)
                changed = True
    return frozenset(hidden)
