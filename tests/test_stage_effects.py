"""`allocation compare` between two stages of a levy year: the sheet Wirkungen (base and rate effect, in words).

Stage B raises the Kreisumlage from 36,20 % to 36,70 % and Alpen's Umlagegrundlagen by 1.000.000,00 €; the
figures below are computed by hand."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.cli import main
from allocation.ops.compare import YEAR_SHEETS
from workbooks import modified_copy

ROOT = Path(__file__).resolve().parent.parent
RATES_INPUT = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022-hebesaetze.xlsx"
PLAIN_INPUT = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"


def rows(path: Path, name: str) -> list[dict]:
    workbook = load_workbook(path, read_only=True)
    found = list(workbook[name].iter_rows(values_only=True))
    workbook.close()
    return [dict(zip(found[0], row)) for row in found[1:]]


def money(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


@pytest.fixture(scope="module")
def effects(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("stages")
    changed = modified_copy(RATES_INPUT, folder / "eingabe-b.xlsx", rates={"kreisumlage": 36.7},
                            bases={"05170004": 28_154_437})
    for source, output in ((RATES_INPUT, "stufe-a.xlsx"), (changed, "stufe-b.xlsx")):
        assert main(["run", str(source), "--rules", str(RULES), "-o", str(folder / output)]) == 0
    assert main(["compare", str(folder / "stufe-a.xlsx"), str(folder / "stufe-b.xlsx"),
                 "-o", str(folder / "vergleich.xlsx")]) == 0
    return folder / "vergleich.xlsx"


def test_existing_sheets_stay_and_wirkungen_follows(effects):
    assert load_workbook(effects, read_only=True).sheetnames == [*YEAR_SHEETS, "Wirkungen"]


def test_alpen_kreisumlage_split_into_base_and_rate_effect(effects):
    row = next(r for r in rows(effects, "Wirkungen") if r["Umlage"] == "Kreisumlage" and r["AGS"] == "05170004")
    # 27.154.437 × 36,20 % = 9.829.906,194 → 9.829.906,19; 28.154.437 × 36,70 % = 10.332.678,379 → 10.332.678,38
    assert money(row["Betrag 2022 (stufe-a.xlsx)"]) == Decimal("9829906.19")
    assert money(row["Betrag 2022 (stufe-b.xlsx)"]) == Decimal("10332678.38")
    assert money(row["Änderung (€)"]) == Decimal("502772.19")
    # rate effect 28.154.437 × 0,50 % = 140.772,185 → 140.772,19; base effect = the rest = 1.000.000 × 36,20 %
    assert money(row["Satzwirkung (€) = neue Grundlage × ΔSatz"]) == Decimal("140772.19")
    assert money(row["Grundlagenwirkung (€) = ΔGrundlage × alter Satz"]) == Decimal("362000.00")
    assert row["Erläuterung"] == ("Die Kreisumlage von Alpen steigt um 502.772,19 €: 362.000,00 € durch höhere "
                                  "Umlagegrundlagen, 140.772,19 € durch den höheren Satz.")
    assert Decimal(str(row["Satz 2022 (stufe-a.xlsx) (%)"])) == Decimal("36.2")
    assert Decimal(str(row["Satz 2022 (stufe-b.xlsx) (%)"])) == Decimal("36.7")


def test_unchanged_rate_is_all_base_effect(effects):
    row = next(r for r in rows(effects, "Wirkungen") if r["Umlage"] == "Jugendamtsumlage" and r["AGS"] == "05170004")
    # 23,65 % of 1.000.000,00 € more: 6.422.024,3505 → 6.422.024,35 and 6.658.524,3505 → 6.658.524,35
    assert money(row["Änderung (€)"]) == Decimal("236500.00")
    assert money(row["Grundlagenwirkung (€) = ΔGrundlage × alter Satz"]) == Decimal("236500.00")
    assert money(row["Satzwirkung (€) = neue Grundlage × ΔSatz"]) == Decimal("0.00")


def test_other_municipality_rate_effect_only(effects):
    row = next(r for r in rows(effects, "Wirkungen") if r["Umlage"] == "Kreisumlage" and r["AGS"] == "05170052")
    # Xanten 40.922.328: 14.813.882,736 → 14.813.882,74; × 36,70 % = 15.018.494,376 → 15.018.494,38
    assert money(row["Änderung (€)"]) == Decimal("204611.64")
    assert money(row["Grundlagenwirkung (€) = ΔGrundlage × alter Satz"]) == Decimal("0.00")
    assert money(row["Satzwirkung (€) = neue Grundlage × ΔSatz"]) == Decimal("204611.64")


def test_derived_levy_is_compared_but_not_split(tmp_path, effects):
    # the fixture without rates: levies in derived mode (no statute rate), so no base/rate effect
    assert main(["run", str(PLAIN_INPUT), "--rules", str(RULES), "-o", str(tmp_path / "modell.xlsx")]) == 0
    assert main(["compare", str(tmp_path / "modell.xlsx"), str(effects.parent / "stufe-a.xlsx"),
                 "-o", str(tmp_path / "v.xlsx")]) == 0
    row = next(r for r in rows(tmp_path / "v.xlsx", "Wirkungen") if r["Umlage"] == "Kreisumlage" and r["AGS"] == "05170004")
    assert row["Satz 2022 (modell.xlsx) (%)"] == "kein einheitlicher Satz"
    assert row["Grundlagenwirkung (€) = ΔGrundlage × alter Satz"] == "—"
    assert row["Erläuterung"].endswith("wird die Änderung nicht in Grundlagen- und Satzwirkung zerlegt.")
