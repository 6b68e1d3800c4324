"""The sheet `Wirkungen` under Euro rounding, and a change whose two effects offset each other (issue 24).

Three runs of the Kreis Wesel 2022 fixture with its statute rates, all at Euro rounding (`Rundung: Euro`), compared
stage by stage (`allocation compare`). Alpen (05170004), Kreisumlage, by hand:
- before: 27.154.437 € × 36,20 % = 9.829.906,194 € → 9.829.906 €
- offset: 27.229.657 € × 36,10 % = 9.829.906,177 € → 9.829.906 €: no change; the rate effect is
  27.229.657 € × (−0,10 %) = −27.229,657 € → −27.230 € (whole euros), the base effect takes the rest, +27.230 €.
  The amount stays, yet both effects are real: "bleibt gleich", naming them, never "bleibt unverändert".
- raised: 27.154.451 € × 36,70 % = 9.965.683,517 € → 9.965.684 €: change 135.778 €; rate effect
  27.154.451 € × 0,50 % = 135.772,255 € → 135.772 €; base effect 135.778 − 135.772 = 6 € (in cents it would be
  135.772,26 € and 5,74 €).
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.calc.stages import Effects, decompose, describe
from allocation.cli import main
from workbooks import WESEL_RATES, WESEL_RULES, modified_copy

ALPEN = "05170004"


@pytest.fixture(scope="module")
def euro_runs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("euro")
    inputs = {
        "vorher": modified_copy(WESEL_RATES, folder / "vorher.xlsx", rounding="Euro"),
        "ausgleich": modified_copy(WESEL_RATES, folder / "ausgleich.xlsx", rounding="Euro",
                                   bases={ALPEN: 27_229_657}, rates={"kreisumlage": 36.1}),
        "erhoeht": modified_copy(WESEL_RATES, folder / "erhoeht.xlsx", rounding="Euro",
                                 bases={ALPEN: 27_154_451}, rates={"kreisumlage": 36.7}),
    }
    outputs = {}
    for name, source in inputs.items():
        outputs[name] = folder / f"ergebnis-{name}.xlsx"
        assert main(["run", str(source), "--rules", str(WESEL_RULES), "-o", str(outputs[name]), "--register",
                     str(folder / "register")]) == 0
    return outputs


def alpen_effects(before: Path, after: Path, target: Path) -> dict:
    assert main(["compare", str(before), str(after), "-o", str(target)]) == 0
    rows = list(load_workbook(target, read_only=True)["Wirkungen"].iter_rows(values_only=True))
    row = next(dict(zip(rows[0], r)) for r in rows[1:] if r[0] == "Kreisumlage" and r[1] == ALPEN)
    euros = [Decimal(str(value)) for key, value in row.items()
             if key.startswith(("Änderung", "Grundlagenwirkung", "Satzwirkung"))]
    return {"euros": euros, "sentence": row["Erläuterung"]}


def test_effects_at_euro_rounding_are_whole_euros(euro_runs, tmp_path):
    found = alpen_effects(euro_runs["vorher"], euro_runs["erhoeht"], tmp_path / "vergleich.xlsx")
    assert found["euros"] == [Decimal(135_778), Decimal(6), Decimal(135_772)]
    assert found["sentence"] == ("Die Kreisumlage von Alpen steigt um 135.778,00 €: 6,00 € durch höhere "
                                 "Umlagegrundlagen, 135.772,00 € durch den höheren Satz.")


def test_offsetting_effects_are_named_and_the_amount_bleibt_gleich(euro_runs, tmp_path):
    found = alpen_effects(euro_runs["vorher"], euro_runs["ausgleich"], tmp_path / "vergleich.xlsx")
    assert found["euros"] == [Decimal(0), Decimal(27_230), Decimal(-27_230)]
    assert found["sentence"] == ("Die Kreisumlage von Alpen bleibt gleich: 27.230,00 € durch höhere "
                                 "Umlagegrundlagen, 27.230,00 € durch den niedrigeren Satz.")
    assert "unverändert" not in found["sentence"]


def test_offsetting_effects_in_cents():
    # 1.000,00 € × 50 % = 500,00 €; 1.250,00 € × 40 % = 500,00 €: rate effect 1.250,00 € × (−10 %) = −125,00 €
    effects = decompose(100_000, Decimal(50), 50_000, 125_000, Decimal(40), 50_000)
    assert effects == Effects(0, 12_500, -12_500)
    assert describe("Kreisumlage", "Alpen", effects) == (
        "Die Kreisumlage von Alpen bleibt gleich: 125,00 € durch höhere Umlagegrundlagen, 125,00 € durch den "
        "niedrigeren Satz.")
    # nothing changed at all: the only case that bleibt unverändert
    assert describe("Kreisumlage", "Alpen", decompose(100_000, Decimal(50), 50_000, 100_000, Decimal(50), 50_000)) \
        == "Die Kreisumlage von Alpen bleibt unverändert."
