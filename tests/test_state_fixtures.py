"""Published levy cases of several states as example inputs (fixtures/<case>/, rules/<case>.yaml), run end to end.

Each expected figure is a PUBLISHED one (source and quote in the fixture's README) or computed by hand in a comment,
never by running the code under test. Where a fixture's base is derived from a published amount, the amount it is
derived from proves nothing about the source; where another published figure exists, the test checks it with the
derived base (Unterfranken: Main-Spessart's Umlagekraft; Esslingen: the amounts at the other rate). The README
tables say which figures are real, derived or illustrative.
"""
from __future__ import annotations

import importlib.util
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.cli import main
from workbooks import modified_copy, read_sheet

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
RULES = ROOT / "rules"
CASES = ("lwl-2015", "bezirk-unterfranken-2021", "bw-esslingen-2012", "mv-perlin-2013", "rp-vg-roth-2022", "ni-2019")


def run(tmp_path: Path, workbook: Path, rules: Path, name: str = "ergebnis.xlsx") -> Path:
    output = tmp_path / name
    assert main(["run", str(workbook), "--rules", str(rules), "-o", str(output)]) == 0
    return output


def lines(output: Path) -> dict[tuple[str, str], dict]:
    """(levy name, AGS) -> the payer's row of the `Umlagen` sheet; the levy's totals row under AGS `Summe`."""
    return {(row["Umlage"], row["AGS"]): row for row in read_sheet(output, "Umlagen")
            if row["AGS"] is not None}


def euros(value) -> Decimal:
    return Decimal(str(value))


def protocol(output: Path) -> dict:
    return {row["Angabe"]: row["Wert"] for row in read_sheet(output, "Protokoll")}


def builder(case: str):
    spec = importlib.util.spec_from_file_location(f"build_{case.replace('-', '_')}",
                                                  FIXTURES / case / "build_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sheets(path: Path) -> dict[str, list[tuple]]:
    workbook = load_workbook(path, read_only=True)
    try:
        return {sheet.title: list(sheet.iter_rows(values_only=True)) for sheet in workbook.worksheets}
    finally:
        workbook.close()


# --- the fixtures are what their build scripts write, and their rule files pass `check` ------------------------

@pytest.mark.parametrize("case", CASES)
def test_committed_workbooks_are_what_the_build_script_writes(case, tmp_path):
    module = builder(case)
    if case == "lwl-2015":
        for year in (2014, 2015):
            module.build(tmp_path / f"lwl-{year}.xlsx", year)
            assert sheets(tmp_path / f"lwl-{year}.xlsx") == sheets(FIXTURES / case / f"lwl-{year}.xlsx")
    else:
        module.build(tmp_path / f"{case}.xlsx")
        assert sheets(tmp_path / f"{case}.xlsx") == sheets(FIXTURES / case / f"{case}.xlsx")


@pytest.mark.parametrize("case, state", [
    ("lwl-2015", "NW"), ("bezirk-unterfranken-2021", "BY"), ("bw-esslingen-2012", "BW"), ("mv-perlin-2013", "MV"),
    ("rp-vg-roth-2022", "RP"), ("ni-2019", "NI"),
])
def test_rule_file_passes_check_and_names_its_state(case, state, capsys):
    rules = RULES / f"{case}.yaml"
    assert f"\nstate: {state}\n" in rules.read_text(encoding="utf-8")
    assert main(["check", str(rules)]) == 0
    assert "0 Warnungen" in capsys.readouterr().out


# --- 1. LWL 2014/2015: Kreis Siegen-Wittgenstein (Landschaftsverband, NW) -------------------------------------

LWL = FIXTURES / "lwl-2015"
LWL_RULES = RULES / "lwl-2015.yaml"


@pytest.fixture(scope="module")
def lwl_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lwl")
    return {year: run(folder, LWL / f"lwl-{year}.xlsx", LWL_RULES, f"lwl-{year}-ergebnis.xlsx")
            for year in (2014, 2015)}


def test_lwl_2015_landschaftsumlage_of_siegen_wittgenstein(lwl_runs):
    row = lines(lwl_runs[2015])[("Landschaftsumlage", "05970")]
    assert euros(row["Bemessungsgrundlage"]) == 386_746_454  # REAL: Umlagegrundlagen 2015 as fixed by the Land
    # 386.746.454 € × 16,5 % = 63.813.164,91 € → 63.813.165 € (Euro rounding)
    assert euros(row["Betrag"]) == 63_813_165
    assert row["Nachweis"] == ("386.746.454,00 € × 16,50 % = 63.813.164,9100 € → 63.813.165,00 € "
                               "(auf volle Euro gerundet)")
    # PUBLISHED: „2015 ist es eine Summe von rund 63,8 Millionen Euro“
    assert (euros(row["Betrag"]) / 1_000_000).quantize(Decimal("0.1")) == Decimal("63.8")
    facts = protocol(lwl_runs[2015])
    assert facts["Umlageverband"] == "Landschaftsverband"
    assert facts["Land (Rechtsprofil)"].startswith("NW")


def test_lwl_2014_and_the_published_difference_to_2015(lwl_runs, tmp_path):
    row = lines(lwl_runs[2014])[("Landschaftsumlage", "05970")]
    # 394.826.901 € × 16,3 % = 64.356.784,863 € → 64.356.785 €
    assert euros(row["Betrag"]) == 64_356_785
    comparison = tmp_path / "vergleich.xlsx"
    assert main(["compare", str(lwl_runs[2014]), str(lwl_runs[2015]), "-o", str(comparison)]) == 0
    change = next(r for r in read_sheet(comparison, "Wege") if r["AGS"] == "05970" and r["Weg"] == "Landschaftsumlage")
    # 63.813.165 − 64.356.785 = −543.620 €: the Kreis pays less although the rate rose by 0,2 points
    assert euros(change["Änderung (€)"]) == -543_620
    # PUBLISHED: „Damit bleiben dem aktuellen Kreis-Haushalt rund 544 000 Euro erhalten“
    assert round(-euros(change["Änderung (€)"]), -3) == 544_000


def test_lwl_runs_verify(lwl_runs):
    assert main(["verify", str(lwl_runs[2014])]) == 0
    assert main(["verify", str(lwl_runs[2015])]) == 0


# --- 2. Bezirk Unterfranken 2021: 12 members (Bezirk, BY) ------------------------------------------------------

UNTERFRANKEN = FIXTURES / "bezirk-unterfranken-2021" / "bezirk-unterfranken-2021.xlsx"
UNTERFRANKEN_RULES = RULES / "bezirk-unterfranken-2021.yaml"
# PUBLISHED (Bezirk Unterfranken, „Bezirksumlage 2021“): each member's amount in €; keys from the official numbering
UNTERFRANKEN_AMOUNTS = {
    "09661000": 23_773_553,  # Kreisfreie Stadt Aschaffenburg
    "09662000": 16_755_779,  # Kreisfreie Stadt Schweinfurt
    "09663000": 39_813_293,  # Kreisfreie Stadt Würzburg
    "09671": 43_714_913,  # Landkreis Aschaffenburg
    "09672": 24_083_548,  # Landkreis Bad Kissingen
    "09673": 18_576_106,  # Landkreis Rhön-Grabfeld
    "09674": 18_263_916,  # Landkreis Haßberge
    "09675": 21_551_796,  # Landkreis Kitzingen
    "09676": 31_210_852,  # Landkreis Miltenberg
    "09677": 31_431_627,  # Landkreis Main-Spessart
    "09678": 25_531_085,  # Landkreis Schweinfurt
    "09679": 39_194_451,  # Landkreis Würzburg
}


@pytest.fixture(scope="module")
def unterfranken_run(tmp_path_factory):
    return run(tmp_path_factory.mktemp("unterfranken"), UNTERFRANKEN, UNTERFRANKEN_RULES)


def test_unterfranken_every_published_amount_and_the_total(unterfranken_run):
    rows = lines(unterfranken_run)
    amounts = {ags: euros(row["Betrag"]) for (levy, ags), row in rows.items() if ags != "Summe"}
    assert amounts == UNTERFRANKEN_AMOUNTS
    # e.g. Aschaffenburg (Stadt): derived base 117.690.856,44 € × 20,2 % = 23.773.553,0009 € → 23.773.553 €
    assert euros(rows[("Bezirksumlage", "09661000")]["Bemessungsgrundlage"]) == Decimal("117690856.44")
    # PUBLISHED: „Diese beläuft sich im Jahr 2021 auf 333.900.919 Euro“
    assert euros(rows[("Bezirksumlage", "Summe")]["Betrag"]) == 333_900_919
    facts = protocol(unterfranken_run)
    assert facts["Umlageverband"] == "Bezirk" and facts["Land (Rechtsprofil)"].startswith("BY")
    assert main(["verify", str(unterfranken_run)]) == 0


def test_unterfranken_bases_are_the_published_amounts_divided_by_the_rate(unterfranken_run):
    # DERIVED (README): each base = amount ÷ 0,202, half up to the cent; oracle in fractions
    for (levy, ags), row in lines(unterfranken_run).items():
        if ags == "Summe":
            continue
        exact = Fraction(UNTERFRANKEN_AMOUNTS[ags]) / Fraction(202, 1000)
        cents = exact * 100
        whole, rest = divmod(cents.numerator, cents.denominator)
        assert euros(row["Bemessungsgrundlage"]) == Decimal(whole + (2 * rest >= cents.denominator)) / 100


def test_unterfranken_main_spessart_base_matches_the_independently_published_umlagekraft(unterfranken_run):
    base = euros(lines(unterfranken_run)[("Bezirksumlage", "09677")]["Bemessungsgrundlage"])
    # derived: 31.431.627 € ÷ 0,202 = 155.602.113,861… → 155.602.113,86 €
    assert base == Decimal("155602113.86")
    # PUBLISHED by the Landkreis (Main-Post, Haushaltsentwurf 2021): „Die Umlagekraft erreicht mit 155,6 Millionen
    # Euro einen neuen Rekord“ (the Kreisumlage base; equal to the Bezirksumlage base up to gemeindefreie Gebiete)
    assert (base / 1_000_000).quantize(Decimal("0.1")) == Decimal("155.6")


def test_unterfranken_bad_kissingen_base_is_consistent_with_its_published_kreisumlage(unterfranken_run):
    base = euros(lines(unterfranken_run)[("Bezirksumlage", "09672")]["Bemessungsgrundlage"])
    # derived: 24.083.548 € ÷ 0,202 = 119.225.485,15 €; × 41,5 % (Kreisumlage) = 49.478.576,34 €
    assert base == Decimal("119225485.15")
    kreisumlage = base * Decimal("0.415")
    # PUBLISHED (Main-Post): „Hebesatz der Kreisumlage … bei 41,5“, „2021 knapp 49,5 Millionen Euro“ (just under)
    assert Decimal("49400000") < kreisumlage < Decimal("49500000")


# --- 3. Landkreis Esslingen 2012: three municipalities at 39,1 % (Kreis, BW) -----------------------------------

ESSLINGEN = FIXTURES / "bw-esslingen-2012" / "bw-esslingen-2012.xlsx"
ESSLINGEN_RULES = RULES / "bw-esslingen-2012.yaml"


def test_esslingen_each_pair_of_published_amounts_fits_one_base_at_a_uniform_rate():
    """§ 35 Abs. 1 Satz 2 FAG BW: one rate for all. For each municipality, the bases B with round(B × 38,6 %) and
    round(B × 39,1 %) (half up, whole euros) equal the two PUBLISHED amounts form a non-empty interval [low, high):
    the source is consistent with one base per municipality. The fixture's base is its middle, to the cent."""
    published = {"Holzmaden": (656_111, 664_610), "Ohmden": (576_328, 583_794), "Neidlingen": (564_799, 572_115)}
    fixture = {"Holzmaden": Fraction("1699769.63"), "Ohmden": Fraction("1493078.51"), "Neidlingen": Fraction("1463209.77")}
    for name, (low_rate, high_rate) in published.items():
        low = max((low_rate - Fraction(1, 2)) / Fraction("0.386"), (high_rate - Fraction(1, 2)) / Fraction("0.391"))
        high = min((low_rate + Fraction(1, 2)) / Fraction("0.386"), (high_rate + Fraction(1, 2)) / Fraction("0.391"))
        assert low < high, name
        assert low <= fixture[name] < high, name
    # Ohmden by hand: low = 583.793,5 ÷ 0,391 = 1.493.078,005…, high = 576.328,5 ÷ 0,386 = 1.493.079,015…;
    # middle 1.493.078,51 €. (576.328 ÷ 0,386 = 1.493.077,72 € alone lies below low: it gives 583.793 at 39,1 %.)


def test_esslingen_reproduces_the_published_amounts_at_both_rates(tmp_path):
    rows = lines(run(tmp_path, ESSLINGEN, ESSLINGEN_RULES))
    amounts = {row["Gemeinde"]: euros(row["Betrag"]) for (levy, ags), row in rows.items() if ags != "Summe"}
    # 1.699.769,63 × 0,391 = 664.609,925… → 664.610; 1.493.078,51 × 0,391 = 583.793,697… → 583.794;
    # 1.463.209,77 × 0,391 = 572.115,020… → 572.115 € (PUBLISHED „(664 610)“, „(583 794)“, „(572 115)“)
    assert amounts == {"Holzmaden": 664_610, "Ohmden": 583_794, "Neidlingen": 572_115}
    assert euros(rows[("Kreisumlage", "Summe")]["Betrag"]) == 1_820_519  # = the published amounts' sum
    copy = modified_copy(ESSLINGEN, tmp_path / "esslingen-38-6.xlsx", rates={"kreisumlage": 38.6})
    rows = lines(run(tmp_path, copy, ESSLINGEN_RULES))
    amounts = {row["Gemeinde"]: euros(row["Betrag"]) for (levy, ags), row in rows.items() if ags != "Summe"}
    # 1.699.769,63 × 0,386 = 656.111,077… → 656.111; 1.493.078,51 × 0,386 = 576.328,304… → 576.328;
    # 1.463.209,77 × 0,386 = 564.798,971… → 564.799 (PUBLISHED)
    assert amounts == {"Holzmaden": 656_111, "Ohmden": 576_328, "Neidlingen": 564_799}


# --- 4. Perlin 2013: Steuerkraftmesszahl + Schlüsselzuweisungen (Kreis, MV) ------------------------------------

PERLIN = FIXTURES / "mv-perlin-2013" / "mv-perlin-2013.xlsx"
PERLIN_RULES = RULES / "mv-perlin-2013.yaml"


def test_perlin_2013_kreisumlage_from_its_two_published_components(tmp_path):
    output = run(tmp_path, PERLIN, PERLIN_RULES)
    row = lines(output)[("Kreisumlage", "13074901")]
    # PUBLISHED (VG Schwerin 1 A 387/14): 111.203,84 + 107.697,05 = 218.900,89 €; × 43,67 v. H. = 95.594,02 €
    assert euros(row["Steuerkraftmesszahl gewichtet"]) == Decimal("111203.84")
    assert euros(row["Schluesselzuweisungen gewichtet"]) == Decimal("107697.05")
    assert euros(row["Bemessungsgrundlage"]) == Decimal("218900.89")
    # 218.900,89 × 0,4367 = 95.594,0186… → 95.594,02 € (half up to the cent)
    assert euros(row["Betrag"]) == Decimal("95594.02")
    assert row["Nachweis"] == "111.203,84 € + 107.697,05 € = 218.900,89 € × 43,67 % = 95.594,0187 € → 95.594,02 €"
    assert protocol(output)["Land (Rechtsprofil)"].startswith("MV")
    assert main(["verify", str(output)]) == 0


def test_perlin_workbook_has_components_and_no_umlagegrundlagen_column():
    header = sheets(PERLIN)["Gemeinden"][0]
    assert header[:4] == ("AGS", "Gemeinde", "Steuerkraftmesszahl", "Schluesselzuweisungen")
    assert "Umlagegrundlagen" not in header


# --- 5. Ortsgemeinde Roth 2022: Verbandsgemeindeumlage + Sonderumlage (Verbandsgemeinde, RP) -------------------

ROTH = FIXTURES / "rp-vg-roth-2022" / "rp-vg-roth-2022.xlsx"
ROTH_RULES = RULES / "rp-vg-roth-2022.yaml"


def test_roth_2022_two_levies_add_up_to_the_published_amount(tmp_path):
    output = run(tmp_path, ROTH, ROTH_RULES)
    rows = lines(output)
    general = rows[("Verbandsgemeindeumlage", "07133901")]
    special = rows[("Sonderumlage", "07133901")]
    # derived base 137.298,00 ÷ 0,335 = 409.844,776… → 409.844,78 €
    assert euros(general["Bemessungsgrundlage"]) == euros(special["Bemessungsgrundlage"]) == Decimal("409844.78")
    # hand: 409.844,78 × 30 % = 122.953,434 → 122.953,43 €; × 3,5 % = 14.344,5673 → 14.344,57 €
    assert euros(general["Betrag"]) == Decimal("122953.43")
    assert euros(special["Betrag"]) == Decimal("14344.57")
    roth = next(r for r in read_sheet(output, "Uebersicht") if r["AGS"] == "07133901")
    # PUBLISHED (VG Koblenz, press release 05.08.2024): „Verbandsgemeindeumlage in Höhe von 137.298,00 Euro“
    assert euros(roth["Summe"]) == Decimal("137298.00")
    facts = protocol(output)
    assert facts["Umlageverband"] == "Verbandsgemeinde" and facts["Land (Rechtsprofil)"].startswith("RP")
    assert main(["verify", str(output)]) == 0


# --- 6. Landkreis Hildesheim 2019: one anonymised member municipality (Kreis, NI) -------------------------------

HILDESHEIM = FIXTURES / "ni-2019" / "ni-2019.xlsx"
HILDESHEIM_RULES = RULES / "ni-2019.yaml"


def test_hildesheim_2019_kreisumlage_at_55_8_percent(tmp_path):
    output = run(tmp_path, HILDESHEIM, HILDESHEIM_RULES)
    row = lines(output)[("Kreisumlage", "03254901")]
    assert euros(row["Bemessungsgrundlage"]) == Decimal("2852000.00")  # derived (README)
    # 2.852.000,00 × 55,8 % = 1.591.416,00 € = PUBLISHED (Bescheid vom 10.04.2019, VG Hannover 1 A 2684/21)
    assert euros(row["Betrag"]) == Decimal("1591416.00")
    assert protocol(output)["Land (Rechtsprofil)"].startswith("NI")
    assert main(["verify", str(output)]) == 0


def test_hildesheim_derived_base_is_an_exact_quotient():
    # 1.591.416,00 ÷ 0,558 leaves no remainder: a whole-euro base, no rounding in the derivation (README)
    assert Fraction("1591416.00") / Fraction("0.558") == 2_852_000
