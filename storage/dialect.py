"""SQL the two databases spell differently, in one place (storage/db.py: `Database.dialect`).

Repositories write SQL both accept wherever they can (`ON CONFLICT DO NOTHING`, `RETURNING`,
`COALESCE`, `CAST(? AS INTEGER)`, CASE instead of two-argument max/min), and take a fragment
from here where they cannot.
"""

from __future__ import annotations

from storage.db import Database

POSTGRESQL = "postgresql"


def ids_from_json(db: Database) -> str:
    """A subquery of the whole numbers in a JSON list given as one parameter (`?`), for
    `x IN (…)`: SQLite's json_each, PostgreSQL's json_array_elements_text."""
    if db.dialect == POSTGRESQL:
        return "(SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST(? AS json)) AS j)"
    return "(SELECT CAST(value AS INTEGER) FROM json_each(?))"


def json_list(db: Database, alias: str) -> str:
    """A JSON list given as one parameter (`?`) as a table `alias` with one column, `value`
    (text in PostgreSQL: cast it where a number is wanted)."""
    if db.dialect == POSTGRESQL:
        return f"json_array_elements_text(CAST(? AS json)) AS {alias}(value)"
    return f"json_each(?) AS {alias}"


def text_agg(db: Database, expression: str, separator: str) -> str:
    """Joins a group's texts with `separator` (an SQL string literal, e.g. "'; '")."""
    if db.dialect == POSTGRESQL:
        return f"string_agg({expression}, {separator})"
    return f"group_concat({expression}, {separator})"


# ---- group C (search, themes, workbench, exports)


def ordered_text_agg(db: Database, column: str, separator: str, rest: str, order: str) -> str:
    """A subquery joining `column` of the rows `rest` (FROM … WHERE …) finds, in `order`,
    with `separator` (an SQL string literal); NULL when there is none. SQLite before 3.44
    takes no ORDER BY inside group_concat: it joins the rows of an ordered subquery."""
    if db.dialect == POSTGRESQL:
        return f"(SELECT string_agg({column}, {separator} ORDER BY {order}) {rest})"
    return (
        f"(SELECT group_concat(v, {separator}) FROM"
        f" (SELECT {column} AS v {rest} ORDER BY {order}) AS joined)"
    )
