"""Statutory levies end to end: the Kreis Wesel 2022 fixture with its published rates, a provisional run with
the previous year's rates, verify, and refused rates (issue 14)."""
from __future__ import annotations

import importlib.util
import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.cli import main
from workbooks import read_sheet

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "kreis-wesel-2022"
WITH_RATES = FIXTURES / "kreis-wesel-2022-hebesaetze.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"
# Illustrative bases of the fixture (Gemeinden!C), € — read by hand from build_fixture.illustrative_bases()
ALPEN = 27_154_437
YOUTH_OFFICE = ("05170004", "05170012", "05170016", "05170028", "05170036", "05170040", "05170052")


def builder():
    spec = importlib.util.spec_from_file_location("build_fixture", FIXTURES / "build_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def half_up_cents(exact_euros: Fraction) -> Decimal:
    """Oracle: euros rounded half up to the cent, written here (not money.py)."""
    cents = exact_euros * 100
    whole, rest = divmod(cents.numerator, cents.denominator)
    return Decimal(whole + (1 if 2 * rest >= cents.denominator else 0)) / 100


@pytest.fixture(scope="module")
def statute_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("levies") / "ergebnis.xlsx"
    assert main(["run", str(WITH_RATES), "--rules", str(RULES), "-o", str(output)]) == 0
    return output


def test_fixture_bases_are_the_documented_ones():
    bases = builder().illustrative_bases()
    assert bases["05170004"] == ALPEN


def test_wesel_2022_uebersicht_applies_the_published_rates(statute_run):
    rows = {row["AGS"]: row for row in read_sheet(statute_run, "Uebersicht")}
    header = list(rows["05170004"])
    assert header[3:7] == ["Kreisumlage", "Jugendamtsumlage", "Direktabrechnung", "Trägerkommune"]
    # Alpen: 27.154.437 € × 36,20 % = 9.829.906,194 € → 9.829.906,19 €; × 23,65 % = 6.422.024,3505 € → 6.422.024,35 €
    assert Decimal(str(rows["05170004"]["Kreisumlage"])) == Decimal("9829906.19")
    assert Decimal(str(rows["05170004"]["Jugendamtsumlage"])) == Decimal("6422024.35")
    # Moers has its own Jugendamt: no Jugendamtsumlage
    assert Decimal(str(rows["05170024"]["Jugendamtsumlage"])) == 0
    # Hebesatz-Punkte count the levies only: 36,20 + 23,65 = 59,85 for a youth-office municipality
    # (each line is rounded to the cent, so the points are within 0,0001 of the sum of the rates)
    points = Decimal(str(rows["05170004"]["Hebesatz-Punkte (Umlagen ÷ Umlagegrundlagen × 100)"]))
    assert abs(points - Decimal("59.85")) <= Decimal("0.0001")
    assert abs(Decimal(str(rows["05170024"]["Hebesatz-Punkte (Umlagen ÷ Umlagegrundlagen × 100)"]))
               - Decimal("36.20")) <= Decimal("0.0001")


def test_wesel_2022_umlagen_sheet_shows_need_revenue_and_difference(statute_run):
    rows = read_sheet(statute_run, "Umlagen")
    alpen = next(r for r in rows if r["Umlage"] == "Kreisumlage" and r["AGS"] == "05170004")
    assert alpen["Nachweis"] == "27.154.437,00 € × 36,20 % = 9.829.906,1940 € → 9.829.906,19 €"
    assert Decimal(str(alpen["Bemessungsgrundlage"])) == ALPEN and Decimal(str(alpen["Satz (%)"])) == Decimal("36.2")
    bases = builder().illustrative_bases()
    revenue = sum(half_up_cents(Fraction(base) * Fraction(3620, 10_000)) for base in bases.values())
    youth = sum(half_up_cents(Fraction(bases[ags]) * Fraction(2365, 10_000)) for ags in YOUTH_OFFICE)
    summary = {(r["Umlage"], r["Gemeinde"]): Decimal(str(r["Betrag"])) for r in rows if r["AGS"] in ("Summe", None)}
    assert summary[("Kreisumlage", "Aufkommen zum Satz")] == revenue
    # need: KIM-2022 296.000 − 220.000 = 76.000 € (no Kultur item is run by the Kreis)
    assert summary[("Kreisumlage", "Umlagebedarf (Summe der Defizite)")] == Decimal("76000")
    assert summary[("Kreisumlage", "Aufkommen − Bedarf (Überschuss)")] == revenue - 76000
    # Jugendamtsumlage need: JA-2022 18.450.000 + 6.120.000 (no Gemeinkosten) − 2.310.000 = 22.260.000 €
    assert summary[("Jugendamtsumlage", "Aufkommen zum Satz")] == youth
    assert summary[("Jugendamtsumlage", "Umlagebedarf (Summe der Defizite)")] == Decimal("22260000")
    assert len([r for r in rows if r["Umlage"] == "Jugendamtsumlage" and r["AGS"] not in ("Summe", None)]) == 7


def test_wesel_2022_entscheidungen_kontrollen_and_protokoll_name_the_levies(statute_run):
    decisions = {row["ID"]: row for row in read_sheet(statute_run, "Entscheidungen")}
    assert decisions["KIM-2022"]["Umlage"] == "Kreisumlage (kreisumlage)"
    assert decisions["JA-2022"]["Umlage"] == "Jugendamtsumlage (jugendamtsumlage)"
    assert decisions["OEPNV-2022"]["Umlage"] is None
    controls = read_sheet(statute_run, "Kontrollen")
    recomputed = [c for c in controls if c["Kontrolle"] == "Umlage kreisumlage: Betrag = Grundlage × Satz"]
    assert len(recomputed) == 13 and all(c["Ergebnis"] == "OK" for c in controls)
    protocol = {row["Angabe"]: row["Wert"] for row in read_sheet(statute_run, "Protokoll")}
    assert protocol["Umlage kreisumlage"].startswith("Hebesatz der Haushaltssatzung: ganze Grundlage 36.2 % (aus "
                                                     "Umlagesaetze")
    manifest = json.loads(Path(str(statute_run) + ".manifest.json").read_text(encoding="utf-8"))
    kreis = next(levy for levy in manifest["levies"] if levy["id"] == "kreisumlage")
    assert kreis["mode"] == "statute" and kreis["rates"] == {"*": "36.2"} and kreis["need_cents"] == 7_600_000


def test_wesel_2022_statute_run_verifies(statute_run):
    assert main(["verify", str(statute_run)]) == 0


def test_provisional_year_applies_the_previous_years_rates_to_this_years_bases(tmp_path):
    previous = tmp_path / "kreis-wesel-2021.xlsx"
    builder().build(previous, year=2021, with_rates=True)  # 2021: Kreisumlage 36,40 %, Jugendamtsumlage 23,81 %
    output = tmp_path / "vorlaeufig.xlsx"
    fixture = FIXTURES / "kreis-wesel-2022.xlsx"
    assert main(["run", str(fixture), "--rules", str(RULES), "-o", str(output), "--provisional",
                 "--rates-from", str(previous)]) == 0
    rows = {row["AGS"]: row for row in read_sheet(output, "Uebersicht")}
    # Alpen: 27.154.437 € × 36,40 % = 9.884.215,068 € → 9.884.215,07 €; × 23,81 % = 6.465.471,4497 € → 6.465.471,45 €
    assert Decimal(str(rows["05170004"]["Kreisumlage"])) == Decimal("9884215.07")
    assert Decimal(str(rows["05170004"]["Jugendamtsumlage"])) == Decimal("6465471.45")
    protocol = {row["Angabe"]: row["Wert"] for row in read_sheet(output, "Protokoll")}
    assert protocol["Umlagesätze des Vorjahres aus"] == str(previous)
    assert protocol["Umlage kreisumlage"].startswith("Hebesatz der Haushaltssatzung: ganze Grundlage 36.4 %")
    manifest = json.loads(Path(str(output) + ".manifest.json").read_text(encoding="utf-8"))
    assert manifest["rates_from"]["path"] == str(previous)
    assert main(["verify", str(output)]) == 0
    previous.write_bytes(previous.read_bytes() + b"\0")  # the previous year's workbook changed after the run
    assert main(["verify", str(output)]) == 7


def test_rates_from_needs_provisional_and_an_earlier_year(tmp_path):
    output = tmp_path / "x.xlsx"
    assert main(["run", str(WITH_RATES), "--rules", str(RULES), "-o", str(output), "--rates-from",
                 str(WITH_RATES)]) == 2
    assert main(["run", str(WITH_RATES), "--rules", str(RULES), "-o", str(output), "--provisional",
                 "--rates-from", str(WITH_RATES), "--json"]) == 3
    assert not output.exists()


def test_a_rate_outside_0_to_100_stops_the_run_with_its_cell(tmp_path, capsys):
    broken = tmp_path / "eingabe.xlsx"
    workbook = load_workbook(WITH_RATES)
    workbook["Umlagesaetze"]["C2"] = 362  # 36,2 % typed without the decimal point
    workbook.save(broken)
    assert main(["run", str(broken), "--rules", str(RULES), "-o", str(tmp_path / "x.xlsx"), "--json"]) == 3
    problems = json.loads(capsys.readouterr().out)["problems"]
    # the reader of the Umlagesaetze sheet may refuse it already (`input-bad-rate`); otherwise the levy check does
    assert len(problems) == 1 and problems[0]["code"] in ("input-levy-rate-range", "input-bad-rate")
    assert (problems[0]["location"]["sheet"], problems[0]["location"]["row"]) == ("Umlagesaetze", 2)
    assert problems[0]["found"].startswith("362")


def test_rates_for_a_rule_file_without_levies_are_refused(tmp_path):
    rules = tmp_path / "ohne-umlagen.yaml"
    text = RULES.read_text(encoding="utf-8").split("# The levies of the budget statute")[0]
    text = text.replace("    levy: kreisumlage\n", "").replace("    levy: jugendamtsumlage\n",
                                                              "    payers: {Jugendamt_Kreis: 1}\n")
    rules.write_text(text, encoding="utf-8")
    assert main(["run", str(WITH_RATES), "--rules", str(rules), "-o", str(tmp_path / "x.xlsx")]) == 3
    assert main(["run", str(FIXTURES / "kreis-wesel-2022.xlsx"), "--rules", str(rules), "-o",
                 str(tmp_path / "y.xlsx")]) == 0
    assert "Umlagen" not in load_workbook(tmp_path / "y.xlsx", read_only=True).sheetnames


def test_year_over_year_compare_keeps_every_levy_column(tmp_path, statute_run):
    # provisional 2022 (2021 rates) against the statute 2022 run: the Jugendamtsumlage column must be compared,
    # not dropped because its header is no route label
    previous = tmp_path / "kreis-wesel-2021.xlsx"
    builder().build(previous, year=2021, with_rates=True)
    provisional = tmp_path / "vorlaeufig.xlsx"
    assert main(["run", str(FIXTURES / "kreis-wesel-2022.xlsx"), "--rules", str(RULES), "-o", str(provisional),
                 "--provisional", "--rates-from", str(previous)]) == 0
    comparison = tmp_path / "vergleich.xlsx"
    assert main(["compare", str(provisional), str(statute_run), "-o", str(comparison)]) == 0
    routes = {(r["AGS"], r["Weg"]): r for r in read_sheet(comparison, "Wege")}
    alpen = routes[("05170004", "Jugendamtsumlage")]
    # 6.422.024,35 € (23,65 %) − 6.465.471,45 € (23,81 %) = −43.447,10 €
    assert Decimal(str(alpen["Änderung (€)"])) == Decimal("-43447.10")
    kreis = routes[("05170004", "Kreisumlage")]
    # 9.829.906,19 € (36,20 %) − 9.884.215,07 € (36,40 %) = −54.308,88 €
    assert Decimal(str(kreis["Änderung (€)"])) == Decimal("-54308.88")


def test_explain_names_the_levy_and_its_line(statute_run):
    from allocation.ops.explain import explain

    text = explain(statute_run, "KIM-2022", "05170004")
    assert "Umlage: Kreisumlage (kreisumlage)." in text
    assert ("  Kreisumlage von Alpen (Hebesatz der Haushaltssatzung): "
            "27.154.437,00 € × 36,20 % = 9.829.906,1940 € → 9.829.906,19 €") in text
    assert "AGS 05170024 zahlt die Jugendamtsumlage nicht." in explain(statute_run, "JA-2022", "05170024")
    assert "Umlage:" not in explain(statute_run, "OEPNV-2022")


ALTOETTING = ROOT / "fixtures" / "landkreis-altoetting-2023" / "landkreis-altoetting-2023.xlsx"
ALTOETTING_RULES = ROOT / "rules" / "landkreis-altoetting.yaml"


def test_bavarian_fixture_steuerkraft_plus_80_percent_key_allocations_at_54_percent(tmp_path):
    output = tmp_path / "altoetting.xlsx"
    assert main(["run", str(ALTOETTING), "--rules", str(ALTOETTING_RULES), "-o", str(output)]) == 0
    lines = {(r["AGS"], r["Gemeinde"]): r for r in read_sheet(output, "Umlagen")}
    b = lines[("09171902", "Gemeinde B (illustrativ)")]
    assert Decimal(str(b["Schluesselzuweisungen gewichtet"])) == Decimal("987654.40")  # 80 % × 1.234.568 €
    assert b["Nachweis"] == ("9.876.543,00 € + 80 % × 1.234.568,00 € = 10.864.197,40 € × 54,00 % "
                             "= 5.866.666,5960 € → 5.866.666,60 €")
    amounts = {ags: Decimal(str(r["Betrag"])) for (ags, _), r in lines.items() if ags and ags != "Summe"}
    # by hand: A 41.600.000 × 54 % = 22.464.000,00; C 63.200.000 → 34.128.000,00; D 32.400.000 → 17.496.000,00;
    # E 25.000.000 + 2.714.035,20 = 27.714.035,20 × 54 % = 14.965.579,008 → 14.965.579,01;
    # F 21.020.602 + 2.400.000 = 23.420.602 × 54 % = 12.647.125,08
    assert amounts == {"09171901": Decimal("22464000"), "09171902": Decimal("5866666.60"),
                       "09171903": Decimal("34128000"), "09171904": Decimal("17496000"),
                       "09171905": Decimal("14965579.01"), "09171906": Decimal("12647125.08")}
    summary = {r["Gemeinde"]: Decimal(str(r["Betrag"])) for r in lines.values() if r["AGS"] in ("Summe", None)}
    assert summary["Aufkommen zum Satz"] == Decimal("107567370.69")
    assert summary["Umlagebedarf (Summe der Defizite)"] == Decimal("107500000")  # 38 M + 71,5 M − 2 M
    assert summary["Aufkommen − Bedarf (Überschuss)"] == Decimal("67370.69")
    total = lines[("Summe", "Aufkommen zum Satz")]
    assert Decimal(str(total["Steuerkraftzahlen"])) == Decimal("185897145")  # the published district total
    assert Decimal(str(total["Schluesselzuweisungen gewichtet"])) == Decimal("13301689.60")


def test_wesel_without_rates_is_derived_mode_with_the_financing_rate(tmp_path):
    output = tmp_path / "abgeleitet.xlsx"
    assert main(["run", str(FIXTURES / "kreis-wesel-2022.xlsx"), "--rules", str(RULES), "-o", str(output)]) == 0
    rows = read_sheet(output, "Umlagen")
    assert {r["Berechnung"] for r in rows if r["AGS"] not in ("Summe", None)} == {
        "abgeleitet (kein Satz im Blatt Umlagesaetze)"}
    bases = builder().illustrative_bases()
    youth_base = sum(bases[ags] for ags in YOUTH_OFFICE)
    # the rate that finances the need at 2 decimals: 76.000 ÷ 700.000.000 × 100 = 0,0109 → 0,01 %;
    # Jugendamtsumlage 22.260.000 ÷ (bases of the 7 youth-office municipalities) × 100, half up
    kreis = next(r for r in rows if r["Umlage"] == "Kreisumlage" and r["AGS"] == "Summe")
    youth = next(r for r in rows if r["Umlage"] == "Jugendamtsumlage" and r["AGS"] == "Summe")
    assert Decimal(str(kreis["Satz (%)"])) == Decimal("0.01")
    assert Decimal(str(youth["Satz (%)"])) == half_up_cents(Fraction(22_260_000 * 100, youth_base))
    # revenue = need: no surplus or shortfall
    assert [Decimal(str(r["Betrag"])) for r in rows if r["Gemeinde"] == "Aufkommen − Bedarf (ausgeglichen)"] == [0, 0]
    alpen = next(r for r in rows if r["Umlage"] == "Kreisumlage" and r["AGS"] == "05170004")
    assert alpen["Nachweis"].startswith("Anteil am Umlagebedarf (Summe der Anteile der Kostenpositionen KIM-2022")


def test_a_rule_file_without_levies_keeps_the_former_output(tmp_path):
    rules = tmp_path / "ohne-umlagen.yaml"
    text = RULES.read_text(encoding="utf-8").split("# The levies of the budget statute")[0]
    rules.write_text(text.replace("    levy: kreisumlage\n", "").replace("    levy: jugendamtsumlage\n",
                                                                        "    payers: {Jugendamt_Kreis: 1}\n"),
                     encoding="utf-8")
    output = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(FIXTURES / "kreis-wesel-2022.xlsx"), "--rules", str(rules), "-o", str(output)]) == 0
    workbook = load_workbook(output, read_only=True)
    assert "Umlagen" not in workbook.sheetnames
    header = [c.value for c in next(workbook["Uebersicht"].iter_rows(max_row=1))]
    assert header[3:5] == ["Kreisumlage", "Differenzierte Umlage"]
    assert header[-1] == "Hebesatz-Punkte (Summe ÷ Umlagegrundlagen × 100)"
    decisions = [c.value for c in next(workbook["Entscheidungen"].iter_rows(max_row=1))]
    assert decisions[-1] == "Beschreibung der Regel"
    workbook.close()


def test_web_summary_names_the_levies_and_counts_levy_points_only():
    from allocation.runs.pipeline import compute
    from allocation.web.chart import summary

    allocation, _, _ = compute(WITH_RATES, RULES)
    data = summary(allocation)
    assert data["labels"] == {"district_levy": "Kreisumlage", "differentiated_levy": "Jugendamtsumlage",
                              "direct_billing": "Direktabrechnung", "host_bears": "Trägerkommune"}
    alpen = next(row for row in data["rows"] if row["ags"] == "05170004")
    assert alpen["routes"]["district_levy"] == 982_990_619  # 27.154.437 € × 36,20 %, in cents
    moers = next(row for row in data["rows"] if row["ags"] == "05170024")
    # Moers hosts the music school (1.000.000 €): not in the points; 36,20 % give 36,20 points (± line rounding)
    assert abs(Decimal(moers["points"]) - Decimal("36.20")) <= Decimal("0.0001")
