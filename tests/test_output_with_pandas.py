"""The output workbook read back with pandas, a reader and aggregator independent of our writer."""
from __future__ import annotations

from decimal import Decimal

import pandas as pd

from allocation.cli import main


def to_decimal(value) -> Decimal:
    return Decimal(str(value))


def test_einzelnachweis_grouped_by_municipality_and_route_equals_uebersicht(tmp_path, fixture_workbook, rules_file):
    output = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(fixture_workbook), "--rules", str(rules_file), "-o", str(output)]) == 0
    lines = pd.read_excel(output, sheet_name="Einzelnachweis", engine="openpyxl", dtype={"AGS": str},
                          converters={"Betrag gerundet": to_decimal})
    overview = pd.read_excel(output, sheet_name="Uebersicht", engine="openpyxl", dtype={"AGS": str})
    overview = overview[overview["AGS"] != "Summe"].set_index("AGS")
    # since issue 14 the Uebersicht has one column per levy of rules/kreis-wesel.yaml (its name): the
    # Jugendamtsumlage is that file's differentiated levy; without Umlagesaetze the levies are the exact split
    column = {"Differenzierte Umlage": "Jugendamtsumlage"}
    by_route = lines.groupby(["AGS", "Weg"])["Betrag gerundet"].sum()
    for (ags, route), amount in by_route.items():
        assert to_decimal(overview.loc[ags, column.get(route, route)]) == amount, (ags, route)
    totals = lines.groupby("AGS")["Betrag gerundet"].sum()
    for ags, amount in totals.items():
        assert to_decimal(overview.loc[ags, "Summe"]) == amount, ags
    # every item's lines add up to its deficit from Entscheidungen
    decisions = pd.read_excel(output, sheet_name="Entscheidungen", engine="openpyxl",
                              converters={"Defizit (gerundet)": to_decimal}).set_index("ID")
    for item, amount in lines.groupby("ID")["Betrag gerundet"].sum().items():
        assert decisions.loc[item, "Defizit (gerundet)"] == amount, item
    # by hand from the fixture: KIM 76,000 + youth office 22,260,000 + bus 3,150,000 + debt advice 360,345.67
    # + music school 1,000,000 = 26,846,345.67 €
    assert len(totals) == 13 and sum(totals) == Decimal("26846345.67")
