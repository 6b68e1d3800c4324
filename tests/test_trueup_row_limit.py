"""`allocation trueup` reads our own final output with Excel's row limit per sheet, not the 100,000-row input
limit; the limit itself stays (a lowered constant stands in for huge files)."""
from __future__ import annotations

from pathlib import Path

import pytest

from allocation.workbook import safety

from allocation.runs import readback
from allocation.cli import main
from allocation.core.problems import InputError
from allocation.ops.trueup import settle

CORPUS = Path(__file__).resolve().parent / "corpus"


@pytest.fixture
def final_output(tmp_path):
    output = tmp_path / "echtlauf.xlsx"
    assert main(["run", str(CORPUS / "gueltig.xlsx"), "--rules", str(CORPUS / "regeln.yaml"), "-o", str(output),
                 "--mode", "final", "--register", str(tmp_path / "reg")]) == 0
    return output  # 5 items x 4 municipalities = 20 Einzelnachweis lines + header


def test_an_output_longer_than_the_input_row_limit_is_settled(final_output, monkeypatch):
    monkeypatch.setattr(safety, "MAX_ROWS", 10)  # the input limit, now below the output's 21 Einzelnachweis rows
    refused = safety.check_bytes(final_output.read_bytes(), final_output.name, structure=False)
    assert {p.code for p in refused} == {"input-too-many-rows"}  # the lowered input limit bites on this file ...
    assert "Einzelnachweis" in {p.location.sheet for p in refused}
    settlement = settle(final_output, CORPUS / "gueltig.xlsx", CORPUS / "regeln.yaml",
                        register_dir=final_output.parent / "reg")
    assert {line.difference for line in settlement.lines} == {0}  # ... yet trueup reads all of it
    assert len({line.item_id for line in settlement.items}) == 5  # all five items, from the 21 rows


def test_an_output_beyond_excels_row_limit_is_still_refused(final_output, monkeypatch, tmp_path):
    monkeypatch.setattr(readback, "OUTPUT_MAX_ROWS", 10)  # Excel's limit, lowered: the 21 rows are too many
    with pytest.raises(InputError) as refused:
        settle(final_output, CORPUS / "gueltig.xlsx", CORPUS / "regeln.yaml", register_dir=final_output.parent / "reg")
    assert {p.code for p in refused.value.problems} == {"input-too-many-rows"}
    assert "Einzelnachweis" in {p.location.sheet for p in refused.value.problems}
    assert main(["trueup", str(final_output), str(CORPUS / "gueltig.xlsx"), "--rules", str(CORPUS / "regeln.yaml"),
                 "-o", str(tmp_path / "abrechnung.xlsx"), "--register", str(final_output.parent / "reg")]) == 3
    assert not (tmp_path / "abrechnung.xlsx").exists()
