"""Every case of the corpus of tampered artefacts (tests/artefact_cases.py, indexed in tests/corpus-artefacts/
README.md) through `allocation.cli.main`: the documented exit code, the problem code (and where the case says so,
the file, line or key path it names), no traceback, bounded time, and after a refusal nothing written: the case's
bench (the tampered artefact, the register, the folder of the output) is byte for byte what it was before.

Cases that could hang (a FIFO, a device) run in a subprocess with a timeout. The base runs are made once per
module; each case copies what it damages into its own folder.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from artefact_cases import BEGIN, CASES, END, INDEX, ROOT, Bases, Bench, Case, in_process, index_table, snapshot

TIMEOUT = 120  # seconds for a case in a subprocess (a hang ends there, as a failure)
BOUND = 60  # seconds any case may take in the process


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> Bases:
    return Bases(tmp_path_factory.mktemp("grundlagen"))


def _in_subprocess(argv: tuple[str, ...], register: Path) -> tuple[int, str, str]:
    environment = {**os.environ, "ALLOCATION_REGISTER": str(register)}
    done = subprocess.run([sys.executable, "-m", "allocation", *argv], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=ROOT, env=environment)
    return done.returncode, done.stdout, done.stderr


def _location(problem: dict) -> str:
    where = problem.get("location", {})
    text = where.get("file", "")
    if where.get("cell"):
        text += f" › {where['cell']}"
    elif where.get("line") is not None:
        text += f":{where['line']}" + (f":{where['col']}" if where.get("col") else "")
    return text


# verify's report fields (docs/auditor/verify.md, `allocation verify`): what it finds beyond a malformed manifest
REPORT_FIELDS = ("changed_files", "register", "replay_error", "manifest_differences", "differences",
                 "package_differences")


def _found(case: Case, out: str, err: str) -> list[str]:
    """The texts that carry the expected code: each such problem's place and message (for verify's findings the
    report field's entries, `field[code]` those naming the code), so that `where` is looked for only there."""
    if case.command.startswith("explain"):  # no --json: `Fehler [code] place: message` on stderr
        return [line for line in err.splitlines() if f"[{case.code}]" in line]
    report = json.loads(out)
    key, _, inner = case.code.partition("[")
    if key in REPORT_FIELDS:
        value = report.get(key) or []
        texts = [entry if isinstance(entry, str) else json.dumps(entry, ensure_ascii=False)
                 for entry in (value if isinstance(value, list) else [value])]
        return [text for text in texts if not inner or f"[{inner.rstrip(']')}]" in text]
    return [f"{_location(p)} {p['message']} {p.get('found') or ''}" for p in report.get("problems", [])
            if p["code"] == case.code]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_tampered_artefact_is_answered_as_documented(case: Case, bases, tmp_path, monkeypatch):
    if case.typst:
        pytest.importorskip("typst")
    bench = Bench(tmp_path / "bank", bases)
    made = case.prepare(bench)
    monkeypatch.setenv("ALLOCATION_REGISTER", str(bench.register))
    before, base = snapshot(bench.folder), snapshot(bases.folder)
    started = time.monotonic()
    code, out, err = _in_subprocess(made.argv, bench.register) if case.hangs else in_process(made.argv)
    took = time.monotonic() - started
    shown = f"exit {code}\n--- stdout\n{out[-3000:]}\n--- stderr\n{err[-3000:]}"
    assert "Traceback" not in err and "Interner Fehler" not in err, shown
    assert code == case.exit, shown
    assert took < BOUND, f"{took:.1f} s"
    assert snapshot(bases.folder) == base, "a command changed the base runs (outside its bench)"
    if case.exit == 0:
        made.check()
        return
    found = _found(case, out, err)
    assert found, f"no {case.code!r}: {shown}"
    if case.where is not None:
        assert any(case.where in text for text in found), f"{case.where!r} not named in {found}"
    assert snapshot(bench.folder) == before, "a refused command changed its bench"


def test_the_index_lists_every_case_as_the_table_in_code():
    """tests/corpus-artefacts/README.md holds the table `python tests/artefact_cases.py --write` renders."""
    text = INDEX.read_text(encoding="utf-8")
    assert text[text.index(BEGIN) + len(BEGIN):text.index(END)] == index_table()


def test_every_code_of_the_table_is_in_the_handbook():
    """The expected codes are the handbook's: every problem code a case expects is listed in the problem-code table of
    docs/operations/exit-codes.md, and every report field of verify is named in docs/auditor/verify.md."""
    codes_page = (ROOT / "docs" / "operations" / "exit-codes.md").read_text(encoding="utf-8")
    start = codes_page.index("\n## Problem codes\n")
    table = codes_page[start:codes_page.index("\n## ", start + 1)]
    verify_page = (ROOT / "docs" / "auditor" / "verify.md").read_text(encoding="utf-8")
    for case in CASES:
        if case.exit == 0:
            continue
        key, _, inner = case.code.partition("[")
        for code in (key, inner.rstrip("]")):
            if code:
                assert f"`{code}`" in (verify_page if code in REPORT_FIELDS else table), (case.id, code)
