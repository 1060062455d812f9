"""Every step-by-step flow in conversations/ has a state diagram (Mermaid `stateDiagram-v2`)
beside it, and the diagram names every state the code declares: a state added, renamed or
dropped in the code fails here until its diagram follows.

What a module declares, read from its syntax tree (nothing is imported or run):

- states: the members of an Enum named `State` or `Step` (/ask, /broadcast, /export,
  joining; the steps of a story and of an idea); the name of a `PendingQuestion(...)` made
  with a literal name (/language "lang", /delete "erase"; an f-string such as sharing's
  f"more_{noun}" declares the prefix "more_"); and the one-step questions a module waits
  at with `await_answer(context, NAME)` (reviewing's "reply" and "answerback"). Each must
  be a state of the diagram: a box, not only words in a label or a comment.
- kept keys: user_data keys kept between messages under an UPPER_CASE constant
  (`context.data[DRAFT] = ...`, `context.data.get(ANSWERING)`). They say where a flow's state
  lives, so the diagram must name them (in a note or a label), not draw them.

A module that declares any of these is a flow. Its diagram is the `.mmd` of the same name
beside it, unless DRAWN_IN names the flow whose diagram it belongs to. In a diagram, boxes
written in capitals are the code's own names; other boxes (Menu, Saved …) are written in
Capitalised words or lower case, so a box in capitals that the code no longer declares fails.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FLOWS = Path(__file__).resolve().parents[1] / "conversations"
# Modules that only declare the steps of a flow whose engine, and diagram, is elsewhere.
DRAWN_IN = {
    "stories": "sharing",  # the steps of a story; conversations/sharing.py runs them
    "ideas": "sharing",  # the steps of an idea
    "replies": "answering",  # the menu moves PROMPT, ANSWERING, LISTED: answering reads them
}
# The flows this test must find, so a change of plumbing cannot make it find none.
KNOWN = {
    "answering",
    "asking",
    "broadcasting",
    "exporting",
    "ideas",
    "language",
    "my_data",
    "onboarding",
    "replies",
    "reviewing",
    "sharing",
    "stories",
}
ENUMS = {"Enum", "IntEnum", "StrEnum"}


@dataclass
class Declared:
    """What one module declares: states (with prefixes from f-strings) and kept keys."""

    states: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.states or self.prefixes or self.keys)


def _literal_head(node: ast.expr) -> tuple[str, bool] | None:
    """A string's text, or an f-string's text before its first {…}; and whether it was all
    of it. None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, True
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value, False
    return None


def _user_data(node: ast.expr) -> bool:
    """`context.data` (the conversations' user_data)."""
    return isinstance(node, ast.Attribute) and node.attr == "data"


@functools.cache
def declared(source: str) -> Declared:
    """What a module's source declares (see the module docstring)."""
    found = Declared()
    tree = ast.parse(source)
    # Module-level string constants, for one-step questions named by a constant.
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    for node in ast.walk(tree):
        # await_answer(context, NAME): the session waits at a one-step question.
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) == "await_answer"
            and len(node.args) == 2
        ):
            question = node.args[1]
            if isinstance(question, ast.Name) and question.id in constants:
                found.states.add(constants[question.id])
            elif isinstance(question, ast.Constant) and isinstance(question.value, str):
                found.states.add(question.value)
        if isinstance(node, ast.ClassDef) and node.name in ("State", "Step"):
            bases = {
                b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
            }
            if bases & ENUMS:
                for item in node.body:
                    if isinstance(item, ast.Assign):
                        found.states |= {t.id for t in item.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Call) and node.args:
            called = node.func
            name = called.id if isinstance(called, ast.Name) else getattr(called, "attr", "")
            head = _literal_head(node.args[0])
            if name == "PendingQuestion" and head is not None:
                (found.states if head[1] else found.prefixes).add(head[0])
            # context.data.get(KEY) / .pop(KEY) / .setdefault(KEY)
            if (
                isinstance(called, ast.Attribute)
                and _user_data(called.value)
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id.isupper()
            ):
                found.keys.add(node.args[0].id)
        elif isinstance(node, ast.Subscript) and _user_data(node.value):
            key = node.slice
            if isinstance(key, ast.Name) and key.id.isupper():
                found.keys.add(key.id)
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if (
                    isinstance(target, ast.Subscript)
                    and _user_data(target.value)
                    and isinstance(target.slice, ast.Constant)
                    and target.slice.value == "awaiting"
                    and (head := _literal_head(node.value)) is not None
                ):
                    name, whole = head
                    if ":" in name or whole:
                        found.states.add(name.partition(":")[0])
                    else:
                        found.prefixes.add(name)
    return found


def modules() -> dict[str, Declared]:
    """Every module of conversations/ that declares a flow, by name."""
    found = {p.stem: declared(p.read_text("utf-8")) for p in sorted(FLOWS.glob("*.py"))}
    return {name: d for name, d in found.items() if d}


# Parsed once, as the tests are collected, before any test starts a thread: CPython 3.11's
# parser can fail with "AST constructor recursion depth mismatch" while other threads run
# (python/cpython#106905), as the database's thread of an earlier test may.
modules()


@dataclass
class Diagram:
    states: set[str]  # the boxes
    text: str  # everything but comments: labels, notes, boxes


_ID = r"(\[\*\]|[A-Za-z_][\w]*)"
_TRANSITION = re.compile(rf"^{_ID}\s*-->\s*{_ID}\s*(?::.*)?$")
_STATE = re.compile(r'^state\s+(?:"[^"]*"\s+as\s+)?([A-Za-z_]\w*)')
_DESCRIBED = re.compile(r"^([A-Za-z_]\w*)\s*:")
_NOTE = re.compile(r"^note\s+(?:left|right)\s+of\s+([A-Za-z_]\w*)(\s*:.*)?$")


def read_diagram(text: str) -> Diagram:
    """The boxes of a Mermaid state diagram, and its words without the %% comments."""
    states: set[str] = set()
    kept: list[str] = []
    in_note = False
    lines = [line.split("%%", 1)[0].strip() for line in text.splitlines()]
    assert "stateDiagram-v2" in lines, "not a Mermaid stateDiagram-v2"
    for line in lines:
        # Mermaid ends a statement at ";": the rest of a label would become boxes.
        assert ";" not in line, f"a ; outside a %% comment cuts the line short: {line}"
        # and reads <…> as HTML, so "back:<reply id>" would show as "back:".
        assert not re.search(r"<\w", line.replace("<<", "")), f"<…> is hidden as HTML: {line}"
        kept.append(line)
        if in_note:
            in_note = line != "end note"
            continue
        if note := _NOTE.match(line):
            states.add(note[1])
            in_note = not note[2]
        elif transition := _TRANSITION.match(line):
            states |= {transition[1], transition[2]}
        elif state := _STATE.match(line):
            states.add(state[1])
        elif described := _DESCRIBED.match(line):
            states.add(described[1])
    states.discard("[*]")
    return Diagram(states, "\n".join(kept))


def diagram_of(module: str) -> Path:
    return FLOWS / f"{DRAWN_IN.get(module, module)}.mmd"


def test_the_reader_finds_every_known_flow() -> None:
    found = modules()
    assert KNOWN <= set(found), f"no longer found as flows: {sorted(KNOWN - set(found))}"
    assert {"TEXT", "KIND", "PREVIEW", "CHANGE"} <= found["asking"].states
    assert found["asking"].keys == {"DRAFT"}
    assert found["reviewing"].states == {"reply", "answerback"}
    assert found["my_data"].states == {"erase"}
    assert found["sharing"].prefixes == {"more_"}
    assert found["answering"].keys == {"ANSWERING", "LISTED", "PROMPT"}


def test_a_diagrams_boxes_are_read_and_its_comments_are_not() -> None:
    diagram = read_diagram(
        "%% KIND is only in a comment\n"
        "stateDiagram-v2\n"
        "    [*] --> TEXT: /ask\n"
        "    TEXT --> Menu: words with a KIND in them\n"
        '    state "Writing it" as Writing {\n'
        "    }\n"
        "    PREVIEW: the preview\n"
        "    note right of CHANGE\n"
        "        ZONE is in a note\n"
        "    end note\n"
    )
    assert diagram.states == {"TEXT", "Menu", "Writing", "PREVIEW", "CHANGE"}
    assert "ZONE" in diagram.text and "KIND is only" not in diagram.text


@pytest.mark.parametrize("module", sorted(modules()))
def test_a_flow_has_a_diagram_naming_every_state_it_declares(module: str) -> None:
    path = diagram_of(module)
    assert path.exists(), f"conversations/{module}.py is a flow: draw it in {path.name}"
    diagram = read_diagram(path.read_text("utf-8"))
    wanted = modules()[module]
    missing = sorted(wanted.states - diagram.states)
    missing += [
        f"{p}…" for p in sorted(wanted.prefixes) if not any(s.startswith(p) for s in diagram.states)
    ]
    assert not missing, f"{path.name} has no box for {missing} (declared in {module}.py)"
    unnamed = sorted(k for k in wanted.keys if not re.search(rf"\b{k}\b", diagram.text))
    assert not unnamed, f"{path.name} does not say where the state is kept: {unnamed}"


@pytest.mark.parametrize("path", sorted(FLOWS.glob("*.mmd")), ids=lambda p: p.name)
def test_a_diagram_draws_a_flow_and_no_state_the_code_lost(path: Path) -> None:
    drawn_here = [m for m in modules() if diagram_of(m) == path]
    assert drawn_here, f"{path.name} draws no flow that conversations/ declares"
    declared_here = set().union(*(modules()[m].states for m in drawn_here))
    boxes = read_diagram(path.read_text("utf-8")).states
    lost = sorted(s for s in boxes if s.isupper() and s not in declared_here)
    assert not lost, f"{path.name} draws {lost}, which the code no longer declares"
