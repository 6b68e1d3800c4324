"""Findings of the adversarial review (helper "adversary"): each test is the minimal reproduction of a defect
the review found. Every defect has been fixed, so these are regression tests: each must pass, and none carries a
mark. Expected values are written here from the handbook (docs/) and by hand, never taken from the code.

Every test builds its own files in tmp_path from the shipped fixtures and rule files; the autouse fixture
`isolated_register` (conftest.py) gives each test its own register of final runs.
"""
from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

from openpyxl import load_workbook

from allocation.cli import main
from workbooks import resigned_copy

ROOT = Path(__file__).resolve().parent.parent
WESEL = ROOT / "fixtures" / "kreis-wesel-2022"
WITH_RATES = WESEL / "kreis-wesel-2022-hebesaetze.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"


def _edited(source: Path, target: Path, edit) -> Path:
    workbook = load_workbook(source)
    edit(workbook)
    workbook.save(target)
    return target


def _run(input_path: Path, output: Path, *extra: str) -> int:
    return main(["run", str(input_path), "--rules", str(RULES), "-o", str(output), *extra])


def test_finding1_a_test_run_does_not_overwrite_a_registered_final_workbook(tmp_path):
    final = tmp_path / "echtlauf.xlsx"
    assert _run(WITH_RATES, final, "--mode", "final") == 0
    final_bytes = final.read_bytes()
    manifest_bytes = Path(f"{final}.manifest.json").read_bytes()
    # A careless second run: other figures (Alpen's Jugendamt flag 1 → 0), default mode test, same -o.
    other = _edited(WITH_RATES, tmp_path / "entwurf.xlsx", lambda wb: wb["Gemeinden"].cell(2, 5, 0))

    exit_code = _run(other, final)

    # The register still names echtlauf.xlsx with its SHA-256 as the final run of Kreis Wesel 2022; the notices,
    # trueup and the auditors rely on it. Expected: refused (docs, exit 8: "it would overwrite a workbook"),
    # both files byte for byte as the final run wrote them.
    assert exit_code == 8
    assert final.read_bytes() == final_bytes
    assert Path(f"{final}.manifest.json").read_bytes() == manifest_bytes


def test_finding2_trueup_of_a_statute_final_run_with_the_same_figures_settles_to_zero(tmp_path):
    final = tmp_path / "echtlauf.xlsx"
    assert _run(WITH_RATES, final, "--mode", "final") == 0
    settlement = tmp_path / "spitzabrechnung.xlsx"

    # docs: trueup "settles what the Uebersicht shows (with a statute rate that changes only with the bases)".
    # Actual figures = planned figures, so every municipality owes exactly what it paid.
    assert main(["trueup", str(final), str(WITH_RATES), "--rules", str(RULES), "-o", str(settlement)]) == 0
    rows = list(load_workbook(settlement, read_only=True)["Spitzabrechnung"].iter_rows(values_only=True))
    assert [row[4] for row in rows[1:]] == [0] * (len(rows) - 1)


def test_finding3_a_parameter_given_twice_is_refused(tmp_path):
    # The controller sees "Rundung | Cent" in row 4; a stray row further down says Euro.
    book = _edited(WITH_RATES, tmp_path / "doppelt.xlsx", lambda wb: wb["Parameter"].append(["Rundung", "Euro"]))
    output = tmp_path / "ergebnis.xlsx"

    # Which value the controller meant is not guessed (as for duplicate sheets, columns, ids, rates): exit 3,
    # located at the second row, and no workbook.
    assert _run(book, output) == 3
    assert not output.exists()


def test_finding4_explain_of_a_rule_file_is_a_located_problem(capsys):
    # docs: explain-unreadable (exit 3) — as for a missing file; compare and trueup already answer so.
    assert main(["explain", str(RULES), "--item", "KIM-2022"]) == 3
    assert "Traceback" not in capsys.readouterr().err


def test_finding5_verify_reports_a_hidden_sheet(tmp_path):
    run_dir, edited_dir = tmp_path / "lauf", tmp_path / "bearbeitet"
    run_dir.mkdir()
    edited_dir.mkdir()
    output = run_dir / "ergebnis.xlsx"
    assert _run(WITH_RATES, output) == 0
    # Same file name in another folder (a plain copy verifies as identical), one attribute changed:
    # the controls sheet is hidden, so a printed or opened workbook no longer shows them.
    edited = edited_dir / "ergebnis.xlsx"
    resigned_copy(output, edited, "xl/workbook.xml", '<sheet name="Kontrollen" sheetId="4"',
           '<sheet name="Kontrollen" state="hidden" sheetId="4"')

    # docs: verify compares "every cell of every sheet ... and per sheet the layout"; the output was changed.
    assert main(["verify", str(edited)]) == 7


def test_finding6_rates_from_accepts_the_same_district_in_another_spelling(tmp_path):
    def previous_year(wb):
        wb["Parameter"]["B2"] = "Landkreis  WESEL"   # the same district (docs/controller/lauf.md)
        wb["Parameter"]["B3"] = 2021
        wb["Umlagesaetze"]["C2"] = 35.5
    previous = _edited(WITH_RATES, tmp_path / "vorjahr.xlsx", previous_year)
    output = tmp_path / "vorlaeufig.xlsx"

    assert _run(WITH_RATES, output, "--provisional", "--rates-from", str(previous)) == 0
    rows = list(load_workbook(output, read_only=True)["Umlagen"].iter_rows(values_only=True))
    alpen = next(row for row in rows if row[0] == "Kreisumlage" and row[1] == "05170004")
    # Alpen: 27.154.437 € × 35,50 % = 9.639.825,135 € → half up 9.639.825,14 €
    assert Decimal(str(alpen[7])) == Decimal("9639825.14")


def test_finding7_a_flag_other_than_0_or_1_is_refused_with_the_shipped_rules(tmp_path):
    book = _edited(WITH_RATES, tmp_path / "kennzeichen.xlsx", lambda wb: wb["Gemeinden"].cell(2, 5, 2))
    output = tmp_path / "ergebnis.xlsx"

    # Alpen (row 2) would pay 6.422.024,35 € less, without any message. A flag is 1/0 (docs); the shipped rule
    # file should declare `domains: {Jugendamt_Kreis: [0, 1]}` so that the run stops at Gemeinden!E2 (exit 3).
    assert _run(book, output) == 3
    assert not output.exists()


def test_finding8_an_output_path_that_is_a_fifo_is_refused_and_left_alone(tmp_path):
    import os
    import stat

    pipe = tmp_path / "ergebnis.xlsx"
    os.mkfifo(pipe)

    exit_code = _run(WITH_RATES, pipe)

    # Nothing sensible can be written there (with /dev/null as root the device node itself was replaced):
    # refused before anything is computed (exit 9, the output location), and the special file stays what it was.
    assert exit_code == 9
    assert stat.S_ISFIFO(pipe.lstat().st_mode)


def test_finding9_template_does_not_overwrite_a_filled_input_workbook(tmp_path):
    filled = tmp_path / "kreis-wesel-2022.xlsx"
    shutil.copy(WITH_RATES, filled)
    before = filled.read_bytes()

    exit_code = main(["template", str(filled)])

    # A careless `allocation template MEINE-DATEN.xlsx` must not destroy a year's figures: refused (exit 8,
    # as for every output that would replace a workbook), the file unchanged.
    assert exit_code == 8
    assert filled.read_bytes() == before


def test_finding10_an_output_that_is_a_folder_is_a_clear_refusal(tmp_path, capsys):
    folder = tmp_path / "ergebnisse"
    folder.mkdir()

    exit_code = _run(WITH_RATES, folder)

    assert exit_code == 9  # the output location (docs/operations/exit-codes.md)
    assert "Traceback" not in capsys.readouterr().err
    assert list(folder.iterdir()) == []


def test_finding11_batch_into_its_own_folder_never_overwrites_an_input(tmp_path):
    folder = tmp_path / "mappen"
    folder.mkdir()
    shutil.copy(WITH_RATES, folder / "a.xlsx")
    # A second input whose name is the first one's result name (e.g. a colleague's file, other figures).
    second = _edited(WITH_RATES, folder / "a-ergebnis.xlsx", lambda wb: wb["Gemeinden"].cell(2, 3, 1000))
    before = second.read_bytes()

    exit_code = main(["batch", str(folder), "--rules", str(RULES), "-o", str(folder), "--jobs", "1"])

    # docs: no command writes over a file it reads; every such output is refused with exit 8 before reading.
    assert exit_code == 8
    assert second.read_bytes() == before
