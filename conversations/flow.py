"""What a sharing flow is: a kind from the one list (storage/kinds.py), and the steps every
flow has after its parts."""

from __future__ import annotations

from storage.kinds import CANCEL, CHANGE, REVIEW, VOLUNTEER, Kind

# A sharing flow is a kind of sharing: what is stored, its catalogue prefix, what it asks.
Flow = Kind

__all__ = ["CANCEL", "CHANGE", "REVIEW", "VOLUNTEER", "Flow"]
