"""Notices and Benehmen letters against hostile names, templates and umasks (issue: custom templates, CSV
injection, long names, folder modes).

The expected values are written out by hand next to each test: the neutralised CSV cells, the byte lengths of
the cut file names, the modes 0o755/0o750 of a folder made under umask 022/027.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

from openpyxl import Workbook

from allocation.core.instalments import Schedule
from allocation.ops.notices import Levy, LevyShare, ResultBook, _write_csv, build_notices, read_result
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
