"""The handbook holds together: every relative link (and its #anchor) in README.md and docs/ resolves, every command
of the command line is in the README's command table and has a section of its own in docs/, and the README stays a
landing page (under 300 lines)."""
from __future__ import annotations

import argparse
import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
# [text](target) and ![alt](target); a target ends at the first blank or ")"; code spans and fenced blocks are
# removed first, so `[x](y)` in an example is no link
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose(text: str) -> str:
    """The text without fenced code blocks and code spans (which hold no links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _headings(text: str) -> list[str]:
    """Heading lines outside fenced code blocks, as written (markdown kept)."""
    return [match.group(2) for match in map(HEADING.match, re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
                                            .splitlines()) if match]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text (links reduced to their text, no code or emphasis marks),
    lower case, every character that is no letter, mark, digit, connector, blank or hyphen dropped, blanks made
    hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("*", "")
    kept = "".join(ch for ch in text.lower()
                   if ch in " -" or unicodedata.category(ch)[0] in "LMN" or unicodedata.category(ch) == "Pc")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a page: each heading's slug, and a repeated slug numbered as GitHub numbers it (-1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in _headings(path.read_text(encoding="utf-8")):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def broken_links(page: Path) -> list[str]:
    """The relative links of a page whose file or #anchor does not exist."""
    broken = []
    for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not the handbook's to check
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading")
    return broken


def commands() -> list[str]:
    """Every command of the command line, nested ones as `year init`, from the parser itself. The parser builder
    is found by name wherever the command line lives (a module or a package `allocation.cli`)."""
    import allocation.cli as cli
    build = next(getattr(cli, name) for name in ("build_parser", "make_parser", "parser") if hasattr(cli, name))
    names: list[str] = []

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    names.append(f"{prefix}{name}")
                    walk(sub, f"{prefix}{name} ")

    walk(build(), "")
    return names


def command_table() -> str:
    """The rows of the README's command table (the table under its heading `Commands`)."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Commands")
    section = text[start:text.index("\n## ", start + 1)]
    return "\n".join(line for line in section.splitlines() if line.startswith("|"))


def test_slugs_are_githubs():
    # GitHub's anchors, written by hand from headings of this handbook
    assert slug("Set-up: two commands") == "set-up-two-commands"
    assert slug("`allocation check RULES.yaml... | DIR`") == "allocation-check-rulesyaml--dir"
    assert slug("Schlüssel der Regeldatei") == "schlüssel-der-regeldatei"
    assert slug("Change notices (`--previous OLD_OUTPUT.xlsx`)") == "change-notices---previous-old_outputxlsx"
    assert slug("[Rule files](x.md) and more") == "rule-files-and-more"


def test_the_link_check_finds_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## A section\n", encoding="utf-8")
    page.write_text("[ok](other.md#a-section) [gone](missing.md) [bad anchor](other.md#no-such) "
                    "[self](#page) `[code](missing.md)`\n\n# Page\n", encoding="utf-8")
    assert broken_links(page) == ["missing.md: no such file", "other.md#no-such: no such heading"]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_every_page_of_the_handbook_is_linked_from_the_readme_or_the_index():
    linked = set()
    for page in (README, ROOT / "docs" / "README.md"):
        for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
            linked.add((page.parent / target.partition("#")[0]).resolve())
    assert [str(page.relative_to(ROOT)) for page in PAGES[1:] if page.resolve() not in linked] == []


def test_every_command_is_in_the_readme_command_table():
    table = command_table()
    assert [name for name in commands() if f"allocation {name}" not in table] == []


def test_every_command_has_a_section_in_the_handbook():
    headings = [heading for page in PAGES[1:] for heading in _headings(page.read_text(encoding="utf-8"))]
    assert [name for name in commands() if not any(f"allocation {name}" in heading for heading in headings)] == []


def test_the_readme_is_a_landing_page():
    assert len(README.read_text(encoding="utf-8").splitlines()) < 300


def test_every_help_ends_with_the_handbook_page_that_has_the_command():
    """`allocation X --help` names a page of docs/ that exists and has a heading with `allocation X`; the page is
    the one the README's command table links for X."""
    from allocation.cli import build_parser

    parser = build_parser()
    assert parser.epilog == f"Handbuch: {ROOT / 'docs' / 'README.md'}"
    table = command_table()
    for name in commands():
        command = parser
        for word in name.split():
            command = next(a for a in command._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
        assert command.epilog.startswith("Handbuch: "), name
        page = Path(command.epilog.removeprefix("Handbuch: "))
        assert page.is_file() and page.is_relative_to(ROOT / "docs"), (name, page)
        assert any(f"allocation {name}" in h for h in _headings(page.read_text(encoding="utf-8"))), (name, page)
        top = name.split()[0]
        row = next(line for line in table.splitlines() if f"`allocation {top}" in line)
        assert f"(docs/{page.relative_to(ROOT / 'docs')}" in row, (name, row)


def test_the_command_index_names_every_option():
    """docs/README.md's index: the row of each command names every option its parser has (the long name)."""
    from allocation.cli import build_parser

    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    missing = []
    for name in commands():
        command = build_parser()
        for word in name.split():
            command = next(a for a in command._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
        if any(isinstance(a, argparse._SubParsersAction) for a in command._actions):
            continue  # `year`, `register`: their steps have the rows
        row = next((line for line in index.splitlines() if line.startswith("|") and f"`allocation {name} " in line), "")
        for action in command._actions:
            names = [o for o in action.option_strings if o not in ("-h", "--help")]
            if names and not any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", row) for o in names):
                missing.append(f"{name} {names[-1]}")
    assert missing == []
