"""The handbook's problem-code table (docs/operations/exit-codes.md, "Problem codes") and the package agree: every
problem code a module can emit is in the table, and the table lists no code that no module emits."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODES_PAGE = ROOT / "docs" / "operations" / "exit-codes.md"
# the shape of a problem code: a known group prefix, kebab-case
CODE = re.compile(r"(?:input|rules?|decision|control|manifest|register|output|explain|compare|trueup|inbox|web|serve"
                  r"|notices|year|benehmen|statements|usage|upward)(?:-[a-z0-9]+)+|double-burden|host-credited")
# code-shaped strings that are not problem codes, with the reason (besides log events, found structurally below)
NOT_PROBLEM_CODES: dict[str, str] = {}


def _package_codes() -> set[str]:
    """Every code-shaped string literal in allocation/, minus the values of log records' "event" keys
    (`{"event": "web-login", ...}` is a log line, not a problem)."""
    literals: set[str] = set()
    events: set[str] = set()
    for path in (ROOT / "allocation").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.fullmatch(node.value):
                literals.add(node.value)
            elif isinstance(node, ast.Dict):
                events |= {value.value for key, value in zip(node.keys, node.values)
                           if isinstance(key, ast.Constant) and key.value == "event"
                           and isinstance(value, ast.Constant)}
    return literals - events - set(NOT_PROBLEM_CODES)


def _table_codes() -> set[str]:
    page = CODES_PAGE.read_text(encoding="utf-8")
    start = page.index("\n## Problem codes\n")
    table = page[start:page.index("\n## ", start + 1)]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| group")]
    return {code for row in rows for code in re.findall(r"`([a-z][a-z0-9]*(?:-[a-z0-9]+)+)`", row)}


def test_the_collectors_see_known_codes_and_skip_log_events():
    package, table = _package_codes(), _table_codes()
    assert {"input-not-xlsx", "rule-yaml-alias", "trueup-not-final", "double-burden"} <= package & table
    assert "web-login-failed" not in package  # a log event of the web page, not a problem code


def test_every_emitted_problem_code_is_in_the_handbook_table():
    assert sorted(_package_codes() - _table_codes()) == []


def test_the_handbook_table_lists_no_code_the_package_never_emits():
    assert sorted(_table_codes() - _package_codes()) == []
