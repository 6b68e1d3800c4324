"""No traceback anywhere (issue 12): damaged workbooks through the whole product, `allocation.cli.main`.

The fixture input workbook and our own output workbooks are damaged as files (bytes flipped, inserted,
deleted), as XML text inside their zip members (sheet XML, sharedStrings, workbook.xml, styles, relationships)
and as archives (members dropped or duplicated). Every command that reads them must end with an exit code from
the documented set and, when it fails, with a problem code; never a traceback, never an output file when it
fails, and the damaged file stays as it was. The rule-file half is
tests/test_hostile_rules.py::test_damaged_rule_file_never_ends_in_a_traceback; the reader alone is fuzzed in
tests/test_reading.py. A few examples in the default profile, many under `--hypothesis-profile=thorough`.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from allocation.cli import main
from allocation.core.problems import InputError
from allocation.ops import compare
from allocation.ops.trueup import read_paid
from strategies import scaled

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"
DOCUMENTED_EXITS = {0, 2, 3, 4, 5, 7, 8}  # docs/operations/exit-codes.md (1 = internal error, 6 = bug: never)

# Tokens that make XML text wrong in the ways files go wrong: cut tags, odd cell types, references far out,
# numbers no reader can hold, entities, stray bytes.
_TOKENS = [b"<v>", b"</v>", b't="e"', b't="d"', b't="s"', b't="str"', b't="b"', b't="inlineStr"', b'r="XFD1"',
           b'r="A0"', b'r="A1048577"', b"<f>", b"</f>", b"NaN", b"1e400", b"-0", b"99999999999999999999999999999999999999",
           b"&amp;", b"&#0;", b"&bogus;", b"<c ", b"/>", b"<", b">", b'"', b's="99"', b's="-1"', b"<v>2022-02-30</v>",
           b"\xff", b"\x00", b"<is><t>", b"</row>", b"<row>", b'<row r="0">', b"<sheetData/>", b"</sheetData>",
           b'<sheet name="" sheetId="9" r:id="rId1"/>', b'name="Gemeinden"', b'Target="/etc/passwd"',
           b'Target="worksheets/fehlt.xml"', b"<si><t></t></si>", b'<numFmt numFmtId="9" formatCode="%"/>',
           b'<xf numFmtId="9"/>', "Ä".encode("utf-8"), b"\xef\xbb\xbf"]
_XML_SUFFIXES = (".xml", ".rels")


def _damaged_bytes(data: st.DataObject, body: bytes) -> bytes:
    """1-4 edits of raw bytes: flip a byte, insert bytes or a token, delete a run."""
    body = bytearray(body)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        at = data.draw(st.integers(0, max(len(body) - 1, 0)), label="at")
        edit = data.draw(st.sampled_from(["flip", "insert", "delete", "token"]), label="edit")
        if edit == "flip" and body:
            body[at] ^= data.draw(st.integers(1, 255), label="mask")
        elif edit == "insert":
            body[at:at] = data.draw(st.binary(min_size=1, max_size=8), label="bytes")
        elif edit == "delete":
            del body[at:at + data.draw(st.integers(1, 16), label="length")]
        else:
            body[at:at] = data.draw(st.sampled_from(_TOKENS), label="token")
    return bytes(body)


def _damaged_xml(data: st.DataObject, body: bytes) -> bytes:
    """Edits of a member's XML text: replace a tag, attribute or value by a token, or cut a stretch."""
    body = bytearray(body)
    for _ in range(data.draw(st.integers(1, 3), label="xml edits")):
        starts = [i for i, b in enumerate(body) if b in b'<">']
        if not starts:
            break
        at = data.draw(st.sampled_from(starts), label="at markup")
        edit = data.draw(st.sampled_from(["replace", "cut", "token"]), label="xml edit")
        length = data.draw(st.integers(1, 40), label="length")
        if edit == "replace":
            body[at:at + length] = data.draw(st.sampled_from(_TOKENS), label="token")
        elif edit == "cut":
            del body[at:at + length]
        else:
            body[at:at] = data.draw(st.sampled_from(_TOKENS), label="token")
    return bytes(body)


def _rezip(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": the duplicated member is the point
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
            for name, content in members:
                target.writestr(name, content)
    return buffer.getvalue()


def damage(data: st.DataObject, original: bytes) -> bytes:
    """A damaged copy of a workbook: as a file, in one member's XML or bytes, or in its list of members."""
    how = data.draw(st.sampled_from(["file", "member-xml", "member-bytes", "drop", "duplicate"]), label="how")
    event(f"damage: {how}")
    if how == "file":
        return _damaged_bytes(data, original)
    with zipfile.ZipFile(io.BytesIO(original)) as source:
        members = [(info.filename, source.read(info.filename)) for info in source.infolist()]
    names = [name for name, _ in members]
    if how.startswith("member"):
        xml = [name for name in names if name.endswith(_XML_SUFFIXES)]
        name = data.draw(st.sampled_from(xml), label="member")
        index = names.index(name)
        edit = _damaged_xml if how == "member-xml" else _damaged_bytes
        members[index] = (name, edit(data, members[index][1]))
    elif how == "drop":
        del members[names.index(data.draw(st.sampled_from(names), label="dropped"))]
    else:
        index = names.index(data.draw(st.sampled_from(names), label="duplicated"))
        copy = members[index] if data.draw(st.booleans(), label="same content") else (
            members[index][0], _damaged_xml(data, members[index][1]))
        members.insert(data.draw(st.integers(0, len(members)), label="where"), copy)
    return _rezip(members)


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _assert_answered(argv: list[str], written: Path | None, as_json: bool = True) -> int:
    """Run one command: a documented exit, no traceback, a problem code when failing, no output then."""
    code, out, err = _cli(argv)
    note(f"{' '.join(argv[:1])}: exit {code}\n{out[-2000:]}\n{err[-2000:]}")
    assert code in DOCUMENTED_EXITS
    assert "Traceback" not in err and "Interner Fehler" not in err
    if code != 0:
        if as_json and argv[0] == "verify" and code == 7:  # a changed output: named files and differences
            report = json.loads(out)
            assert report["changed_files"] or report["differences"] or report["problems"]
            event(f"verify: exit 7, {len(report['differences'])} differences")
        elif as_json:
            report = json.loads(out)
            assert report["problems"] and all(p["code"] for p in report["problems"])
            event(f"{argv[0]}: exit {code}, {report['problems'][0]['code']}")
        else:  # explain has no --json: its problems print as "Fehler [code] ..."
            assert "Fehler [" in out + err
            event(f"{argv[0]}: exit {code}")
        if written is not None:
            assert not written.exists()
    else:
        event(f"{argv[0]}: exit 0")
    return code


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@scaled(1 / 4, 15)
@given(st.data())
def test_a_damaged_input_workbook_never_ends_in_a_traceback(data):
    """`run --json` on a damaged copy of the Kreis Wesel fixture."""
    damaged = damage(data, FIXTURE.read_bytes())
    fixture_before = _sha(FIXTURE)
    with tempfile.TemporaryDirectory() as folder:
        workbook = Path(folder) / "eingabe.xlsx"
        workbook.write_bytes(damaged)
        output = Path(folder) / "ergebnis.xlsx"
        _assert_answered(["run", str(workbook), "--rules", str(RULES), "-o", str(output), "--json"], output)
        assert workbook.read_bytes() == damaged
    assert _sha(FIXTURE) == fixture_before


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    """A final run's output (with manifest and register) and a test run's output of the fixture."""
    folder = tmp_path_factory.mktemp("outputs")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", str(FIXTURE), "--rules", str(RULES), "-o", str(folder / "echtlauf.xlsx"),
                     "--mode", "final", "--register", str(folder / "register")]) == 0
        assert main(["run", str(FIXTURE), "--rules", str(RULES), "-o", str(folder / "probelauf.xlsx")]) == 0
    return folder


@scaled(1 / 3, 20)
@given(data=st.data())
def test_a_damaged_output_workbook_never_ends_in_a_traceback(outputs, data):
    """verify, explain, compare and trueup reading a damaged copy of our own output workbook."""
    command = data.draw(st.sampled_from(["verify", "explain", "compare", "trueup"]), label="command")
    final = outputs / "echtlauf.xlsx"
    damaged = damage(data, final.read_bytes())
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        target = folder / "echtlauf.xlsx"
        target.write_bytes(damaged)
        written = folder / "neu.xlsx"
        if command == "verify":  # the manifest beside it names the input and rule file, which are unchanged; the
            # register is the one the final run was entered in (an edit may cancel out: then verify confirms it)
            shutil.copy(outputs / "echtlauf.xlsx.manifest.json", folder / "echtlauf.xlsx.manifest.json")
            _assert_answered(["verify", str(target), "--register", str(outputs / "register"), "--json"], None)
        elif command == "explain":
            ags = data.draw(st.sampled_from([None, "05170004"]), label="ags")
            _assert_answered(["explain", str(target), "--item", "KIM-2022", *(["--ags", ags] if ags else [])],
                             None, as_json=False)
        elif command == "compare":
            pair = [str(target), str(outputs / "probelauf.xlsx")]
            if data.draw(st.booleans(), label="damaged second"):
                pair.reverse()
            _assert_answered(["compare", *pair, "-o", str(written), "--json"], written)
        else:
            _assert_answered(["trueup", str(target), str(FIXTURE), "--rules", str(RULES), "-o", str(written),
                              "--json"], written)
        if command != "verify":  # the commands refuse the copy at its (missing) manifest; the readers below them
            _assert_parsed(command, target)  # must answer a damaged file too (a re-signed forgery reaches them)
        assert target.read_bytes() == damaged


def _assert_parsed(command: str, path: Path) -> None:
    """The command's reader of output workbooks on the damaged file: a result or located problems, nothing else."""
    from allocation.core.problems import ProblemsError
    from allocation.ops.explain import read_sheet

    reader = {"explain": lambda p: read_sheet(p, "Einzelnachweis"), "compare": compare.read_result,
              "trueup": read_paid}[command]
    try:
        reader(path)
    except ProblemsError as error:
        assert error.problems and all(p.code for p in error.problems)
        event(f"{command} reader: {error.problems[0].code}")
    else:
        event(f"{command} reader: read")


# ------------------------------------------------------------------------- regressions found by the fuzz tests


def _sheet_part(workbook: bytes, sheet: str) -> str:
    """The zip member holding `sheet` (workbook.xml names its relationship id, the relationships its part)."""
    with zipfile.ZipFile(io.BytesIO(workbook)) as archive:
        book = archive.read("xl/workbook.xml").decode("utf-8")
        rels = archive.read("xl/_rels/workbook.xml.rels").decode("utf-8")
    rid = re.search(rf'<sheet [^>]*name="{sheet}"[^>]*r:id="(rId\d+)"', book).group(1)
    target = re.search(rf'<Relationship [^>]*Id="{rid}"[^>]*Target="([^"]+)"|'
                       rf'<Relationship [^>]*Target="([^"]+)"[^>]*Id="{rid}"', rels)
    return "xl/" + (target.group(1) or target.group(2)).removeprefix("/xl/")


def _replaced(workbook: bytes, member: str, edit) -> bytes:
    with zipfile.ZipFile(io.BytesIO(workbook)) as source:
        members = [(info.filename, source.read(info.filename)) for info in source.infolist()]
    assert member in [name for name, _ in members]
    return _rezip([(name, edit(content) if name == member else content) for name, content in members])


def _broken_sheet(outputs: Path, sheet: str, folder: Path) -> Path:
    """The final output with the sheet's XML cut off in the middle (not well-formed)."""
    original = (outputs / "echtlauf.xlsx").read_bytes()
    path = folder / "echtlauf.xlsx"
    path.write_bytes(_replaced(original, _sheet_part(original, sheet), lambda xml: xml[:len(xml) // 2]))
    return path


def _with_manifest(outputs: Path, damaged: Path) -> Path:
    """The manifest of the final run beside a damaged copy of its workbook (same name): the copy no longer
    matches it."""
    shutil.copy(outputs / "echtlauf.xlsx.manifest.json", damaged.parent / "echtlauf.xlsx.manifest.json")
    return damaged


@pytest.mark.parametrize("sheet", ["Entscheidungen", "Einzelnachweis"])
def test_explain_of_an_output_with_a_damaged_sheet_names_the_sheet(outputs, tmp_path, sheet):
    path = _with_manifest(outputs, _broken_sheet(outputs, sheet, tmp_path))
    # the command: the damaged workbook does not match its manifest, refused before its sheets are read
    code, out, err = _cli(["explain", str(path), "--item", "KIM-2022", "--ags", "05170004"])
    assert code == 7 and "Traceback" not in err and "[output-changed]" in out + err
    # the reader below it (a re-signed forgery would reach it): the damaged sheet is named
    from allocation.ops.explain import read_sheet

    with pytest.raises(InputError) as refused:
        read_sheet(path, sheet)
    assert [(p.code, p.location.sheet) for p in refused.value.problems] == [("explain-unreadable", sheet)]


def test_compare_of_an_output_with_a_damaged_uebersicht_is_unreadable_there(outputs, tmp_path, capsys):
    path = _with_manifest(outputs, _broken_sheet(outputs, "Uebersicht", tmp_path))
    written = tmp_path / "vergleich.xlsx"
    assert main(["compare", str(path), str(outputs / "probelauf.xlsx"), "-o", str(written), "--json"]) == 7
    assert [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]] == ["output-changed"]
    assert not written.exists()
    with pytest.raises(InputError) as refused:
        compare.read_result(path)
    assert [(p.code, p.location.sheet) for p in refused.value.problems] == [("compare-unreadable", "Uebersicht")]


def test_compare_of_an_output_whose_year_is_infinite_is_not_an_output(outputs, tmp_path):
    original = (outputs / "probelauf.xlsx").read_bytes()
    part = _sheet_part(original, "Protokoll")
    path = tmp_path / "probelauf.xlsx"  # Haushaltsjahr 2022 -> 1e400 (a float no int holds)
    path.write_bytes(_replaced(original, part, lambda xml: xml.replace(b"<v>2022</v>", b"<v>1e400</v>", 1)))
    assert b"1e400" in zipfile.ZipFile(path).read(part)
    with pytest.raises(InputError) as refused:
        compare.read_result(path)
    assert [(p.code, p.location.sheet) for p in refused.value.problems] == [("compare-not-an-output", "Protokoll")]


@pytest.mark.parametrize("sheet", ["Protokoll", "Einzelnachweis"])
def test_trueup_with_a_damaged_final_output_is_unreadable(outputs, tmp_path, capsys, sheet):
    path = _with_manifest(outputs, _broken_sheet(outputs, sheet, tmp_path))
    written = tmp_path / "abrechnung.xlsx"
    assert main(["trueup", str(path), str(FIXTURE), "--rules", str(RULES), "-o", str(written), "--json",
                 "--register", str(outputs / "register")]) == 7
    assert [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]] == ["output-changed"]
    assert not written.exists()
    with pytest.raises(InputError) as refused:
        read_paid(path)
    assert [p.code for p in refused.value.problems] == ["trueup-unreadable"]


def test_verify_of_a_damaged_output_reports_it_unreadable(outputs, tmp_path, capsys):
    path = _broken_sheet(outputs, "Uebersicht", tmp_path)
    shutil.copy(outputs / "echtlauf.xlsx.manifest.json", tmp_path / "echtlauf.xlsx.manifest.json")
    assert main(["verify", str(path), "--json"]) == 7
    report = json.loads(capsys.readouterr().out)
    assert report["changed_files"]  # its hash differs from the manifest's ...
    assert [d["cell"] for d in report["differences"]] == ["(Datei)"]  # ... and it cannot be read


def test_an_unknown_xml_encoding_in_an_input_is_a_damaged_workbook(tmp_path, capsys):
    path = tmp_path / "eingabe.xlsx"
    path.write_bytes(_replaced(FIXTURE.read_bytes(), "xl/workbook.xml",
                               lambda xml: b'<?xml version="1.0" encoding="UTF-8yes"?>\n'
                               + re.sub(rb"^<\?xml[^>]*\?>\s*", b"", xml)))
    written = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(path), "--rules", str(RULES), "-o", str(written), "--json"]) == 3
    assert [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]] == ["input-not-xlsx"]
    assert not written.exists()


def test_the_corpus_readme_indexes_every_file_in_a_category():
    """tests/corpus/README.md: every workbook and rule file of the folder is in its table or accepted list and in
    exactly one category of its "Categories" list."""
    corpus = Path(__file__).resolve().parent / "corpus"
    readme = (corpus / "README.md").read_text(encoding="utf-8")
    categories = readme[readme.index("## Categories"):readme.index("Not files in this folder")]
    files = sorted(p.name for p in corpus.iterdir() if p.suffix in (".xlsx", ".xls", ".yaml"))
    assert len(files) > 70
    for name in files:
        assert readme.count(f"`{name}`") >= 2 or name.endswith(".yaml"), name  # category + table/accepted list
        assert categories.count(f"`{name}`") == 1, name
