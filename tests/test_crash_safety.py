"""kill -9 at every named step of the inbox leaves each input unprocessed or archived with a complete result.

The inbox process kills itself (SIGKILL, exactly like kill -9) at a step named by the test-only variable
ALLOCATION_TEST_KILL_AT. Afterwards: every input is either still in eingang/ with unchanged bytes, or in
archiv/ with its hash in the name and a complete result (status.json naming that hash, plus the result
workbook or the error report); ergebnis/ and fehler/ hold nothing partial. A second, normal run then leaves
eingang/ empty with exactly one result per input.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from allocation.ops.inbox import KILL_ENV, STEPS

CORPUS = Path(__file__).resolve().parent / "corpus"


def _setup(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    root, rules = tmp_path / "inbox", tmp_path / "rules"
    (root / "eingang").mkdir(parents=True)
    rules.mkdir()
    shutil.copy(CORPUS / "regeln.yaml", rules / "kreis-wesel.yaml")
    shutil.copy(CORPUS / "gueltig.xlsx", root / "eingang" / "gut.xlsx")
    shutil.copy(CORPUS / "ags-doppelt.xlsx", root / "eingang" / "schlecht.xlsx")
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "eingang").iterdir()}
    return root, rules, hashes


def _inbox(root: Path, rules: Path, kill_at: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    if kill_at:
        env[KILL_ENV] = kill_at
        # killed mid-write, the writer cannot remove its scratch rows: they stay in the test's own folder
        env["TMPDIR"] = str(root.parent / "scratch")
        (root.parent / "scratch").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "allocation", "inbox", str(root), "--rules-dir", str(rules)],
                          env=env, capture_output=True, text=True, timeout=120)


def _results_by_hash(root: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for kind in ("ergebnis", "fehler"):
        for folder in (root / kind).iterdir() if (root / kind).exists() else []:
            status = json.loads((folder / "status.json").read_text(encoding="utf-8"))  # must exist: complete
            if status["status"] == "ok":
                assert list(folder.glob("*-ergebnis.xlsx")), folder
            else:
                assert (folder / "fehlerbericht.txt").exists() and (folder / "problems.json").exists(), folder
            assert not list(folder.glob(".*")), "no temporary files inside a published result"
            found.setdefault(status["sha256"], []).append(folder)
    return found


def _check_invariant(root: Path, hashes: dict[str, str]) -> None:
    results = _results_by_hash(root)
    archived = {p.name.split("_")[1]: p for p in (root / "archiv").iterdir()} if (root / "archiv").exists() else {}
    for name, sha in hashes.items():
        waiting = root / "eingang" / name
        if waiting.exists():
            assert hashlib.sha256(waiting.read_bytes()).hexdigest() == sha
            assert sha not in archived
        else:
            assert sha in archived, f"{name} lost"
            assert hashlib.sha256(archived[sha].read_bytes()).hexdigest() == sha
            assert results.get(sha), f"{name} archived without a complete result"


@pytest.mark.parametrize("step", STEPS)
def test_kill_at_any_step_loses_nothing_and_leaves_nothing_half_written(step, tmp_path):
    root, rules, hashes = _setup(tmp_path)
    killed = _inbox(root, rules, step)
    assert killed.returncode == -9, killed.stderr
    _check_invariant(root, hashes)

    again = _inbox(root, rules, None)
    assert again.returncode == 3, again.stderr  # schlecht.xlsx (duplicate AGS) is an input error
    _check_invariant(root, hashes)
    assert list((root / "eingang").iterdir()) == []
    results = _results_by_hash(root)
    assert {sha: len(folders) for sha, folders in results.items()} == {sha: 1 for sha in hashes.values()}
    assert list((root / ".tmp").iterdir()) == []
