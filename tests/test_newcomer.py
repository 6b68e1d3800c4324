"""A newcomer's afternoon (issue 23): fixes that name only options the command has, no stray register folder,
messages in German formats, one year shown as one year.
"""
from __future__ import annotations

import json
from pathlib import Path

from allocation.cli import main
from allocation.ops.verify import CellDifference

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
ALTOETTING = ROOT / "rules" / "landkreis-altoetting.yaml"


def test_a_fix_names_only_options_the_command_has(tmp_path, capsys):
    # compare with another district's rule file: compare has no --ignore-validity, so the fix points to `run`
    assert main(["compare", str(FIXTURE), "--rules", str(ALTOETTING), "--rules", str(ALTOETTING), "-o",
                 str(tmp_path / "v.xlsx"), "--json"]) == 4
    problem = json.loads(capsys.readouterr().out)["problems"][0]
    assert problem["code"] == "rules-other-district"
    assert "allocation run --ignore-validity" in problem["hint"]
    # `run` has the option: its fix offers it directly
    assert main(["run", str(FIXTURE), "--rules", str(ALTOETTING), "-o", str(tmp_path / "e.xlsx"), "--json"]) == 4
    assert '--ignore-validity "Grund" (allocation run)' in json.loads(capsys.readouterr().out)["problems"][0]["hint"]


def test_cell_differences_are_shown_in_german_formats_never_none():
    assert str(CellDifference("Uebersicht", "D5", __import__("decimal").Decimal("1234567.89"), None)) == \
        "Uebersicht!D5: erwartet 1.234.567,89, gefunden leer"
    assert str(CellDifference("Protokoll", "B3", "Kreis Wesel", 2022)) == \
        "Protokoll!B3: erwartet „Kreis Wesel“, gefunden 2022"


def test_explain_with_a_category_suggests_its_items_and_the_heading_fits_the_file(tmp_path, capsys):
    out = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(ROOT / "rules" / "kreis-wesel.yaml"), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["explain", str(out), "--item", "KIM"]) == 3
    err = capsys.readouterr().err
    assert "Die Ergebnis-Arbeitsmappe lässt sich dafür nicht verwenden" in err  # not "Die Eingabe-Arbeitsmappe …"
    assert '"KIM" ist eine Kategorie: ihre Kostenpositionen sind KIM-2022' in err


def test_argparse_speaks_german_and_gives_its_hooks_back(capsys):
    import argparse

    import pytest

    before = argparse._
    for argv in (["--help"], ["run", "--help"], ["states", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert "Aufruf: allocation" in out and "diese Hilfe zeigen und beenden" in out
        assert "usage:" not in out and "show this help" not in out and "options:" not in out
    assert argparse._ is before  # a test runner in the same process keeps its own texts


def test_each_total_is_named_for_what_it_is_and_a_big_surplus_is_a_hint(tmp_path, capsys):
    rates = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022-hebesaetze.xlsx"
    out = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(rates), "--rules", str(ROOT / "rules" / "kreis-wesel.yaml"), "-o", str(out),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    # total_cents keeps its meaning (the deficits allocated); what the members pay is its own figure: the Uebersicht
    # Summe 317,864,427.65 € (issue 23: Kreisumlage 253,400,000.01 + Jugendamtsumlage 59,954,081.97 + the other
    # routes' deficits 26,846,345.67 − 76,000.00 − 22,260,000.00 = 4,510,345.67)
    assert summary["total_cents"] == summary["deficits_cents"] == 26_846_345_67
    assert summary["payable_cents"] == 317_864_427_65 == 253_400_000_01 + 59_954_081_97 + 4_510_345_67
    codes = [w["code"] for w in summary["warnings"]]
    assert codes.count("input-levy-yield-differs") == 2  # 253.4 M€ against a need of 76,000 €, and the youth levy
    manifest = json.loads(Path(f"{out}.manifest.json").read_text(encoding="utf-8"))
    assert manifest["total_cents"] == 26_846_345_67 and manifest["payable_cents"] == 317_864_427_65


def _wesel_with(tmp_path: Path, cells: dict[str, object]) -> Path:
    """The Kreis Wesel fixture with cells of its Gemeinden sheet changed ({"A2": value})."""
    from openpyxl import load_workbook

    book = load_workbook(FIXTURE)
    for cell, value in cells.items():
        book["Gemeinden"][cell] = value
    path = tmp_path / "eingabe.xlsx"
    book.save(path)
    return path


def _problems(argv: list[str], capsys) -> tuple[int, list[tuple[str, str]]]:
    code = main(argv + ["--json"])
    return code, [(p["code"], p["location"].get("cell") or "") for p in json.loads(capsys.readouterr().out)["problems"]]


WESEL_RULES = str(ROOT / "rules" / "kreis-wesel.yaml")


def test_faults_of_two_stages_in_one_report(tmp_path, capsys):
    # A mistyped AGS (found on reading) and a flag outside the rule file's domain (found on binding): both at
    # once. Gemeinden: A = AGS, E = Jugendamt_Kreis (domain [0, 1] in kreis-wesel.yaml). Row 2's AGS is
    # 05170004, so its Schluessel line no longer finds it (input-unknown-ags, as before).
    source = _wesel_with(tmp_path, {"A2": "0517012", "E4": 2})
    code, problems = _problems(["run", str(source), "--rules", WESEL_RULES, "-o", str(tmp_path / "e.xlsx")], capsys)
    assert code == 3
    assert ("input-bad-ags", "Gemeinden!A2") in problems
    assert ("input-value-not-in-domain", "Gemeinden!E4") in problems
    assert not (tmp_path / "e.xlsx").exists()
    # the Python API reaches the run through the same function: the same report
    import pytest

    from allocation.core.problems import InputError
    from allocation.runs import api

    with pytest.raises(InputError) as raised:
        api.compute(source, WESEL_RULES)
    assert [(p.code, p.location.cell) for p in raised.value.problems] == problems


def test_a_cell_that_cannot_be_read_is_named_once(tmp_path, capsys):
    # E4 shows an Excel error: reading names it; to the rules it is empty as well, which is not said again
    source = _wesel_with(tmp_path, {"E4": "#DIV/0!"})
    code, problems = _problems(["run", str(source), "--rules", WESEL_RULES, "-o", str(tmp_path / "e.xlsx")], capsys)
    assert code == 3
    assert [cell for _, cell in problems] == ["Gemeinden!E4"] and problems[0][0] == "input-excel-error"


def test_a_broken_sheet_still_stops_before_the_rules(tmp_path, capsys):
    # Without the AGS column the sheet is not read at all: the rules' checks would only report its absence
    # again, so reading stops there (and the flag outside its domain waits for the next run)
    source = _wesel_with(tmp_path, {"A1": "Schlüssel", "E4": 2})
    code, problems = _problems(["run", str(source), "--rules", WESEL_RULES, "-o", str(tmp_path / "e.xlsx")], capsys)
    assert code == 3
    assert [c for c, _ in problems] == ["input-missing-column"]


def test_explain_shows_key_values_and_shares_in_german_digits(tmp_path, capsys):
    from decimal import ROUND_HALF_UP, Decimal
    from fractions import Fraction

    out = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(FIXTURE), "--rules", WESEL_RULES, "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["explain", str(out), "--item", "SB-2022", "--ags", "05170048"]) == 0
    text = capsys.readouterr().out
    # Schluessel of the fixture: Wesel 251 of 1,597 cases; the share to 10 places, by hand from the fraction
    share = Fraction(251, 1597)
    places = Decimal(share.numerator) / Decimal(share.denominator)
    shown = str(places.quantize(Decimal("1E-10"), ROUND_HALF_UP)).replace(".", ",")
    assert "Schlüsselwert 251 von 1.597 (" in text and f"Anteil {shown}" in text and shown == "0,1571696932"
    assert "1597" not in text and "0.157" not in text


def test_a_missing_extra_is_named_with_the_line_that_adds_it(tmp_path, monkeypatch, capsys):
    """Without typst, notices and benehmen name the extra `notices` and the editable install of the checkout;
    without flask, serve names `web`. Never `allocation[...]`, which no package index serves."""
    import sys

    cases = [("typst", ["notices", str(tmp_path / "x.xlsx"), "-o", str(tmp_path / "bescheide")], "notices"),
             ("typst", ["benehmen", str(FIXTURE), "--rules", WESEL_RULES, "--previous",
                        str(tmp_path / "vorjahr.xlsx"), "-o", str(tmp_path / "benehmen")], "notices"),
             ("flask", ["serve", "--port", "0"], "web")]
    for module, argv, extra in cases:
        with monkeypatch.context() as patched:
            patched.setitem(sys.modules, module, None)  # `import module` raises ImportError
            assert main(argv) == 2, argv[0]
        err = capsys.readouterr().err
        assert f"das Extra '{extra}' (Paket {module} fehlt)" in err, err
        assert f".venv/bin/pip install -e '.[{extra}]'" in err and "allocation[" not in err, err
    assert not (tmp_path / "bescheide").exists() and not (tmp_path / "benehmen").exists()
