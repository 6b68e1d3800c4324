"""How a letter's data reach its template (issue 22, speed): as a JSON file in the compiled template's folder,
written by the child before each compile (`notices.DATA_FILE`), not in `sys.inputs`, so that Typst keeps what
the letters share. Each letter must still read its own data; a Kreis's template from before, which reads
`sys.inputs.data`, must still get them; a template file of that name is refused.

Expected values come from the fixture workbook (each municipality's AGS and name, read here with openpyxl) and from
the earlier template line written out below.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from openpyxl import load_workbook

pytest.importorskip("typst", reason="notices need typst: pip install -e '.[test]'")

from allocation.cli import main  # noqa: E402
from allocation.ops.notices import DATA_FILE  # noqa: E402
from test_notices_letters import text_of  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"
DEFAULT = ROOT / "allocation" / "ops" / "notice_templates" / "default"
ALPEN = "05170004"
# the line with which the default bescheid.typ read its data until they moved into a file; in the second form a
# string with "//" before it on the line (which a comment scan must not take for a comment)
EARLIER_LINE = "#let d = json(bytes(sys.inputs.data))\n"
EARLIER_LINE_AFTER_SLASHES = '#let trenner = "a//b"; #let d = json(bytes(sys.inputs.data))\n'


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("daten") / "probe.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(RULES), "-o", str(out)]) == 0
    return out


def members() -> dict[str, str]:
    """AGS -> name, from the fixture's sheet Gemeinden."""
    sheet = load_workbook(FIXTURE, read_only=True)["Gemeinden"]
    rows = sheet.iter_rows(values_only=True)
    header = next(rows)
    ags, name = header.index("AGS"), header.index("Gemeinde")
    return {str(row[ags]): row[name] for row in rows if row and row[ags]}


def test_every_letter_of_a_run_shows_its_own_municipality_and_no_other(probe, tmp_path):
    """All 13 notices through one child, one after the other from the same data file: each PDF (named by its
    AGS) shows its own AGS and name and no other municipality's AGS."""
    expected = members()
    assert len(expected) == 13
    out = tmp_path / "bescheide"
    assert main(["notices", str(probe), "-o", str(out), "--date", "2022-01-10"]) == 0
    seen = {}
    for pdf in sorted(out.glob("*.pdf")):
        ags = pdf.name[:8]
        text = text_of(pdf)
        seen[ags] = set(re.findall(r"AGS: (\d{8})", text))
        assert expected[ags] in text, pdf.name
    assert seen == {ags: {ags} for ags in expected}


@pytest.mark.parametrize("earlier", [EARLIER_LINE, EARLIER_LINE_AFTER_SLASHES])
def test_an_own_template_reading_sys_inputs_still_gets_the_same_letter(probe, tmp_path, earlier):
    """A Kreis's bescheid.typ copied before the data moved into a file reads `sys.inputs.data`: its notice is the
    default's, word for word."""
    own = tmp_path / "vorlage"
    shutil.copytree(DEFAULT, own)
    source = (own / "bescheid.typ").read_text(encoding="utf-8")
    line = f'#let d = json("/{DATA_FILE}")\n'
    assert source.count(line) == 1
    (own / "bescheid.typ").write_text(source.replace(line, earlier), encoding="utf-8")
    texts = {}
    for name, extra in (("default", []), ("own", ["--template", str(own)])):
        out = tmp_path / name
        assert main(["notices", str(probe), "-o", str(out), "--date", "2022-01-10", "--ags", ALPEN, *extra]) == 0
        (pdf,) = out.glob(f"{ALPEN}_*.pdf")
        texts[name] = text_of(pdf)
    assert "Alpen" in texts["own"] and f"AGS: {ALPEN}" in texts["own"]
    assert texts["own"] == texts["default"]


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_template_file_with_the_data_files_name_is_refused_at_it(probe, tmp_path, capsys, kind):
    """The child writes each letter's data under that name: a template's own file of the name would be overwritten
    in the copy and read as data, a folder of the name would stop the write. Refused at it, exit 2, nothing
    written."""
    own = tmp_path / "vorlage"
    own.mkdir()
    if kind == "file":
        (own / DATA_FILE).write_text('{"eigene": "Daten"}', encoding="utf-8")
    else:
        (own / DATA_FILE).mkdir()
        (own / DATA_FILE / "logo.png").write_bytes(b"png")
    out = tmp_path / "bescheide"
    capsys.readouterr()
    assert main(["notices", str(probe), "-o", str(out), "--date", "2022-01-10", "--template", str(own),
                 "--json"]) == 2
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [(p["code"], p["location"]["file"]) for p in problems] == [("notices-template-file",
                                                                       str(own / DATA_FILE))]
    assert "vorbehalten" in problems[0]["message"]
    assert not out.exists()


def test_a_template_that_fails_on_one_letter_names_that_letter(probe, tmp_path, capsys):
    """Typst's message names no file or line: the refusal says on which letter of the run it failed (its file name
    and its number) and what Typst said."""
    own = tmp_path / "vorlage"
    own.mkdir()
    source = (DEFAULT / "bescheid.typ").read_text(encoding="utf-8")
    (own / "bescheid.typ").write_text(source + '\n#if d.ags == "05170024" { panic("Abbruch bei Hamminkeln") }\n',
                                      encoding="utf-8")
    out = tmp_path / "bescheide"
    capsys.readouterr()
    assert main(["notices", str(probe), "-o", str(out), "--date", "2022-01-10", "--template", str(own),
                 "--json"]) == 2
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "notices-bad-template" and problem["location"]["file"] == str(own)
    assert re.match(r"05170024_[^ ]+\.pdf \(Dokument \d+ von 13\): panicked with: Abbruch bei Hamminkeln",
                    problem["found"]), problem["found"]
    assert not out.exists()
