"""A flipped byte or a deleted line of a record the product wrote is never a silent success.

The records: a register file (a district's file or the installation's chain `_kette.jsonl`), a run manifest (of a
test run and of a final run), a stage record (`stufen.jsonl`, `jahr.json`). Each example copies fresh records made
by base runs (tests/artefact_cases.py), damages one file at random, either

- **flip**: one byte at any position set to any other value, or
- **delete**: one whole line removed (its line end with it),

and runs the command that reads the record back, through `allocation.cli.main` with strict UTF-8 streams.

The property, for each record: **after the tampering the command either refuses, with a documented non-zero
exit and problems each located in the tampered record's folder (and nothing written: the folder byte for byte as
after the tampering, no output), or the tampering did not change the file's meaning**: its bytes parse to the
identical JSON value (line by line for JSON lines), e.g. a space flipped into a tab between two values. Never a
traceback, never exit 1; nothing can hang (a flipped byte makes no FIFO).

- register (`run --mode final --supersede` or a test `run`): exit 8, every problem `register-corrupt` located in
  the register folder;
- manifest (`verify`): exit 7, status `malformed`, every problem `manifest-*` located at the manifest (the seal
  finds any change of the value before anything else);
- stage records (`year status`, then `year stage entwurf`): `year status` exits 7 (`year-chain-broken`,
  `year-stage-changed`) or 8 (`year-not-a-year-folder`), located in the year folder; `year stage` refuses too,
  appends no line and leaves no new stage folder.

Examples: `scaled(1, 60)`: 60 per property in the default profile (a few seconds each), 2,000 under
`--hypothesis-profile=thorough`. Half the flipped bytes are drawn from the bytes that mean something in JSON, so
that flips which keep the file valid JSON, or even keep its value, are not left to chance.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from artefact_cases import INPUT, RULES, Bases, in_process, register_env, snapshot
from strategies import scaled

REGISTER_FILES = ("wesel-2022.jsonl", "kleve-2022.jsonl", "_kette.jsonl")


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> Bases:
    return Bases(tmp_path_factory.mktemp("grundlagen"))


# Bytes that mean something in JSON (whitespace, digits, hex letters, quotes, brackets, separators): drawn as often
# as any byte, so that flips which keep the text valid JSON (and those which keep its value) are frequent too.
_JSON_BYTES = b' \t\n\r0123456789abcdef"{}[],:-.\\'


def tampered(data: st.DataObject, original: bytes) -> bytes:
    """`original` with one byte (any position) set to another value (any byte), or one line deleted."""
    if data.draw(st.sampled_from(["flip", "delete"]), label="how") == "flip":
        at = data.draw(st.integers(0, len(original) - 1), label="at")
        value = data.draw(st.one_of(st.integers(0, 255), st.sampled_from(list(_JSON_BYTES)))
                          .filter(lambda byte: byte != original[at]), label="byte")
        event("flip")
        return original[:at] + bytes([value]) + original[at + 1:]
    lines = original.splitlines(keepends=True)
    number = data.draw(st.integers(0, len(lines) - 1), label="line")
    event("delete a line")
    return b"".join(lines[:number] + lines[number + 1:])


def meaning(data: bytes, json_lines: bool) -> object:
    """The JSON value of a file (of each line, for JSON lines); None if the bytes are no JSON at all."""
    try:
        text = data.decode("utf-8")
        if json_lines:
            return [json.loads(line) for line in text.split("\n")[:-1]] if text.endswith("\n") else None
        return json.loads(text)
    except ValueError:
        return None


def same_meaning(original: bytes, changed: bytes, json_lines: bool) -> bool:
    value = meaning(changed, json_lines)
    return value is not None and value == meaning(original, json_lines)


def refused(code: int, out: str, err: str, exits: set[int], codes: set[str] | None, folder: Path) -> list[dict]:
    """The problems of a refusal (JSON on stdout): a documented exit, known codes, each located in `folder`."""
    assert code in exits, f"exit {code}\n{out[-2000:]}\n{err[-2000:]}"
    problems = json.loads(out)["problems"]
    assert problems
    for problem in problems:
        assert codes is None or problem["code"] in codes, problem
        assert Path(problem["location"]["file"]).is_relative_to(folder), problem
    event(f"refused: {problems[0]['code']}")
    return problems


def answered(argv: list[str]) -> tuple[int, str, str]:
    code, out, err = in_process(tuple(argv))
    note(f"{argv[0]}: exit {code}\n{out[-1500:]}\n{err[-1500:]}")
    assert "Traceback" not in err and "Interner Fehler" not in err, err[-3000:]
    return code, out, err


@scaled(1, 60)
@given(data=st.data())
def test_a_flipped_byte_or_deleted_line_of_the_register_is_never_a_silent_success(bases, data):
    name = data.draw(st.sampled_from(REGISTER_FILES), label="file")
    final = data.draw(st.booleans(), label="final run")
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        register = folder / "register"
        shutil.copytree(bases.finals["register"], register, symlinks=True)
        path = register / name
        original = path.read_bytes()
        changed = tampered(data, original)
        path.write_bytes(changed)
        output = folder / "neu.xlsx"
        argv = ["run", str(INPUT), "--rules", str(RULES), "-o", str(output), "--json"]
        argv += ["--mode", "final", "--supersede", "noch einmal"] if final else []
        before = snapshot(folder)
        with register_env(register):
            code, out, err = answered(argv)
        if code == 0:
            assert same_meaning(original, changed, json_lines=True), "a changed register passed"
            event("same meaning: accepted")
            return
        refused(code, out, err, {8}, {"register-corrupt"}, register)
        assert snapshot(folder) == before and not output.exists()


@scaled(1, 60)
@given(data=st.data())
def test_a_flipped_byte_or_deleted_line_of_a_manifest_is_never_a_silent_success(bases, data):
    final = data.draw(st.booleans(), label="final run")
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        source = bases.finals["3"] if final else bases.small["a"]
        register = folder / "register"
        if final:
            shutil.copytree(bases.finals["register"], register, symlinks=True)
        workbook = folder / source.name
        shutil.copyfile(source, workbook)
        manifest = Path(f"{workbook}.manifest.json")
        original = Path(f"{source}.manifest.json").read_bytes()
        changed = tampered(data, original)
        manifest.write_bytes(changed)
        before = snapshot(folder)
        with register_env(register):
            code, out, err = answered(["verify", str(workbook), "--json"])
        if code == 0:
            assert same_meaning(original, changed, json_lines=False), "a changed manifest was verified"
            event("same meaning: identical")
            return
        assert code == 7 and json.loads(out)["status"] == "malformed", out[-2000:]
        problems = refused(code, out, err, {7}, None, folder)
        assert all(p["code"].startswith("manifest-") and p["location"]["file"] == str(manifest) for p in problems)
        assert snapshot(folder) == before


@scaled(1, 60)
@given(data=st.data())
def test_a_flipped_byte_or_deleted_line_of_a_stage_record_is_never_a_silent_success(bases, data):
    name = data.draw(st.sampled_from(["stufen.jsonl", "jahr.json"]), label="file")
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp) / "jahr"
        shutil.copytree(bases.year, folder, symlinks=True)
        path = folder / name
        original = path.read_bytes()
        changed = tampered(data, original)
        path.write_bytes(changed)
        json_lines = name.endswith(".jsonl")
        with register_env(Path(temp) / "register"):
            before = snapshot(folder)
            code, out, err = answered(["year", "status", str(folder), "--json"])
            if code == 0:
                assert same_meaning(original, changed, json_lines), "a changed stage record passed year status"
            else:
                refused(code, out, err, {7, 8}, {"year-chain-broken", "year-stage-changed", "year-not-a-year-folder"},
                        folder)
            assert snapshot(folder) == before
            code, out, err = answered(["year", "stage", str(folder), "entwurf", str(INPUT), "--rules", str(RULES),
                                       "--json"])
        if code == 0:
            assert same_meaning(original, changed, json_lines), "a stage was appended to a changed stage record"
            event("same meaning: stage appended")
            return
        refused(code, out, err, {7, 8}, {"year-chain-broken", "year-stage-changed", "year-not-a-year-folder"}, folder)
        assert snapshot(folder) == before and not os.path.lexists(folder / "03-entwurf")
