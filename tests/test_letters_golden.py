"""Golden texts of the letters (issue 22): a final notice, a provisional notice, a notice dated in April, a change
notice and a Benehmen letter, each for Alpen (Kreis Wesel fixture), with the figures that matter computed by hand
in the test. The golden files (`tests/golden/letter-*.txt`) pin the whole text against unnoticed change; they are
no proof of a figure: the hand calculations below are (rewrite them with ALLOCATION_UPDATE_GOLDEN=1, then review).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from openpyxl import load_workbook

pytest.importorskip("typst", reason="letters need typst: pip install -e '.[test]'")
from pypdf import PdfReader  # noqa: E402

from allocation.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
RATES = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022-hebesaetze.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"
GOLDEN = ROOT / "tests" / "golden"
ALPEN = "05170004"


def text_of(path: Path) -> str:
    text = "\n".join(page.extract_text() for page in PdfReader(path).pages)
    text = re.sub(r"SHA-256 [0-9a-f]{16}", "SHA-256 <sha>", text)
    return re.sub(r"Lauf vom \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "Lauf vom <zeit> UTC", text)


def golden(name: str, text: str) -> None:
    path = GOLDEN / f"letter-{name}.txt"
    if os.environ.get("ALLOCATION_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
        pytest.skip("golden text rewritten: review the diff before committing")
    assert text == path.read_text(encoding="utf-8")


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def edited(source: Path, target: Path, year: int | None = None, kim: int | None = None,
           alpen_base: int | None = None, kreisumlage: float | None = None) -> Path:
    book = load_workbook(source)
    if year is not None:
        for row in book["Parameter"].iter_rows():
            if row[0].value == "Haushaltsjahr":
                row[1].value = year
    if kim is not None:
        items = book["Kostenpositionen"]
        head = [cell.value for cell in items[1]]
        for row in items.iter_rows(min_row=2):
            if row[head.index("ID")].value == "KIM-2022":
                row[head.index("Personalkosten")].value = kim
    if alpen_base is not None:
        for row in book["Gemeinden"].iter_rows(min_row=2):
            if row[0].value == ALPEN:
                row[2].value = alpen_base
    if kreisumlage is not None:
        for row in book["Umlagesaetze"].iter_rows(min_row=2):
            if row[0].value == "kreisumlage":
                row[2].value = kreisumlage
    book.save(target)
    return target


@pytest.fixture(scope="module")
def letters(tmp_path_factory):
    base = tmp_path_factory.mktemp("briefe")
    rules = base / "kreis-wesel.yaml"
    shutil.copyfile(RULES, rules)
    register = base / "register"
    final, changed = base / "final.xlsx", base / "geaendert.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(final), "--mode", "final",
                 "--register", str(register)]) == 0
    assert main(["notices", str(final), "-o", str(base / "final"), "--date", "2022-01-10", "--register",
                 str(register), "--ags", ALPEN]) == 0
    provisional = base / "vorlaeufig.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(provisional), "--provisional"]) == 0
    assert main(["notices", str(provisional), "-o", str(base / "vorlaeufig"), "--date", "2022-01-10",
                 "--ags", ALPEN]) == 0
    assert main(["notices", str(provisional), "-o", str(base / "april"), "--date", "2022-04-15", "--ags", ALPEN]) == 0
    assert main(["run", str(edited(FIXTURE, base / "kreis-wesel-2022-neu.xlsx", kim=308000)), "--rules", str(rules),
                 "-o", str(changed), "--mode", "final", "--register", str(register), "--supersede", "KIM"]) == 0
    assert main(["notices", str(changed), "-o", str(base / "aenderung"), "--date", "2022-06-20", "--previous",
                 str(final), "--register", str(register), "--ags", ALPEN]) == 0
    last_year = base / "ergebnis-2022-saetze.xlsx"
    assert main(["run", str(RATES), "--rules", str(rules), "-o", str(last_year)]) == 0
    planned = edited(RATES, base / "plan-2023.xlsx", year=2023, alpen_base=28_000_000, kreisumlage=36.7)
    assert main(["benehmen", str(planned), "--rules", str(rules), "--previous", str(last_year), "-o",
                 str(base / "benehmen"), "--date", "2022-09-01", "--deadline", "2022-10-15"]) == 0
    return base


def test_final_notice(letters):
    text = text_of(letters / "final" / f"{ALPEN}_Alpen.pdf")
    # Alpen 27,154,437 € of 700,000,000 € × the need 76,000 € = 2,948.196… → 2,948.20 €; twelfths: 294,820 cents =
    # 4 × 24,569 + 8 × 24,568 → 245,69 € (Jan–Apr), 245,68 € (May–Dec)
    for figure in ("Umlagesoll (13 umlagepflichtige Gemeinden) 76.000,00 €", "Umlagebetrag 2.948,20 €",
                   "1 15.01.2022 245,69 €", "12 15.12.2022 245,68 €", "Aktenzeichen: 20-2022-05170004"):
        assert figure in flat(text), figure
    assert "ENTWURF" not in text and "PLATZHALTER" not in text
    golden("final", text)


def test_provisional_notice(letters):
    text = text_of(letters / "vorlaeufig" / f"{ALPEN}_Alpen.pdf")
    assert "Vorläufige Festsetzung der Kreisumlage und der Jugendamtsumlage für das Haushaltsjahr 2022" in flat(text)
    assert "Dieser Bescheid ist vorläufig (§ 56 Abs. 1 KrO NRW)" in flat(text)
    golden("provisional", text)


def test_notice_dated_in_april(letters):
    text = text_of(letters / "april" / f"{ALPEN}_Alpen.pdf")
    # Jan–Apr due by 15.04.: 4 × 245.69 = 982.76 € with May's 245.68 € on 15.05.: 1,228.44 €
    assert "5 15.05.2022 1.228,44 €" in flat(text) and "15.01.2022" not in text
    golden("april", text)


def test_change_notice(letters):
    text = text_of(letters / "aenderung" / f"{ALPEN}_Alpen_Aenderung.pdf")
    # need 88,000 €: 27,154,437 × 88,000 / 700,000,000 = 3,413.70 €; +465.50 € over July–December (6 instalments:
    # 77.59 × 2 + 77.58 × 4); Jan–Jun stay (due by 20.06.)
    for figure in ("Bisher festgesetzt 2.948,20 €", "Neu festgesetzt 3.413,70 €", "Differenz 465,50 €"):
        assert figure in flat(text), figure
    golden("change", text)


def test_benehmen_letter(letters):
    text = text_of(letters / "benehmen" / f"{ALPEN}_Alpen_Benehmen.pdf")
    # Kreisumlage: 2022 27,154,437 × 36.20 % = 9,829,906.194 → 9,829,906.19 €; 2023 28,000,000 × 36.70 % =
    # 10,276,000.00 €; change +446,093.81 €; rate effect 28,000,000 × 0.50 % = 140,000.00 €, base effect the rest
    # 306,093.81 € (= 845,563 × 36.20 % = 306,093.806); +0,50 points; one point 280,000.00 €.
    # Jugendamtsumlage 23.65 % both years: 6,422,024.35 € → 6,622,000.00 €, +199,975.65 €, all of it base effect.
    for figure in ("Umlagesatz 36,20 % 36,70 %", "Umlage 9.829.906,19 € 10.276.000,00 €", "Änderung +446.093,81 €",
                   "(Grundlagenwirkung) +306.093,81 €", "(Satzwirkung) +140.000,00 €",
                   "(geplant − Vorjahr) +0,50", "Grundlage × 1 %) 280.000,00 €",
                   "Umlage 6.422.024,35 € 6.622.000,00 €", "Änderung +199.975,65 €",
                   "(Grundlagenwirkung) +199.975,65 €"):
        assert figure in flat(text), figure
    golden("benehmen", text)


def test_benehmen_letter_signed_from_the_installations_letterhead(letters, tmp_path):
    """A rule file without `notices.letterhead`: the Benehmen letter takes the authority and the signatory from
    the installation's letterhead file (`--letterhead`)."""
    from test_notices_letters import INSTALLATION, without_letterhead

    rules = without_letterhead(tmp_path)
    head = tmp_path / "briefkopf.yaml"
    head.write_text(INSTALLATION, encoding="utf-8")
    assert main(["benehmen", str(letters / "plan-2023.xlsx"), "--rules", str(rules), "--previous",
                 str(letters / "ergebnis-2022-saetze.xlsx"), "-o", str(tmp_path / "benehmen"), "--date", "2022-09-01",
                 "--deadline", "2022-10-15", "--letterhead", str(head)]) == 0
    text = text_of(tmp_path / "benehmen" / f"{ALPEN}_Alpen_Benehmen.pdf")
    for expected in ("Kreis Wesel – Der Landrat", "Reeser Landstraße 31", "Erika Muster", "Kreiskämmerin"):
        assert expected in text, expected


def test_benehmen_takes_the_letterhead_option_over_the_environment(letters, tmp_path, monkeypatch):
    """--letterhead names the letterhead for this call; ALLOCATION_LETTERHEAD is only the default without it."""
    from test_notices_letters import INSTALLATION, without_letterhead

    rules = without_letterhead(tmp_path)
    from_env, given = tmp_path / "umgebung.yaml", tmp_path / "option.yaml"
    from_env.write_text(INSTALLATION.replace("Erika Muster", "Anna Umgebung"), encoding="utf-8")
    given.write_text(INSTALLATION.replace("Erika Muster", "Berta Option"), encoding="utf-8")
    monkeypatch.setenv("ALLOCATION_LETTERHEAD", str(from_env))
    assert main(["benehmen", str(letters / "plan-2023.xlsx"), "--rules", str(rules), "--previous",
                 str(letters / "ergebnis-2022-saetze.xlsx"), "-o", str(tmp_path / "benehmen"), "--date", "2022-09-01",
                 "--deadline", "2022-10-15", "--letterhead", str(given)]) == 0
    text = text_of(tmp_path / "benehmen" / f"{ALPEN}_Alpen_Benehmen.pdf")
    assert "Berta Option" in text and "Anna Umgebung" not in text
