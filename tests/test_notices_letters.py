"""Letters a Kreis can send (issue 22): letterhead and signatory from the rule file, placeholders refused on final
notices, addresses, `--ags`, the Umlagesoll and the base of all payers, last year's rate and amount, reasons only
when the Umlagesoll rose, instalments already due at the notice date, notices after the year, no file names on
letters, PDF/A.

Figures are computed by hand in the comments (Kreis Wesel fixture: Alpen's Umlagegrundlagen 27,154,437 € of
700,000,000 €; the KIM deficit 76,000 € is the Kreisumlage's need).
"""
from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

pytest.importorskip("typst", reason="notices need typst: pip install -e '.[test]'")
from pypdf import PdfReader  # noqa: E402

from allocation.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"
ALPEN = "05170004"


def text_of(path: Path) -> str:
    return re.sub(r"\s+", " ", "\n".join(page.extract_text() for page in PdfReader(path).pages))


def without_letterhead(folder: Path) -> Path:
    """The Wesel rule file without `notices.letterhead` (what a Kreis has before it fills it in)."""
    text = RULES.read_text(encoding="utf-8")
    start = text.index("  # Briefkopf, Unterschrift")
    end = text.index("    remedy:", start)  # the letterhead's last key
    end = text.index("\n", end) + 1
    path = folder / "kreis-wesel.yaml"
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    return path


def with_reasons(folder: Path) -> Path:
    path = folder / "kreis-wesel.yaml"
    text = RULES.read_text(encoding="utf-8")
    path.write_text(text.replace('      approval: "Haushaltssatzung 2022/2023',
                                 '      reasons: "Mehr Stellen im Integrationsmanagement"\n'
                                 '      approval: "Haushaltssatzung 2022/2023'), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def wesel(tmp_path_factory):
    """A Probelauf of the 2022 fixture and a final run of it in its own register."""
    folder = tmp_path_factory.mktemp("wesel")
    rules = folder / "kreis-wesel.yaml"
    shutil.copyfile(RULES, rules)
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(folder / "probe.xlsx")]) == 0
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(folder / "final.xlsx"), "--mode", "final",
                 "--register", str(folder / "register")]) == 0
    return folder


# ------------------------------------------------------------------------------------------- placeholders


def test_a_final_notice_with_a_placeholder_is_refused_and_a_draft_keeps_it_marked(tmp_path, capsys):
    rules = without_letterhead(tmp_path)
    register = tmp_path / "register"
    final = tmp_path / "final.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(final), "--mode", "final",
                 "--register", str(register)]) == 0
    capsys.readouterr()
    out = tmp_path / "bescheide"
    assert main(["notices", str(final), "-o", str(out), "--date", "2022-01-10", "--register", str(register),
                 "--json"]) == 4
    problems = __import__("json").loads(capsys.readouterr().out)["problems"]
    assert {p["code"] for p in problems} == {"notices-placeholder"}
    missing = " ".join(p["message"] for p in problems)
    for what in ("court.name", "court.address", "signatory.name", "authority", "address", "Rechtsbehelf (remedy)"):
        assert what in missing, what
    # where the texts go: the file's `notices:` (it has no `notices.letterhead` yet), not its first line
    notices_line = rules.read_text(encoding="utf-8").split("\n").index("notices:") + 1
    assert notices_line > 1
    assert {(p["location"]["file"], p["location"]["line"]) for p in problems} == {(str(rules), notices_line)}
    assert not out.exists()
    # a draft may keep them, marked
    probe = tmp_path / "probe.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(probe)]) == 0
    assert main(["notices", str(probe), "-o", str(tmp_path / "entwurf"), "--date", "2022-01-10", "--ags", ALPEN]) == 0
    text = text_of(tmp_path / "entwurf" / f"{ALPEN}_Alpen.pdf")
    # without `remedy:` and a profile that verified it, no remedy text at all: which court to name is open too
    assert "ENTWURF" in text and "[PLATZHALTER: Rechtsbehelf nach dem Recht des Landes" in text
    assert "[PLATZHALTER: Name und Amt der zeichnenden Person]" in text


def test_a_kreis_template_that_still_holds_an_old_placeholder_is_refused_for_a_final_notice(wesel, tmp_path, capsys):
    template = tmp_path / "vorlage"
    template.mkdir()
    (template / "unterschrift.typ").write_text(
        '#let unterschrift(d) = [\n  Mit freundlichen Grüßen \\\n  (Name, Amt)\n]\n', encoding="utf-8")
    assert main(["notices", str(wesel / "final.xlsx"), "-o", str(tmp_path / "b"), "--date", "2022-01-10",
                 "--register", str(wesel / "register"), "--template", str(template), "--json"]) == 2
    problem = __import__("json").loads(capsys.readouterr().out)["problems"][0]
    assert problem["code"] == "notices-placeholder" and problem["location"]["line"] == 3


def test_a_final_notice_with_the_letterhead_names_court_signatory_and_sender(wesel, tmp_path):
    out = tmp_path / "b"
    assert main(["notices", str(wesel / "final.xlsx"), "-o", str(out), "--date", "2022-01-10",
                 "--register", str(wesel / "register"), "--ags", ALPEN]) == 0
    text = text_of(out / f"{ALPEN}_Alpen.pdf")
    assert "PLATZHALTER" not in text and "ENTWURF" not in text
    assert "Verwaltungsgericht (Beispiel), Anschrift des Verwaltungsgerichts (Beispiel)" in text
    assert "N. N. (Beispiel)" in text and "Kreishaus (Beispielanschrift) · 46483 Wesel" in text
    assert "Aktenzeichen: 20-2022-05170004" in text  # file_reference "20-{jahr}-{ags}"
    # no file name or folder of the input, the rule file or the output on the letter; the run's short hash stays
    for name in ("kreis-wesel-2022.xlsx", "kreis-wesel.yaml", "final.xlsx", str(wesel)):
        assert name not in text, name
    assert re.search(r"Ergebnis-Arbeitsmappe SHA-256 [0-9a-f]{16}…", text)


# ------------------------------------------------------------------------------------------------ contents


def test_the_notice_states_the_umlagesoll_the_base_of_all_and_readable_names(wesel, tmp_path):
    out = tmp_path / "b"
    assert main(["notices", str(wesel / "probe.xlsx"), "-o", str(out), "--date", "2022-01-10", "--ags", ALPEN]) == 0
    text = text_of(out / f"{ALPEN}_Alpen.pdf")
    # the need (76,000 €, the KIM deficit) and the Umlagegrundlagen of all 13 municipalities (700,000,000 €);
    # Alpen 27,154,437 € × 76,000 / 700,000,000 = 2,948.196… → 2,948.20 €
    assert "Umlagesoll (13 umlagepflichtige Gemeinden) 76.000,00 €" in text
    assert "Umlagegrundlagen aller umlagepflichtigen Gemeinden 700.000.000,00 €" in text
    assert "Ihre Bemessungsgrundlage 27.154.437,00 €" in text and "Umlagebetrag 2.948,20 €" in text
    assert "Gründe für die Erhöhung" not in text  # no previous year given: nothing is known to have risen


def fixture_with(folder: Path, year: int = 2022, kim_costs: int = 296000) -> Path:
    """The Wesel fixture with another Haushaltsjahr and KIM costs (296,000 € in the fixture: deficit 76,000 €)."""
    book = load_workbook(FIXTURE)
    for row in book["Parameter"].iter_rows():
        if row[0].value == "Haushaltsjahr":
            row[1].value = year
    items = book["Kostenpositionen"]
    header = [cell.value for cell in items[1]]
    for row in items.iter_rows(min_row=2):
        if row[header.index("ID")].value == "KIM-2022":
            row[header.index("Personalkosten")].value = kim_costs
    path = folder / f"kreis-wesel-{year}-kim-{kim_costs}.xlsx"
    book.save(path)
    return path


def wesel_2023(folder: Path, kim_costs: int = 308000) -> Path:
    """The fixture as 2023, KIM costs 308,000 € instead of 296,000 € (deficit 88,000 €)."""
    return fixture_with(folder, 2023, kim_costs)


def test_last_years_rate_and_amount_and_the_reasons_only_when_the_umlagesoll_rose(tmp_path):
    rules = with_reasons(tmp_path)
    before, now = tmp_path / "ergebnis-2022.xlsx", tmp_path / "ergebnis-2023.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(before)]) == 0
    assert main(["run", str(wesel_2023(tmp_path)), "--rules", str(rules), "-o", str(now)]) == 0
    out = tmp_path / "b"
    assert main(["notices", str(now), "-o", str(out), "--date", "2023-01-10", "--previous-year", str(before),
                 "--ags", ALPEN]) == 0
    text = text_of(out / f"{ALPEN}_Alpen.pdf")
    # 2023: need 88,000 €; Alpen 27,154,437 × 88,000 / 700,000,000 = 3,413.700… → 3,413.70 €
    assert "Umlagesoll (13 umlagepflichtige Gemeinden) 88.000,00 €" in text and "Umlagebetrag 3.413,70 €" in text
    # last year: Umlagesoll 76,000 €, Alpen 2,948.20 €; the Umlagesoll rose, so the reasons stand
    assert "Umlagesoll 2022 76.000,00 €" in text and "Ihr Umlagebetrag 2022 2.948,20 €" in text
    assert "Gründe für die Erhöhung gegenüber dem Vorjahr: Mehr Stellen im Integrationsmanagement" in text
    # the Jugendamtsumlage's need did not rise (22,260,000 € both years): no reasons there (none configured either)
    assert text.count("Gründe für die Erhöhung") == 1
    # a 2023 with KIM costs of 284,000 € (deficit 64,000 € < 76,000 €): the Umlagesoll fell, no reasons
    fell = tmp_path / "ergebnis-2023-weniger.xlsx"
    assert main(["run", str(wesel_2023(tmp_path, 284000)), "--rules", str(rules), "-o", str(fell)]) == 0
    assert main(["notices", str(fell), "-o", str(tmp_path / "c"), "--date", "2023-01-10", "--previous-year",
                 str(before), "--ags", ALPEN]) == 0
    text = text_of(tmp_path / "c" / f"{ALPEN}_Alpen.pdf")
    assert "Umlagesoll (13 umlagepflichtige Gemeinden) 64.000,00 €" in text and "Gründe für die Erhöhung" not in text


def test_no_reasons_when_the_umlagesoll_stayed_the_same(tmp_path):
    """2023 with the KIM costs of 2022 (296,000 € − 220,000 € funding = 76,000 €, as in 2022): the Umlagesoll did
    not rise, so the configured reasons for an increase are not printed."""
    rules = with_reasons(tmp_path)
    before, now = tmp_path / "ergebnis-2022.xlsx", tmp_path / "ergebnis-2023.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(before)]) == 0
    assert main(["run", str(wesel_2023(tmp_path, 296000)), "--rules", str(rules), "-o", str(now)]) == 0
    out = tmp_path / "b"
    assert main(["notices", str(now), "-o", str(out), "--date", "2023-01-10", "--previous-year", str(before),
                 "--ags", ALPEN]) == 0
    text = text_of(out / f"{ALPEN}_Alpen.pdf")
    assert "Umlagesoll 2022 76.000,00 €" in text and "Umlagesoll (13 umlagepflichtige Gemeinden) 76.000,00 €" in text
    assert "Gründe für die Erhöhung" not in text


# ------------------------------------------------------------------------------------------------ dates


def test_a_notice_dated_in_april_puts_the_instalments_already_due_on_the_next_one(wesel, tmp_path):
    out = tmp_path / "b"
    assert main(["notices", str(wesel / "probe.xlsx"), "-o", str(out), "--date", "2022-04-15", "--ags", ALPEN]) == 0
    with open(out / "Abschlaege.csv", encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream, delimiter=";"))
    header, lines = rows[0], rows[1:]
    kreisumlage = [(line[header.index("Faellig")], line[header.index("Betrag")]) for line in lines
                   if line[header.index("Umlage")] == "Kreisumlage"]
    # 294,820 cents in twelfths: 24,569 × 4 + 24,568 × 8. Due by 15.04. (Jan–Apr): 4 × 245.69 = 982.76 €, with May's
    # 245.68 € due on 15.05.: 1,228.44 €; then 245.68 € from June to December; 1,228.44 + 7 × 245.68 = 2,948.20 €
    assert kreisumlage == [("15.05.2022", "1228,44")] + [(f"15.{m:02d}.2022", "245,68") for m in range(6, 13)]
    text = text_of(out / f"{ALPEN}_Alpen.pdf")
    assert "Die bis zum 15.04.2022 fälligen Abschläge sind am 15.05.2022 zu zahlen." in text
    assert "15.01.2022" not in text


def test_a_first_notice_after_its_year_is_refused(wesel, tmp_path, capsys):
    assert main(["notices", str(wesel / "final.xlsx"), "-o", str(tmp_path / "b"), "--date", "2023-02-01",
                 "--register", str(wesel / "register"), "--json"]) == 3
    assert __import__("json").loads(capsys.readouterr().out)["problems"][0]["code"] == "notices-after-year"
    assert not (tmp_path / "b").exists()


# ----------------------------------------------------------------------------------------- addressees


def addresses(path: Path, rows: list[list]) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.title = "Anschriften"
    for row in [["AGS", "Zeile 1", "Zeile 2"], *rows]:
        sheet.append(row)
    book.save(path)
    return path


def test_addresses_and_ags_choose_and_address_the_notices(wesel, tmp_path, capsys):
    book = addresses(tmp_path / "anschriften.xlsx", [[ALPEN, "Rathausstraße 1 (Beispiel)", "46519 Alpen"],
                                                      ["05170044", "Rathausplatz 1 (Beispiel)", "46562 Voerde"]])
    out = tmp_path / "b"
    assert main(["notices", str(wesel / "final.xlsx"), "-o", str(out), "--date", "2022-01-10", "--register",
                 str(wesel / "register"), "--addresses", str(book), "--ags", f"{ALPEN},05170044"]) == 0
    assert sorted(p.name for p in out.glob("*.pdf")) == [f"{ALPEN}_Alpen.pdf", "05170044_Voerde-Niederrhein.pdf"]
    assert "Rathausstraße 1 (Beispiel) 46519 Alpen" in text_of(out / f"{ALPEN}_Alpen.pdf")
    capsys.readouterr()
    # a final notice whose addressee has no address would show a placeholder
    assert main(["notices", str(wesel / "final.xlsx"), "-o", str(tmp_path / "c"), "--date", "2022-01-10",
                 "--register", str(wesel / "register"), "--addresses", str(book), "--ags", "05170008", "--json"]) == 3
    problem = __import__("json").loads(capsys.readouterr().out)["problems"][0]
    assert problem["code"] == "notices-placeholder" and "05170008" in problem["message"]
    # an unknown AGS is located
    assert main(["notices", str(wesel / "probe.xlsx"), "-o", str(tmp_path / "d"), "--ags", "05170099", "--json"]) == 3
    assert __import__("json").loads(capsys.readouterr().out)["problems"][0]["code"] == "notices-unknown-ags"
    bad = addresses(tmp_path / "falsch.xlsx", [["05999999", "X", "Y"]])
    assert main(["notices", str(wesel / "probe.xlsx"), "-o", str(tmp_path / "e"), "--addresses", str(bad),
                 "--json"]) == 3
    problem = __import__("json").loads(capsys.readouterr().out)["problems"][0]
    assert problem["code"] == "notices-bad-address" and problem["location"]["cell"] == "Anschriften!A2"


# ------------------------------------------------------------------------------------------- Sollstellung


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream, delimiter=";"))
    return rows[0], rows[1:]


def cents(text: str) -> int:
    whole, _, fraction = text.replace("-", "").partition(",")
    value = int(whole) * 100 + int((fraction + "00")[:2])
    return -value if text.startswith("-") else value


def test_the_sollstellung_adds_up_to_the_instalment_plan_and_a_change_writes_corrections(tmp_path):
    rules = tmp_path / "kreis-wesel.yaml"
    shutil.copyfile(RULES, rules)
    first, second = tmp_path / "erst.xlsx", tmp_path / "neu.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(first)]) == 0
    assert main(["notices", str(first), "-o", str(tmp_path / "b"), "--date", "2022-01-10"]) == 0
    header, soll = read_csv(tmp_path / "b" / "Sollstellung.csv")
    assert header == ["Kassenzeichen", "AGS", "Gemeinde", "Umlage", "Produkt", "Sachkonto", "Faellig", "Betrag", "Art",
                      "Bescheiddatum", "Referenz"]
    plan_header, plan = read_csv(tmp_path / "b" / "Abschlaege.csv")
    # one debit per member, levy and due date, and the same amounts as the instalment plan
    key = lambda row, h: (row[h.index("AGS")], row[h.index("Umlage")], row[h.index("Faellig")])  # noqa: E731
    assert {key(r, header): r[header.index("Betrag")] for r in soll} == \
        {key(r, plan_header): r[plan_header.index("Betrag")] for r in plan}
    # the levies' totals by hand: Kreisumlage 76,000.00 €, Jugendamtsumlage 22,260,000.00 €
    by_levy: dict[str, int] = {}
    for row in soll:
        by_levy[row[header.index("Umlage")]] = by_levy.get(row[header.index("Umlage")], 0) + cents(row[header.index("Betrag")])
    assert by_levy == {"Kreisumlage": 76_000_00, "Jugendamtsumlage": 22_260_000_00}
    alpen = next(r for r in soll if r[1] == ALPEN and r[3] == "Kreisumlage")
    assert alpen[4:6] == ["16.01.01", "4372000"] and alpen[8] == "Soll" and alpen[9] == "10.01.2022"
    # a change: KIM costs +12,000 € (need 88,000 €); the corrections add up to the change of each member's levy
    changed = fixture_with(tmp_path, kim_costs=308000)
    assert main(["run", str(changed), "--rules", str(rules), "-o", str(second)]) == 0
    assert main(["notices", str(second), "-o", str(tmp_path / "c"), "--date", "2022-06-20", "--previous",
                 str(first)]) == 0
    header, corrections = read_csv(tmp_path / "c" / "Sollstellung.csv")
    assert {row[header.index("Art")] for row in corrections} == {"Korrektur"}
    # Alpen: 27,154,437 × 88,000 / 700,000,000 = 3,413.70 € against 2,948.20 €: +465.50 €, over the 6 open instalments
    # (July to December; those due by 20.06. stay): 6 × 77.58 = 465.48 €, the 2 cents left on the first two
    alpen = [cents(r[header.index("Betrag")]) for r in corrections if r[1] == ALPEN]
    assert alpen == [77_59, 77_59, 77_58, 77_58, 77_58, 77_58] and sum(alpen) == 465_50
    assert sum(cents(r[header.index("Betrag")]) for r in corrections) == 12_000_00  # the need rose by 12,000 €


# --------------------------------------------------------------- regressions of the adversarial pass (issue 22)

OLD_REMEDY = """\
// Rechtsbehelfsbelehrung. The Kreis MUST put in its administrative court.
#let gericht = [\\[Verwaltungsgericht und Anschrift in rechtsbehelf.typ eintragen\\]]

#let rechtsbehelf(d) = [
  Gegen diesen Bescheid kann Klage erhoben werden beim #gericht.
]
"""


def test_regression_an_old_template_with_an_escaped_placeholder_is_refused(wesel, tmp_path, capsys):
    template = tmp_path / "vorlage"
    template.mkdir()
    (template / "rechtsbehelf.typ").write_text(OLD_REMEDY, encoding="utf-8")  # as the previous default had it
    assert main(["notices", str(wesel / "final.xlsx"), "-o", str(tmp_path / "b"), "--date", "2022-01-10",
                 "--register", str(wesel / "register"), "--template", str(template), "--json"]) == 2
    problem = __import__("json").loads(capsys.readouterr().out)["problems"][0]
    assert problem["code"] == "notices-placeholder" and problem["location"]["line"] == 2
    # the same text in a comment only is no placeholder on the notice
    (template / "rechtsbehelf.typ").write_text(
        "// was: [Verwaltungsgericht und Anschrift in rechtsbehelf.typ eintragen]\n"
        "#let rechtsbehelf(d) = [Klage beim Verwaltungsgericht Beispielstadt, Gerichtsweg 1.] /* (Name, Amt) */\n",
        encoding="utf-8")
    assert main(["notices", str(wesel / "final.xlsx"), "-o", str(tmp_path / "c"), "--date", "2022-01-10",
                 "--register", str(wesel / "register"), "--template", str(template), "--ags", ALPEN]) == 0


def test_regression_a_letterhead_of_blanks_counts_as_missing(tmp_path, capsys):
    text = RULES.read_text(encoding="utf-8").replace(
        'court: {name: "Verwaltungsgericht (Beispiel)", address: "Anschrift des Verwaltungsgerichts (Beispiel)"}',
        'court: {name: "   ", address: "\\t"}')
    rules = tmp_path / "kreis-wesel.yaml"
    rules.write_text(text, encoding="utf-8")
    final = tmp_path / "final.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(final), "--mode", "final", "--register",
                 str(tmp_path / "r")]) == 0
    capsys.readouterr()
    assert main(["notices", str(final), "-o", str(tmp_path / "b"), "--date", "2022-01-10", "--register",
                 str(tmp_path / "r"), "--json"]) == 4
    missing = " ".join(p["message"] for p in __import__("json").loads(capsys.readouterr().out)["problems"])
    assert "court.name" in missing and "court.address" in missing


def test_regression_a_change_notice_changes_what_an_april_notice_set(wesel, tmp_path):
    rules = tmp_path / "kreis-wesel.yaml"
    shutil.copyfile(RULES, rules)
    first, changed = tmp_path / "erst.xlsx", tmp_path / "neu.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(first)]) == 0
    assert main(["run", str(fixture_with(tmp_path, kim_costs=308000)), "--rules", str(rules), "-o", str(changed)]) == 0
    assert main(["notices", str(first), "-o", str(tmp_path / "april"), "--date", "2022-04-15", "--ags", ALPEN]) == 0
    assert main(["notices", str(changed), "-o", str(tmp_path / "mai"), "--date", "2022-05-01", "--previous",
                 str(first), "--first-notice", "2022-04-15", "--ags", ALPEN]) == 0
    header, lines = read_csv(tmp_path / "mai" / "Abschlaege.csv")
    rows = [(r[header.index("Faellig")], r[header.index("Bisher")], r[header.index("Betrag")]) for r in lines
            if r[header.index("Umlage")] == "Kreisumlage"]
    # the April notice set 1,228.44 € on 15.05. and 245.68 € from June; +465.50 € over the 8 open instalments
    # (May–December): 58.19 × 6 + 58.18 × 2; nothing was set for January–April
    assert rows[0] == ("15.05.2022", "1228,44", "1286,63") and len(rows) == 8
    assert [r[2] for r in rows[1:]] == ["303,87"] * 5 + ["303,86"] * 2
    _, soll = read_csv(tmp_path / "mai" / "Sollstellung.csv")
    assert sum(cents(r[7]) for r in soll if r[3] == "Kreisumlage") == 465_50


def test_regression_ags_empty_or_into_a_full_folder_is_refused(wesel, tmp_path, capsys):
    assert main(["notices", str(wesel / "probe.xlsx"), "-o", str(tmp_path / "a"), "--ags", " , ", "--json"]) == 3
    assert __import__("json").loads(capsys.readouterr().out)["problems"][0]["code"] == "notices-unknown-ags"
    full = tmp_path / "alle"
    assert main(["notices", str(wesel / "probe.xlsx"), "-o", str(full), "--date", "2022-01-10"]) == 0
    capsys.readouterr()
    assert main(["notices", str(wesel / "probe.xlsx"), "-o", str(full), "--date", "2022-01-10", "--ags", ALPEN,
                 "--json"]) == 8
    assert __import__("json").loads(capsys.readouterr().out)["problems"][0]["code"] == "notices-would-overwrite"
    assert main(["notices", str(wesel / "probe.xlsx"), "-o", str(tmp_path / "eine"), "--date", "2022-01-10",
                 "--ags", ALPEN, "--json"]) == 0
    assert __import__("json").loads(capsys.readouterr().out)["without_notice"] == []  # the others were not asked for


def test_regression_addresses_take_text_only_in_the_order_of_their_lines(wesel, tmp_path, capsys):
    book = Workbook()
    sheet = book.active
    sheet.title = "Anschriften"
    sheet.append(["AGS", "Zeile 2", "Zeile 1"])
    sheet.append([ALPEN, "46519 Alpen", "Rathausstraße 1"])
    sheet.append(["05170044", 46562, "Rathausplatz 1"])  # a postal code as a number: Excel shows what it stores?
    book.save(tmp_path / "anschriften.xlsx")
    assert main(["notices", str(wesel / "probe.xlsx"), "-o", str(tmp_path / "b"), "--addresses",
                 str(tmp_path / "anschriften.xlsx"), "--json"]) == 3
    problem = __import__("json").loads(capsys.readouterr().out)["problems"][0]
    assert problem["code"] == "notices-bad-address" and problem["location"]["cell"] == "Anschriften!B3"
    sheet.delete_rows(3)
    book.save(tmp_path / "anschriften.xlsx")
    assert main(["notices", str(wesel / "probe.xlsx"), "-o", str(tmp_path / "c"), "--date", "2022-01-10",
                 "--addresses", str(tmp_path / "anschriften.xlsx"), "--ags", ALPEN]) == 0
    assert "Rathausstraße 1 46519 Alpen" in text_of(tmp_path / "c" / f"{ALPEN}_Alpen.pdf")


def test_regression_a_statutory_levy_without_need_states_what_it_levies(tmp_path):
    # VG Schwerin 1 A 387/14 (fixture mv-perlin-2013): 218,900.89 € × 43.67 % = 95,594.02 €, no cost item and no
    # Umlagebedarf in the run: the Umlagesoll is what the levy levies, not 0,00 €
    rules = tmp_path / "mv-perlin-2013.yaml"
    rules.write_text((ROOT / "rules" / "mv-perlin-2013.yaml").read_text(encoding="utf-8")
                     + "instalments: {schedule: monthly, day: 15}\n", encoding="utf-8")
    out = tmp_path / "perlin.xlsx"
    assert main(["run", str(ROOT / "fixtures" / "mv-perlin-2013" / "mv-perlin-2013.xlsx"), "--rules", str(rules),
                 "-o", str(out)]) == 0
    assert main(["notices", str(out), "-o", str(tmp_path / "b"), "--date", "2013-01-10"]) == 0
    (pdf,) = (tmp_path / "b").glob("*.pdf")
    assert "Umlagesoll (1 umlagepflichtiges Mitglied) 95.594,02 €" in text_of(pdf)  # one payer: singular


def test_regression_a_typo_in_notices_levies_is_a_warning():
    from allocation.rulefiles.rulebook import parse_rulebook

    text = RULES.read_text(encoding="utf-8").replace("    Jugendamtsumlage:\n      produkt:",
                                                     "    Jugendamtumlage:\n      produkt:")
    _, warnings = parse_rulebook(text, "kreis-wesel.yaml")
    assert [w.code for w in warnings] == ["rule-notices-unknown-levy"] and "Jugendamtsumlage" in warnings[0].message


# ------------------------------------------------------------------------------- the installation's letterhead

INSTALLATION = """\
# Briefkopf der Installation: gilt für jede Regeldatei, die ihn nicht selbst angibt
letterhead:
  authority: Kreis Wesel – Der Landrat
  address: ["Reeser Landstraße 31", "46483 Wesel"]
  department: Fachdienst 20 Finanzen
  contact: {name: "Frau Muster", phone: "0281 207-0", email: "umlage@kreis-wesel.example"}
  file_reference: "20.1-{jahr}-{ags}"
  signatory: {name: "Erika Muster", title: "Kreiskämmerin"}
  court: {name: "Verwaltungsgericht Düsseldorf", address: "Bastionstraße 39, 40213 Düsseldorf"}
  remedy: klage
payment: "Sparkasse am Niederrhein, IBAN DE12 3456 7890 1234 5678 90"
"""


def test_the_installations_letterhead_fills_what_the_rule_file_leaves_out(tmp_path, capsys, monkeypatch):
    """A rule file without `notices.letterhead` and a letterhead file for the installation: the final notice is
    written (no placeholder left) with the installation's authority, court and signatory; given in both, the rule
    file's own text wins (here: its payment line)."""
    rules = without_letterhead(tmp_path)
    head = tmp_path / "briefkopf.yaml"
    head.write_text(INSTALLATION, encoding="utf-8")
    register = tmp_path / "register"
    final = tmp_path / "final.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(final), "--mode", "final",
                 "--register", str(register)]) == 0
    out = tmp_path / "bescheide"
    assert main(["notices", str(final), "-o", str(out), "--date", "2022-01-10", "--register", str(register),
                 "--ags", ALPEN, "--letterhead", str(head)]) == 0
    text = text_of(out / f"{ALPEN}_Alpen.pdf")
    for expected in ("Kreis Wesel – Der Landrat", "Reeser Landstraße 31", "Verwaltungsgericht Düsseldorf",
                     "Bastionstraße 39, 40213 Düsseldorf", "Erika Muster", "Kreiskämmerin", "20.1-2022-05170004",
                     "Sparkasse (Beispiel)"):  # the payment of the rule file, not the installation's
        assert expected in text, expected
    assert "Sparkasse am Niederrhein" not in text and "PLATZHALTER" not in text
    # the same file named by $ALLOCATION_LETTERHEAD, for a scheduled installation
    monkeypatch.setenv("ALLOCATION_LETTERHEAD", str(head))
    assert main(["notices", str(final), "-o", str(tmp_path / "aus-env"), "--date", "2022-01-10", "--register",
                 str(register), "--ags", ALPEN]) == 0
    assert "Erika Muster" in text_of(tmp_path / "aus-env" / f"{ALPEN}_Alpen.pdf")


def test_a_text_missing_in_the_installations_letterhead_file_is_refused_there(tmp_path, capsys):
    """The rule file has no letterhead, the installation's file a signatory of blanks: the final notice is refused
    at that file's `letterhead:` (line 2, after its comment), under that file's title; the rule file of a final
    run can no longer change, the letterhead file can."""
    rules = without_letterhead(tmp_path)
    head = tmp_path / "briefkopf.yaml"
    head.write_text(INSTALLATION.replace('{name: "Erika Muster", title: "Kreiskämmerin"}', '{name: "  ", title: "x"}'),
                    encoding="utf-8")
    register, final = tmp_path / "register", tmp_path / "final.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(final), "--mode", "final",
                 "--register", str(register)]) == 0
    capsys.readouterr()
    out = tmp_path / "bescheide"
    assert main(["notices", str(final), "-o", str(out), "--date", "2022-01-10", "--register", str(register),
                 "--letterhead", str(head), "--json"]) == 4
    said = __import__("json").loads(capsys.readouterr().out)
    assert said["title"] == "Die Briefkopf-Datei der Installation enthält Fehler"
    assert [(p["code"], p["location"]["file"], p["location"]["line"]) for p in said["problems"]] == [
        ("notices-placeholder", str(head), 2)]
    assert "signatory.name" in said["problems"][0]["message"]
    assert not out.exists()


@pytest.mark.parametrize("text, line, code", [
    # the court written twice: YAML keeps the last, and the notice would name the other court without a word
    (INSTALLATION.replace("  remedy: klage\n", '  court: {name: "Verwaltungsgericht Gelsenkirchen", address: '
                          '"Bahnhofsvorplatz 3, 45879 Gelsenkirchen"}\n  remedy: klage\n'), 10, "rule-duplicate-key"),  # line 10: after
    # the comment, `letterhead:` and its seven keys up to the first court
    ("", 1, "rule-bad-type"),  # empty: nothing of the letterhead is read
    ("- letterhead\n", 1, "rule-bad-type")])  # a list, not a mapping
def test_a_letterhead_file_with_a_key_twice_or_no_mapping_is_refused(wesel, tmp_path, capsys, text, line, code):
    head = tmp_path / "briefkopf.yaml"
    head.write_text(text, encoding="utf-8")
    out = tmp_path / "bescheide"
    capsys.readouterr()
    assert main(["notices", str(wesel / "final.xlsx"), "-o", str(out), "--date", "2022-01-10", "--register",
                 str(wesel / "register"), "--letterhead", str(head), "--json"]) == 4
    said = __import__("json").loads(capsys.readouterr().out)
    assert said["title"] == "Die Briefkopf-Datei der Installation enthält Fehler"
    assert [(p["code"], p["location"]["file"], p["location"]["line"]) for p in said["problems"]] == [
        (code, str(head), line)]
    assert not out.exists()


def test_a_faulty_letterhead_file_is_refused_at_its_line(wesel, tmp_path, capsys):
    head = tmp_path / "briefkopf.yaml"
    head.write_text(INSTALLATION.replace("  department:", "  departement:"), encoding="utf-8")
    out = tmp_path / "bescheide"
    assert main(["notices", str(wesel / "final.xlsx"), "-o", str(out), "--date", "2022-01-10", "--register",
                 str(wesel / "register"), "--letterhead", str(head), "--json"]) == 4
    said = __import__("json").loads(capsys.readouterr().out)
    problems = said["problems"]
    assert said["title"] == "Die Briefkopf-Datei der Installation enthält Fehler"  # not the rule file's
    assert [(p["location"]["file"], p["location"]["line"]) for p in problems] == [(str(head), 5)]  # line 5: `  departement:`
    assert "departement" in problems[0]["message"] + str(problems[0]["found"])
    assert not out.exists()
    missing = tmp_path / "fehlt.yaml"
    assert main(["notices", str(wesel / "final.xlsx"), "-o", str(out), "--date", "2022-01-10", "--register",
                 str(wesel / "register"), "--letterhead", str(missing), "--json"]) == 4
    [problem] = __import__("json").loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "rule-file-unreadable" and "--letterhead" in problem["hint"]
