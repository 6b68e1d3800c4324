"""The levy year as it happens (issue 16): a year folder of hash-chained stages, walked from the GFG model
calculation to the settlement on the Kreis Wesel 2022 fixture, against figures computed by hand for Alpen.

Stages (Kreisumlage; Alpen's Umlagegrundlagen and the rate of each stage's input):
  modell       26.500.000,00 € × 36,20 % = 9.593.000,00 €
  benehmen     26.500.000,00 € × 36,50 % = 9.672.500,00 €   (planned rate)
  satzung      27.154.437,00 € × 36,20 % = 9.829.906,194 → 9.829.906,19 €  (final GFG bases, statute rate)
  aenderung-1  27.154.437,00 € × 36,70 % = 9.965.678,379 → 9.965.678,38 €  (retroactive change)
  abrechnung   27.200.000,00 € × 36,70 % = 9.982.400,00 €   (corrected base)
The previous year (2021, a model run of the same rules): 25.000.000,00 € × 35,00 % = 8.750.000,00 €.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.cli import main
from allocation.runs.register import read_entries, register_path
from workbooks import modified_copy

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022-hebesaetze.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"
ALPEN = "05170004"


def wirkungen(path: Path, levy: str = "Kreisumlage", ags: str = ALPEN) -> dict:
    workbook = load_workbook(path, read_only=True)
    rows = list(workbook["Wirkungen"].iter_rows(values_only=True))
    workbook.close()
    found = [dict(zip(rows[0], row)) for row in rows[1:]]
    return next(r for r in found if r["Umlage"] == levy and r["AGS"] == ags)


def column(row: dict, start: str) -> object:
    return next(value for key, value in row.items() if key.startswith(start))


def money(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def effects(row: dict) -> tuple[Decimal, Decimal, Decimal]:
    return money(row["Änderung (€)"]), money(column(row, "Grundlagenwirkung")), money(column(row, "Satzwirkung"))


def alpen_amount(output: Path, levy: str = "Kreisumlage") -> Decimal:
    workbook = load_workbook(output, read_only=True)
    rows = list(workbook["Umlagen"].iter_rows(values_only=True))
    workbook.close()
    return money(next(r[rows[0].index("Betrag")] for r in rows if r[0] == levy and r[1] == ALPEN))


@pytest.fixture(scope="module")
def year(tmp_path_factory) -> dict:
    """The whole year run once through the CLI; returns the folder, the register and the stage outputs."""
    base = tmp_path_factory.mktemp("jahr")
    inputs = base / "eingaben"
    inputs.mkdir()
    stages = {
        "modell": modified_copy(FIXTURE, inputs / "modell.xlsx", bases={ALPEN: 26_500_000}),
        "benehmen": modified_copy(FIXTURE, inputs / "benehmen.xlsx", bases={ALPEN: 26_500_000},
                                  rates={"kreisumlage": 36.5}),
        "satzung": FIXTURE,
        "aenderung-1": modified_copy(FIXTURE, inputs / "aenderung.xlsx", rates={"kreisumlage": 36.7}),
        "abrechnung": modified_copy(FIXTURE, inputs / "abrechnung.xlsx", rates={"kreisumlage": 36.7},
                                    bases={ALPEN: 27_200_000}),
    }
    previous_input = modified_copy(FIXTURE, inputs / "2021.xlsx", year=2021, bases={ALPEN: 25_000_000},
                                   rates={"kreisumlage": 35})
    previous = base / "ergebnis-2021.xlsx"
    assert main(["run", str(previous_input), "--rules", str(RULES), "-o", str(previous),
                 "--ignore-validity", "Vorjahr 2021 für den Test"]) == 0
    folder, register = base / "kreis-wesel-2022", base / "register"
    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    outputs = {}
    for number, (stage, source) in enumerate(stages.items(), start=1):
        assert main(["year", "stage", str(folder), stage, str(source), "--rules", str(RULES),
                     "--register", str(register)]) == 0, stage
        outputs[stage] = folder / f"{number:02d}-{stage}" / f"ergebnis-{stage}.xlsx"
        if stage == "benehmen":
            assert main(["benehmen", str(source), "--rules", str(RULES), "--previous", str(previous),
                         "-o", str(base / "benehmen"), "--date", "2022-01-17", "--deadline", "2022-02-28"]) == 0
        if stage == "aenderung-1":  # the change notices go out while the change is the run in force
            assert main(["notices", str(outputs[stage]), "-o", str(base / "aenderungsbescheide"), "--date",
                         "2022-09-15", "--previous", str(outputs["satzung"]), "--register", str(register)]) == 0
    names = list(stages)
    for before, after in zip(names, names[1:]):
        assert main(["compare", str(outputs[before]), str(outputs[after]),
                     "-o", str(base / f"vergleich-{before}-{after}.xlsx")]) == 0
    return {"base": base, "folder": folder, "register": register, "outputs": outputs}


def test_each_stage_amount_by_hand(year):
    amounts = {stage: alpen_amount(output) for stage, output in year["outputs"].items()}
    assert amounts == {"modell": Decimal("9593000.00"), "benehmen": Decimal("9672500.00"),
                       "satzung": Decimal("9829906.19"), "aenderung-1": Decimal("9965678.38"),
                       "abrechnung": Decimal("9982400.00")}


def test_benehmen_letter_shows_plan_previous_year_change_and_point_value(year):
    from pypdf import PdfReader

    text = re.sub(r"\s+", " ", "\n".join(p.extract_text() for p in PdfReader(
        year["base"] / "benehmen" / "05170004_Alpen_Benehmen.pdf").pages))
    # plan 26.500.000 × 36,50 % = 9.672.500,00; 2021: 25.000.000 × 35,00 % = 8.750.000,00; change 922.500,00 €;
    # the rate rose by 36,50 − 35,00 = 1,50 points; base effect (26.500.000 − 25.000.000) × 35,00 % = 525.000,00 €,
    # rate effect 26.500.000 × 1,50 % = 397.500,00 € (together the change); one point = 26.500.000 × 1 % = 265.000,00
    for figure in ("36,50 %", "35,00 %", "26.500.000,00 €", "9.672.500,00 €", "8.750.000,00 €", "+922.500,00 €",
                   "+1,50", "+525.000,00 €", "+397.500,00 €", "265.000,00 €", "28.02.2022", "17.01.2022",
                   "jugendamtsumlage", "§ 56 Abs. 5 KrO NRW", "Stellungnahme im Benehmensverfahren 2022",
                   "Wir erheben keine Einwendungen", "Mit freundlichen Grüßen", "N. N. (Beispiel)"):
        assert figure in text, figure
    # Jugendamtsumlage: 23,65 % both years; 26.500.000 → 6.267.250,00, 25.000.000 → 5.912.500,00: +354.750,00 €, all of
    # it base effect; the rate did not change (0,00 points, rate effect 0,00 €)
    for figure in ("6.267.250,00 €", "5.912.500,00 €", "+354.750,00 €", "Änderung des Umlagesatzes in Punkten "
                   "(geplant − Vorjahr) 0,00"):
        assert figure in text, figure
    # the drivers add up: what the listed rules do not explain stands as "übrige Positionen", and the changes of the
    # table's rows together are the change of both levies, 922.500,00 + 354.750,00 = 1.277.250,00 €
    assert "übrige Positionen" in text and "Änderung gegenüber 2021: +1.277.250,00 €" in text
    table = text[text.index("Was die Änderung treibt"):text.index("Mit freundlichen Grüßen")]
    signed = [Decimal(x.replace(".", "").replace(",", ".")) for x in re.findall(r"([+-][\d.]+,\d\d) €", table)]
    assert sum(signed) == Decimal("1277250.00") and len(signed) >= 2
    assert "Dieser Bescheid" not in text  # a letter, not an administrative act
    assert "kreis-wesel" not in text.lower().replace("kreis wesel", "")  # no file name on the letter


def test_benehmen_overview_has_every_municipality(year):
    workbook = load_workbook(year["base"] / "benehmen" / "Benehmen.xlsx", read_only=True)
    rows = list(workbook["Benehmen"].iter_rows(values_only=True))
    workbook.close()
    found = [dict(zip(rows[0], row)) for row in rows[1:]]
    assert len({r["AGS"] for r in found}) == 13 and len(found) == 13 + 7  # Kreisumlage 13, Jugendamtsumlage 7
    alpen = next(r for r in found if r["AGS"] == ALPEN and r["Umlage"] == "Kreisumlage")
    assert money(alpen["Betrag 2022 (geplant)"]) == Decimal("9672500.00")
    assert money(alpen["Betrag 2021"]) == Decimal("8750000.00")
    assert money(alpen["Änderung (€)"]) == Decimal("922500.00")
    assert Decimal(str(alpen["Änderung (Hebesatz-Punkte)"])) == Decimal("1.5")  # 36,50 − 35,00
    assert money(alpen["Wert eines Hebesatzpunktes (Grundlage × 1 %)"]) == Decimal("265000.00")
    assert Decimal(str(alpen["Satz 2021 (%)"])) == Decimal("35")
    assert money(alpen["Grundlagenwirkung (€)"]) == Decimal("525000.00")  # (26,5 − 25) Mio × 35 %
    assert money(alpen["Satzwirkung (€)"]) == Decimal("397500.00")  # 26,5 Mio × 1,5 %
    # the layout: sheets, headers, formats (rates 0.0000, amounts in euros, points 0.0000), frozen header
    book = load_workbook(year["base"] / "benehmen" / "Benehmen.xlsx")
    assert book.sheetnames == ["Benehmen", "Treiber", "Protokoll"]
    sheet = book["Benehmen"]
    assert [c.value for c in sheet[1]][:4] == ["AGS", "Gemeinde", "Umlage", "Geplanter Satz (%)"]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:M21"  # 20 lines + header
    first = [c for c in sheet[2]]
    assert first[0].data_type == "s" and first[4].data_type == "n"
    assert [c.number_format for c in first[4:8]] == ['#,##0.00 "€"'] * 4
    assert first[8].number_format == "0.0000" and first[9].number_format == '#,##0.00 "€"'
    assert [r[0].value for r in book["Protokoll"].iter_rows(min_row=2)][-1] == "Frist für Stellungnahmen"


def test_model_to_benehmen_is_the_planned_rate(year):
    # 26.500.000,00 × 0,30 % = 79.500,00 €, the bases unchanged
    row = wirkungen(year["base"] / "vergleich-modell-benehmen.xlsx")
    assert effects(row) == (Decimal("79500.00"), Decimal("0.00"), Decimal("79500.00"))


def test_benehmen_to_statute_final_bases_up_rate_down(year):
    # change 9.829.906,19 − 9.672.500,00 = 157.406,19 €
    # rate effect 27.154.437 × (36,20 − 36,50) % = −81.463,311 → −81.463,31 €
    # base effect 157.406,19 + 81.463,31 = 238.869,50 € (exactly 654.437 × 36,50 % = 238.869,505 €)
    row = wirkungen(year["base"] / "vergleich-benehmen-satzung.xlsx")
    assert effects(row) == (Decimal("157406.19"), Decimal("238869.50"), Decimal("-81463.31"))
    assert row["Erläuterung"] == ("Die Kreisumlage von Alpen steigt um 157.406,19 €: 238.869,50 € durch höhere "
                                  "Umlagegrundlagen, 81.463,31 € durch den niedrigeren Satz.")


def test_retroactive_change_is_all_rate_effect(year):
    # 27.154.437 × 0,50 % = 135.772,185; the rounded amounts differ by 9.965.678,38 − 9.829.906,19 = 135.772,19 €
    row = wirkungen(year["base"] / "vergleich-satzung-aenderung-1.xlsx")
    assert effects(row) == (Decimal("135772.19"), Decimal("0.00"), Decimal("135772.19"))


def test_settlement_is_all_base_effect(year):
    # 45.563,00 € more base × 36,70 % = 16.721,621; 9.982.400,00 − 9.965.678,38 = 16.721,62 €
    row = wirkungen(year["base"] / "vergleich-aenderung-1-abrechnung.xlsx")
    assert effects(row) == (Decimal("16721.62"), Decimal("16721.62"), Decimal("0.00"))
    youth = wirkungen(year["base"] / "vergleich-aenderung-1-abrechnung.xlsx", "Jugendamtsumlage")
    # 23,65 %: 6.422.024,3505 → 6.422.024,35; 27.200.000 × 23,65 % = 6.432.800,00; change 10.775,65 €
    assert effects(youth) == (Decimal("10775.65"), Decimal("10775.65"), Decimal("0.00"))


def test_the_folder_layout_and_the_hash_chain(year):
    folder = year["folder"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "01-modell", "02-benehmen", "03-satzung", "04-aenderung-1", "05-abrechnung", "Stellungnahmen.xlsx", "jahr.json",
        "stufen.jsonl"]
    assert sorted(p.name for p in (folder / "03-satzung").iterdir()) == [
        "ergebnis-satzung.xlsx", "ergebnis-satzung.xlsx.manifest.json", "kreis-wesel-2022-hebesaetze.xlsx",
        "kreis-wesel.yaml"]
    lines = (folder / "stufen.jsonl").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["stage"] for e in entries] == ["modell", "benehmen", "satzung", "aenderung-1", "abrechnung"]
    assert [e["mode"] for e in entries] == ["test", "test", "final", "final", "final"]
    assert entries[0]["prev_manifest_sha256"] == "0" * 64
    import hashlib

    for before, after, line in zip(entries, entries[1:], lines):
        manifest = folder / before["manifest"]["file"]
        assert after["prev_manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
        assert after["prev_sha256"] == hashlib.sha256(line.encode("utf-8")).hexdigest()


def test_final_stages_are_in_the_register_each_superseding_the_last(year):
    entries = read_entries(register_path(year["register"], "Kreis Wesel", 2022))
    assert [e["stage"] for e in entries] == ["satzung", "aenderung-1", "abrechnung"]
    assert [e["supersedes"] for e in entries] == [None, 1, 2]
    assert entries[0]["reason"] is None
    assert "§ 56 KrO NRW" in entries[1]["reason"] and "abrechnung" in entries[2]["reason"]
    assert entries[1]["output"].endswith("04-aenderung-1/ergebnis-aenderung-1.xlsx")


def test_status_verifies_every_stage(year, capsys):
    assert main(["year", "status", str(year["folder"]), "--register", str(year["register"])]) == 0
    out = capsys.readouterr().out
    assert out.count(" OK") == 5 and "abrechnung" in out


def test_each_stage_verifies_like_a_run(year):
    assert main(["verify", str(year["outputs"]["aenderung-1"]), "--register", str(year["register"])]) == 0


def test_the_change_produces_change_notices_and_a_superseded_run_none(year, tmp_path, capsys):
    from pypdf import PdfReader

    notices = year["base"] / "aenderungsbescheide"  # written by the fixture right after the stage aenderung-1
    text = re.sub(r"\s+", " ", "\n".join(p.extract_text() for p in PdfReader(
        notices / "05170004_Alpen_Aenderung.pdf").pages))
    for figure in ("9.829.906,19 €", "9.965.678,38 €", "135.772,19 €", "Änderungsbescheid"):
        assert figure in text, figure
    # once the settlement superseded the change, its notices would set what no longer holds
    capsys.readouterr()
    assert main(["notices", str(year["outputs"]["aenderung-1"]), "-o", str(tmp_path / "spaet"), "--date", "2022-12-15",
                 "--register", str(year["register"]), "--json"]) == 3
    assert [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]] == ["notices-superseded"]


def test_second_retroactive_change_needs_a_reason(tmp_path, capsys):
    folder, register = tmp_path / "jahr", tmp_path / "register"
    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    change = modified_copy(FIXTURE, tmp_path / "aenderung.xlsx", rates={"kreisumlage": 36.7})
    second = modified_copy(FIXTURE, tmp_path / "aenderung-2.xlsx", rates={"kreisumlage": 36.9})
    stage = ["year", "stage", str(folder)]
    assert main([*stage, "aenderung-1", str(change), "--rules", str(RULES), "--register", str(register)]) == 8
    assert "year-stage-order" in capsys.readouterr().err  # no change before the statute
    assert main([*stage, "satzung", str(FIXTURE), "--rules", str(RULES), "--register", str(register)]) == 0
    assert main([*stage, "aenderung-1", str(change), "--rules", str(RULES), "--register", str(register)]) == 0
    capsys.readouterr()
    assert main([*stage, "aenderung-2", str(second), "--rules", str(RULES), "--register", str(register)]) == 8
    assert "year-second-change" in capsys.readouterr().err
    assert not (folder / "03-aenderung-2").exists()
    assert main([*stage, "aenderung-2", str(second), "--rules", str(RULES), "--register", str(register),
                 "--supersede", "Nachtragssatzung, Kreistag 01.12.2022"]) == 0
    entries = read_entries(register_path(register, "Kreis Wesel", 2022))
    assert [(e["stage"], e["reason"]) for e in entries][-1] == ("aenderung-2", "Nachtragssatzung, Kreistag 01.12.2022")
    chain = [json.loads(line) for line in (folder / "stufen.jsonl").read_text(encoding="utf-8").splitlines()]
    assert chain[-1]["reason"] == "Nachtragssatzung, Kreistag 01.12.2022"


def test_a_stage_never_goes_back_nor_runs_twice(tmp_path, capsys):
    folder = tmp_path / "jahr"
    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    stage = ["year", "stage", str(folder)]
    assert main([*stage, "entwurf", str(FIXTURE), "--rules", str(RULES)]) == 0
    assert main([*stage, "modell", str(FIXTURE), "--rules", str(RULES)]) == 8
    assert "year-stage-order" in capsys.readouterr().err
    assert main([*stage, "entwurf", str(FIXTURE), "--rules", str(RULES)]) == 8
    assert "year-stage-repeated" in capsys.readouterr().err
    assert main([*stage, "entwurf", str(FIXTURE), "--rules", str(RULES), "--supersede", "korrigierte Kosten"]) == 0
    assert main([*stage, "haushalt", str(FIXTURE), "--rules", str(RULES)]) == 8
    assert "year-unknown-stage" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["01-entwurf", "02-entwurf", "Stellungnahmen.xlsx", "jahr.json",
                                                        "stufen.jsonl"]


def test_input_of_another_year_is_refused_and_leaves_nothing(tmp_path, capsys):
    folder = tmp_path / "jahr"
    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2023"]) == 0
    assert main(["year", "stage", str(folder), "modell", str(FIXTURE), "--rules", str(RULES)]) == 8
    assert "year-other-year" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["Stellungnahmen.xlsx", "jahr.json", "stufen.jsonl"]
    assert (folder / "stufen.jsonl").read_text() == ""


def test_init_refuses_an_existing_year(tmp_path, capsys):
    folder = tmp_path / "jahr"
    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2022"]) == 8
    assert "year-exists" in capsys.readouterr().err


def test_status_finds_a_changed_output_and_an_edited_chain(tmp_path, capsys):
    folder = tmp_path / "jahr"
    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    for stage in ("modell", "entwurf"):
        assert main(["year", "stage", str(folder), stage, str(FIXTURE), "--rules", str(RULES)]) == 0
    output = folder / "01-modell" / "ergebnis-modell.xlsx"
    output.write_bytes(output.read_bytes() + b"\0")
    capsys.readouterr()
    assert main(["year", "status", str(folder)]) == 7
    err = capsys.readouterr().err
    assert "year-stage-changed" in err and "ergebnis-modell.xlsx" in err
    chain = folder / "stufen.jsonl"
    lines = chain.read_text(encoding="utf-8").splitlines()
    chain.write_text(lines[0].replace('"modell"', '"benehmen"') + "\n" + lines[1] + "\n", encoding="utf-8")
    assert main(["year", "status", str(folder)]) == 7
    assert "year-chain-broken" in capsys.readouterr().err


def test_benehmen_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    (tmp_path / "pack").mkdir()
    (tmp_path / "pack" / "alt.pdf").write_bytes(b"%PDF")
    assert main(["benehmen", str(FIXTURE), "--rules", str(RULES), "--previous", str(FIXTURE),
                 "-o", str(tmp_path / "pack")]) == 8
    assert "benehmen-would-overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == ["alt.pdf"]


def _log(folder: Path, rows: list[list]) -> None:
    workbook = load_workbook(folder / "Stellungnahmen.xlsx")
    for row in rows:
        workbook["Stellungnahmen"].append(row)
    workbook.save(folder / "Stellungnahmen.xlsx")


def test_statements_go_into_the_kreistag_pack(year, tmp_path):
    import datetime as dt

    folder = tmp_path / "jahr"
    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    assert main(["year", "stage", str(folder), "benehmen", str(FIXTURE), "--rules", str(RULES)]) == 0
    _log(folder, [["05170004", "Alpen", dt.datetime(2022, 2, 20), "Satz zu hoch; Ausgleichsrücklage einsetzen",
                   "zurückgewiesen", "Die Ausgleichsrücklage ist bereits im Entwurf eingesetzt."],
                  ["05170052", "Xanten", "24.02.2022", "Jugendamtsumlage: Gemeinkosten", None, None]])
    pack = tmp_path / "kreistag.xlsx"
    assert main(["year", "kreistag", str(folder), "-o", str(pack)]) == 0
    workbook = load_workbook(pack, read_only=True)
    assert workbook.sheetnames == ["Stufen", "Stellungnahmen", "Jahr"]
    rows = list(workbook["Stellungnahmen"].iter_rows(values_only=True))
    stages = list(workbook["Stufen"].iter_rows(values_only=True))
    workbook.close()
    assert rows[0] == ("AGS", "Gemeinde", "Datum", "Punkte", "Beschluss", "Begründung", "Stand")
    assert rows[1][:2] == ("05170004", "Alpen") and rows[1][2].date() == dt.date(2022, 2, 20)
    assert rows[1][4:] == ("zurückgewiesen", "Die Ausgleichsrücklage ist bereits im Entwurf eingesetzt.", "entschieden")
    assert rows[2][0] == "05170052" and rows[2][2].date() == dt.date(2022, 2, 24) and rows[2][6] == "offen"
    assert [r[1] for r in stages[1:]] == ["benehmen"] and stages[1][8] == "OK"
    # the layout: dates keep their date format, the sheet Jahr has no filter; the empty log a plain header
    book = load_workbook(pack)
    statements = book["Stellungnahmen"]
    assert statements["C2"].is_date and statements["C2"].number_format == "yyyy-mm-dd"
    assert statements.freeze_panes == "A2" and statements.auto_filter.ref == "A1:G3"
    assert book["Jahr"].auto_filter.ref is None and book["Jahr"]["B3"].value == 2022
    empty = tmp_path / "leer"
    assert main(["year", "init", str(empty), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    log = load_workbook(empty / "Stellungnahmen.xlsx")
    assert log.sheetnames == ["Stellungnahmen"]
    sheet = log["Stellungnahmen"]
    assert [c.value for c in sheet[1]] == ["AGS", "Gemeinde", "Datum", "Punkte", "Beschluss", "Begründung"]
    assert not sheet["A1"].font.b and sheet.freeze_panes == "A2" and sheet.max_row == 1
    assert [sheet.column_dimensions[letter].width for letter in "ABCDEF"] == [11, 20, 12, 60, 22, 60]


def test_a_decision_without_reason_is_a_located_problem(tmp_path, capsys):
    folder = tmp_path / "jahr"
    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    _log(folder, [["5170004", "Alpen", "2022-02-20", "Satz zu hoch", "stattgegeben", None],
                  ["05170052", "Xanten", "morgen", "", "vertagt", "weil"]])
    assert main(["year", "kreistag", str(folder), "-o", str(tmp_path / "k.xlsx")]) == 3
    err = capsys.readouterr().err
    for cell in ("Stellungnahmen!A2", "Stellungnahmen!F2", "Stellungnahmen!C3", "Stellungnahmen!D3",
                 "Stellungnahmen!E3"):
        assert cell in err, cell
    assert err.count("statements-bad-cell") == 5
    assert not (tmp_path / "k.xlsx").exists()


def test_benehmen_drivers_are_each_rules_share_against_the_previous_year(year):
    from test_findings import BASES, largest_remainder

    youth = ["05170004", "05170012", "05170016", "05170028", "05170036", "05170040", "05170052"]  # Jugendamt_Kreis 1

    def share(total: int, payers: list[str], alpen_base: int) -> int:
        return largest_remainder(total, {a: alpen_base if a == ALPEN else BASES[a] for a in payers})[ALPEN]

    # JA-2022 deficit 22.260.000,00 € over the seven Jugendamt municipalities; KIM-2022 76.000,00 € over all 13
    ja_2022, ja_2021 = share(2_226_000_000, youth, 26_500_000), share(2_226_000_000, youth, 25_000_000)
    kim_2022, kim_2021 = share(7_600_000, list(BASES), 26_500_000), share(7_600_000, list(BASES), 25_000_000)
    workbook = load_workbook(year["base"] / "benehmen" / "Benehmen.xlsx", read_only=True)
    rows = list(workbook["Treiber"].iter_rows(values_only=True))
    workbook.close()
    alpen = [dict(zip(rows[0], row)) for row in rows[1:] if row[0] == ALPEN]
    assert [r["Regel"] for r in alpen] == ["jugendamtsumlage", "kim-kreisumlage"]  # the larger change first
    for row, now, before in zip(alpen, (ja_2022, kim_2022), (ja_2021, kim_2021)):
        assert money(row["Anteil 2022"]) == Decimal(now) / 100
        assert money(row["Anteil 2021"]) == Decimal(before) / 100
        assert money(row["Änderung (€)"]) == Decimal(now - before) / 100
    assert alpen[0]["Rechtsgrundlage"].startswith("§ 56 Abs. 5 KrO NRW")
