"""`verify` compares every sheet, cell by cell, even when the manifest was signed again (issue 24).

Each case edits one cell of one sheet of a real output, recomputes the workbook's SHA-256 into the manifest and
seals it again (`workbooks.resigned_copy`): the hash check passes, so only the replay can find the edit. verify
must name that sheet and cell, with the value the replay gives and the value found, and name the sheet's XML
part in the package comparison. Expected values are the Kreis Wesel 2022 fixture's figures (its input workbook
and rule file) and the texts this test writes; the exit code is the README's (7 for a difference).
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest

from allocation.cli import main
from allocation.core.problems import ExitCode
from allocation.ops.verify import CellDifference, FieldDifference, verify
from allocation.runs.manifest import sealed
from allocation.workbook.report import SHEET_NAMES
from workbooks import WESEL_RATES, WESEL_RULES, resigned_copy, run_cli

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"


@pytest.fixture(scope="module")
def levy_run(tmp_path_factory) -> Path:
    """A Probelauf of the Kreis Wesel fixture with its statute rates: every sheet the writer knows, `Umlagen`
    included."""
    folder = tmp_path_factory.mktemp("lauf")
    output = folder / "ergebnis.xlsx"
    assert run_cli(output, "--register", str(folder / "register"), source=WESEL_RATES, rules=WESEL_RULES) == 0
    return output


def sheet_parts(path: Path) -> dict[str, str]:
    """Sheet name -> its XML part, read from the package's workbook and relationships (not from verify)."""
    with zipfile.ZipFile(path) as archive:
        rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
        targets = {rel.get("Id"): rel.get("Target") for rel in rels}
        book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
        return {sheet.get("name"): "xl/" + targets[sheet.get(f"{_REL}id")] for sheet in book.iter(f"{_MAIN}sheet")}


def edited(run: Path, target: Path, sheet: str, cell: str, old: str, new: str) -> Path:
    """A copy of `run` with the text of one cell's value (`<v>` of a number, `<t>` of a text) changed from `old`
    to `new`, its manifest signed again."""
    part = sheet_parts(run)[sheet]
    with zipfile.ZipFile(run) as archive:
        xml = archive.read(part).decode("utf-8")
    element = re.search(rf'<c r="{cell}"[ >].*?</c>', xml).group(0)
    value = re.search(r"<(v|t)>([^<]*)</\1>", element)
    assert value.group(2) == old, (sheet, cell, value.group(2))
    changed = element.replace(value.group(0), f"<{value.group(1)}>{new}</{value.group(1)}>", 1)
    return resigned_copy(run, target, part, element, changed)


# One cell per sheet: (sheet, cell, the value as the run wrote it, as the edit leaves it, as openpyxl reads the two)
SHEET_CASES = [
    # Alpen's Umlagegrundlagen in the fixture: 27.154.437 €
    ("Uebersicht", "C2", "27154437", "27154438", 27154437, 27154438),
    # the first line is Alpen's share of KIM-2022 (lines in item order, then AGS order)
    ("Einzelnachweis", "A2", "KIM-2022", "KIM-2023", "KIM-2022", "KIM-2023"),
    # KIM-2022's eligible costs: 4 posts × 74.000 € = 296.000 €
    ("Entscheidungen", "F2", "296000", "296001", 296000, 296001),
    # "Defizit − verteilt = 0" of KIM-2022, Soll: 296.000 € − 220.000 € funding = 76.000 €
    ("Kontrollen", "C2", "76000", "76001", 76000, 76001),
    # Protokoll row 5: Kreis
    ("Protokoll", "B5", "Kreis Wesel", "Kreis Kleve", "Kreis Wesel", "Kreis Kleve"),
    # the fixture has no double burden: one row saying so
    ("Hinweise", "A2", "keine Hinweise", "ein Hinweis", "keine Hinweise", "ein Hinweis"),
    # Alpen's base on KIM-2022's rate line
    ("Hebesaetze", "F2", "27154437", "27154438", 27154437, 27154438),
    # the statute rate of the Kreisumlage 2022: 36,20 %
    ("Umlagen", "G2", "36.2", "36.3", 36.2, 36.3),
]


def test_the_cases_cover_every_sheet_the_writer_produces(levy_run):
    assert list(sheet_parts(levy_run)) == list(SHEET_NAMES)
    assert [case[0] for case in SHEET_CASES] == list(SHEET_NAMES)


@pytest.mark.parametrize("sheet, cell, old, new, recorded, found", SHEET_CASES, ids=[c[0] for c in SHEET_CASES])
def test_verify_names_the_cell_changed_in_each_sheet_of_a_resigned_output(levy_run, tmp_path, sheet, cell, old, new,
                                                                           recorded, found):
    output = edited(levy_run, tmp_path / "ergebnis.xlsx", sheet, cell, old, new)
    result = verify(output)
    assert result.file_problems == () and result.field_differences == () and result.replay_error is None
    assert result.differences == (CellDifference(sheet, cell, recorded, found),)
    (part,) = result.package
    assert (part.sheet, part.cell) == (sheet, f"{cell} ({sheet_parts(levy_run)[sheet]})")
    assert not result.identical


def test_the_command_reports_the_cell_and_exits_7(levy_run, tmp_path, capsys):
    output = edited(levy_run, tmp_path / "ergebnis.xlsx", "Umlagen", "G2", "36.2", "36.3")
    capsys.readouterr()
    assert main(["verify", str(output)]) == ExitCode.VERIFY == 7
    assert "Abweichung Umlagen!G2: erwartet 36,2, gefunden 36,3" in capsys.readouterr().err


def test_verify_compares_the_continuation_sheets_of_the_einzelnachweis(tmp_path, monkeypatch):
    # 13 lines per sheet (header + 13 rows = 14): the lines are in item order, then AGS order, so KIM-2022's 13
    # lines (one per municipality) fill Einzelnachweis and the next item, JA-2022, starts Einzelnachweis_2 with Alpen
    monkeypatch.setattr("allocation.workbook.report.MAX_ROWS", 14)
    run = tmp_path / "lauf" / "ergebnis.xlsx"
    assert run_cli(run, source=WESEL_RATES, rules=WESEL_RULES) == 0
    assert "Einzelnachweis_2" in sheet_parts(run)
    output = edited(run, tmp_path / "ergebnis.xlsx", "Einzelnachweis_2", "A2", "JA-2022", "JA-2023")
    result = verify(output)
    assert result.differences == (CellDifference("Einzelnachweis_2", "A2", "JA-2022", "JA-2023"),)
    assert [d.sheet for d in result.package] == ["Einzelnachweis_2"]


def test_verify_compares_the_chart_part_byte_for_byte(levy_run, tmp_path):
    # the chart is no sheet: only the package comparison sees its title
    output = resigned_copy(levy_run, tmp_path / "ergebnis.xlsx", "xl/charts/chart1.xml",
                           "Belastung je Gemeinde nach Finanzierungsweg", "Belastung je Gemeinde")
    result = verify(output)
    assert result.differences == () and not result.identical
    assert [(d.sheet, d.cell.split(" ")[-1]) for d in result.package] == [("(Paket)", "(xl/charts/chart1.xml)")]


def _resealed(run: Path, target_folder: Path, change) -> Path:
    """The output and its manifest copied to `target_folder`, the manifest changed by `change` and sealed again."""
    target_folder.mkdir()
    output = target_folder / run.name
    output.write_bytes(run.read_bytes())
    manifest = json.loads(Path(f"{run}.manifest.json").read_text(encoding="utf-8"))
    change(manifest)
    Path(f"{output}.manifest.json").write_text(json.dumps(sealed(manifest), ensure_ascii=False), encoding="utf-8")
    return output


def test_a_field_only_the_recomputed_manifest_has_is_a_difference(levy_run, tmp_path):
    output = _resealed(levy_run, tmp_path / "ohne-umlagen", lambda manifest: manifest.pop("levies"))
    result = verify(output)
    assert not result.identical and result.differences == () and result.package == ()
    found = {d.key: (d.recorded, d.recomputed) for d in result.field_differences}
    # the two levies of the rule file, recorded nowhere now: ids, statute mode, the fixture's rates
    assert found["levies[0].id"] == ("(fehlt)", "kreisumlage")
    assert found["levies[0].mode"] == ("(fehlt)", "statute")
    assert found["levies[0].rates.*"] == ("(fehlt)", "36.2")
    assert found["levies[1].id"] == ("(fehlt)", "jugendamtsumlage")
    assert found["levies[1].rates.*"] == ("(fehlt)", "23.65")
    assert all(recorded == "(fehlt)" for recorded, _ in found.values())
    assert all(key.startswith("levies[") for key in found)


def test_a_field_only_the_recorded_manifest_has_is_a_difference(levy_run, tmp_path):
    output = _resealed(levy_run, tmp_path / "mit-zusatz", lambda manifest: manifest.update(geprueft_von="Kämmerei"))
    result = verify(output)
    assert result.field_differences == (FieldDifference("geprueft_von", "Kämmerei", "(fehlt)"),)
    assert not result.identical


def test_a_forged_total_in_a_resealed_manifest_is_a_difference(levy_run, tmp_path):
    def forge(manifest: dict) -> None:
        manifest["payable_cents"] += 1

    output = _resealed(levy_run, tmp_path / "gefaelscht", forge)
    recorded = json.loads(Path(f"{output}.manifest.json").read_text(encoding="utf-8"))["payable_cents"]
    result = verify(output)
    assert result.field_differences == (FieldDifference("payable_cents", recorded, recorded - 1),)
