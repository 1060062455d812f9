"""The README and docs/ stand on their own: every link resolves inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.catalogue import t
from conversations.commands import MEMBER_COMMANDS, ORGANISER_COMMANDS

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\s]+)`")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def inside(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves_to_a_file_in_the_repository(doc: Path) -> None:
    for target in LINK.findall(FENCE.sub("", doc.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto: …
        name, _, anchor = target.partition("#")
        linked = (doc.parent / name).resolve() if name else doc
        assert inside(linked), f"{doc.name} links outside the repository: {target}"
        assert linked.is_file(), f"{doc.name} links to a missing file: {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{doc.name}: no heading for {target}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_path_in_the_text_points_outside_the_repository(doc: Path) -> None:
    for span in CODE_SPAN.findall(doc.read_text()):
        if "/" in span and re.fullmatch(r"[\w.\-/]+", span) and not span.startswith("/"):
            assert inside(ROOT / span), f"{doc.name} names a path outside the repository: {span}"


def test_the_readme_links_the_architecture() -> None:
    assert "(docs/architecture.md)" in (ROOT / "README.md").read_text()


def test_the_readme_names_every_telegram_command() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [c for c in (*MEMBER_COMMANDS, *ORGANISER_COMMANDS) if f"`/{c}`" not in readme]
    assert missing == []


def test_the_readme_says_what_members_and_staff_do_with_ideas() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.partition("## Ideas, voting and")[2].partition("\n## ")[0]
    assert section, "no section on ideas, voting and what happened to them"
    for named in ("/ideas", "/myvotes", "/updates", t("en", "menu.vote"), "/delete"):
        assert named in section, named
    for label in ("ideas.desk.wait", "ideas.desk.add", "ideas.desk.agree", "ideas.desk.status"):
        assert t("en", label) in section, label
