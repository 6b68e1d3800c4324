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
